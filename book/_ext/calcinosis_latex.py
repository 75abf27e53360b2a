"""The book's PDF layout, applied to the one doctree Sphinx's LaTeX builder assembles.

- Every captioned table is a ``longtable`` (breaks across pages, header repeated); every table gets
  column widths from its content (``\\X{w}{total}``, wrapped, numbers right-aligned) and a font
  size that lets the widest fit, on a landscape page when a portrait one is too narrow: no
  table runs off the page or out of the bottom.
- The parts of ``_toc.yml`` become ``\\part`` pages, as the site groups its chapters; the home
  page's text becomes an unnumbered opening chapter instead of running on after the contents.
- The bibliography is printed in the References chapter (Sphinx moves it to the very end).
- Identifiers such as ``P1-L9`` are never broken at their hyphen, and a number's leading
  hyphen is printed as a minus sign (U+2212).

The title page, the contents' name and the bibliography's heading are in ``calcinosis.sty``.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path

import yaml
from docutils import nodes
from sphinx import addnodes
from sphinx.application import Sphinx
from sphinx.builders.latex.nodes import thebibliography
from sphinx.transforms.post_transforms import SphinxPostTransform

from calcinosis.markup import latex as escape

# An identifier with a hyphen between letter-digit parts: P1-L9, P12-L3 (lesions, patients).
IDENTIFIER = re.compile(r"\b[A-Za-z]+\d+(?:-[A-Za-z]+\d+)+\b")
# A hyphen that is a number's sign: not after a letter, digit or hyphen, before a digit.
NUMBER_SIGN = re.compile(r"(?<![\w\-.])-(?=\.?\d)")
MINUS = "\u2212"

# A word longer than this may break every BREAK_EVERY characters (a SHA-256 digest).
WRAP_AT = 24
BREAK_EVERY = 16
WRAP_EM = 11  # a cell's text wider than this (in em of its font) wraps in its column
# Room for a table, in pt: the A4 page's line, and the line of a landscape page.
PORTRAIT, LANDSCAPE = 450, 640
CELL_PADDING = 13  # 2 \tabcolsep (12 pt, whatever the font) and 1 pt to spare
# a table too wide for the portrait line otherwise: \tabcolsep 3 pt before going landscape
TIGHT_TABCOLSEP, TIGHT_PADDING = 3, 7
# The fonts of the PDF (Sphinx's xelatex defaults): cells in the serif, headers in the sans;
# text is measured with them, or counted at FALLBACK_EM a character when they are missing.
BODY_FONT, HEADER_FONT = "FreeSerif", "FreeSans"
FALLBACK_EM = 0.6
# Table fonts, largest first, with their size in pt: a table takes the largest that fits on a
# portrait page, else the largest that fits on a landscape one (else the smallest, wrapped).
FONTS = ((10, r"\small"), (9, r"\footnotesize"), (8, r"\scriptsize"))


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
    for text in list(group.findall(nodes.Text)):
        _breakable_long_words(text)
    header = {id(r) for head in group.findall(nodes.thead) for r in head.findall(nodes.row)}
    cell_widths, word_widths, right = [], [], []
    for j in range(len(specs)):
        cells = [r.children[j] for r in rows]
        words, texts = [0.5], [0.5]  # in em: the widest word (cannot wrap), cell (to WRAP_EM)
        for row, cell in zip(rows, cells, strict=True):
            font = HEADER_FONT if id(row) in header else BODY_FONT
            text = cell.astext()
            words += [_em(w[:BREAK_EVERY] if len(w) > WRAP_AT else w, font) for w in text.split()]
            if id(row) not in header:
                texts.append(min(_em(text, font), WRAP_EM))
        right.append(any("text-right" in c.get("classes", []) for c in cells))
        cell_widths.append(max(*words, *texts))
        # a number ("< 0.0001") is never wrapped
        word_widths.append(cell_widths[-1] if right[-1] else max(words))
    landscape, widths, (points, size), padding = _fit(cell_widths, word_widths)
    weights = [round(w * points + padding) for w in widths]
    total = sum(weights)
    align = {True: r">{\raggedleft\arraybackslash}", False: r">{\raggedright\arraybackslash}"}
    spec = addnodes.tabular_col_spec(
        spec="".join(
            rf"{align[r]}\X{{{w}}}{{{total}}}" for w, r in zip(weights, right, strict=True)
        )
    )
    if any(isinstance(child, nodes.title) for child in table.children):
        # a longtable steps the table counter even without a caption, so a table without
        # one (a page's own output) stays a plain tabular and takes no number
        table["classes"] = [*table.get("classes", []), "longtable"]
    parent = table.parent
    at = parent.index(table)
    start, end = r"\begingroup" + size, r"\endgroup"
    if padding == TIGHT_PADDING:
        start += rf"\setlength{{\tabcolsep}}{{{TIGHT_TABCOLSEP}pt}}"
    if landscape:
        start, end = r"\begin{landscape}" + start, end + r"\end{landscape}"
    parent.insert(at + 1, _raw(end))
    parent.insert(at, _raw(start))
    parent.insert(at + 1, spec)


def _fit(cells: list[float], words: list[float]) -> tuple[bool, list[float], tuple[int, str], int]:
    """Landscape or not, the columns' widths (em), the table's font and its cells' padding
    (pt). On the portrait line with the usual padding, then with tight padding, then on the
    landscape line: the largest font at which every cell fits its column (wrapped at
    WRAP_EM), else the smallest font with columns narrowed towards their widest word
    (`_widths`: more lines, as few as may be). A table goes landscape only when it cannot
    fit the portrait line even so: a landscape page interrupts the reading, and a landscape
    table's last rows took a page of their own."""
    smallest = FONTS[-1]
    for landscape, room in ((False, PORTRAIT), (True, LANDSCAPE)):
        for padding in (CELL_PADDING, TIGHT_PADDING):
            for points, command in FONTS:
                if _widths(cells, cells, points, room, padding) is not None:
                    return landscape, cells, (points, command), padding
            widths = _widths(cells, words, smallest[0], room, padding)
            if widths is not None:
                return landscape, widths, smallest, padding
    return True, words, smallest, TIGHT_PADDING


def _widths(
    cells: list[float], words: list[float], points: int, room: float, padding: int
) -> list[float] | None:
    """Column widths (em) that fit `room` (pt) at `points` with `padding` per column: each
    column's cell width (its text up to WRAP_EM) when all fit, else its widest word plus a
    share of the room left in proportion to what it lacks of its cell width; None when the
    widest words do not fit."""
    free = (room - padding * len(cells)) / points
    if sum(cells) <= free:
        return cells
    if sum(words) > free:
        return None
    lack = [c - w for c, w in zip(cells, words, strict=True)]
    share = (free - sum(words)) / sum(lack)
    return [w + short * share for w, short in zip(words, lack, strict=True)]


@functools.cache
def _face(family: str):
    """The font file of `family` (regular), opened for measuring; None when not installed."""
    from matplotlib.font_manager import FontProperties, findfont
    from matplotlib.ft2font import FT2Font

    try:
        face = FT2Font(findfont(FontProperties(family=family), fallback_to_default=False))
    except ValueError:
        return None
    face.set_size(100, 72)  # 100 pt at 72 dpi: widths in 1/64 pt of a 100 pt font
    return face


@functools.cache
def _em(text: str, family: str) -> float:
    """The width of `text` set in `family`, in em."""
    face = _face(family)
    if face is None:
        return FALLBACK_EM * len(text)
    face.set_text(text, 0.0)
    return face.get_width_height()[0] / 64 / 100


def _breakable_long_words(text: nodes.Text) -> None:
    """A word longer than a column may be (a SHA-256 digest) may break every BREAK_EVERY
    characters."""
    value = str(text)
    if text.parent is None or not any(len(w) > WRAP_AT for w in value.split()):
        return
    pieces: list[nodes.Node] = []
    for part in re.split(r"(\s+)", value):
        if len(part) <= WRAP_AT:
            pieces.append(nodes.Text(part))
            continue
        for start in range(0, len(part), BREAK_EVERY):
            if start:
                pieces.append(_raw(r"\allowbreak{}"))
            pieces.append(nodes.Text(part[start : start + BREAK_EVERY]))
    text.parent.replace(text, pieces)


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
        first = (
            Path(str(chapters[0].get("file", ""))).with_suffix("").as_posix() if chapters else ""
        )
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
    # the title page's lines below the title (calcinosis.sty prints those that are set)
    macros = {
        "calcinosisarticle": config.calcinosis_article,
        "calcinosisprovenance": config.calcinosis_provenance,
    }
    preamble = "".join(
        rf"\newcommand{{\{name}}}{{{escape(text)}}}" + "\n" for name, text in macros.items() if text
    )
    config.latex_elements = {
        **config.latex_elements,
        "preamble": config.latex_elements.get("preamble", "") + preamble,
    }


def setup(app: Sphinx) -> dict:
    app.add_post_transform(LatexLayout)
    app.add_latex_package("calcinosis")
    # the reproduced article's citation (book/_config.yml) and the data's provenance in one
    # plain sentence (set by `calcinosis build`), for the title page
    app.add_config_value("calcinosis_article", "", "env", types=[str])
    app.add_config_value("calcinosis_provenance", "", "env", types=[str])
    app.connect("config-inited", _add_style)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
