"""The student copy tests ITSELF (not the installed, solved tree) and leaks no solution: no solution text in its docs,
no untracked files (demo_out/, a trained model.npz) of the instructor's."""

import os
import subprocess
import sys
import textwrap

import pytest

from tinydiff.exercises.markers import blanked_exercises
from tinydiff.exercises.student import make_student

# These tests make student copies of this tree: they need its solutions, so a student copy skips them (as the other
# exercise tools' tests do; the full round trip, -m slow, runs the whole suite inside a student copy).
pytestmark = pytest.mark.skipif(bool(blanked_exercises()), reason="the exercise tools' tests need the solution tree")


def pytest_without_cwd_on_path():
    """`pytest` as a student types it: the console script, which (unlike `python -m pytest`) does not put the current
    folder on sys.path. ``python -P`` (3.11+) does the same for `-m`."""
    if sys.version_info >= (3, 11):
        return [sys.executable, "-P", "-m", "pytest"]
    return [os.path.join(os.path.dirname(sys.executable), "pytest")]


def test_a_stub_fails_in_the_student_copy_even_with_the_solved_tree_installed(tmp_path):
    # this venv has a solved tinydiff importable without PYTHONPATH (the README's `pip install -e .`, or the CI
    # clone's): a copy whose tests imported it would report the blank exercise as passed
    out = tmp_path / "hw"
    make_student(out, only=["ex1_1"])
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    proc = subprocess.run(pytest_without_cwd_on_path() + ["-m", "ex1_1", "-q", "-p", "no:cacheprovider"],
                          cwd=out, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "NotImplementedError" in proc.stdout and " passed" not in proc.stdout.splitlines()[-1], proc.stdout[-3000:]


def test_the_copy_reports_which_tinydiff_it_tests(tmp_path):
    out = tmp_path / "hw"
    make_student(out, only=["ex1_1"])
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run(pytest_without_cwd_on_path() + ["--collect-only", "-p", "no:cacheprovider",
                                                          "tests/test_threads.py"],
                          cwd=out, env=env, capture_output=True, text=True, timeout=300)
    assert f"tinydiff under test: {out.resolve() / 'tinydiff'}" in proc.stdout, proc.stdout[-3000:]


@pytest.fixture
def tiny_project(tmp_path):
    """A git checkout with one exercise, docs that quote its solution, and an untracked trained model."""
    root = tmp_path / "project"
    (root / "tinydiff").mkdir(parents=True)
    (root / "tinydiff" / "__init__.py").write_text("")
    (root / "tinydiff" / "double.py").write_text(textwrap.dedent('''\
        def double(x):
            ### BEGIN SOLUTION ex1_1: double — return two times x (chapter 1, 1 points)
            result_of_doubling = x + x
            return result_of_doubling
            ### END SOLUTION
        '''))
    (root / "chapters").mkdir()
    (root / "chapters" / "01_double.py").write_text("# chapter 1\n")
    (root / "docs").mkdir()
    (root / "docs" / "guide.md").write_text(textwrap.dedent('''\
        # Guide
        ```python
        def double(x):
            ### BEGIN SOLUTION ex1_1: double — return two times x (chapter 1, 1 points)
            result_of_doubling = x + x
            ### END SOLUTION
        ```
        Elsewhere the answer is quoted once more: `result_of_doubling = x + x`.
        '''))
    (root / ".gitignore").write_text("demo_out/\n")
    git = ["git", "-C", str(root), "-c", "user.email=t@example.org", "-c", "user.name=t"]
    subprocess.run(git + ["init", "-q"], check=True)
    subprocess.run(git + ["add", "-A"], check=True)
    subprocess.run(git + ["commit", "-qm", "tiny"], check=True)
    (root / "demo_out").mkdir()
    (root / "demo_out" / "model.npz").write_bytes(b"trained weights")     # ignored
    (root / "notes_untracked.txt").write_text("result_of_doubling = x + x\n")   # untracked
    return root


def test_the_copy_holds_only_tracked_files(tiny_project, tmp_path):
    out = tmp_path / "hw"
    make_student(out, root=tiny_project)
    assert not (out / "demo_out").exists() and not (out / "notes_untracked.txt").exists()
    assert (out / "docs" / "guide.md").exists() and (out / "tinydiff" / "double.py").exists()


def test_the_copy_strips_solutions_quoted_in_the_docs(tiny_project, tmp_path):
    out = tmp_path / "hw"
    make_student(out, root=tiny_project)
    guide = (out / "docs" / "guide.md").read_text()
    assert "x + x" not in guide, guide
    assert "### BEGIN SOLUTION ex1_1" in guide and "removed" in guide        # the marker example stays readable


def test_the_real_docs_of_the_student_copy_hold_no_solution_line(tmp_path):
    from tinydiff.exercises.student import REDACTED  # noqa: F401  (the note that replaces a quoted line)

    out = tmp_path / "hw"
    make_student(out, only=["ex1_1"])
    assert "sqrt_ab * x0 + sqrt_1m_ab * noise" not in (out / "docs" / "exercises.md").read_text()
