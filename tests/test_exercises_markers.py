"""The exercise tools: reading solution markers, refusing bad ones, writing stubs, and the grade report."""

import json

import pytest

from tinydiff.exercises.grade import ExerciseResult, PartResult, format_table, gradescope_json
from tinydiff.exercises.markers import MarkerError, project_root, scan_project, scan_text
from tinydiff.exercises.student import make_student, student_text, verify_student_file

# Markers are spelled with "@@" here and turned into "###" by src(), so that this file holds no marker comments.
HEADER = "@@ BEGIN SOLUTION ex1_1: add — return a + b (chapter 1, 2 points)"
GOOD = f"""\
import numpy as np


def add(a, b):
    a = np.asarray(a)
    {HEADER}
    total = a + b
    return total
    @@ END SOLUTION


class Model:
    def step(self, x):
        @@ BEGIN SOLUTION ex1_1
        return 2 * x
        @@ END SOLUTION
"""


def src(text: str) -> str:
    return text.replace("@@", "###")


def test_regions_are_found_with_their_metadata_and_function():
    regions, hidden, meta = scan_text(src(GOOD), "mod.py")
    assert [(r.exercise_id, r.begin, r.end, r.function) for r in regions] == [
        ("ex1_1", 6, 9, "add"), ("ex1_1", 14, 16, "Model.step")]
    assert meta["ex1_1"]["title"] == "add" and meta["ex1_1"]["task"] == "return a + b"
    assert (meta["ex1_1"]["chapter"], meta["ex1_1"]["points"]) == (1, 2.0)
    assert hidden == []


def test_markers_inside_strings_are_not_markers():
    text = 'DOC = """\n' + src("    ### BEGIN SOLUTION ex9_9: x — y (chapter 9, 1 point)\n") + '"""\n'
    assert scan_text(text, "doc.py")[0] == []


@pytest.mark.parametrize("body,line,words", [
    ("x = 1\n@@ BEGIN SOLUTION ex1_1: t — task (chapter 1, 1 point)\ny = 2\n", 2, "never closed"),
    ("x = 1\n@@ END SOLUTION\n", 2, "never opened"),
    ("@@ BEGIN SOLUTION ex1_1: t — task (chapter 1, 1 point)\n@@ BEGIN SOLUTION ex1_2: u — v (chapter 1, 1 point)\n"
     "x = 1\n@@ END SOLUTION\n@@ END SOLUTION\n", 2, "cannot nest"),
    ("@@ BEGIN HIDDEN TESTS\nx = 1\n@@ END SOLUTION\n", 3, "expected '### END HIDDEN TESTS'"),
    ("@@ BEGIN SOLUTION ex1_1 with no metadata format\nx = 1\n@@ END SOLUTION\n", 1, "cannot read"),
    ("@@ BEGIN SOLUTION ex1_1: t — task (chapter 1, 1 point)\n@@ END SOLUTION\n", 1, "empty"),
])
def test_bad_markers_are_refused_naming_file_and_line(body, line, words):
    with pytest.raises(MarkerError, match=rf"^bad\.py:{line}: .*{words}"):
        scan_text(src(body), "bad.py")


def _project(tmp_path, module: str, test: str = "def test_nothing():\n    pass\n"):
    root = tmp_path / "proj"
    (root / "tinydiff").mkdir(parents=True)
    (root / "tests").mkdir()
    (root / "tinydiff" / "mod.py").write_text(src(module))
    (root / "tests" / "test_mod.py").write_text(src(test))
    (root / "README.md").write_text("read me\n")
    return root


def test_a_region_without_a_metadata_header_is_refused(tmp_path):
    root = _project(tmp_path, "def f():\n    @@ BEGIN SOLUTION ex3_1\n    return 1\n    @@ END SOLUTION\n")
    with pytest.raises(MarkerError, match=r"mod\.py:2: region of ex3_1 but no region carries its metadata"):
        scan_project(root)


def test_stub_keeps_indentation_compiles_and_says_what_to_do(tmp_path):
    root = _project(tmp_path, GOOD)
    exercises, _ = scan_project(root)
    out = student_text(src(GOOD), "mod.py", exercises, {"ex1_1"}, root)
    compile(out, "mod.py", "exec")
    assert "total = a + b" not in out and "return 2 * x" not in out
    assert ('    raise NotImplementedError("Exercise 1.1 (add): return a + b. Read chapters/01_*.py; check your code '
            'with: pytest -m ex1_1")'.replace('"', "'")) in out
    assert "        raise NotImplementedError(" in out                  # the method's region keeps its indentation
    assert out.count("### END SOLUTION") == 2


def test_leftover_solution_text_is_refused_naming_the_line(tmp_path):
    root = _project(tmp_path, GOOD)
    exercises, _ = scan_project(root)
    good = student_text(src(GOOD), "mod.py", exercises, {"ex1_1"}, root)
    leaky = good.replace("def add(a, b):\n", "def add(a, b):\n    total = a + b\n")
    with pytest.raises(MarkerError, match=r"mod\.py:5: solution or hidden-test text would remain.*total = a \+ b"):
        verify_student_file(src(GOOD), leaky, "mod.py", exercises, {"ex1_1"}, root)


def test_make_student_blanks_regions_removes_hidden_tests_and_copies_the_rest(tmp_path):
    test = "def test_a():\n    pass\n\n\n@@ BEGIN HIDDEN TESTS\ndef test_secret():\n    assert 41 + 1 == 42\n@@ END HIDDEN TESTS\n"
    root = _project(tmp_path, GOOD, test)
    done = make_student(tmp_path / "student", root=root)
    assert list(done) == ["ex1_1"]
    out = tmp_path / "student"
    assert "raise NotImplementedError" in (out / "tinydiff" / "mod.py").read_text()
    tests = (out / "tests" / "test_mod.py").read_text()
    assert "test_a" in tests and "secret" not in tests and "HIDDEN" not in tests
    assert (out / "README.md").read_text() == "read me\n"


def test_make_student_refuses_unbalanced_markers_and_writes_nothing(tmp_path):
    root = _project(tmp_path, GOOD + src("\n\ndef g():\n    @@ BEGIN SOLUTION ex1_2: g — h (chapter 1, 1 point)\n"
                                         "    return 3\n"))
    with pytest.raises(MarkerError, match=r"mod\.py:20: .*never closed"):
        make_student(tmp_path / "student", root=root)
    assert not (tmp_path / "student").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["proj"]             # no temporary folder left behind


def test_make_student_refuses_unknown_ids_and_non_empty_folders(tmp_path):
    root = _project(tmp_path, GOOD)
    with pytest.raises(ValueError, match=r"unknown exercise ids \['ex7_7'\]"):
        make_student(tmp_path / "student", only=["ex7_7"], root=root)
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    with pytest.raises(FileExistsError, match="not empty"):
        make_student(tmp_path / "full", root=root)


def test_the_project_has_at_least_twelve_exercises_across_the_chapters():
    exercises, _ = scan_project(project_root())
    assert len(exercises) >= 12
    assert len({ex.chapter for ex in exercises.values()}) >= 4
    assert all(ex.points > 0 and ex.task for ex in exercises.values())


def _result(exercise, outcomes):
    """An ExerciseResult from {(part, weight): [passed?, ...]} (what grade() builds from the plugin's report)."""
    r = ExerciseResult(exercise)
    for (name, weight), oks in outcomes.items():
        part = r.parts.setdefault(name, PartResult(name, weight))
        for ok in oks:
            r.total += 1
            part.total += 1
            r.passed += ok
            part.passed += ok
            if not ok:
                part.messages.append("test_x: AssertionError: wrong")
                r.messages.append("test_x: AssertionError: wrong")
    return r


def test_a_part_scores_only_when_every_one_of_its_tests_passes(tmp_path):
    # (behaviour changed by issue 17: the score was the fraction of passing tests, so an answer passing only the easy
    # tests of a part, e.g. DDIM with eta = 0, earned points for it)
    exercises, _ = scan_project(_project(tmp_path, GOOD))
    r = _result(exercises["ex1_1"], {("sigma", 1.0): [True], ("step", 3.0): [True, False]})
    assert r.score == 0.5                                               # 2 points * 1 / (1 + 3)
    assert _result(exercises["ex1_1"], {("", 1.0): [True, True, False]}).score == 0   # no parts: all or nothing
    assert _result(exercises["ex1_1"], {("", 1.0): [True, True]}).score == 2


def test_grade_report_has_one_gradescope_entry_per_part_with_the_messages(tmp_path):
    exercises, _ = scan_project(_project(tmp_path, GOOD))
    results = [_result(exercises["ex1_1"], {("sigma", 1.0): [True], ("step", 1.0): [False]})]
    report = gradescope_json(results)
    assert report == {"score": 1.0, "tests": [
        {"name": "Exercise 1.1: add (ex1_1), sigma", "score": 1.0, "max_score": 1.0,
         "output": "all 1 tests passed", "visibility": "visible"},
        {"name": "Exercise 1.1: add (ex1_1), step", "score": 0.0, "max_score": 1.0,
         "output": "test_x: AssertionError: wrong", "visibility": "visible"}]}
    json.dumps(report)
    assert "1 / 2" in format_table(results)


def test_contract_lines_stay_in_the_stub_and_its_message(tmp_path):
    module = GOOD.replace(HEADER + "\n", HEADER + "\n    # returns: total, the shape of a\n")
    root = _project(tmp_path, module)
    exercises, _ = scan_project(root)
    assert exercises["ex1_1"].regions[0].contract == ["# returns: total, the shape of a"]
    make_student(tmp_path / "out", root=root)
    text = (tmp_path / "out" / "tinydiff" / "mod.py").read_text()
    assert "    # returns: total, the shape of a\n" in text
    assert "Your code returns: total, the shape of a." in text
    assert "total = a + b" not in text


def test_a_region_holding_only_its_contract_is_refused():
    body = "def f():\n    @@ BEGIN SOLUTION ex1_1: f — g (chapter 1, 1 point)\n    # returns: 1\n    @@ END SOLUTION\n"
    with pytest.raises(MarkerError, match="only its contract"):
        scan_text(src(body), "bad.py")


def test_every_region_of_the_project_states_its_contract():
    exercises, _ = scan_project(project_root())
    missing = [f"{r.path}:{r.begin}" for ex in exercises.values() for r in ex.regions if not r.contract]
    assert missing == [], "every solution region starts with '# returns: / defines: / fills:' lines (with shapes)"


def test_every_region_contract_names_what_the_code_after_it_reads(tmp_path):
    """The names a region assigns that its function reads after it are the region's outputs: the contract names them."""
    import ast

    exercises, _ = scan_project(project_root())
    problems = []
    for ex in exercises.values():
        for r in ex.regions:
            text = (project_root() / r.path).read_text()
            fn = next(n for n in ast.walk(ast.parse(text)) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))
                      and n.lineno <= r.begin <= n.end_lineno and not any(
                          isinstance(m, ast.FunctionDef) and m is not n and n.lineno < m.lineno <= r.begin <= m.end_lineno
                          for m in ast.walk(n)))
            stored = {n.id for n in ast.walk(fn) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)
                      and r.begin < n.lineno < r.end}
            read_after = {n.id for n in ast.walk(fn) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)
                          and n.lineno > r.end}
            contract = " ".join(r.contract)
            problems += [f"{r.path}:{r.begin} {name}" for name in sorted(stored & read_after)
                         if not __import__("re").search(rf"\b{name}\b", contract)]
    assert problems == []
