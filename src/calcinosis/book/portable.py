"""Executed notebooks a reader can run again: what the site offers for download must not carry
the build machine's paths.

papermill records where it wrote the notebook (`metadata.papermill.output_path`, an absolute
path in the build's temporary folder) and injects the build's parameters, among them
`results_dir`, a folder that exists only during the build. The notebook is rewritten to the
parameters that work from the repository's root: the data folder relative to it, and no results
folder (the page then computes its results in the kernel). They are written into the
parameters cell too, as its defaults: papermill run again with `-p` replaces the injected cell
with one holding only what `-p` gives, and the data folder must survive that.

Nor does it carry the moment it ran: papermill's and the kernel's timestamps are dropped and the
cells numbered (jupytext and papermill give them random ids), so the same inputs give the same
notebook, byte for byte.

The data's provenance notice is set here too, as the output a page run alone
shows first (`calcinosis.book.page.show`): a page executed in the build leaves it out, so a
notice that changed (an edit of the bundled reconstruction names the edited file) sets the
new notice on every page and re-executes none.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from calcinosis import paths
from calcinosis.book.page import is_reads, markdown_output

INJECTED = "injected-parameters"  # papermill's tag of the cell it adds
TIMES = ("start_time", "end_time", "duration")  # papermill's, in the notebook and each cell


def make_portable(
    notebook: Path, data_dir: Path, root: Path = paths.ROOT, *, notice: str = ""
) -> None:
    """Rewrite `notebook` in place to run from `root` on `data_dir`, showing `notice` (MyST;
    "" for none) after its show() call's glue."""
    nb = json.loads(notebook.read_text(encoding="utf-8"))
    record = nb.get("metadata", {}).get("papermill")
    if record is None:
        return  # not executed by papermill: nothing of the build in it
    if notice:
        _show_notice(nb, notice)
    params = dict(record.get("parameters") or {})
    if "results_dir" in params:  # a page of the build: it reads the data through show()
        params["data_dir"] = Path(os.path.relpath(data_dir, root)).as_posix()
        params["results_dir"] = ""
    record["parameters"] = params
    record.pop("output_path", None)
    record.pop("input_path", None)  # the source notebook itself, once more
    for key in TIMES:
        record.pop(key, None)
    for index, cell in enumerate(nb.get("cells", [])):
        cell["id"] = f"cell-{index}"
        meta = cell.setdefault("metadata", {})
        meta.pop("execution", None)  # the kernel's timestamps
        for key in TIMES:
            meta.get("papermill", {}).pop(key, None)
        if INJECTED in meta.get("tags", []):
            cell["source"] = _parameters_source(params)
        elif "parameters" in meta.get("tags", []):
            cell["source"] = with_defaults(_text(cell["source"]), params)
    text = json.dumps(nb, indent=1, sort_keys=True, ensure_ascii=False) + "\n"
    notebook.write_text(text, encoding="utf-8")


def with_defaults(source: str, values: dict) -> str:
    """The parameters cell `source` with the values of `values` as its defaults, comments
    kept: papermill run again with `-p` replaces the injected cell, so what the build
    injected (the data folder above all) must be in the cell it keeps."""
    import ast

    from papermill.translators import PythonTranslator

    lines = source.splitlines(keepends=True)
    edits = []
    for node in ast.parse(source).body:
        if (
            isinstance(node, ast.Assign)
            and len(node.targets) == 1
            and isinstance(node.targets[0], ast.Name)
            and node.targets[0].id in values
        ):
            edits.append((node.value, PythonTranslator.translate(values[node.targets[0].id])))
    for value, text in sorted(edits, key=lambda e: (e[0].lineno, e[0].col_offset), reverse=True):
        first, last = value.lineno - 1, (value.end_lineno or value.lineno) - 1
        end = value.end_col_offset or 0
        head = _char_offset(lines[first], value.col_offset)
        tail = _char_offset(lines[last], end)
        lines[first : last + 1] = [lines[first][:head] + text + lines[last][tail:]]
    return "".join(lines)


def _char_offset(line: str, byte_offset: int) -> int:
    """ast's column offsets count UTF-8 bytes."""
    return len(line.encode("utf-8")[:byte_offset].decode("utf-8"))


def _text(source: str | list[str]) -> str:
    return source if isinstance(source, str) else "".join(source)


def _show_notice(nb: dict, notice: str) -> None:
    for cell in nb.get("cells", []):
        outputs = cell.get("outputs", [])
        at = next((i for i, output in enumerate(outputs) if is_reads(output)), None)
        if at is not None:
            outputs.insert(at + 1, markdown_output(notice))
            return


def _parameters_source(params: dict) -> str:
    """The injected cell's code, as papermill writes it for Python."""
    from papermill.translators import PythonTranslator

    return PythonTranslator.codify(params, comment="Parameters")
