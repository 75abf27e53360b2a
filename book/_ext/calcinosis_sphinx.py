"""Sphinx glue of the calcinosis book: links from captions to code, and Binder on Jupytext.

``{source}`calcinosis.report.figures.fig_x``` (MyST role) renders the function's dotted name and the
git commit of the code. In HTML it links straight to the function in the highlighted source
page that `sphinx.ext.viewcode` writes (``_modules/calcinosis/report/figures.html#fig_x``) — one
click from a figure to the code that drew it, as showyourwork does for scripts; the build
fails (a warning under ``-W``) when that anchor does not exist. In LaTeX it is plain text.

The Binder launch button of sphinx-book-theme points at ``<path_to_docs>/<page>.ipynb``; the
repository keeps the chapters as Jupytext Markdown (``chapters/<page>.md``), so the link is
rewritten to the ``.md`` file, which Jupytext opens as a notebook.

Papermill's ``injected-parameters`` cell is removed from the page (not from the notebook).

A table's caption is written above its scroll box (a ``<figure>`` with a ``<figcaption>``), not
inside it as pydata-sphinx-theme does: in the box a wide table's caption scrolls away with it.

The home page's ``{calcinosis-downloads}`` directive links the book's PDF and the supplement that
the build copies into the site (`calcinosis_downloads`, set by the staging); the download button
offers that PDF, not the browser's print. Binder opens only pages that the repository holds
(`calcinosis_repository_pages`).

Data text is shown as typed: smart quotes (`'` to ‘’, `--` to –) stay on for the prose but
off for what the data put on a page (glued values, table cells, the changes page).
"""

from __future__ import annotations

import json
import re
import types
from pathlib import Path

from docutils import nodes
from sphinx.application import Sphinx
from sphinx.transforms import SphinxTransform
from sphinx.util import logging
from sphinx.util.docutils import SphinxDirective
from sphinx.util.osutil import relative_uri

logger = logging.getLogger(__name__)


class source_link(nodes.Inline, nodes.Element):
    """Placeholder resolved per builder once the target page's URL is known."""


def _commit() -> str:
    try:
        from calcinosis.software import short_commit
    except ImportError:
        return "unknown"
    return short_commit()


def source_role(name, rawtext, text, lineno, inliner, options=None, content=None):
    dotted = text.strip()
    module, _, qualname = dotted.rpartition(".")
    if not module.startswith("calcinosis"):
        msg = inliner.reporter.error(
            f"source role wants calcinosis.<module>.<name>: {text!r}", line=lineno
        )
        return [inliner.problematic(rawtext, rawtext, msg)], [msg]
    node = source_link(rawtext, module=module, qualname=qualname)
    return [node], []


def _resolve(app: Sphinx, doctree: nodes.document, docname: str) -> None:
    commit = _commit()
    env = app.env
    for node in list(doctree.findall(source_link)):
        module, qualname = node["module"], node["qualname"]
        label = nodes.literal(text=f"{module}.{qualname}")
        suffix = nodes.Text(f" (commit {commit})")
        if app.builder.format == "html":
            page = "_modules/" + module.replace(".", "/")
            uri = app.builder.get_relative_uri(docname, page) + "#" + qualname
            ref = nodes.reference(
                "", "", label, refuri=uri, internal=True, classes=["calcinosis-source"]
            )
            ref["reftitle"] = f"Source code of {module}.{qualname}"
            node.replace_self([ref, suffix])
            env.calcinosis_source_links = getattr(env, "calcinosis_source_links", set())
            env.calcinosis_source_links.add((docname, page, qualname))
        else:
            node.replace_self([label, suffix])


def _check_links(app: Sphinx, exception: Exception | None) -> None:
    """Every caption's code link must land on an anchor that viewcode wrote."""
    if exception is not None or app.builder.format != "html":
        return
    out = Path(app.outdir)
    for docname, page, qualname in sorted(getattr(app.env, "calcinosis_source_links", ())):
        target = out / f"{page}.html"
        html = target.read_text(encoding="utf-8") if target.is_file() else ""
        if f'id="{qualname}"' not in html:
            logger.warning(
                f"code link from {docname} to {page}.html#{qualname} has no target: "
                "document the function on the API page",
                location=docname,
            )


_NB_LINK = re.compile(r"(urlpath=(?:lab/)?tree/[^\"'&]*?)\.ipynb")  # JupyterLab or classic


def _header_buttons(app, pagename, templatename, context, doctree) -> None:
    """Binder on the chapter's Jupytext file, only for pages the repository holds; the
    download menu's PDF is the book's, not the browser's print of the page."""
    pdf = app.config.calcinosis_downloads.get("pdf")
    book_pdf = {
        "type": "link",
        "url": context["pathto"](pdf, 1) if pdf else "",
        "text": "PDF of the book",
        "tooltip": "The whole book as PDF",
        "icon": "fas fa-file-pdf",
        "label": "download-book-pdf-button",
    }
    groups = []
    for group in context.get("header_buttons", []):
        if isinstance(group, dict) and "buttons" in group:
            kept = []
            for button in group["buttons"]:
                if button.get("text") == "Binder":
                    if pagename not in app.config.calcinosis_repository_pages:
                        continue
                    button = {**button, "url": _NB_LINK.sub(r"\1.md", button["url"])}
                elif button.get("label") == "download-pdf-button":
                    if not pdf:
                        continue
                    button = book_pdf
                kept.append(button)
            if not kept:
                continue
            group = {**group, "buttons": kept}
        groups.append(group)
    context["header_buttons"] = groups


class downloads(nodes.General, nodes.Element):
    """Placeholder for the download links, filled per builder (HTML only)."""


class DownloadsDirective(SphinxDirective):
    """``{calcinosis-downloads}``: the PDF and supplement links of the home page."""

    def run(self) -> list[nodes.Node]:
        return [downloads()]


def _fill_downloads(app: Sphinx, doctree: nodes.document, docname: str) -> None:
    for node in list(doctree.findall(downloads)):
        if app.builder.format != "html":
            node.replace_self([])
            continue
        files = app.config.calcinosis_downloads
        here = app.builder.get_target_uri(docname)
        items = [
            nodes.list_item(
                "",
                nodes.paragraph(
                    "",
                    "",
                    nodes.reference(
                        "",
                        label,
                        refuri=relative_uri(here, files[key]),
                        classes=[f"calcinosis-{key}"],
                    ),
                    nodes.Text(f" ({Path(files[key]).name})"),
                ),
            )
            for key, label in (("pdf", "The book as PDF"), ("supplement", "The supplement"))
            if files.get(key)
        ]
        if not files.get("pdf"):
            text = "No PDF of the book was built with this site (calcinosis build --pdf makes it)."
            items.append(nodes.list_item("", nodes.paragraph("", text)))
        node.replace_self(nodes.bullet_list("", *items, classes=["calcinosis-downloads"]))


class TableCaptionOutside:
    """HTML translator mixin: a table with a title becomes
    ``<figure class="calcinosis-table"><figcaption>…</figcaption><div scroll box><table>``,
    so the caption stays whole and in view however far the table scrolls."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._table_openings: list[list[str] | None] = []

    def visit_table(self, node: nodes.Element) -> None:
        start = len(self.body)
        super().visit_table(node)
        if any(isinstance(child, nodes.title) for child in node.children):
            self._table_openings.append(self.body[start:])
            del self.body[start:]
            self.body.append('<figure class="calcinosis-table">\n')
        else:
            self._table_openings.append(None)

    def visit_title(self, node: nodes.Element) -> None:
        start = len(self.body)
        super().visit_title(node)
        if isinstance(node.parent, nodes.table) and self._table_openings[-1] is not None:
            self.body[start] = self.body[start].replace("<caption", "<figcaption", 1)
            self.context[-1] = self.context[-1].replace("</caption>", "</figcaption>")

    def depart_title(self, node: nodes.Element) -> None:
        super().depart_title(node)
        if isinstance(node.parent, nodes.table) and self._table_openings[-1] is not None:
            self.body.extend(self._table_openings[-1])

    def depart_table(self, node: nodes.Element) -> None:
        super().depart_table(node)
        if self._table_openings.pop() is not None:
            self.body.append("</figure>\n")


def _caption_outside_scroll_box(app: Sphinx) -> None:
    """Put the mixin in front of the HTML translator (after pydata-sphinx-theme's own)."""
    if app.builder.format != "html":
        return
    base = app.registry.translators.get(app.builder.name, app.builder.default_translator_class)
    translator = types.new_class("CalcinosisHTMLTranslator", (TableCaptionOutside, base), {})
    app.set_translator(app.builder.name, translator, override=True)


_SCRIPT = re.compile(r"^\s*<script[^>]*>[^<]*</script>\s*$")
_SRC = re.compile(r'\ssrc="([^"?]+)')


def _dedupe_inline_scripts(app: Sphinx, exception: Exception | None) -> None:
    """Drop repeated <script> lines (same inline body, or same src) from every page.

    Under jupyter-book 1.0.4 / Sphinx 7.4 the inline configuration scripts of sphinx-thebe
    and sphinx-togglebutton are written twice into each page (thebe's declares a `const`: a
    SyntaxError the second time), and pages with math load MathJax twice (Sphinx's mathjax
    extension and myst-nb each add it), which MathJax 3 reports as an error.
    """
    if exception is not None or app.builder.format != "html":
        return
    for page in Path(app.outdir).rglob("*.html"):
        lines = page.read_text(encoding="utf-8").splitlines(keepends=True)
        seen, kept = set(), []
        for line in lines:
            if _SCRIPT.match(line):
                src = _SRC.search(line)
                key = src.group(1) if src else line.strip()
                if key in seen:
                    continue
                seen.add(key)
            kept.append(line)
        if len(kept) != len(lines):
            page.write_text("".join(kept), encoding="utf-8")


def _hide_injected_parameters(app: Sphinx, docname: str, source: list[str]) -> None:
    """Hide papermill's injected-parameters cell in the page (it holds build-machine paths);
    the downloadable notebook keeps it as the record of the run's parameters."""
    if not str(app.env.doc2path(docname)).endswith(".ipynb"):
        return
    try:
        nb = json.loads(source[0])
    except ValueError:
        return
    changed = False
    for cell in nb.get("cells", []):
        tags = cell.get("metadata", {}).get("tags", [])
        if "injected-parameters" in tags and "remove-cell" not in tags:
            cell["metadata"]["tags"] = [*tags, "remove-cell"]
            changed = True
    if changed:
        source[0] = json.dumps(nb)


class DataTextAsTyped(SphinxTransform):
    """Marks the text that comes from the data so that Sphinx's smart quotes (the transform
    after this one) leave it as typed: glued values (`{glue:text}`), table cells (every table
    is glued from the results) and the whole changes page (made from two builds' results)."""

    default_priority = 749  # SphinxSmartQuotes runs at 750

    def apply(self, **kwargs) -> None:
        from calcinosis.book.staging import CHANGES_PAGE

        if self.env.docname == CHANGES_PAGE:
            self.document["support_smartquotes"] = False
            return
        for node in self.document.findall(nodes.Element):
            if isinstance(node, nodes.entry) or "pasted-text" in node.get("classes", ()):
                node["support_smartquotes"] = False


def setup(app: Sphinx) -> dict:
    app.setup_extension("calcinosis_latex")  # the PDF's layout, in a module of its own
    app.add_node(source_link)
    app.add_role("source", source_role)
    app.add_transform(DataTextAsTyped)
    app.connect("source-read", _hide_injected_parameters)
    app.connect("doctree-resolved", _resolve)
    app.connect("build-finished", _check_links)
    # after sphinx-book-theme's own handler (priority 501) has added the launch buttons
    app.connect("html-page-context", _header_buttons, priority=900)
    app.connect("build-finished", _dedupe_inline_scripts)
    app.add_config_value("calcinosis_downloads", {}, "html", types=[dict])
    app.add_config_value("calcinosis_repository_pages", [], "html", types=[list])
    app.add_node(downloads)
    app.add_directive("calcinosis-downloads", DownloadsDirective)
    app.connect("doctree-resolved", _fill_downloads)
    # after pydata-sphinx-theme has put its own mixin in front of the translator (priority 500)
    app.connect("builder-inited", _caption_outside_scroll_box, priority=900)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
