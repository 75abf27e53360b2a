"""Reading MyST as a reader would: parsed by MyST's own parser (docutils), with the checks
that data text became text and nothing else."""

from __future__ import annotations

from docutils import nodes
from docutils.core import publish_doctree
from myst_parser.parsers.docutils_ import Parser

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


def read_tables(md: str) -> list[list[list[str]]]:
    """Each table of a page as a reader sees it: rows of cell texts."""
    tree = doctree(md)
    return [
        [[entry.astext() for entry in row.findall(nodes.entry)] for row in table.findall(nodes.row)]
        for table in tree.findall(nodes.table)
    ]
