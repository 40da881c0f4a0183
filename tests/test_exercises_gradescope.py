"""The Gradescope bundle: its layout follows Gradescope's spec, and its run_autograder, run locally with the paths
redirected (no network, no setup.sh), grades a solved submission full marks and an unsolved one zero with the
teaching messages."""

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tinydiff.exercises.gradescope import build_bundle, splice, unpack_bundle
from tinydiff.exercises.markers import blanked_exercises, project_root, scan_project
from tinydiff.exercises.student import make_student, student_text

ONLY = ["ex1_1", "ex8_1"]

# These tests build bundles and copies from this tree: they need its solutions, so a student copy skips them.
pytestmark = pytest.mark.skipif(bool(blanked_exercises()), reason="the exercise tools' tests need the solution tree")


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("gradescope")
    zip_path = tmp / "autograder.zip"
    assert build_bundle(zip_path, ONLY) == ONLY
    return zip_path


def test_bundle_has_gradescopes_layout_with_executable_scripts(bundle):
    with zipfile.ZipFile(bundle) as z:
        names = set(z.namelist())
        modes = {i.filename: i.external_attr >> 16 for i in z.infolist()}
        assert z.read("exercises.txt").decode().strip() == "ex1_1,ex8_1"
    assert {"setup.sh", "run_autograder", "requirements.txt", "tests/conftest.py"} <= names
    assert modes["setup.sh"] & 0o111 and modes["run_autograder"] & 0o111
    assert any(n.startswith("tests/exercises/test_ex01") for n in names)
    assert "tinydiff/exercises/grade.py" in names and not any(n.startswith("data/") for n in names)


def _run(bundle, tmp_path, submission):
    root = tmp_path / "autograder"
    unpack_bundle(bundle, root / "source")
    env = dict(os.environ, AUTOGRADER_ROOT=str(root), PYTHON=sys.executable)
    env.pop("PYTHONPATH", None)
    shutil.copytree(submission, root / "submission")
    proc = subprocess.run(["bash", str(root / "source" / "run_autograder")], env=env, capture_output=True, text=True,
                          timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return json.loads((root / "results" / "results.json").read_text())


def _submission(tmp_path, name, blank):
    """Just the two files holding the regions, one folder down, with the exercises ``blank`` stubbed."""
    exercises, _ = scan_project(project_root())
    root = tmp_path / name / "my-homework"
    for rel in ("tinydiff/diffusion.py", "tinydiff/samplers.py"):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        text = (project_root() / rel).read_text()
        (root / rel).write_text(student_text(text, Path(rel), exercises, set(blank), project_root()))
    return tmp_path / name


def _check_solved(results, ex_id):
    tests = [t for t in results["tests"] if f"({ex_id})" in t["name"]]
    assert tests and all(t["score"] == t["max_score"] > 0 and "passed" in t["output"] for t in tests)


def _check_unsolved(results, ex_id):
    number = ex_id[2:].replace("_", ".")
    tests = [t for t in results["tests"] if f"({ex_id})" in t["name"]]
    assert tests and all(t["score"] == 0 and f"NotImplementedError: Exercise {number} (" in t["output"] for t in tests)


def test_run_autograder_scores_a_solved_exercise_full_and_an_unsolved_one_zero_with_its_messages(bundle, tmp_path):
    results = _run(bundle, tmp_path, _submission(tmp_path, "half", ["ex8_1"]))
    _check_solved(results, "ex1_1")
    _check_unsolved(results, "ex8_1")
    assert results["score"] == 2.0
    assert [t["name"] for t in results["tests"]] == ["Exercise 1.1: q_sample (ex1_1)",
                                                     "Exercise 8.1: DDIM step (ex8_1), sigma (eq. 16)",
                                                     "Exercise 8.1: DDIM step (ex8_1), the step (eq. 12), eta = 0 and eta > 0"]
    assert {t["visibility"] for t in results["tests"]} == {"visible"}
    assert "ex8_1" in results["output"] and results["execution_time"] > 0


@pytest.mark.slow
@pytest.mark.parametrize("solved", [True, False])
def test_run_autograder_on_a_whole_solved_and_a_whole_student_copy(bundle, tmp_path, solved):
    copy = tmp_path / "copy"
    if solved:
        shutil.copytree(project_root() / "tinydiff", copy / "tinydiff", ignore=shutil.ignore_patterns("__pycache__"))
    else:
        make_student(copy, ONLY)
    results = _run(bundle, tmp_path, copy)
    for k in ONLY:
        (_check_solved if solved else _check_unsolved)(results, k)


def test_splice_takes_only_the_regions_from_a_submission(tmp_path):
    """A submission that edits a test or the grader changes nothing: only region bodies are copied."""
    student = _submission(tmp_path, "student", ["ex1_1"])
    (student / "my-homework" / "tests" / "exercises").mkdir(parents=True)
    (student / "my-homework" / "tests" / "exercises" / "test_ex01_forward.py").write_text("def test_x():\n    pass\n")
    work = tmp_path / "work"
    notes = splice(project_root(), student, work, ["ex1_1"])
    assert notes == []
    assert "def test_q_sample_matches_eq4" in (work / "tests" / "exercises" / "test_ex01_forward.py").read_text()
    text = (work / "tinydiff" / "diffusion.py").read_text()
    assert "Exercise 1.1 (q_sample)" in text and "return sqrt_ab * x0 + sqrt_1m_ab * noise" not in text
    assert list(scan_project(work)[0]) == list(scan_project(project_root())[0])


def test_splice_grades_a_missing_file_as_a_stub_and_says_so(tmp_path):
    (tmp_path / "empty").mkdir()
    notes = splice(project_root(), tmp_path / "empty", tmp_path / "work", ["ex1_1"])
    assert notes == ["the submission has no file tinydiff/diffusion.py"]
    assert "the submission has no file tinydiff/diffusion.py" in (tmp_path / "work" / "tinydiff" / "diffusion.py").read_text()
