"""Chapter 5 runs top to bottom in its quick mode and writes the figures its text names."""

import runpy
import sys
from pathlib import Path

CHAPTER = Path(__file__).resolve().parents[1] / "chapters" / "05_convolutions_with_numba.py"
FIGURES = ["conv_filters.png", "im2col_columns.png", "groupnorm_statistics.png", "conv_speed.png"]


def test_chapter_05_quick_run_writes_its_figures(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", [str(CHAPTER), "--quick", "--out", str(tmp_path)])
    runpy.run_path(str(CHAPTER), run_name="__main__")
    for name in FIGURES:
        assert (tmp_path / name).stat().st_size > 0, name
        assert name in CHAPTER.read_text()                         # the text names every figure it writes
    out = capsys.readouterr().out
    assert "summary:" in out
    assert "FAIL" not in out                                       # both gradient checks passed
