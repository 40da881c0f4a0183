"""Grade a project copy: run each exercise's tests in a pytest subprocess and turn the results into points.

An exercise's tests are the tests carrying its marker (``@pytest.mark.ex2_1``). Partial credit comes in *parts*, never
per test: a test names its part in the marker, ``@pytest.mark.ex8_1(part="stochastic step (eta > 0)", points=2)``, and
a part earns its share of the exercise's points only when *every* test of that part passes. So an answer that passes
the easy tests of a part (DDIM with eta = 0) but not the ones that catch the typical mistakes (eta > 0) earns nothing
for that part. Tests without a part form one part together: an exercise without parts is all or nothing. A part's
share is its ``points`` (default 1) over the sum over the exercise's parts, times the exercise's points.

The table goes to stdout; ``results.json`` follows Gradescope's autograder format:
``{"score": total, "tests": [{"name", "score", "max_score", "output"}, ...]}``, one entry per part.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from tinydiff.exercises.markers import Exercise, scan_project


@dataclass
class PartResult:
    name: str                  # "" for the tests that name no part
    weight: float = 1.0
    passed: int = 0
    total: int = 0
    messages: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.total > 0 and self.passed == self.total


@dataclass
class ExerciseResult:
    exercise: Exercise
    passed: int = 0
    total: int = 0
    messages: list[str] = field(default_factory=list)
    parts: dict[str, PartResult] = field(default_factory=dict)
    seconds: float = 0.0       # the time its tests took (setup, call, teardown)

    def part_points(self, part: PartResult) -> float:
        """The points a part is worth: its weight's share of the exercise's points."""
        return self.exercise.points * part.weight / sum(p.weight for p in self.parts.values())

    @property
    def score(self) -> float:
        return round(sum(self.part_points(p) for p in self.parts.values() if p.ok), 2)


def test_files(tests: Path, exercise_ids: list[str]) -> list[Path]:
    """The test files under ``tests`` that mark a test with one of ``exercise_ids`` (``mark.ex2_1``), or ``tests``
    itself if none does. Collecting only these is what makes grading one exercise fast: every other test module
    would be imported (and its imports paid for) only to be deselected."""
    if not Path(tests).is_dir():
        return [Path(tests)]
    pattern = re.compile(r"mark\.(%s)\b" % "|".join(map(re.escape, exercise_ids)))
    found = [p for p in sorted(Path(tests).rglob("test*.py"))
             if "__pycache__" not in p.parts and pattern.search(p.read_text(encoding="utf-8", errors="replace"))]
    return found or [Path(tests)]


def run_tests(target: Path, exercise_ids: list[str], tests: Path | None = None,
              extra_args: list[str] | None = None, timeout: float = 1800) -> dict:
    """Run the tests of ``exercise_ids`` against the package in ``target``; return the plugin's JSON report.

    ``tests``: the tests folder to run (default ``target/tests``); point it at the instructor's tests to grade a
    student's code with tests the student never saw. ``target`` goes first on PYTHONPATH, so its ``tinydiff`` is the
    one imported even when another copy is installed.
    """
    target = Path(target).resolve()
    tests = Path(tests).resolve() if tests is not None else target / "tests"
    paths = test_files(tests, exercise_ids)
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.json"
        env = dict(os.environ, TINYDIFF_GRADE_REPORT=str(report), PYTHONDONTWRITEBYTECODE="1",
                   PYTHONPATH=os.pathsep.join([str(target)] + [p for p in [os.environ.get("PYTHONPATH")] if p]))
        cmd = [sys.executable, "-m", "pytest", *map(str, paths), "-m", " or ".join(exercise_ids), "-q",
               "-p", "no:cacheprovider",
               "-p", "tinydiff.exercises.pytest_plugin", "--continue-on-collection-errors", "--tb=no", "-o",
               "console_output_style=classic"] + list(extra_args or [])
        proc = subprocess.run(cmd, cwd=target, env=env, capture_output=True, text=True, timeout=timeout)
        if not report.exists():
            raise RuntimeError(f"pytest did not run (exit {proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
        data = json.loads(report.read_text())
    data["returncode"], data["stdout"] = proc.returncode, proc.stdout
    return data


def grade(target: Path, only: list[str] | None = None, tests: Path | None = None,
          extra_args: list[str] | None = None) -> list[ExerciseResult]:
    """Per-exercise results for the project copy at ``target`` (its region headers say which exercises exist)."""
    exercises, _ = scan_project(target)
    ids = [k for k in exercises if not only or k in only]
    if not ids:
        raise ValueError(f"no exercises to grade in {target} (have {list(exercises)}, asked for {only})")
    data = run_tests(target, ids, tests, extra_args)
    results = {k: ExerciseResult(exercises[k]) for k in ids}
    for t in data["tests"]:
        for k in t["exercises"]:
            if k not in results:
                continue
            r = results[k]
            name, weight = t.get("parts", {}).get(k, ["", 1])
            part = r.parts.setdefault(name, PartResult(name, float(weight)))
            part.weight = max(part.weight, float(weight))
            r.seconds += t.get("seconds", 0.0)
            r.total += 1
            part.total += 1
            if t["outcome"] == "passed":
                r.passed += 1
                part.passed += 1
            else:
                message = f"{t['nodeid']}:\n{t['message']}"       # a skip counts as a failure ("needs Exercise 3.1")
                r.messages.append(message)
                part.messages.append(message)
    for r in results.values():
        if r.total == 0:
            why = "; ".join(e["nodeid"] for e in data["collect_errors"]) or "no test carries this marker"
            r.messages.append(f"no test of {r.exercise.id} ran ({why})")
    return list(results.values())


def format_table(results: list[ExerciseResult]) -> str:
    rows = [("id", "exercise", "chapter", "tests", "parts", "score", "seconds")]
    for r in results:
        parts = f"{sum(p.ok for p in r.parts.values())}/{len(r.parts)}" if r.parts else "0/0"
        rows.append((r.exercise.id, r.exercise.title, str(r.exercise.chapter), f"{r.passed}/{r.total}", parts,
                     f"{r.score:g} / {r.exercise.points:g}", f"{r.seconds:.1f}"))
    total = sum(r.score for r in results)
    most = sum(r.exercise.points for r in results)
    rows.append(("", "total", "", "", "", f"{total:g} / {most:g}", f"{sum(r.seconds for r in results):.1f}"))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in rows]
    lines.insert(1, "-" * len(lines[0]))
    lines.insert(len(lines) - 1, "-" * len(lines[0]))
    return "\n".join(lines)


def gradescope_json(results: list[ExerciseResult]) -> dict:
    """Gradescope's results.json: the total score and one entry per part of each exercise, its messages as output.

    Gradescope shows ``name``, ``score`` / ``max_score`` and ``output`` of every entry to the student; ``visibility``
    "visible" shows them at once (https://gradescope-autograders.readthedocs.io/en/latest/specs/).
    """
    tests = []
    for r in results:
        parts = list(r.parts.values()) or [PartResult("")]
        for p in parts:
            name = f"Exercise {r.exercise.number}: {r.exercise.title} ({r.exercise.id})" + (f", {p.name}" if p.name else "")
            points = r.part_points(p) if r.parts else r.exercise.points
            output = ("\n\n".join(p.messages) if p.messages else
                      f"all {p.total} tests passed" if p.ok else "\n\n".join(r.messages) or "no test ran")
            tests.append({"name": name, "score": round(points, 2) if p.ok else 0.0, "max_score": round(points, 2),
                          "output": output, "visibility": "visible"})
    return {"score": round(sum(r.score for r in results), 2), "tests": tests}
