"""`python -m tinydiff book`: chapters -> executed notebooks -> HTML pages with figures and offline math.

The build tests need the `book` extra (pip install -e ".[book]") and skip without it (CI installs only `[test]`); the
browser test also needs Chromium (Debian package `chromium`)."""

import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from tinydiff.book import math_to_mathml, percent_cells

TINY_CHAPTER = textwrap.dedent('''\
    # %% [markdown]
    r"""
    # Chapter 99 — A test page

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
