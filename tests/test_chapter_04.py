"""Chapter 4 runs top to bottom in its quick mode and writes the figures its text names."""

import runpy
import sys
from pathlib import Path

CHAPTER = Path(__file__).resolve().parents[1] / "chapters" / "04_backprop_by_hand.py"
FIGURES = ["finite_difference_error.png", "gradient_check.png", "training_loss.png", "regression_fit.png"]


def test_chapter_04_quick_run_writes_its_figures(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", [str(CHAPTER), "--quick", "--out", str(tmp_path)])
    runpy.run_path(str(CHAPTER), run_name="__main__")
    for name in FIGURES:
        assert (tmp_path / name).stat().st_size > 0, name
        assert name in CHAPTER.read_text()                         # the text names every figure it writes
    assert "summary:" in capsys.readouterr().out
