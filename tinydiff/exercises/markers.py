"""Find the exercise regions in source files: solution regions (with their metadata) and hidden-test blocks.

A solution region is a run of lines between two marker comments (the nbgrader / otter convention). The header of an
exercise's first region carries everything the tools need, so the code is the one source of truth::

    ### BEGIN SOLUTION ex2_1: cosine schedule — return the betas of Nichol & Dhariwal's eq. 17 (chapter 2, 2 points)
    ... the solution ...
    ### END SOLUTION

``ex2_1`` is the id (exercise 2.1; pytest marker ``-m ex2_1``), then the title, a dash, the one-line task, and in
brackets the chapter and the points. An exercise may span several regions: later ones repeat only the id
(``### BEGIN SOLUTION ex2_1``). Tests that must not reach students sit between ``### BEGIN HIDDEN TESTS`` and
``### END HIDDEN TESTS``. Markers must balance and must not nest; every error names the file and line.
"""

from __future__ import annotations

import ast
import io
import os
import re
import tokenize
from dataclasses import dataclass, field
from pathlib import Path

from tinydiff.errors import MarkerError  # noqa: F401  (defined in errors.py, re-exported here)

# The marker words. Spelled out in pieces so that no line of *this* file is itself a marker.
HASHES = "###"
BEGIN_SOLUTION = HASHES + " BEGIN SOLUTION"
END_SOLUTION = HASHES + " END SOLUTION"
BEGIN_HIDDEN = HASHES + " BEGIN HIDDEN TESTS"
END_HIDDEN = HASHES + " END HIDDEN TESTS"

_ID = r"ex\d+_\d+"
_MARKER = re.compile(r"^\s*###\s*(BEGIN|END)\s+(SOLUTION|HIDDEN TESTS)\b(.*)$")
_HEADER = re.compile(
    rf"^(?P<id>{_ID})\s*:\s*(?P<title>.+?)\s+(?:—|--|-)\s+(?P<task>.+?)\s*"
    r"\(\s*chapter\s+(?P<chapter>\d+)\s*,\s*(?P<points>\d+(?:\.\d+)?)\s+points?\s*\)\s*$"
)
_ANY_MARKER = re.compile(r"^\s*###\s*(BEGIN|END)\s", re.MULTILINE)
_CONTINUED = re.compile(rf"^(?P<id>{_ID})\b")
# The contract of a region: comment lines right after its BEGIN line that say what the region must leave behind,
# with shapes. They stay in the student's stub (and in its error message).
#     # returns: x_t (B, ...), same shape and dtype as x0
#     # defines: coef_x0, coef_xt, variance, each (B,)
#     # fills: dx (B, C, H, W) in place
_CONTRACT = re.compile(r"^\s*#\s*(returns|defines|fills)\s*:\s*\S")
# A debugging exercise: the region also holds the student's version, with a planted bug, as "#! " lines right after
# the contract. The student copy shows that code (uncommented) instead of a NotImplementedError; the tests find the bug.
_BUGGY = re.compile(r"^(\s*)#!( |$)")

# Folders that are never part of a project copy (and never scanned).
SKIP_DIRS = {".git", "__pycache__", ".pytest_cache", ".hypothesis", "venv", ".venv", "build", "dist", "out", "runs",
             ".mypy_cache", ".ruff_cache", ".ipynb_checkpoints"}
SKIP_PATHS = {("data", "mnist"), ("data", "fashion-mnist"), ("chapters", "out")}


@dataclass
class Region:
    """One solution region: lines ``begin`` .. ``end`` (1-based, both markers included) of ``path``."""

    path: Path
    exercise_id: str
    begin: int
    end: int
    indent: str
    function: str          # qualified name of the enclosing function ("NoiseSchedule.cosine"), or "<module>"
    header: str            # the BEGIN line as written
    contract: list[str] = field(default_factory=list)   # the "# returns: / defines: / fills:" lines, stripped
    buggy: list[str] = field(default_factory=list)      # a debugging exercise's planted-bug code (the "#! " lines)

    @property
    def contract_end(self) -> int:
        """The last line of the contract (the BEGIN line when there is none): the body starts after it."""
        return self.begin + len(self.contract)


@dataclass
class HiddenBlock:
    path: Path
    begin: int
    end: int


@dataclass
class Exercise:
    """Everything known about one exercise, gathered from its region headers."""

    id: str
    title: str
    task: str
    chapter: int
    points: float
    regions: list[Region] = field(default_factory=list)

    @property
    def number(self) -> str:
        """``ex2_1`` -> ``"2.1"``."""
        return self.id[2:].replace("_", ".")

    @property
    def file(self) -> Path:
        return self.regions[0].path

    @property
    def function(self) -> str:
        return ", ".join(dict.fromkeys(r.function for r in self.regions))


def sort_key(exercise_id: str) -> tuple[int, int]:
    a, b = exercise_id[2:].split("_")
    return int(a), int(b)


# ---- one file --------------------------------------------------------------------------------------------------
def scan_text(text: str, path: Path) -> tuple[list[Region], list[HiddenBlock], dict[str, dict]]:
    """Find the regions and hidden blocks of one file, checking that the markers balance and do not nest.

    Returns the regions, the hidden blocks, and for each exercise whose metadata header is in this file a dict
    (title, task, chapter, points).
    """
    lines = text.splitlines()
    regions: list[Region] = []
    hidden: list[HiddenBlock] = []
    meta: dict[str, dict] = {}
    open_kind, open_line, open_info = None, 0, None
    for n in _comment_lines(text):
        line = lines[n - 1]
        m = _MARKER.match(line)
        if not m:
            continue
        verb, kind, rest = m.group(1), m.group(2), m.group(3).strip()
        where = f"{path}:{n}"
        if verb == "BEGIN":
            if open_kind is not None:
                raise MarkerError(
                    f"{where}: '{line.strip()}' opens a region inside the {open_kind} region opened at line "
                    f"{open_line}; regions cannot nest. Close the first one with '### END {open_kind}' before this line."
                )
            open_kind, open_line = kind, n
            open_info = _parse_header(rest, where, meta) if kind == "SOLUTION" else None
            indent = line[: len(line) - len(line.lstrip())]
            open_info = (open_info, indent, line.strip())
        else:
            if open_kind is None:
                raise MarkerError(f"{where}: '{line.strip()}' closes a region that was never opened "
                                  f"(no '### BEGIN {kind}' above it).")
            if kind != open_kind:
                raise MarkerError(f"{where}: '{line.strip()}' closes the {open_kind} region opened at line "
                                  f"{open_line}; expected '### END {open_kind}'.")
            if kind == "SOLUTION":
                ex_id, indent, header = open_info
                if n == open_line + 1:
                    raise MarkerError(f"{path}:{open_line}: the solution region of {ex_id} is empty.")
                contract = []
                for k in range(open_line, n - 1):             # lines[k] is line k + 1
                    if not _CONTRACT.match(lines[k]):
                        break
                    contract.append(lines[k].strip())
                buggy = []
                for k in range(open_line + len(contract), n - 1):
                    m_bug = _BUGGY.match(lines[k])
                    if not m_bug:
                        break
                    buggy.append(m_bug.group(1) + lines[k][m_bug.end():])
                if open_line + len(contract) + len(buggy) == n - 1:
                    raise MarkerError(f"{path}:{open_line}: the solution region of {ex_id} holds only its contract "
                                      "comments (and planted-bug lines); the solution goes after them.")
                regions.append(Region(path, ex_id, open_line, n, indent, "<module>", header, contract, buggy))
            else:
                hidden.append(HiddenBlock(path, open_line, n))
            open_kind = None
    if open_kind is not None:
        raise MarkerError(f"{path}:{open_line}: '### BEGIN {open_kind}' is never closed: add '### END {open_kind}' "
                          "after the last line of the region.")
    if regions:
        _name_functions(text, regions)
    return regions, hidden, meta


def _comment_lines(text: str) -> list[int]:
    """Line numbers (1-based) of the lines that hold only a comment: markers are comments, never string contents."""
    try:
        tokens = tokenize.generate_tokens(io.StringIO(text).readline)
        return [tok.start[0] for tok in tokens
                if tok.type == tokenize.COMMENT and not tok.line[: tok.start[1]].strip()]
    except (tokenize.TokenError, SyntaxError):       # not valid Python: fall back to every line
        return list(range(1, text.count("\n") + 2))


def _parse_header(rest: str, where: str, meta: dict[str, dict]) -> str:
    m = _HEADER.match(rest)
    if m:
        if m.group("id") in meta:
            raise MarkerError(f"{where}: a second metadata header for {m.group('id')}; later regions of the same "
                              f"exercise carry only the id ('{BEGIN_SOLUTION} {m.group('id')}').")
        meta[m.group("id")] = dict(title=m.group("title"), task=m.group("task"), chapter=int(m.group("chapter")),
                                   points=float(m.group("points")), where=where)
        return m.group("id")
    m = _CONTINUED.match(rest)
    if m and rest == m.group("id"):
        return m.group("id")
    raise MarkerError(
        f"{where}: cannot read the solution header {rest!r}. Write it as "
        f"'{BEGIN_SOLUTION} ex2_1: title — one-line task (chapter 2, 2 points)', or just "
        f"'{BEGIN_SOLUTION} ex2_1' for a later region of an exercise whose header is elsewhere."
    )


def _name_functions(text: str, regions: list[Region]) -> None:
    """Set each region's ``function`` to the innermost def (with its class) that contains the BEGIN line."""
    try:
        tree = ast.parse(text)
    except SyntaxError:
        return
    spans: list[tuple[int, int, str]] = []

    def visit(node, prefix):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                name = prefix + child.name
                if not isinstance(child, ast.ClassDef):
                    spans.append((child.lineno, child.end_lineno, name))
                visit(child, name + ".")
            else:
                visit(child, prefix)

    visit(tree, "")
    for r in regions:
        inside = [s for s in spans if s[0] <= r.begin <= s[1]]
        if inside:
            r.function = max(inside, key=lambda s: s[0])[2]


# ---- a whole project -------------------------------------------------------------------------------------------
def project_root() -> Path:
    """The source tree this package was imported from (the folder holding ``tinydiff/``)."""
    return Path(__file__).resolve().parents[2]


def python_files(root: Path):
    """Every .py file of the project under ``root``, skipping build output, caches, virtual envs and data."""
    root = Path(root)
    for folder, dirs, files in os.walk(root):
        rel = Path(folder).relative_to(root).parts
        dirs[:] = sorted(d for d in dirs if d not in SKIP_DIRS and not d.endswith(".egg-info")
                         and not any((rel + (d,))[: len(s)] == s for s in SKIP_PATHS))
        for name in sorted(files):
            if name.endswith(".py"):
                yield Path(folder) / name


def scan_project(root: Path | None = None) -> tuple[dict[str, Exercise], list[HiddenBlock]]:
    """All exercises (id -> Exercise, in exercise order) and hidden-test blocks of the project at ``root``.

    Solution regions are looked for in ``tinydiff/`` and ``chapters/``; hidden tests anywhere. Raises MarkerError
    for unbalanced or nested markers, unreadable headers, an id without a metadata header, or two headers for one id.
    """
    root = Path(root) if root is not None else project_root()
    regions: list[Region] = []
    hidden: list[HiddenBlock] = []
    meta: dict[str, dict] = {}
    for path in python_files(root):
        text = path.read_text(encoding="utf-8")
        if not _ANY_MARKER.search(text):               # most files: no need to tokenize
            continue
        r, h, m = scan_text(text, path.relative_to(root))
        for ex_id, info in m.items():
            if ex_id in meta:
                raise MarkerError(f"{info['where']}: {ex_id} already has a metadata header at {meta[ex_id]['where']}; "
                                  "give this exercise a new id.")
            meta[ex_id] = info
        regions += r
        hidden += h
    exercises: dict[str, Exercise] = {}
    for ex_id in sorted(meta, key=sort_key):
        info = meta[ex_id]
        exercises[ex_id] = Exercise(ex_id, info["title"], info["task"], info["chapter"], info["points"])
    for r in regions:
        if r.exercise_id not in exercises:
            raise MarkerError(f"{r.path}:{r.begin}: region of {r.exercise_id} but no region carries its metadata "
                              f"header ('{BEGIN_SOLUTION} {r.exercise_id}: title — task (chapter N, P points)').")
        exercises[r.exercise_id].regions.append(r)
    for ex in exercises.values():   # the region with the header comes first
        ex.regions.sort(key=lambda r: (not _HEADER.match(r.header[len(BEGIN_SOLUTION):].strip()), str(r.path), r.begin))
    return exercises, hidden


def blanked_exercises(root: Path | None = None) -> set[str]:
    """The exercises whose regions are stubs or planted bugs in the project at ``root``: empty in the solution tree,
    the blanked set in a student copy (found by the lines the generator writes into every stub)."""
    exercises, _ = scan_project(root)
    root = Path(root) if root is not None else project_root()
    found = set()
    for ex in exercises.values():
        for r in ex.regions:
            body = (root / r.path).read_text(encoding="utf-8").splitlines()[r.begin: r.end - 1]
            if any(line.strip().startswith(("raise NotImplementedError('Exercise", 'raise NotImplementedError("Exercise',
                                            "# This code has a bug.")) for line in body):
                found.add(ex.id)
    return found


def chapter_file(root: Path, chapter: int) -> str:
    """``chapters/02_noise_schedules.py`` if it exists under ``root``, else a pattern a student can still follow."""
    found = sorted((Path(root) / "chapters").glob(f"{chapter:02d}_*.py"))
    return f"chapters/{found[0].name}" if found else f"chapters/{chapter:02d}_*.py"
