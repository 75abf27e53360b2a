"""Executed notebooks a reader can run again: what the site offers for download must not carry
the build machine's paths.

papermill records where it wrote the notebook (`metadata.papermill.output_path`, an absolute
path in the build's temporary folder) and injects the build's parameters, among them
`results_dir`, a folder that exists only during the build. The notebook is rewritten to the
parameters that work from the repository's root: the data folder relative to it, and no results
folder (the page then computes its results in the kernel).

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
    text = json.dumps(nb, indent=1, sort_keys=True, ensure_ascii=False) + "\n"
    notebook.write_text(text, encoding="utf-8")


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
