"""``python -m tinydiff chapter N``: run chapter N from the repository's ``chapters/`` folder."""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

CHAPTERS_DIR = Path(__file__).resolve().parents[2] / "chapters"


def find_chapter(number: int) -> Path:
    """The chapter script ``chapters/NN_*.py`` for ``number`` (a clear error if there is none)."""
    matches = sorted(CHAPTERS_DIR.glob(f"{number:02d}_*.py"))
    if not matches:
        have = sorted(p.name for p in CHAPTERS_DIR.glob("[0-9][0-9]_*.py"))
        raise SystemExit(
            f"no chapter {number} in {CHAPTERS_DIR} (have: {', '.join(have) or 'none'}). "
            "The chapters ship with the source tree: run this from a clone of tinydiff installed with `pip install -e .`."
        )
    return matches[0]


def add_arguments(p):
    p.add_argument("number", type=int, help="chapter number, e.g. 1 for chapters/01_forward_process.py")
    p.add_argument("--out", default=None, help="folder for the figures (default: chapters/out/NN)")
    p.add_argument("--quick", action="store_true", help="small sizes: runs in seconds (what the tests use)")


def run(args):
    path = find_chapter(args.number)
    argv = [str(path)] + (["--out", args.out] if args.out else []) + (["--quick"] if args.quick else [])
    old = sys.argv
    sys.argv = argv
    try:
        runpy.run_path(str(path), run_name="__main__")
    finally:
        sys.argv = old
    return 0
