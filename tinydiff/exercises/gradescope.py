"""A Gradescope autograder bundle, and the grading it runs: the student's regions spliced into the instructor's tree.

Gradescope's format (https://gradescope-autograders.readthedocs.io/en/latest/specs/): a zip with ``setup.sh`` (run
once when the image is built) and ``run_autograder`` at its root. At grading time the zip's contents sit in
``/autograder/source``, the student's files in ``/autograder/submission``, and ``run_autograder`` must write
``/autograder/results/results.json``: ``{"score", "output", "tests": [{"name", "score", "max_score", "output",
"visibility"}, ...]}``.

What is graded is the student's code *inside the solution regions* only: ``splice`` copies the instructor's tree (its
tests, hidden ones included, its grader and plugin, the solutions of the exercises not set) and replaces the chosen
exercises' regions by the ones found in the submission. A submission cannot change the tests or the grader, and a
region missing from it is graded as a stub ("your submission has no region ..."). The submission may be the whole
project (any folder depth) or just the files holding the regions.

    python -m tinydiff.exercises gradescope --out autograder.zip [--only ex1_1,ex8_1]
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import time
import zipfile
from pathlib import Path

from tinydiff.exercises.grade import format_table, grade, gradescope_json
from tinydiff.exercises.markers import END_SOLUTION, SKIP_DIRS, Exercise, MarkerError, project_root, scan_project, scan_text
from tinydiff.exercises.student import replace_regions

BUNDLE_PATHS = ("tinydiff", "tests/conftest.py", "tests/exercises", "chapters")   # what the grader needs
REQUIREMENTS = "numpy>=1.24\nnumba>=0.58\nscipy>=1.10\nmatplotlib>=3.7\ntqdm>=4.60\npytest>=7\n"

SETUP_SH = """#!/usr/bin/env bash
# Gradescope runs this once, as root, when it builds the autograder image (Ubuntu with Python 3).
set -euo pipefail
cd /autograder/source
if ! command -v python3 >/dev/null || ! python3 -m pip --version >/dev/null 2>&1; then
    apt-get update && apt-get install -y python3 python3-pip
fi
python3 -m pip install --no-cache-dir -r requirements.txt || \\
    python3 -m pip install --no-cache-dir --break-system-packages -r requirements.txt
# Warm the Numba cache and check the installation: the solutions must score full marks here.
PYTHONPATH=/autograder/source OPENBLAS_NUM_THREADS=1 MPLBACKEND=Agg \\
    python3 -m tinydiff.exercises grade /autograder/source --only "$(cat exercises.txt)"
"""

RUN_AUTOGRADER = """#!/usr/bin/env bash
# Gradescope runs this for every submission. AUTOGRADER_ROOT and PYTHON are for testing it elsewhere.
set -uo pipefail
ROOT="${AUTOGRADER_ROOT:-/autograder}"
PY="${PYTHON:-python3}"
export PYTHONPATH="$ROOT/source" OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 MPLBACKEND=Agg PYTHONDONTWRITEBYTECODE=1
mkdir -p "$ROOT/results"
"$PY" -m tinydiff.exercises autograde --source "$ROOT/source" --submission "$ROOT/submission" \\
    --work "$ROOT/graded" --results "$ROOT/results/results.json" --only "$(cat "$ROOT/source/exercises.txt")"
"""


# ---- building the bundle -----------------------------------------------------------------------------------------
def _bundle_files(root: Path):
    for rel in BUNDLE_PATHS:
        path = root / rel
        if path.is_file():
            yield path
            continue
        for folder, dirs, files in os.walk(path):
            dirs[:] = sorted(d for d in dirs if d not in SKIP_DIRS)
            for name in sorted(files):
                if not name.endswith((".pyc", ".nbi", ".nbc")):
                    yield Path(folder) / name


def build_bundle(out: Path, only: list[str] | None = None, root: Path | None = None) -> list[str]:
    """Write the autograder zip for the exercises ``only`` (default: all). Returns the exercise ids it grades."""
    root = Path(root) if root is not None else project_root()
    exercises, _ = scan_project(root)
    ids = [k for k in exercises if not only or k in only]
    unknown = sorted(set(only or []) - set(exercises))
    if unknown or not ids:
        raise ValueError(f"unknown exercise ids {unknown or only}; the project has {list(exercises)}")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        for name, text in (("setup.sh", SETUP_SH), ("run_autograder", RUN_AUTOGRADER)):
            info = zipfile.ZipInfo(name)
            info.external_attr = (stat.S_IFREG | 0o755) << 16                  # executable, as Gradescope needs
            info.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(info, text)
        z.writestr("requirements.txt", REQUIREMENTS)
        z.writestr("exercises.txt", ",".join(ids) + "\n")
        for path in _bundle_files(root):
            z.write(path, path.relative_to(root).as_posix())
    return ids


def unpack_bundle(zip_path: Path, dest: Path) -> None:
    """Unzip like Gradescope does, keeping the executable bits (zipfile alone drops them)."""
    with zipfile.ZipFile(zip_path) as z:
        for info in z.infolist():
            z.extract(info, dest)
            mode = info.external_attr >> 16
            if mode & 0o111:
                os.chmod(dest / info.filename, mode & 0o777)


# ---- grading a submission ----------------------------------------------------------------------------------------
def find_project(submission: Path) -> Path:
    """The folder of the submission that holds ``tinydiff/`` (the submission itself, or a folder further down)."""
    submission = Path(submission)
    found = sorted((p.parent for p in submission.rglob("tinydiff") if p.is_dir()
                    and not any(part in SKIP_DIRS for part in p.relative_to(submission).parts)),
                   key=lambda p: len(p.parts))
    return found[0] if found else submission


def _stub_for_missing(region, ex: Exercise, why: str) -> list[str]:
    i = region.indent
    return [i + region.header, f"{i}raise NotImplementedError({f'Exercise {ex.number} ({ex.title}): {why}'!r})",
            i + END_SOLUTION]


def splice(source: Path, submission: Path, work: Path, ids: list[str]) -> list[str]:
    """Copy ``source`` to ``work`` and put the submission's regions of ``ids`` in place of the solutions.

    Returns notes for the student (a file or region the submission lacks). Regions are matched by file and by their
    order within the file; a submitted region keeps only its own lines (the marker lines come from the source).
    """
    source, work = Path(source), Path(work)
    if work.exists():
        shutil.rmtree(work)
    shutil.copytree(source, work, ignore=shutil.ignore_patterns(".git", ".pytest_cache"))
    project = find_project(submission)
    exercises, _ = scan_project(source)
    notes = []
    for path in sorted({r.path for k in ids for r in exercises[k].regions}, key=str):
        original = (source / path).read_text(encoding="utf-8").splitlines()
        theirs_file = project / path
        theirs = theirs_file.read_text(encoding="utf-8").splitlines() if theirs_file.exists() else None
        mine = scan_text("\n".join(original), path)[0]
        try:
            submitted = scan_text("\n".join(theirs), path)[0] if theirs is not None else []
        except MarkerError as e:                                 # unbalanced markers and the like
            notes.append(f"{path}: its exercise markers cannot be read ({e}); its regions are graded as missing")
            submitted = []
        replacements = {}
        for k in ids:
            ex = exercises[k]
            ours = [r for r in mine if r.exercise_id == k]
            their_regions = [r for r in submitted if r.exercise_id == k]
            for n, r in enumerate(ours):
                if n < len(their_regions):
                    t = their_regions[n]
                    body = theirs[t.begin: t.end - 1]                          # between their two marker lines
                    replacements[(r.begin, r.end)] = [original[r.begin - 1], *body, original[r.end - 1]]
                else:
                    why = (f"the submission has no file {path}" if theirs is None else
                           f"the submission's {path} lacks region {n + 1} of {k} (keep the marker lines)")
                    notes.append(why)
                    replacements[(r.begin, r.end)] = _stub_for_missing(r, ex, why)
        text = "\n".join(replace_regions(original, replacements)) + "\n"
        (work / path).write_text(text, encoding="utf-8")
    return notes


def autograde(source: Path, submission: Path, work: Path, results: Path, ids: list[str]) -> dict:
    """Grade a submission as run_autograder does; write Gradescope's results.json and return it."""
    start = time.perf_counter()
    notes = splice(source, submission, work, ids)
    graded = grade(work, ids)
    report = gradescope_json(graded)
    report["output"] = "\n".join(["Scores by exercise (a part scores when all its tests pass):", "",
                                  format_table(graded)] + ([""] + notes if notes else []))
    report["execution_time"] = round(time.perf_counter() - start, 1)
    report["visibility"] = "visible"
    Path(results).parent.mkdir(parents=True, exist_ok=True)
    Path(results).write_text(json.dumps(report, indent=2), encoding="utf-8")
    return report
