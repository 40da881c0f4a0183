"""Chapters 11-13 write their math in LaTeX that the book renders: every formula converts to MathML, none is left as
ASCII math in the prose, and none hides in an indented code block (`python -m tinydiff book`, tinydiff/book.py)."""

import re
from pathlib import Path

import pytest

from tinydiff.book import _CODE_SPAN, _DISPLAY, _INLINE, percent_cells

CHAPTERS = sorted((Path(__file__).resolve().parents[1] / "chapters").glob("1[123]_*.py"))
PARAMS = [pytest.param(p, id=p.stem) for p in CHAPTERS]

# ASCII math the LaTeX replaced: a square root, a squared norm, a subscripted alpha-bar or sigma, a noise prediction
ASCII_MATH = re.compile(r"sqrt\(|\|\|\w|\^2|\bab_t\b|\balpha_bar|\bsigma_t\b|\beps_\w|\bx0_\w|\bx_t\b|\bx_T\b|"
                        r"\bmu_\d|\bS_c\b|\bd_NN\b|\btau\b")


def markdown_cells(path: Path) -> list[str]:
    return [source for kind, source in percent_cells(path.read_text(encoding="utf-8")) if kind == "markdown"]


def formulas(markdown: str) -> list[tuple[str, str]]:
    """[(latex, "block" | "inline")] outside code spans, in the order the book renders them."""
    found = []
    for i, piece in enumerate(_CODE_SPAN.split(markdown)):
        if i % 3:                                  # split gives [text, ticks, code, text, ...]: skip ticks and code
            continue
        found += [(m.group(1), "block") for m in _DISPLAY.finditer(piece)]
        found += [(m.group(1), "inline") for m in _INLINE.finditer(_DISPLAY.sub(" ", piece))]
    return found


def prose(markdown: str) -> str:
    """The text a reader sees as words: math and code spans removed."""
    pieces = _CODE_SPAN.split(markdown)
    text = " ".join(p for i, p in enumerate(pieces) if i % 3 == 0)
    return _INLINE.sub(" ", _DISPLAY.sub(" ", text))


@pytest.mark.parametrize("chapter", PARAMS)
def test_every_formula_becomes_mathml_without_leftover_commands(chapter):
    convert = pytest.importorskip("latex2mathml.converter").convert
    found = [f for cell in markdown_cells(chapter) for f in formulas(cell)]
    assert sum(1 for _, kind in found if kind == "block") >= 3, f"{chapter.name}: expected display math ($$...$$)"
    for latex, kind in found:
        mathml = convert(latex.strip(), display=kind)
        text = re.sub(r"<[^>]+>", "", mathml)      # what the browser prints as characters
        assert "\\" not in text, f"{chapter.name}: latex2mathml left a command it does not know in ${latex}$: {text}"


@pytest.mark.parametrize("chapter", PARAMS)
def test_no_ascii_math_is_left_in_the_prose(chapter):
    for cell in markdown_cells(chapter):
        leftover = sorted({m.group(0) for m in ASCII_MATH.finditer(prose(cell))})
        assert not leftover, f"{chapter.name}: ASCII math {leftover} outside $...$ in the cell starting {cell[:60]!r}"
        stray = [line for line in prose(cell).splitlines() if "$" in line]
        assert not stray, f"{chapter.name}: a $ that opens no formula (inline math must stay on one line): {stray}"


@pytest.mark.parametrize("chapter", PARAMS)
def test_no_formula_sits_in_an_indented_code_block(chapter):
    for cell in markdown_cells(chapter):
        indented = [line for line in cell.splitlines() if line.startswith("    ") and "=" in line]
        assert not indented, f"{chapter.name}: formula in an indented code block (the book shows it raw): {indented}"


@pytest.mark.parametrize("chapter", PARAMS)
def test_markdown_strings_with_latex_are_raw(chapter):
    """A backslash in a plain string is an escape (\\f, \\b) or a SyntaxWarning; r-strings keep LaTeX as written."""
    text = chapter.read_text(encoding="utf-8")
    for match in re.finditer(r'# %% \[markdown\]\n(r?)"""(.*?)"""', text, re.S):
        assert match.group(1) == "r" or "\\" not in match.group(2), (
            f"{chapter.name}: a markdown string holding LaTeX must be r\"\"\"...\"\"\"")
