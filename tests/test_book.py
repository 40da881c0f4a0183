"""`python -m tinydiff book`: chapters -> executed notebooks -> HTML pages with figures and offline math.

The build tests need the `book` extra (pip install -e ".[book]") and skip without it (CI installs only `[test]`); the
browser test also needs Chromium (Debian package `chromium`)."""

import shutil
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from tinydiff.book import math_to_mathml, percent_cells, unprefix_mathml

TINY_CHAPTER = textwrap.dedent('''\
    # %% [markdown]
    r"""
    # Chapter 99 — A test page

    ## A heading with $\\bar\\alpha_t$

    The forward process in one line:

    $$x_t = \\sqrt{\\bar\\alpha_t}\\, x_0 + \\sqrt{1 - \\bar\\alpha_t}\\, \\epsilon$$

    with a small $\\beta_t$ per step.
    """

    # %%
    import numpy as np
    from tinydiff import viz

    args = viz.chapter_args(99, "a test chapter")
    plt = viz.plt()
    fig, ax = plt.subplots(figsize=(4, 3))
    ax.imshow(np.linspace(0, 1, 400).reshape(20, 20), cmap="viridis")
    viz.save(fig, args.out / "colours.png")
    viz.trajectory_gif(np.random.default_rng(0).standard_normal((3, 50, 2)), [2, 1, -1], args.out / "chain.gif", fps=2)

    # %% [markdown]
    # A comment-style text cell.

    # %%
    print("quick run" if args.quick else "full run")
    ''')


def test_percent_cells_reads_docstring_and_comment_text_cells_and_code():
    cells = percent_cells(TINY_CHAPTER)
    assert [kind for kind, _ in cells] == ["markdown", "code", "markdown", "code"]
    assert cells[0][1].startswith("# Chapter 99") and '"""' not in cells[0][1]
    assert cells[2][1] == "A comment-style text cell."
    assert cells[1][1].startswith("import numpy") and cells[3][1].startswith("print(")


def test_math_becomes_mathml_outside_code():
    pytest.importorskip("latex2mathml")
    text = "inline $\\beta_t$, code `$HOME` stays,\n\n    indented $x$ stays\n\n$$\\sqrt{a}$$"
    out = math_to_mathml(text)
    assert out.count("<math") == 2 and 'display="block"' in out
    assert "`$HOME`" in out and "    indented $x$ stays" in out


def test_mathml_in_headings_loses_the_namespace_prefix_html_cannot_read():
    heading = '<h2 xmlns:ns0="http://www.w3.org/1998/Math/MathML">A <ns0:math><ns0:mi>x</ns0:mi></ns0:math></h2>'
    assert unprefix_mathml(heading) == "<h2>A <math><mi>x</mi></math></h2>"
    assert unprefix_mathml("<p>no math</p>") == "<p>no math</p>"


def test_book_without_its_extra_says_how_to_install_it(monkeypatch, tmp_path):
    from tinydiff.cli import main

    monkeypatch.setitem(sys.modules, "nbclient", None)
    with pytest.raises(SystemExit, match=r'pip install -e "\.\[book\]"'):
        main(["book", "--out", str(tmp_path), "--chapters", "1"])


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    for name in ("nbformat", "nbclient", "nbconvert", "ipykernel", "latex2mathml"):
        pytest.importorskip(name)
    from tinydiff.book import build_book

    root = tmp_path_factory.mktemp("book")
    (root / "chapters").mkdir()
    (root / "chapters" / "99_test_page.py").write_text(TINY_CHAPTER)
    entries = build_book(root / "out", quick=True, chapters_dir=root / "chapters", timeout=300)
    return root / "out", entries


def test_the_book_executes_the_chapter_with_its_figures_and_math(built):
    out, entries = built
    assert len(entries) == 1 and entries[0].error == ""
    page = (out / "99_test_page.html").read_text()
    assert "data:image/png;base64" in page                      # the figure viz.save wrote, inline
    assert "data:image/gif;base64" in page                      # and the animation
    assert "<math" in page and 'display="block"' in page        # MathML: no MathJax, no network
    assert "ns0:" not in page                                   # the heading's math is MathML an HTML page reads
    assert "quick run" in page and "book set-up" not in page    # --quick reached the chapter; set-up cell hidden
    assert "PosixPath(" not in page
    assert not any(f'src="http{s}://' in page for s in ("", "s"))
    assert "99_test_page.html" in (out / "index.html").read_text()
    assert (out / "99_test_page.ipynb").exists()


def test_a_failing_chapter_is_reported_and_its_page_still_written(tmp_path):
    for name in ("nbformat", "nbclient", "nbconvert", "ipykernel", "latex2mathml"):
        pytest.importorskip(name)
    from tinydiff.book import build_book

    (tmp_path / "chapters").mkdir()
    (tmp_path / "chapters" / "98_broken.py").write_text('# %% [markdown]\n# # Broken\n\n# %%\nraise SystemExit('
                                                        '"chapter 98 needs the MNIST files")\n')
    entries = build_book(tmp_path / "out", chapters_dir=tmp_path / "chapters", timeout=120)
    assert "needs the MNIST files" in entries[0].error
    assert (tmp_path / "out" / "98_broken.html").exists() and "stopped" in (tmp_path / "out" / "index.html").read_text()


@pytest.mark.skipif(shutil.which("chromium") is None, reason="needs Chromium (apt-get install chromium)")
def test_a_headless_browser_draws_the_figure_and_the_math(built, tmp_path):
    from PIL import Image

    out, _ = built
    shot = tmp_path / "page.png"
    subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                    "--window-size=1000,1400", f"--screenshot={shot}", (out / "99_test_page.html").as_uri()],
                   capture_output=True, timeout=120, check=True)
    rgb = np.asarray(Image.open(shot).convert("RGB")).astype(int)
    colourful = (rgb.max(axis=2) - rgb.min(axis=2)) > 80          # viridis is saturated; text and frames are grey
    assert colourful.sum() > 5000, "no figure drawn on the page"


# ---- the chapters' own math --------------------------------------------------------------------------------------
CHAPTERS = sorted((Path(__file__).resolve().parents[1] / "chapters").glob("[0-9][0-9]_*.py"))
_INDENTED = re.compile(r"^(?: {4}|\t).*$", re.M)
_MATH = re.compile(r"\$\$(.+?)\$\$|(?<![\\$])\$(?!\s)([^$\n]+?)(?<!\s)\$(?!\$)", re.S)
# Equations still typed as plain text in the prose of a chapter that writes its math in LaTeX.
PLAIN_MATH = re.compile(r"sqrt\(|alpha_bar|alphas?_t\b|\bbeta_t|\beps(?:ilon)?_?(?:t|theta)?\b|\bsigma_|\bx_?0\b|"
                        r"\bx_\{?t|\bN\(0, ?I\)|\w\^[\w({]|\|\|\w|\bnabla|\blog p\(")


def prose_and_math(markdown: str) -> tuple[str, list[str]]:
    """A text cell's prose (code blocks, code spans and math removed) and its LaTeX snippets."""
    text = _INDENTED.sub("", markdown)
    text = re.sub(r"(`+).+?\1", "", text, flags=re.S)
    snippets = [display or inline for display, inline in _MATH.findall(text)]
    return _MATH.sub(" ", text), snippets


def markdown_cells(path: Path) -> list[str]:
    return [source for kind, source in percent_cells(path.read_text(encoding="utf-8")) if kind == "markdown"]


def uses_latex(path: Path) -> bool:
    return any(prose_and_math(cell)[1] for cell in markdown_cells(path))


@pytest.mark.parametrize("chapter", CHAPTERS, ids=[p.stem for p in CHAPTERS])
def test_every_formula_in_a_chapter_converts_to_mathml(chapter):
    pytest.importorskip("latex2mathml")
    from latex2mathml.converter import convert

    for cell in markdown_cells(chapter):
        prose, snippets = prose_and_math(cell)
        for latex in snippets:
            mathml = convert(latex.strip())
            assert "\\" not in mathml, f"{chapter.name}: latex2mathml does not know a command in ${latex}$"
        assert "$" not in prose, f"{chapter.name}: an unpaired $ in: {prose[prose.index('$') - 60:][:120]!r}"
        for latex in snippets:        # Markdown would read "+ x" or "- x" opening a line as a list item
            assert not re.search(r"\n\s*[-+*] ", latex), f"{chapter.name}: put the sign at the end of the line in {latex!r}"


@pytest.mark.parametrize("chapter", CHAPTERS, ids=[p.stem for p in CHAPTERS])
def test_a_chapter_in_latex_has_no_plain_text_equation_left_in_its_prose(chapter):
    if not uses_latex(chapter):
        pytest.skip(f"{chapter.name} still writes its math as plain text")
    left = [(m.group(), cell[max(m.start() - 50, 0):m.end() + 30]) for cell in map(lambda c: prose_and_math(c)[0],
            markdown_cells(chapter)) for m in PLAIN_MATH.finditer(cell)]
    assert not left, f"{chapter.name}: plain-text math in the prose (write it as $...$): {left[:5]}"


@pytest.mark.parametrize("chapter", CHAPTERS, ids=[p.stem for p in CHAPTERS])
def test_text_cells_with_latex_are_raw_strings(chapter):
    """A backslash in a plain \"\"\" docstring is a Python escape: \\b in \\bar would become a backspace."""
    for block in re.findall(r'^(r?)"""(.*?)"""', chapter.read_text(encoding="utf-8"), re.S | re.M):
        assert block[0] == "r" or "\\" not in block[1], f"{chapter.name}: a text cell with LaTeX must start r\"\"\""
