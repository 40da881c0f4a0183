"""Round trip: the student copy imports and collects, each exercise test fails with its own NotImplementedError
message, and putting one solution back makes exactly that exercise pass. (The solution tree passing every exercise
test is tests/exercises/ itself.)

The quick version blanks two pure-NumPy exercises; the full one (marked slow: it compiles the copy's Numba kernels)
blanks all of them.
"""

import os
import re
import subprocess
import sys

import pytest

from tinydiff.exercises.grade import run_tests
from tinydiff.exercises.markers import blanked_exercises, project_root, scan_project, scan_text
from tinydiff.exercises.student import make_student, replace_regions

# These tests make student copies of this tree: they need its solutions, so a student copy skips them.
pytestmark = pytest.mark.skipif(bool(blanked_exercises()), reason="the exercise tools' tests need the solution tree")

QUICK = ["ex1_1", "ex3_2"]
QUICK_LATER = ["ex16_1", "ex18_1"]   # chapters 14-20: a formula and a debugging exercise (pure NumPy, fast)


def _number(exercise_id):
    return exercise_id[2:].replace("_", ".")


def put_solution_back(student_root, exercise_id):
    """Copy the regions of one exercise from this source tree into the student copy."""
    exercises, _ = scan_project(project_root())
    for path in {r.path for r in exercises[exercise_id].regions}:
        original = (project_root() / path).read_text().splitlines()
        target = student_root / path
        student = target.read_text().splitlines()
        solution = [r for r in scan_text("\n".join(original), path)[0] if r.exercise_id == exercise_id]
        stubs = [r for r in scan_text("\n".join(student), path)[0] if r.exercise_id == exercise_id]
        new = replace_regions(student, {(s.begin, s.end): original[r.begin - 1: r.end] for s, r in zip(stubs, solution)})
        target.write_text("\n".join(new) + "\n")


def assert_fail_with_own_stub(report, ids):
    """Every test of a blanked exercise fails with that exercise's stub message, or is skipped because it needs
    another blanked exercise (7.1 calls 3.1); a debugging exercise (planted bug, no stub) fails at least one test."""
    assert report["collect_errors"] == []
    debugging = {k for k, ex in scan_project(project_root())[0].items() if any(r.buggy for r in ex.regions)}
    by_exercise = {k: [t for t in report["tests"] if k in t["exercises"]] for k in ids}
    for k, tests in by_exercise.items():
        assert tests, f"no test ran for {k}"
        if k in debugging:
            assert any(t["outcome"] == "failed" and t["message"].startswith("AssertionError: Exercise") for t in tests), k
            continue
        for t in tests:
            if t["outcome"] == "skipped":
                assert re.search(r"needs Exercise [\d.]+ \(", t["message"]), t
                continue
            assert t["outcome"] in ("failed", "error"), t
            assert re.match(rf"NotImplementedError: Exercise {re.escape(_number(k))} \(", t["message"]), t


@pytest.fixture(scope="module")
def quick_copy(tmp_path_factory):
    out = tmp_path_factory.mktemp("roundtrip") / "student"
    make_student(out, only=QUICK)
    return out


def test_student_copy_blanks_the_chosen_regions_and_keeps_the_others(quick_copy):
    exercises, hidden = scan_project(quick_copy)
    assert hidden == []
    text = (quick_copy / "tinydiff" / "diffusion.py").read_text()
    assert "Exercise 1.1 (q_sample)" in text and "sqrt_ab * x0 + sqrt_1m_ab * noise" not in text
    assert "coef_x0 = np.sqrt(ab_prev)" in text                         # ex3_1 was not chosen: solution kept
    assert list(exercises) == list(scan_project(project_root())[0])     # headers (and so `list`) survive


def test_student_copy_imports_and_collects_every_test(quick_copy):
    env = dict(os.environ, PYTHONPATH=str(quick_copy), PYTHONDONTWRITEBYTECODE="1")
    proc = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider"],
                          cwd=quick_copy, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert " error" not in proc.stdout.splitlines()[-1]


def test_each_exercise_test_fails_with_its_stub_message_and_one_solution_restores_one_exercise(quick_copy):
    tests = quick_copy / "tests" / "exercises"
    assert_fail_with_own_stub(run_tests(quick_copy, QUICK, tests), QUICK)
    put_solution_back(quick_copy, "ex1_1")
    report = run_tests(quick_copy, QUICK, tests)
    outcomes = {k: {t["outcome"] for t in report["tests"] if k in t["exercises"]} for k in QUICK}
    assert outcomes == {"ex1_1": {"passed"}, "ex3_2": {"failed"}}


def test_full_student_copy_generates_and_its_modules_import(tmp_path):
    out = tmp_path / "student"
    done = make_student(out)
    assert len(done) >= 30
    modules = sorted({".".join(r.path.with_suffix("").parts) for ex in done.values() for r in ex.regions})
    code = "import importlib, sys\nfor m in sys.argv[1:]:\n    importlib.import_module(m)\nprint('ok')"
    env = dict(os.environ, PYTHONPATH=str(out), PYTHONDONTWRITEBYTECODE="1")
    proc = subprocess.run([sys.executable, "-c", code, *modules], cwd=out, env=env, capture_output=True, text=True)
    assert proc.stdout.strip() == "ok", proc.stderr[-3000:]


def test_partial_credit_needs_every_test_of_a_part_and_a_missing_prerequisite_is_named(quick_copy):
    """Issue 17: (a) a DDIM step that forgets sigma^2 in the eps coefficient is right when eta = 0; it used to score
    2 of 3, now only the sigma part (1 point). (b) 7.1's tests call 3.1's q_posterior: with 3.1 a stub they are
    skipped as "needs Exercise 3.1 (...)" and graded 0, instead of failing with 3.1's message. One grading run."""
    from tinydiff.exercises.grade import grade

    samplers, diffusion = quick_copy / "tinydiff" / "samplers.py", quick_copy / "tinydiff" / "diffusion.py"
    originals = {p: p.read_text() for p in (samplers, diffusion)}
    right = "x_prev = np.sqrt(ab_prev) * x0 + np.sqrt(max(1.0 - ab_prev - sigma**2, 0.0)) * eps"
    first = "    coef_x0 = np.sqrt(ab_prev) * beta / (1.0 - ab)"
    assert right in originals[samplers] and first in originals[diffusion]
    samplers.write_text(originals[samplers].replace(right, "x_prev = np.sqrt(ab_prev) * x0 + np.sqrt(1.0 - ab_prev) * eps"))
    diffusion.write_text(originals[diffusion].replace(first, "    raise NotImplementedError('Exercise 3.1 (posterior mean "
                                                             "and variance): a stand-in stub')\n" + first))
    try:
        ddpm, ddim = grade(quick_copy, ["ex7_1", "ex8_1"])
    finally:
        for p, text in originals.items():
            p.write_text(text)
    assert (ddim.passed, ddim.total, ddim.score) == (2, 3, 1.0)          # eta = 0 and sigma pass; only sigma scores
    assert (ddpm.passed, ddpm.score) == (0, 0) and ddpm.total == 4
    assert all("needs Exercise 3.1 (posterior mean and variance)" in m for m in ddpm.messages)


def test_second_module_exercises_fail_with_their_stub_or_bug_and_pass_with_their_solutions(tmp_path):
    """The default run's round trip for chapters 14-20 (the full one, under -m slow, covers every exercise)."""
    out = tmp_path / "student"
    make_student(out, only=QUICK_LATER)
    tests = out / "tests" / "exercises"
    assert_fail_with_own_stub(run_tests(out, QUICK_LATER, tests), QUICK_LATER)
    for k in QUICK_LATER:
        put_solution_back(out, k)
    report = run_tests(out, QUICK_LATER, tests)
    assert report["tests"] and all(t["outcome"] == "passed" for t in report["tests"]), report["stdout"][-2000:]


@pytest.mark.slow
def test_full_round_trip_every_exercise(tmp_path):
    out = tmp_path / "student"
    ids = list(make_student(out))
    assert blanked_exercises(out) == set(ids) and blanked_exercises() == set()
    assert_fail_with_own_stub(run_tests(out, ids), ids)
    env = dict(os.environ, PYTHONPATH=str(out), PYTHONDONTWRITEBYTECODE="1")
    everything_else = " and ".join(["not slow"] + [f"not {k}" for k in ids])     # exercise tests fail by design
    whole = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", everything_else,
                            "--ignore=tests/test_exercises_roundtrip.py", "--ignore=tests/exercises"],
                           cwd=out, env=env, capture_output=True, text=True, timeout=1800)
    assert whole.returncode == 0, whole.stdout[-5000:]                  # nothing outside the exercises breaks
    put_solution_back(out, "ex5_3")
    report = run_tests(out, ids)
    passed = {k for k in ids if all(t["outcome"] == "passed" for t in report["tests"] if k in t["exercises"])}
    assert passed == {"ex5_3"}
