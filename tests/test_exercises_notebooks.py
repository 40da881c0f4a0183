"""make-student --notebooks: every chapter becomes a valid nbformat-4 notebook whose cells are the script's cells."""

import json
import re

import pytest

from tinydiff.exercises.__main__ import main
from tinydiff.exercises.markers import blanked_exercises, project_root
from tinydiff.exercises.notebooks import split_cells, to_notebook, write_notebooks

CHAPTERS = sorted((project_root() / "chapters").glob("[0-9][0-9]_*.py"))

# These tests build bundles and copies from this tree: they need its solutions, so a student copy skips them.
pytestmark = pytest.mark.skipif(bool(blanked_exercises()), reason="the exercise tools' tests need the solution tree")


def _check_nbformat4(nb):
    """The structure nbformat's v4 schema requires (checked by hand: nbformat is not a dependency)."""
    assert nb["nbformat"] == 4 and nb["nbformat_minor"] >= 4 and isinstance(nb["metadata"], dict)
    assert nb["metadata"]["kernelspec"]["language"] == "python"
    for cell in nb["cells"]:
        assert cell["cell_type"] in ("code", "markdown") and isinstance(cell["metadata"], dict)
        assert isinstance(cell["source"], list) and all(isinstance(s, str) for s in cell["source"])
        assert all(s.endswith("\n") for s in cell["source"][:-1])
        if cell["cell_type"] == "code":
            assert cell["outputs"] == [] and cell["execution_count"] is None
        else:
            assert "outputs" not in cell and "execution_count" not in cell


def test_cells_split_at_the_markers_and_markdown_loses_its_quotes():
    script = '# %% [markdown]\n"""\n# Title\n\nText.\n"""\n\n# %%\nx = 1\n\n# %% [markdown]\n# a comment cell\n# %%\ny = 2\n'
    assert split_cells(script) == [("markdown", "# Title\n\nText."), ("code", "x = 1"), ("markdown", "a comment cell"),
                                   ("code", "y = 2")]


def test_notebook_json_round_trips_the_cells():
    nb = json.loads(json.dumps(to_notebook("# %%\na = 1\nb = 2\n")))
    _check_nbformat4(nb)
    assert nb["cells"][0]["source"] == ["a = 1\n", "b = 2"]


@pytest.mark.parametrize("script", CHAPTERS, ids=[p.stem[:2] for p in CHAPTERS])
def test_every_chapter_notebook_is_valid_and_holds_the_scripts_cells(script, tmp_path):
    (path,) = [p for p in write_notebooks(project_root(), tmp_path) if p.stem == script.stem]
    nb = json.loads(path.read_text(encoding="utf-8"))
    _check_nbformat4(nb)
    text = script.read_text(encoding="utf-8")
    assert len(nb["cells"]) == len(re.findall(r"^# %%", text, re.MULTILINE))
    code = ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code"]
    for source in code:                                          # each code cell is a run of the script's lines
        assert source in text
        compile(source, str(path), "exec")
    assert all(line in "\n".join(code) for line in text.splitlines() if line.startswith(("import ", "from ")))
    assert nb["cells"][0]["cell_type"] == "markdown" and "".join(nb["cells"][0]["source"]).lstrip().startswith("#")
    assert len({c["id"] for c in nb["cells"]}) == len(nb["cells"])


def test_make_student_notebooks_flag_writes_one_notebook_per_chapter(tmp_path, capsys):
    assert main(["make-student", "--out", str(tmp_path / "hw"), "--only", "ex1_1", "--notebooks"]) == 0
    written = sorted((tmp_path / "hw" / "chapters").glob("*.ipynb"))
    assert [p.stem for p in written] == [p.stem for p in CHAPTERS]
    assert "chapter notebooks" in capsys.readouterr().out


def test_notebooks_pass_nbformats_own_validator_when_it_is_installed(tmp_path):
    nbformat = pytest.importorskip("nbformat")                      # optional: not a dependency of tinydiff
    for path in write_notebooks(project_root(), tmp_path):
        nbformat.validate(nbformat.read(str(path), as_version=4))
