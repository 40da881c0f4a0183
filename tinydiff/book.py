"""The chapters as a book you can read without running anything: one executed notebook and one HTML page per chapter.

    python -m tinydiff book --out book/            # every chapter, full size (the chapters' own run times)
    python -m tinydiff book --out book/ --quick    # every chapter in its --quick version (a few minutes in all)

For each ``chapters/NN_*.py`` it writes ``NN_*.ipynb`` (executed: printed output and every figure the chapter saves)
and ``NN_*.html``, and an ``index.html`` linking them. Needs the ``book`` extra (``pip install -e ".[book]"``):
nbformat builds the notebook, nbclient runs it in an IPython kernel (ipykernel), nbconvert writes the HTML, and
latex2mathml turns the math into MathML, which browsers draw themselves: the pages need no network (nbconvert's
default, MathJax from a CDN, does).

How a chapter becomes a notebook. The chapters are ``# %%`` percent scripts: ``# %% [markdown]`` starts a text cell
(a triple-quoted string, or ``# `` comment lines), ``# %%`` a code cell. A first, hidden cell (tag ``book-setup``,
left out of the HTML) gives the kernel what running the file would: ``sys.argv`` (``--out`` and ``--quick``) and
``__file__``; and it makes ``viz.save`` and ``viz.trajectory_gif`` also display the file they write, so every figure
appears under the cell that made it. Math in text cells is written in LaTeX between ``$...$`` (inline) or
``$$...$$`` (display), as Jupyter renders it.
"""

from __future__ import annotations

import html
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path

CHAPTERS_DIR = Path(__file__).resolve().parents[1] / "chapters"
SETUP_TAG = "book-setup"
MISSING = ("the book needs the optional `book` dependencies: pip install -e \".[book]\" "
           "(nbformat, nbclient, nbconvert, ipykernel, latex2mathml)")


class BookError(RuntimeError):
    """The book cannot be built (a missing optional dependency, no chapters, ...)."""


# ---- chapter script -> cells ------------------------------------------------------------------------------------
def percent_cells(text: str) -> list[tuple[str, str]]:
    """Split a ``# %%`` script into [(kind, source)], kind "markdown" or "code"; empty cells are dropped.

    A markdown cell is either one triple-quoted string, ``r\"\"\"`` when it holds LaTeX (its quotes removed), or
    comment lines (their ``# `` removed).
    """
    cells, kind, lines = [], None, []

    def flush():
        if kind is None:
            return
        body = "\n".join(lines).strip("\n")
        if kind == "markdown":
            stripped = body.strip()
            quote = 'r"""' if stripped.startswith('r"""') else '"""'     # r""" keeps LaTeX backslashes
            if stripped.startswith(quote) and stripped.endswith('"""') and len(stripped) >= len(quote) + 3:
                body = stripped[len(quote):-3].strip("\n")
            else:
                body = "\n".join(re.sub(r"^# ?", "", line) if line.startswith("#") else line for line in lines)
                body = body.strip("\n")
        if body.strip():
            cells.append((kind, body))

    for line in text.splitlines():
        if line.startswith("# %%"):
            flush()
            kind, lines = ("markdown" if "[markdown]" in line else "code"), []
        elif kind is not None:
            lines.append(line)
    flush()
    return cells


SETUP = '''\
# book set-up (hidden in the HTML): what `python {script} {flags}` would give the chapter, and its figures shown inline
import os, sys
sys.argv = [{script!r}, "--out", {out!r}] + {quick_flag!r}
__file__ = {script!r}
os.environ["TQDM_DISABLE"] = "1"          # progress bars are for terminals
from IPython.display import Image, display
from tinydiff import viz as _viz

def _shown(write):
    def wrapper(*args, **kwargs):
        path = write(*args, **kwargs)
        display(Image(filename=str(path)))
        return path
    return wrapper

_viz.save, _viz.trajectory_gif = _shown(_viz.save), _shown(_viz.trajectory_gif)
'''


def chapter_notebook(script: Path, figures: Path, quick: bool):
    """The notebook of one chapter script (not executed): the hidden set-up cell, then the chapter's cells."""
    nbformat = _require("nbformat")
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    flags = ["--quick"] if quick else []
    setup = nbformat.v4.new_code_cell(SETUP.format(script=str(script), out=str(figures), quick_flag=flags,
                                                   flags=" ".join(["--out", str(figures)] + flags)))
    setup.metadata["tags"] = [SETUP_TAG]
    nb.cells.append(setup)
    for kind, source in percent_cells(script.read_text(encoding="utf-8")):
        make = nbformat.v4.new_markdown_cell if kind == "markdown" else nbformat.v4.new_code_cell
        nb.cells.append(make(source))
    return nb


# ---- math: LaTeX -> MathML, so that the pages render it offline ---------------------------------------------------
_DISPLAY = re.compile(r"\$\$(.+?)\$\$", re.S)
_INLINE = re.compile(r"(?<![\\$])\$(?!\s)([^$\n]+?)(?<!\s)\$(?!\$)")
_CODE_SPAN = re.compile(r"(`+)(.+?)\1", re.S)


def math_to_mathml(markdown: str) -> str:
    """Replace ``$$...$$`` and ``$...$`` (outside code spans and indented code blocks) by MathML."""
    from latex2mathml.converter import convert

    def render(latex: str, display: str) -> str:
        return convert(latex.strip(), display=display).replace("\n", "")

    out = []
    for part in re.split(r"(\n(?: {4}|\t)[^\n]*)", markdown):      # keep indented code lines as they are
        if part.startswith(("\n    ", "\n\t")):
            out.append(part)
            continue
        pieces = _CODE_SPAN.split(part)     # [text, ticks, code, text, ticks, code, ..., text]
        for i in range(0, len(pieces), 3):
            text = _DISPLAY.sub(lambda m: render(m.group(1), "block"), pieces[i])
            out.append(_INLINE.sub(lambda m: render(m.group(1), "inline"), text))
            if i + 2 < len(pieces):
                out.append(pieces[i + 1] + pieces[i + 2] + pieces[i + 1])
    return "".join(out)


# ---- notebook -> HTML -----------------------------------------------------------------------------------------------
def notebook_html(nb, title: str) -> str:
    """One HTML page of an executed notebook: set-up cell removed, math as MathML, no script from the network."""
    import copy

    nbconvert = _require("nbconvert")
    from traitlets.config import Config

    nb = copy.deepcopy(nb)
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            cell.source = math_to_mathml(cell.source)
        for output in cell.get("outputs", []):     # nbconvert's templates draw no image/gif: hand it over as <img>
            data = output.get("data", {})
            if "image/gif" in data:
                gif = "".join(data.pop("image/gif").split())
                data["text/html"] = f'<img src="data:image/gif;base64,{gif}" alt="animation">'
                data.pop("text/plain", None)
    config = Config()
    config.TagRemovePreprocessor.remove_cell_tags = {SETUP_TAG}
    config.TagRemovePreprocessor.enabled = True
    config.HTMLExporter.preprocessors = ["nbconvert.preprocessors.TagRemovePreprocessor"]
    exporter = nbconvert.HTMLExporter(config=config, template_name="classic")
    exporter.mathjax_url = ""              # the math is MathML already; nothing to fetch
    body, _ = exporter.from_notebook_node(nb, resources={"metadata": {"name": title}})
    # no script that would reach the network (CDN MathJax, mermaid), and none left empty
    body = re.sub(r"<script\b[^>]*>(?:(?!</script>).)*?(?:mathjax|mermaid|MathJax)(?:(?!</script>).)*?</script>", "",
                  body, flags=re.S)
    body = re.sub(r'<script[^>]*src="(?:https?://[^"]*)?"[^>]*>\s*</script>', "", body)
    body = unprefix_mathml(body)
    nav = '<p style="margin:1em 2em"><a href="index.html">&larr; all chapters</a></p>'
    return _insert_after_body(body, nav)


def unprefix_mathml(page: str) -> str:
    """``<ns0:math>`` -> ``<math>``. nbconvert re-serialises each heading to add its anchor link, and writes the MathML in
    it with a namespace prefix, which an HTML page does not read as MathML: math in a heading would show as flat text."""
    for prefix in set(re.findall(r'xmlns:(\w+)="http://www\.w3\.org/1998/Math/MathML"', page)):
        page = page.replace(f' xmlns:{prefix}="http://www.w3.org/1998/Math/MathML"', "")
        page = re.sub(rf"<(/?){prefix}:", r"<\1", page)
    return page


def _insert_after_body(page: str, snippet: str) -> str:
    m = re.search(r"<body[^>]*>", page)
    return page if m is None else page[: m.end()] + snippet + page[m.end():]


def index_html(entries: list["Chapter"], quick: bool) -> str:
    rows = "\n".join(
        f'<li><a href="{html.escape(e.html.name)}">{html.escape(e.title)}</a>'
        + (f' <span style="color:#a00">(stopped: {html.escape(e.error)})</span>' if e.error else "")
        + f' <small>({e.seconds:.0f} s)</small></li>' for e in entries)
    mode = "quick versions (--quick)" if quick else "full versions"
    return (f"<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>tinydiff: the chapters</title></head>\n"
            f"<body style=\"font-family:sans-serif;max-width:50em;margin:2em auto\">\n"
            f"<h1>tinydiff: diffusion models from scratch</h1>\n<p>Each chapter executed ({mode}) with its output "
            f"and figures. Built by <code>python -m tinydiff book</code> on {time.strftime('%Y-%m-%d')}.</p>\n"
            f"<ol>\n{rows}\n</ol>\n</body></html>\n")


# ---- the whole book -------------------------------------------------------------------------------------------------
@dataclass
class Chapter:
    script: Path
    notebook: Path
    html: Path
    title: str
    seconds: float
    error: str = ""


def tidy(nb) -> None:
    """After execution: number the chapter's cells from 1 (the set-up cell is not the reader's) and drop the
    ``Out[n]: PosixPath(...)`` that a cell ending in ``viz.save(...)`` would show."""
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        if cell.get("execution_count"):
            cell.execution_count -= 1
        cell.outputs = [o for o in cell.outputs if not (
            o.get("output_type") == "execute_result"
            and re.fullmatch(r"(Posix|Windows)?Path\(.*\)", o.get("data", {}).get("text/plain", "")))]
        for o in cell.outputs:
            if o.get("execution_count"):
                o.execution_count -= 1


def chapter_title(script: Path) -> str:
    for kind, source in percent_cells(script.read_text(encoding="utf-8")):
        if kind == "markdown":
            for line in source.splitlines():
                if line.startswith("# "):
                    return line[2:].strip()
    return script.stem


def build_chapter(script: Path, out: Path, quick: bool = False, timeout: int = 1800, log=print) -> Chapter:
    """Execute one chapter into ``out/NN_name.ipynb`` and ``out/NN_name.html`` (figures in ``out/figures/NN``)."""
    nbformat = _require("nbformat")
    nbclient = _require("nbclient")
    figures = out / "figures" / script.stem[:2]
    nb = chapter_notebook(script, figures, quick)
    title = chapter_title(script)
    error = ""
    t0 = time.perf_counter()
    client = nbclient.NotebookClient(nb, timeout=timeout, kernel_name="python3",
                                     resources={"metadata": {"path": str(script.parent)}})
    try:
        client.execute(env={**os.environ, "MPLBACKEND": "Agg", "TQDM_DISABLE": "1"})
    except nbclient.exceptions.CellExecutionError as err:     # keep the page: outputs up to the failing cell
        lines = [line for line in str(err).splitlines() if line.strip()]
        error = next((line for line in reversed(lines) if not line.startswith(" ")), "a cell failed")[:300]
    seconds = time.perf_counter() - t0
    tidy(nb)
    paths = out / f"{script.stem}.ipynb", out / f"{script.stem}.html"
    nbformat.write(nb, paths[0])
    paths[1].write_text(notebook_html(nb, title), encoding="utf-8")
    log(f"{script.name}: {seconds:.0f} s{'  STOPPED: ' + error if error else ''} -> {paths[1]}")
    return Chapter(script, paths[0], paths[1], title, seconds, error)


def build_book(out, chapters: list[int] | None = None, quick: bool = False, timeout: int = 1800,
               chapters_dir: Path = CHAPTERS_DIR, log=print) -> list[Chapter]:
    """Build every chapter (or the numbers in ``chapters``) into ``out`` and write ``out/index.html``."""
    for name in ("nbformat", "nbclient", "nbconvert", "ipykernel", "latex2mathml"):
        _require(name)
    scripts = sorted(chapters_dir.glob("[0-9][0-9]_*.py"))
    if chapters:
        scripts = [s for s in scripts if int(s.name[:2]) in set(chapters)]
    if not scripts:
        raise BookError(f"no chapters to build in {chapters_dir} (asked for {chapters or 'all'})")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    entries = [build_chapter(s, out, quick, timeout, log) for s in scripts]
    (out / "index.html").write_text(index_html(entries, quick), encoding="utf-8")
    log(f"wrote {out / 'index.html'}")
    return entries


def _require(name: str):
    import importlib

    try:
        return importlib.import_module(name)
    except ImportError as err:
        raise BookError(f"{MISSING}; {name} is missing") from err
