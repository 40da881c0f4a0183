"""The math in the text cells of chapters 14-18 and 20 is LaTeX that converts to MathML, with no plain-text equation
left in the prose (issue 20: "write the math in the markdown cells so that notebooks render it").

What counts as math is what `tinydiff.book.math_to_mathml` converts: ``$$...$$`` (display) and ``$...$`` (inline, on
one line), outside code spans and indented code blocks. Code spans (`x0`, `sigma_max`) and code cells stay as they are.
"""

import re
from pathlib import Path

import pytest

from tinydiff.book import _CODE_SPAN, _DISPLAY, _INLINE, percent_cells

CHAPTER_DIR = Path(__file__).resolve().parents[1] / "chapters"
CHAPTERS = [path for prefix in ("14", "15", "16", "17", "18", "20") for path in sorted(CHAPTER_DIR.glob(f"{prefix}_*.py"))]

# Plain-text math as the chapters used to write it, e.g. "sqrt(1 - alpha_bar_t)", "sigma(t)^2", "grad log p", "x0".
PLAIN_MATH = {
    "sqrt(": r"\bsqrt\(",
    "a Greek letter spelt out": r"\b(alpha|alpha_bar|beta|sigma|epsilon|eps|delta|lambda|theta|mu|pi|tau)(_\w+)?\b"
                                r"(?![\s-]+(frame|loss|objective|prediction|parameteri[sz]ation|schedule|process|model|target))",
    "grad": r"\bgrad\b",
    "a power written ^": r"\^",
    "a subscript written _": r"\b[A-Za-z]_[\w{(]",
    "x0 / x1": r"\bx[01]\b",
    "||...||": r"\|\|",
    "->": r"->",
    "N(...)": r"\bN\(",
    "E[...]": r"\bE_?\w*\[",
    "d/dt": r"\bd\w*\s*/\s*d[a-z]\b",
}


def text_cells(path: Path) -> list[str]:
    return [source for kind, source in percent_cells(path.read_text(encoding="utf-8")) if kind == "markdown"]


def prose_and_math(markdown: str) -> tuple[str, list[tuple[str, str]]]:
    """(the prose with code and math removed, [(latex, "block" | "inline")]), split the way the book splits it."""
    prose, maths = [], []
    for part in re.split(r"(\n(?: {4}|\t)[^\n]*)", markdown):          # indented code lines are code
        if part.startswith(("\n    ", "\n\t")):
            continue
        pieces = _CODE_SPAN.split(part)                                 # [text, ticks, code, text, ...]
        for text in pieces[0::3]:
            maths += [(m.group(1), "block") for m in _DISPLAY.finditer(text)]
            text = _DISPLAY.sub(" ", text)
            maths += [(m.group(1), "inline") for m in _INLINE.finditer(text)]
            prose.append(_INLINE.sub(" ", text))
    return "".join(prose), maths


@pytest.mark.parametrize("chapter", CHAPTERS, ids=[p.stem for p in CHAPTERS])
def test_every_formula_in_the_text_converts_to_mathml(chapter):
    convert = pytest.importorskip("latex2mathml.converter").convert
    maths = [m for cell in text_cells(chapter) for m in prose_and_math(cell)[1]]
    assert maths, f"{chapter.name} has no $...$ math in its text cells"
    failures = []
    for latex, display in maths:
        try:
            mathml = convert(latex.strip(), display=display)
        except Exception as error:                                      # noqa: BLE001 (any failure is reported)
            failures.append(f"{latex!r}: {type(error).__name__}: {error}")
            continue
        if "<merror" in mathml:
            failures.append(f"{latex!r}: latex2mathml gave <merror>")
        elif "\\" in mathml:                                            # a command it did not know, e.g. "\\\n"
            failures.append(f"{latex!r}: a backslash left in the MathML (an unknown command or a line-ending \\)")
    assert not failures, f"{chapter.name}: formulas latex2mathml cannot convert:\n" + "\n".join(failures)


@pytest.mark.parametrize("chapter", CHAPTERS, ids=[p.stem for p in CHAPTERS])
def test_no_plain_text_equation_is_left_in_the_prose(chapter):
    found = []
    for cell in text_cells(chapter):
        prose, _ = prose_and_math(cell)
        for line in prose.splitlines():
            if "$" in line:
                found.append(f"a '$' the book does not read as math (inline math must stay on one line): {line!r}")
            for what, pattern in PLAIN_MATH.items():
                if re.search(pattern, line):
                    found.append(f"{what}: {line.strip()!r}")
    assert not found, f"{chapter.name}: plain-text math in its text cells:\n" + "\n".join(found)


def test_the_checker_finds_plain_text_math_and_bad_latex():
    prose, maths = prose_and_math("keep `x0` and `sigma_max` as code; $\\sqrt{\\bar\\alpha_t}$ but sqrt(alpha_bar_t)")
    assert maths == [("\\sqrt{\\bar\\alpha_t}", "inline")]
    assert "sigma_max" not in prose and "x0" not in prose
    assert re.search(PLAIN_MATH["sqrt("], prose) and re.search(PLAIN_MATH["a Greek letter spelt out"], prose)
    assert re.search(PLAIN_MATH["a power written ^"], "sigma(t)^2")


def test_the_checker_catches_an_unconverted_command():
    convert = pytest.importorskip("latex2mathml.converter").convert
    assert "\\" in convert("x;\\\nc") and "\\" not in convert("x;\\ c")
