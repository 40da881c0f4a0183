"""Every chapter runs in its quick mode, writes every figure its text promises, and every claim it judges holds.

A chapter's sentences about its own run are checked claims (tinydiff.claims): a failed claim makes the chapter exit
with status 1, so these tests fail when a lecture's text and its run disagree. The slow test runs every chapter in
full mode, where every claim is judged (``pytest -m slow``).
"""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

CHAPTERS = sorted((Path(__file__).resolve().parents[1] / "chapters").glob("[0-9][0-9]_*.py"))


def needs_mnist(path: Path) -> bool:
    """Chapters that read MNIST call require_mnist: their tests skip (marked `mnist`) when the files are absent."""
    return "require_mnist(" in path.read_text()


def missing_checkpoints(path: Path) -> list[str]:
    """The files data/checkpoints/NAME.npz a chapter's text names that are not on disk (a checkpoint not shipped yet:
    the chapter stops with one line saying how to make it, and its test skips)."""
    root = path.parents[1] / "data" / "checkpoints"
    return sorted({name for name in re.findall(r"data/checkpoints/(\w+\.npz)", path.read_text())
                   if not (root / name).exists()})


def marks(path: Path) -> list:
    missing = missing_checkpoints(path)
    return (([pytest.mark.mnist] if needs_mnist(path) else [])
            + ([pytest.mark.skip(reason=f"needs {', '.join(missing)} in data/checkpoints")] if missing else []))


PARAMS = [pytest.param(p, id=p.stem, marks=marks(p)) for p in CHAPTERS]


def promised_figures(path: Path) -> set[str]:
    """The figure files named in backticks in the chapter's text, e.g. `forward_points.png`."""
    return set(re.findall(r"`([\w\-]+\.(?:png|gif))`", path.read_text()))


def run_chapter(chapter: Path, out: Path, quick: bool, timeout: float) -> subprocess.CompletedProcess:
    """Run one chapter in a subprocess; assert it exited 0 and reported its claims (its last line calls finish())."""
    # NUMBA_DISABLE_JIT=1 is for stepping through kernels; chapters that train networks would take hours without the
    # JIT, so they always run compiled (the kernels themselves are tested without it elsewhere).
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_DISABLE_JIT"}
    env["MPLBACKEND"] = "Agg"
    result = subprocess.run(
        [sys.executable, str(chapter), *(["--quick"] if quick else []), "--out", str(out)],
        capture_output=True, text=True, env=env, timeout=timeout,
    )
    assert result.returncode == 0, f"{chapter.name} failed:\n{result.stdout[-3000:]}\n{result.stderr[-4000:]}"
    mode = "quick" if quick else "full"
    assert f"claims ({mode} mode):" in result.stdout, (
        f"{chapter.name} ended without reporting its claims: its last line should be tinydiff.claims.finish()")
    return result


@pytest.mark.parametrize("chapter", PARAMS)
def test_chapter_runs_quickly_and_writes_its_figures(chapter, tmp_path):
    run_chapter(chapter, tmp_path, quick=True, timeout=300)
    figures = promised_figures(chapter)
    assert figures, f"{chapter.name} names no figures in its text"
    missing = sorted(f for f in figures if not (tmp_path / f).exists())
    assert not missing, f"{chapter.name} promised {missing} but did not write them (wrote {sorted(os.listdir(tmp_path))})"


@pytest.mark.slow
@pytest.mark.parametrize("chapter", PARAMS)
def test_chapter_in_full_mode_holds_every_claim(chapter, tmp_path):
    result = run_chapter(chapter, tmp_path, quick=False, timeout=3600)
    assert "claim [not judged" not in result.stdout, "full mode judges every claim"


def test_the_chapter_tests_cover_every_chapter_file():
    """Chapters are found by their file names (NN_topic.py), so a new chapter is run in quick and full mode unasked."""
    on_disk = {p.name for p in CHAPTERS[0].parent.iterdir() if re.fullmatch(r"\d\d_\w+\.py", p.name)}
    assert {p.name for p in CHAPTERS} == on_disk
    assert {p.id for p in PARAMS} == {Path(name).stem for name in on_disk}


@pytest.mark.parametrize("chapter", CHAPTERS, ids=[p.stem for p in CHAPTERS])
def test_every_chapter_ends_by_reporting_its_claims(chapter):
    code = [line for line in chapter.read_text().splitlines() if line.strip() and not line.startswith("#")]
    assert re.match(r"(claims\.)?finish\(\)", code[-1]), (
        f"{chapter.name} must end with tinydiff.claims.finish(), not {code[-1]!r}")


def test_a_chapter_whose_claim_fails_fails_its_test(tmp_path):
    fake = tmp_path / "99_fake.py"
    fake.write_text("from tinydiff import claims\n"
                    "claims.claim(True, 'a true sentence')\n"
                    "claims.claim(False, 'a sentence the run contradicts: {x:.1f}', x=2.0)\n"
                    "claims.finish()\n")
    with pytest.raises(AssertionError, match="a sentence the run contradicts: 2.0"):
        run_chapter(fake, tmp_path / "out", quick=False, timeout=120)


def test_mnist_chapters_without_the_data_print_one_line_and_exit_nonzero(tmp_path):
    chapter = next(p for p in CHAPTERS if needs_mnist(p))
    env = {**os.environ, "TINYDIFF_DATA": str(tmp_path), "TINYDIFF_OFFLINE": "1", "MPLBACKEND": "Agg"}
    result = subprocess.run([sys.executable, str(chapter), "--quick", "--out", str(tmp_path / "out")],
                            capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr, result.stderr
    message = result.stderr.strip()
    assert len(message.splitlines()) == 1 and "needs the MNIST files" in message and "TINYDIFF_DATA" in message, message


@pytest.mark.mnist
def test_chapter_19_without_the_flow_checkpoint_prints_one_line_and_exits_nonzero(tmp_path):
    chapter = next(p for p in CHAPTERS if p.name.startswith("19_"))
    env = {**os.environ, "TINYDIFF_FLOW_CHECKPOINT": str(tmp_path / "none.npz"), "MPLBACKEND": "Agg"}
    result = subprocess.run([sys.executable, str(chapter), "--quick", "--out", str(tmp_path / "out")],
                            capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode != 0 and "Traceback" not in result.stderr, result.stderr
    message = result.stderr.strip()
    assert len(message.splitlines()) == 1 and "none.npz" in message and "--objective flow" in message, message
