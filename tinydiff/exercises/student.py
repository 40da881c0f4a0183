"""Write the student copy of the project: every chosen solution region becomes a stub, hidden tests disappear.

A region keeps its two marker lines (so the student sees where to write) and its BEGIN line's indentation; its body
becomes a comment and a ``raise NotImplementedError("Exercise 2.1 (...): task. Read chapters/...; run pytest -m ex2_1")``,
which is also what the exercise's tests show until the student has written the code. A stub inside a Numba kernel
still compiles (Numba raises exceptions with constant arguments), so every module of the copy imports.

Only the files git tracks are copied (so no demo_out/, runs/ or trained model.npz of the instructor's), or, outside a
git checkout, every file but the skipped folders. Solution regions quoted in the docs (Markdown code blocks) are
stubbed too, and any other line of a removed solution found in a text file is replaced by a note. The copy's
``conftest.py`` makes its tests import the copy's own ``tinydiff``, whatever else is installed.

The copy is built in a temporary folder and checked before it is moved into place. The generator refuses (MarkerError,
naming file and line) if markers are unbalanced or nested, if a generated file would not compile, if a stubbed region
is not exactly its stub, or if any line of a removed solution or hidden test would still be in the copy.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from collections import Counter
from pathlib import Path

from tinydiff.exercises.markers import (
    END_SOLUTION, SKIP_DIRS, SKIP_PATHS, Exercise, MarkerError, Region, chapter_file, project_root, scan_project,
    scan_text,
)


def stub_message(ex: Exercise, root: Path, numba: bool = False) -> str:
    """The NotImplementedError text of an exercise's stub: what to do, where to read, how to test."""
    contract = "; ".join(c.lstrip("# ") for r in ex.regions for c in r.contract)
    msg = (f"Exercise {ex.number} ({ex.title}): {ex.task}." + (f" Your code {contract}." if contract else "")
           + f" Read {chapter_file(root, ex.chapter)}; check your code with: pytest -m {ex.id}")
    if numba:
        msg += " (this is a Numba kernel: run with NUMBA_DISABLE_JIT=1 to debug it with print or pdb)"
    return msg


def stub_lines(region: Region, ex: Exercise, root: Path, numba: bool) -> list[str]:
    """The lines that replace a region (markers included), indented like its BEGIN marker."""
    i = region.indent
    if region.buggy:                                          # a debugging exercise: the code with its planted bug
        return [i + region.header, *(i + c for c in region.contract),
                f"{i}# Exercise {ex.number} ({ex.title}): {ex.task}",
                f"{i}# This code has a bug. Find it with: pytest -m {ex.id}, and fix it here.",
                *region.buggy, i + END_SOLUTION]
    return [
        i + region.header,
        *(i + c for c in region.contract),
        f"{i}# Exercise {ex.number} ({ex.title}): {ex.task}",
        f"{i}# Replace the next line with your code (keep the marker and contract lines).",
        f"{i}raise NotImplementedError({stub_message(ex, root, numba)!r})",
        i + END_SOLUTION,
    ]


def replace_regions(lines: list[str], replacements: dict[tuple[int, int], list[str]]) -> list[str]:
    """Replace line spans (begin, end), 1-based and inclusive, by new lines; spans must not overlap."""
    out, n = [], 1
    for (begin, end), new in sorted(replacements.items()):
        out += lines[n - 1: begin - 1] + new
        n = end + 1
    return out + lines[n - 1:]


def student_text(text: str, path: Path, exercises: dict[str, Exercise], selected: set[str], root: Path) -> str:
    """One file of the student copy: chosen regions stubbed, hidden-test blocks removed."""
    regions, hidden, _ = scan_text(text, path)
    if not regions and not hidden:
        return text
    lines = text.splitlines()
    numba = "numba" in text
    replacements = {}
    for r in regions:
        if r.exercise_id in selected:
            replacements[(r.begin, r.end)] = stub_lines(r, exercises[r.exercise_id], root, numba)
    for h in hidden:
        replacements[(h.begin, h.end)] = []
    return "\n".join(replace_regions(lines, replacements)) + ("\n" if text.endswith("\n") else "")


def _removed_lines(text: str, path: Path, selected: set[str]) -> tuple[Counter, Counter]:
    """(lines that must go, lines that stay) of an original file, as multisets of stripped non-empty lines."""
    regions, hidden, _ = scan_text(text, path)
    lines = text.splitlines()
    gone = set()
    for r in regions:
        if r.exercise_id in selected:
            gone.update(range(r.contract_end + 1, r.end))    # the body; the marker and contract lines stay
    for h in hidden:
        gone.update(range(h.begin, h.end + 1))
    shown = {b.strip() for r in regions if r.exercise_id in selected for b in r.buggy}   # debugging exercises' code
    removed = Counter(lines[n - 1].strip() for n in gone if lines[n - 1].strip() and lines[n - 1].strip() not in shown
                      and not lines[n - 1].lstrip().startswith("#!"))
    kept = Counter(line.strip() for n, line in enumerate(lines, 1) if n not in gone and line.strip())
    return removed, kept


def verify_student_file(original: str, student: str, path: Path, exercises: dict[str, Exercise],
                        selected: set[str], root: Path) -> None:
    """Refuse (MarkerError) unless the student file compiles, its regions are stubs and no solution line remains."""
    try:
        compile(student, str(path), "exec")
    except SyntaxError as e:
        raise MarkerError(f"{path}:{e.lineno}: the student version does not compile ({e.msg}). A region or a "
                          "hidden-test block probably leaves an empty block behind: put a statement outside it.") from e
    regions, hidden, _ = scan_text(student, path)
    if hidden:
        raise MarkerError(f"{path}:{hidden[0].begin}: a hidden-test block survived into the student copy")
    lines = student.splitlines()
    numba = "numba" in original
    originals = scan_text(original, path)[0]                  # the same regions, in order, with their "#!" lines
    for r, o in zip(regions, originals):
        if r.exercise_id in selected and lines[r.begin - 1: r.end] != stub_lines(o, exercises[r.exercise_id], root, numba):
            raise MarkerError(f"{path}:{r.begin}: the region of {r.exercise_id} is not exactly its stub")
    removed, kept = _removed_lines(original, path, selected)
    have = Counter(line.strip() for line in lines if line.strip())
    for line, count in removed.items():
        if have[line] > kept[line]:
            n = next(i for i, x in enumerate(lines, 1) if x.strip() == line)
            raise MarkerError(f"{path}:{n}: solution or hidden-test text would remain in the student copy: {line!r}")


TEXT_SUFFIXES = {".md", ".txt", ".rst", ".cfg", ".toml", ".ipynb", ".html"}
_BEGIN = re.compile(r"^\s*### BEGIN SOLUTION\b")
_END = re.compile(r"^\s*### END SOLUTION\b")
REDACTED = "[a line of an exercise's solution, removed from the student copy]"


def student_doc_text(text: str, solution_lines: set[str]) -> str:
    """A non-Python text file of the student copy: quoted solution regions keep their markers and lose their body;
    any other line holding a removed solution line (stripped, >= 12 characters) becomes a note."""
    out, inside = [], False
    for line in text.splitlines():
        if _BEGIN.match(line):
            inside = True
            out += [line, line[: len(line) - len(line.lstrip())] + "...  # your code (removed in the student copy)"]
            continue
        if _END.match(line):
            inside = False
        if inside:
            continue
        if any(sol in line for sol in solution_lines):
            line = line[: len(line) - len(line.lstrip())] + REDACTED
        out.append(line)
    return "\n".join(out) + ("\n" if text.endswith("\n") else "")


def _solution_lines(root: Path, exercises: dict[str, Exercise], selected: set[str]) -> set[str]:
    """The distinctive lines (stripped, >= 12 characters, not comments) of the chosen solution regions."""
    lines = set()
    for ex in exercises.values():
        if ex.id not in selected:
            continue
        for r in ex.regions:
            text = (root / r.path).read_text(encoding="utf-8").splitlines()
            lines.update(x.strip() for x in text[r.begin: r.end - 1] if len(x.strip()) >= 12 and not x.strip().startswith("#"))
    return lines


def project_files(root: Path) -> list[Path]:
    """The files of the project to copy, relative to ``root``: git's tracked files (those still on disk) in a git
    checkout, else every file outside the skipped folders."""
    try:
        proc = subprocess.run(["git", "-C", str(root), "ls-files", "-z"], capture_output=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        proc = None
    if proc is not None and proc.returncode == 0 and proc.stdout:
        rels = [Path(name) for name in proc.stdout.decode("utf-8").split("\0") if name]
        return sorted(rel for rel in rels if (root / rel).is_file() and not _skipped(rel.parts))
    return sorted(src.relative_to(root) for src in root.rglob("*")
                  if src.is_file() and not _skipped(src.relative_to(root).parts))


def _skipped(rel: tuple[str, ...]) -> bool:
    return (any(p in SKIP_DIRS or p.endswith(".egg-info") for p in rel)
            or any(rel[: len(s)] == s for s in SKIP_PATHS))


def make_student(out: Path, only: list[str] | None = None, root: Path | None = None) -> dict[str, Exercise]:
    """Write the student copy of the project at ``root`` (default: this source tree) into the new folder ``out``.

    ``only``: exercise ids to blank (default: all); the other regions keep their solutions. Hidden tests are always
    removed. Returns the exercises that were blanked. Raises MarkerError (file:line) and writes nothing on any problem.
    """
    root = Path(root).resolve() if root is not None else project_root()
    out = Path(out).resolve()
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f"{out} exists and is not empty: choose a new folder for the student copy")
    if out == root or root in out.parents and not _skipped(out.relative_to(root).parts):
        raise ValueError(f"{out} is inside the project {root}: write the student copy somewhere else (e.g. ../student)")
    exercises, _ = scan_project(root)
    if not exercises:
        raise MarkerError(f"no solution regions found under {root}/tinydiff")
    selected = set(exercises) if not only else set(only)
    unknown = sorted(selected - set(exercises))
    if unknown:
        raise ValueError(f"unknown exercise ids {unknown}; the project has {list(exercises)} "
                         "(see python -m tinydiff.exercises list)")

    tmp = Path(tempfile.mkdtemp(prefix=".student-", dir=out.parent if out.parent.exists() else None))
    try:
        solutions = _solution_lines(root, exercises, selected)
        for rel in project_files(root):
            src = root / rel
            if src == out or out in src.parents:
                continue
            dst = tmp / rel
            dst.parent.mkdir(parents=True, exist_ok=True)
            if src.suffix == ".py":
                text = src.read_text(encoding="utf-8")
                new = student_text(text, rel, exercises, selected, root)
                if new is not text:
                    verify_student_file(text, new, rel, exercises, selected, root)
                dst.write_text(new, encoding="utf-8")
            elif src.suffix in TEXT_SUFFIXES:
                dst.write_text(student_doc_text(src.read_text(encoding="utf-8"), solutions), encoding="utf-8")
            else:
                shutil.copy2(src, dst)
        out.parent.mkdir(parents=True, exist_ok=True)
        if out.exists():
            out.rmdir()
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return {k: exercises[k] for k in exercises if k in selected}
