"""The one way data text reaches a reader: as MyST (a page), LaTeX, a spreadsheet cell or a
terminal line, always as the text itself, never as markup, math, a link, a file reference, a
formula or a control sequence.

Every renderer that shows text from the data (a site, an event, an ID, a claim's name, a
sentence built from them) goes through this module, so that no page can forget a case.
"""

from __future__ import annotations

import re

# Every ASCII punctuation character can be backslash-escaped in CommonMark/MyST: escaping all
# of them leaves no way for text to open a tag (`<`), a role or directive (`{`, backticks,
# `:::`), math (`$`), a link or an image (`[`, `!`), emphasis (`*`, `_`) or a table cell (`|`).
_PUNCTUATION = re.compile(r"([!-/:-@\[-`{-~])")
# C0 controls but tab and newline, DEL and C1 controls: an ESC moves a terminal's cursor, a
# form feed or a backspace is not allowed in a spreadsheet cell nor in XML.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
# A spreadsheet reads a cell starting with one of these as a formula (a tab or a carriage
# return may precede one).
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
# A number written as text (a signed decimal, an exponent): shown as typed, never a formula.
NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


def visible(text: object) -> str:
    """`text` with each control character written out as `\\xNN` (tab and newline kept)."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group(0)):02x}", str(text))


def myst(text: object) -> str:
    """`text` as literal MyST inline text, on one line (newlines become spaces; blanks at
    either end, which would make a code block at a line's start, dropped)."""
    return _PUNCTUATION.sub(r"\\\1", " ".join(visible(text).splitlines()).strip())


def code(text: object) -> str:
    """`text` as a MyST/Markdown code span (shown in monospace, never parsed): delimited by
    one backtick more than its longest run of backticks, on one line."""
    line = " ".join(visible(text).splitlines())
    fence = "`" * (max((len(run) for run in re.findall(r"`+", line)), default=0) + 1)
    return f"{fence} {line} {fence}" if "`" in line else f"{fence}{line}{fence}"


def myst_block(text: object) -> str:
    """`text` as literal MyST paragraphs that keep its lines: each line escaped as `myst`
    (leading blanks dropped, or they would make a code block) and ended by a hard break; an
    empty line still separates paragraphs."""
    paragraphs = re.split(r"\n\s*\n", visible(text).strip())
    return "\n\n".join(
        "\\\n".join(myst(line.strip()) for line in paragraph.splitlines() if line.strip())
        for paragraph in paragraphs
    )


def latex(text: object) -> str:
    """`text` as LaTeX text, escaped as Sphinx escapes a document's text."""
    from sphinx.util import texescape

    texescape.init()  # fills the escape tables (Sphinx's LaTeX builder does this at start)
    return texescape.escape(visible(text))


def cell(value: object) -> object:
    """A spreadsheet cell (CSV or XLSX): text that would start a formula gets a leading
    apostrophe, which spreadsheets show as text and never evaluate; control characters are
    written out. Numbers, truth values, missing values and numbers written as text ("-2.66")
    are stored as they are."""
    if not isinstance(value, str):
        return value
    text = visible(value)
    formula = text.startswith(FORMULA_START) and not NUMBER.fullmatch(text)
    return "'" + text if formula else text


def terminal(text: object) -> str:
    """`text` for a terminal line: control characters (an escape sequence included) written
    out, newlines as `⏎`."""
    return visible(text).replace("\t", " ").replace("\n", " ⏎ ")
