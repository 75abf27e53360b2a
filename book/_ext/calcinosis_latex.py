"""The book's PDF layout, applied to the one doctree Sphinx's LaTeX builder assembles.

- Every table is a ``longtable`` (breaks across pages, header repeated) whose columns get
  widths from their content (``\\X{w}{total}``, wrapped, numbers right-aligned) and a font
  size that lets the widest fit: no table runs off the page or out of the bottom.
- The parts of ``_toc.yml`` become ``\\part`` pages, as the site groups its chapters; the home
  page's text becomes an unnumbered opening chapter instead of running on after the contents.
- The bibliography is printed in the References chapter (Sphinx moves it to the very end).
- Identifiers such as ``P1-L9`` are never broken at their hyphen, and a number's leading
  hyphen is printed as a minus sign (U+2212).

The title page, the contents' name and the bibliography's heading are in ``calcinosis.sty``.
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml
from docutils import nodes
from sphinx import addnodes
from sphinx.application import Sphinx
from sphinx.builders.latex.nodes import thebibliography
from sphinx.transforms.post_transforms import SphinxPostTransform
from sphinx.util.texescape import escape

# An identifier with a hyphen between letter-digit parts: P1-L9, P12-L3 (lesions, patients).
IDENTIFIER = re.compile(r"\b[A-Za-z]+\d+(?:-[A-Za-z]+\d+)+\b")
# A hyphen that is a number's sign: not after a letter, digit or hyphen, before a digit.
NUMBER_SIGN = re.compile(r"(?<![\w\-.])-(?=\.?\d)")
MINUS = "\u2212"

# How many characters of a cell's text count towards its column's width: longer cells wrap.
WRAP_AT = 30
# The space between two columns (2 \tabcolsep), in characters.
GAP = 3
# Table font by the table's width in characters (cells capped at WRAP_AT, gaps included): the
# first size whose limit the table stays under; a line of the A4 page holds about 100
# characters of 10 pt FreeSerif.
FONT_SIZES = ((100, r"\small"), (112, r"\footnotesize"), (126, r"\scriptsize"))
SMALLEST = r"\tiny"


class LatexLayout(SphinxPostTransform):
    """Lay out the assembled book for LaTeX (see the module docstring)."""

    default_priority = 800  # after Sphinx's BibliographyTransform (750)
    formats = ("latex",)

    def run(self, **kwargs) -> None:
        files = list(self.document.findall(addnodes.start_of_file))
        if not files:  # not the assembled book
            return
        for table in list(self.document.findall(nodes.table)):
            _lay_out_table(table)
        _bibliography_in_place(self.document, files)
        _parts(self.document, files, Path(self.app.srcdir) / "_toc.yml")
        _opening_chapter(self.document, files, self.env.titles.get(self.env.config.root_doc))
        for text in list(self.document.findall(nodes.Text)):
            _typeset_text(text)


def _raw(tex: str) -> nodes.raw:
    return nodes.raw("", tex, format="latex")


def _lay_out_table(table: nodes.table) -> None:
    group = next(iter(table.findall(nodes.tgroup)), None)
    if group is None:
        return
    specs = [c for c in group.children if isinstance(c, nodes.colspec)]
    rows = list(group.findall(nodes.row))
    if not specs or not rows or any(len(r.children) != len(specs) for r in rows):
        return  # spanning cells: leave the table to Sphinx
    header = {id(r) for head in group.findall(nodes.thead) for r in head.findall(nodes.row)}
    widths, right = [], []
    for j in range(len(specs)):
        cells = [r.children[j] for r in rows]
        words = [len(w) for cell in cells for w in cell.astext().split()] or [1]
        body = [len(c.astext()) for r, c in zip(rows, cells, strict=True) if id(r) not in header]
        head = [len(c.astext()) for r, c in zip(rows, cells, strict=True) if id(r) in header]
        numeric = any("text-right" in c.get("classes", []) for c in cells)
        # digits and bold sans-serif headers are wider than the average letter
        content = max(max(words), min(max(body or [1]), WRAP_AT)) * (1.2 if numeric else 1)
        header_words = [len(w) for r, c in zip(rows, cells, strict=True) if id(r) in header
                        for w in c.astext().split()] or [1]
        natural = max(content, 1.25 * max(header_words), min(max(head or [1]), 12))
        widths.append(round(natural) + GAP)
        right.append(numeric)
    total = sum(widths)
    align = {True: r">{\raggedleft\arraybackslash}", False: r">{\raggedright\arraybackslash}"}
    spec = addnodes.tabular_col_spec(
        spec="".join(
            rf"{align[r]}\X{{{w}}}{{{total}}}" for w, r in zip(widths, right, strict=True)
        )
    )
    size = next((s for limit, s in FONT_SIZES if total <= limit), SMALLEST)
    table["classes"] = [*table.get("classes", []), "longtable"]
    parent = table.parent
    at = parent.index(table)
    parent.insert(at + 1, _raw(r"\endgroup"))
    parent.insert(at, _raw(r"\begingroup" + size))
    parent.insert(at + 1, spec)


def _bibliography_in_place(document: nodes.document, files: list) -> None:
    """Move the bibliography Sphinx gathers at the end into the page holding `{bibliography}`."""
    found = [n for n in document.children if isinstance(n, thebibliography)]
    home = next((f for f in files if f.get("docname") == "references"), None)
    if not found or home is None:
        return
    chapter = next(iter(home.findall(nodes.section)), home)
    for bib in found:
        document.remove(bib)
        chapter += bib


def _parts(document: nodes.document, files: list, toc_path: Path) -> None:
    """A `\\part` before the first chapter of each part of the table of contents."""
    if not toc_path.is_file():
        return
    toc = yaml.safe_load(toc_path.read_text(encoding="utf-8")) or {}
    starts = {f.get("docname"): f for f in files}
    for part in toc.get("parts", []):
        chapters = part.get("chapters") or []
        first = Path(str(chapters[0].get("file", ""))).with_suffix("").as_posix() if chapters else ""
        node = starts.get(first)
        if node is None or "caption" not in part:
            continue
        node.parent.insert(node.parent.index(node), _raw(rf"\part{{{escape(part['caption'])}}}"))


def _opening_chapter(document: nodes.document, files: list, title: nodes.Node | None) -> None:
    """The home page's text as an unnumbered chapter in the contents, with its running head."""
    if title is None or not files:
        return
    name = escape(title.astext())
    first = files[0]
    at = first.parent.index(first) if first.parent is document else len(document.children)
    if at == 0:
        return
    document.insert(
        0,
        _raw(
            rf"\chapter*{{{name}}}\addcontentsline{{toc}}{{chapter}}{{{name}}}"
            rf"\markboth{{{name}}}{{{name}}}"
        ),
    )


_SKIP = (nodes.FixedTextElement, nodes.literal, nodes.raw, nodes.title, nodes.math)


def _typeset_text(text: nodes.Text) -> None:
    parent = text.parent
    if parent is None or isinstance(parent, _SKIP):
        return
    value = NUMBER_SIGN.sub(MINUS, str(text))
    pieces: list[nodes.Node] = []
    last = 0
    for match in IDENTIFIER.finditer(value):
        if match.start() > last:
            pieces.append(nodes.Text(value[last : match.start()]))
        pieces.append(_raw(rf"\mbox{{{match.group(0)}}}"))
        last = match.end()
    if not pieces and value == str(text):
        return
    if last < len(value):
        pieces.append(nodes.Text(value[last:]))
    parent.replace(text, pieces)


def _add_style(app: Sphinx, config) -> None:
    config.latex_additional_files = [
        *config.latex_additional_files,
        str(Path(__file__).with_name("calcinosis.sty")),
    ]


def setup(app: Sphinx) -> dict:
    app.add_post_transform(LatexLayout)
    app.add_latex_package("calcinosis")
    app.connect("config-inited", _add_style)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
