"""The one escaping path: data text arrives as itself in MyST (parsed here by MyST's own
parser), LaTeX (compiled here by Sphinx's escaping rules), spreadsheet cells and terminals."""

from __future__ import annotations

import string

import pytest
from docutils import nodes
from docutils.core import publish_doctree
from myst_parser.parsers.docutils_ import Parser

from calcinosis import markup

HOSTILE = [
    "<script>alert(1)</script>",
    "<img src=x onerror=alert(2)>",
    "{download}`../../secret.txt`",
    "![x](../../img.png)",
    "$\\input{/etc/hostname}$",
    "[link](https://example.org) **bold** _it_ *em*",
    "a | b",
    ":::{warning}\nboo\n:::",
    "```{code-cell}\nimport os\n```",
    "# heading",
    "1. list",
    "    indented code",
    "---",
    "> quote",
    "O'Neil -- left -- 'arm'",
    "{{ substitution }}",
    "<!-- comment -->",
    "back\\slash",
]
# What MyST would make of markup: none of these may appear in a doctree of data text.
MARKUP = (
    nodes.raw,
    nodes.image,
    nodes.math,
    nodes.math_block,
    nodes.reference,
    nodes.literal,
    nodes.literal_block,
    nodes.emphasis,
    nodes.strong,
    nodes.section,
    nodes.title,
    nodes.enumerated_list,
    nodes.bullet_list,
    nodes.block_quote,
    nodes.transition,
    nodes.admonition,
    nodes.Admonition,
    nodes.comment,
    nodes.problematic,
    nodes.system_message,
    nodes.table,
)
SETTINGS = {
    "myst_enable_extensions": ["amsmath", "colon_fence", "deflist", "dollarmath", "substitution"],
    "report_level": 5,
}


def doctree(source: str) -> nodes.document:
    return publish_doctree(source, parser=Parser(), settings_overrides=SETTINGS)


def assert_plain(tree: nodes.document) -> None:
    found = [
        type(n).__name__ for n in tree.findall() if isinstance(n, MARKUP) and not hard_break(n)
    ]
    assert not found, found


def hard_break(node: nodes.Node) -> bool:
    """MyST's own line break (a backslash at a line's end), which myst_block writes."""
    return isinstance(node, nodes.raw) and node.astext() in ("<br />\n", "\\\\\n")


def seen(tree: nodes.document) -> str:
    """What a reader sees: the text, a newline where MyST breaks a line (its break is one raw
    node per format)."""
    for node in list(tree.findall(hard_break)):
        node.parent.replace(node, nodes.Text("\n" if node["format"] == "html" else ""))
    return tree.astext()


@pytest.mark.parametrize("text", HOSTILE)
def test_myst_is_the_text_itself(text: str) -> None:
    tree = doctree(markup.myst(text))
    assert_plain(tree)
    assert tree.astext() == " ".join(text.splitlines()).strip()


@pytest.mark.parametrize("text", HOSTILE)
def test_myst_block_keeps_lines_as_text(text: str) -> None:
    tree = doctree(markup.myst_block(text))
    assert_plain(tree)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    assert [line.strip() for line in seen(tree).splitlines() if line.strip()] == lines


def test_myst_block_keeps_paragraphs() -> None:
    tree = doctree(markup.myst_block("First line\nsecond | line\n\nNew paragraph"))
    seen(tree)
    assert [p.astext() for p in tree.findall(nodes.paragraph)] == [
        "First line\nsecond | line",
        "New paragraph",
    ]


def test_every_ascii_punctuation_is_escaped() -> None:
    assert markup.myst(string.punctuation) == "".join("\\" + c for c in string.punctuation)
    assert markup.myst("plain text 42 µm²") == "plain text 42 µm²"


def test_control_characters_are_written_out_everywhere() -> None:
    text = "a\x1b[31mred\x0cfeed\x08back\x7f"
    for out in (markup.terminal(text), markup.cell(text), markup.visible(text)):
        assert not any(ord(c) < 32 or 127 <= ord(c) < 160 for c in str(out)), out
        assert "\\x1b" in str(out) and "\\x0c" in str(out)
    assert markup.terminal("two\nlines\tand tab") == "two ⏎ lines and tab"


def test_latex_is_text() -> None:
    out = markup.latex("$\\input{/etc/hostname}$ 50% a_b & ~ ^ # {x}")
    assert "\\input" not in out.replace("\\textbackslash{}input", "")
    for char in "$%&_#{}":
        assert f"\\{char}" in out
    assert markup.latex("plain text") == "plain text"


def test_cells_neutralise_formulas_in_text_only() -> None:
    for formula in ("=cmd|' /C calc'!A0", "+1+2", "-2+3", "@SUM(A1)", '=HYPERLINK("x")'):
        assert markup.cell(formula) == "'" + formula
    for number in (-2.66, 3, 0.0, None, True):
        assert markup.cell(number) is number or markup.cell(number) == number
    assert markup.cell("plain") == "plain"
