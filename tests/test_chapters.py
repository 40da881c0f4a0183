"""Every chapter runs in its quick mode and writes every figure its text promises."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

CHAPTERS = sorted((Path(__file__).resolve().parents[1] / "chapters").glob("[0-9][0-9]_*.py"))


def promised_figures(path: Path) -> set[str]:
    """The figure files named in backticks in the chapter's text, e.g. `forward_points.png`."""
    return set(re.findall(r"`([\w\-]+\.(?:png|gif))`", path.read_text()))


@pytest.mark.parametrize("chapter", CHAPTERS, ids=[p.stem for p in CHAPTERS])
def test_chapter_runs_quickly_and_writes_its_figures(chapter, tmp_path):
    # NUMBA_DISABLE_JIT=1 is for stepping through kernels; chapters that train networks would take hours without the
    # JIT, so they always run compiled (the kernels themselves are tested without it elsewhere).
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_DISABLE_JIT"}
    env["MPLBACKEND"] = "Agg"
    result = subprocess.run(
        [sys.executable, str(chapter), "--quick", "--out", str(tmp_path)],
        capture_output=True, text=True, env=env, timeout=300,
    )
    assert result.returncode == 0, f"{chapter.name} failed:\n{result.stdout[-2000:]}\n{result.stderr[-4000:]}"
    figures = promised_figures(chapter)
    assert figures, f"{chapter.name} names no figures in its text"
    missing = sorted(f for f in figures if not (tmp_path / f).exists())
    assert not missing, f"{chapter.name} promised {missing} but did not write them (wrote {sorted(os.listdir(tmp_path))})"
