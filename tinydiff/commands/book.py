"""``python -m tinydiff book --out DIR [--quick]``: every chapter executed into a notebook and an HTML page, with an
index (``tinydiff/book.py``; needs ``pip install -e ".[book]"``)."""

from __future__ import annotations

from pathlib import Path

from tinydiff.commands.common import positive_int


def add_arguments(p):
    p.add_argument("--out", type=Path, default=Path("book"), help="folder for the notebooks and pages (default book)")
    p.add_argument("--quick", action="store_true",
                   help="run each chapter's --quick version (minutes for all; the numbers are the small runs')")
    p.add_argument("--chapters", type=int, nargs="+", default=None, help="only these chapter numbers (default all)")
    p.add_argument("--timeout", type=positive_int, default=1800, help="seconds one cell may take (default 1800)")


def run(args) -> int:
    from tinydiff.book import BookError, build_book

    try:
        entries = build_book(args.out, args.chapters, quick=args.quick, timeout=args.timeout)
    except BookError as err:
        raise SystemExit(f"book: {err}") from None
    stopped = [e for e in entries if e.error]
    for e in stopped:
        print(f"{e.script.name} stopped: {e.error}")
    print(f"open {Path(args.out) / 'index.html'} in a browser ({len(entries) - len(stopped)} of {len(entries)} "
          "chapters ran to the end)")
    return 1 if stopped else 0
