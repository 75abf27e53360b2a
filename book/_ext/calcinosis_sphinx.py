"""Sphinx glue of the calcinosis book: links from captions to code, and Binder on Jupytext.

``{source}`calcinosis.figures.fig_x``` (MyST role) renders the function's dotted name and the
git commit of the code. In HTML it links straight to the function in the highlighted source
page that `sphinx.ext.viewcode` writes (``_modules/calcinosis/figures.html#fig_x``) — one
click from a figure to the code that drew it, as showyourwork does for scripts; the build
fails (a warning under ``-W``) when that anchor does not exist. In LaTeX it is plain text.

The Binder launch button of sphinx-book-theme points at ``<path_to_docs>/<page>.ipynb``; the
repository keeps the chapters as Jupytext Markdown (``chapters/<page>.md``), so the link is
rewritten to the ``.md`` file, which Jupytext opens as a notebook.

Papermill's ``injected-parameters`` cell is removed from the page (not from the notebook).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from docutils import nodes
from sphinx.application import Sphinx
from sphinx.util import logging

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
        msg = inliner.reporter.error(f"source role wants calcinosis.<module>.<name>: {text!r}",
                                     line=lineno)
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
            ref = nodes.reference("", "", label, refuri=uri, internal=True,
                                  classes=["calcinosis-source"])
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
            logger.warning(f"code link from {docname} to {page}.html#{qualname} has no target: "
                           "document the function on the API page", location=docname)


_NB_LINK = re.compile(r"(urlpath=lab/tree/[^\"'&]*?)\.ipynb")


def _binder_to_jupytext(app, pagename, templatename, context, doctree) -> None:
    for group in context.get("header_buttons", []):
        for button in group.get("buttons", []) if isinstance(group, dict) else []:
            if button.get("text") == "Binder" and "url" in button:
                button["url"] = _NB_LINK.sub(r"\1.md", button["url"])


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


def setup(app: Sphinx) -> dict:
    app.setup_extension("calcinosis_latex")  # the PDF's layout, in a module of its own
    app.add_node(source_link)
    app.add_role("source", source_role)
    app.connect("source-read", _hide_injected_parameters)
    app.connect("doctree-resolved", _resolve)
    app.connect("build-finished", _check_links)
    # after sphinx-book-theme's own handler (priority 501) has added the launch buttons
    app.connect("html-page-context", _binder_to_jupytext, priority=900)
    app.connect("build-finished", _dedupe_inline_scripts)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
