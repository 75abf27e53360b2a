"""The one escaping path: data text arrives as itself in MyST (parsed here by MyST's own
parser), LaTeX (compiled here by Sphinx's escaping rules), spreadsheet cells and terminals."""

from __future__ import annotations

import string

import pytest
from docutils import nodes

from calcinosis import markup
from myst_reading import MARKUP, assert_plain, doctree, seen

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


@pytest.mark.parametrize("text", [*HOSTILE, "patients.csv", "a ` b `` c"])
def test_code_is_the_text_itself(text: str) -> None:
    tree = doctree(markup.code(text))
    [literal] = list(tree.findall(nodes.literal))
    assert literal.astext() == " ".join(text.splitlines())
    assert not [n for n in tree.findall() if isinstance(n, MARKUP) and n is not literal]


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
    assert markup.cell("-2.66") == "-2.66" and markup.cell("+1e-3") == "+1e-3"  # numbers
