"""Chapters as Jupyter notebooks: each ``# %%`` cell of a chapter script becomes a notebook cell.

The notebook format (nbformat 4, https://nbformat.readthedocs.io/en/latest/format_description.html) is plain JSON, so
it is written with the json module: no Jupyter package is needed to make the notebooks, only to open them.

    # %% [markdown]          a markdown cell: its text is the one string literal it holds, or its
    # %%                     comment lines with the "# " taken off; a code cell holds its lines as they are
"""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

_CELL = re.compile(r"^# %%(?P<rest>.*)$")


def split_cells(text: str) -> list[tuple[str, str]]:
    """The cells of a ``# %%`` script as (kind, source) pairs, kind "markdown" or "code"; text before the first
    marker (if any) is a code cell. Leading and trailing blank lines of each cell are dropped."""
    cells, kind, lines = [], "code", []

    def close():
        while lines and not lines[-1].strip():
            lines.pop()
        while lines and not lines[0].strip():
            lines.pop(0)
        if lines:
            cells.append((kind, "\n".join(lines)))

    for line in text.splitlines():
        m = _CELL.match(line)
        if m:
            close()
            kind, lines = ("markdown" if "[markdown]" in m.group("rest") else "code"), []
        else:
            lines.append(line)
    close()
    return [(k, markdown_text(s) if k == "markdown" else s) for k, s in cells]


def markdown_text(source: str) -> str:
    """A markdown cell's text: the string literal it holds, or its comment lines without the leading "# "."""
    try:
        body = ast.parse(source).body
        if len(body) == 1 and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
                and isinstance(body[0].value.value, str):
            return body[0].value.value.strip("\n")
    except SyntaxError:
        pass
    return "\n".join(re.sub(r"^# ?", "", line) for line in source.splitlines())


def _lines(source: str) -> list[str]:
    """nbformat stores a cell's source as a list of lines, each but the last ending in a newline."""
    parts = source.split("\n")
    return [p + "\n" for p in parts[:-1]] + [parts[-1]]


def to_notebook(text: str, title: str = "") -> dict:
    """The nbformat-4 notebook (a dict, ready for json.dump) of a ``# %%`` script."""
    cells = []
    for kind, source in split_cells(text):
        cell = {"cell_type": kind, "metadata": {}, "source": _lines(source)}
        if kind == "code":
            cell.update(execution_count=None, outputs=[])
        cells.append(cell)
    return {
        "cells": cells,
        "metadata": {
            "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
            "language_info": {"name": "python", "pygments_lexer": "ipython3"},
            **({"title": title} if title else {}),
        },
        "nbformat": 4,
        "nbformat_minor": 5,
    }


def write_notebooks(root: Path, out: Path | None = None) -> list[Path]:
    """Write ``chapters/NN_*.ipynb`` beside each chapter script of the project at ``root`` (or into ``out``)."""
    root = Path(root)
    out = Path(out) if out is not None else root / "chapters"
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for script in sorted((root / "chapters").glob("[0-9][0-9]_*.py")):
        nb = to_notebook(script.read_text(encoding="utf-8"), script.stem)
        for n, cell in enumerate(nb["cells"]):
            cell["id"] = f"{script.stem[:2]}-{n:03d}"                   # nbformat 4.5 cells carry an id
        path = out / f"{script.stem}.ipynb"
        path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        written.append(path)
    return written
