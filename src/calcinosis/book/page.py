"""What a chapter calls: glue the sections it shows, from the build's results folder or, for a
reviewer running the chapter alone with papermill, from results computed in the kernel.

A page glues every value, table and figure of the sections it names, under their names in
`results.json` (a patient's section under the short names of the patient template), and one
more glue, `calcinosis_reads`, that records which sections it showed and their digests: the
build keeps the executed page until one of those digests changes.

This module imports no analysis code when a results folder is given: a page then costs the
kernel a JSON read and a few files.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from calcinosis.report.sections import Section

READS = "calcinosis_reads"
# Holds the data's provenance notice (empty for undeclared data), which every page shows
# first: set by the build on each executed page (calcinosis.book.portable.make_portable), so
# a notice that changed re-executes nothing; shown by the page itself when it runs alone.
PROVENANCE = "provenance"
NOTICE = "data_notice"
# A value so named says why a result shipped with the package no longer matches the code or
# the data ("" when it does); the page shows it as a warning and the build prints it.
STALE_SUFFIX = "_stale_warning"


def show(
    *sections: str, data_dir: str | Path = "../data", results_dir: str | Path = "", **params: object
) -> dict:
    """Glue `sections` for this page and return their values (for a chapter's own use).

    `params` are the page's analysis parameters: checked against the results folder's, or
    used to compute the results when there is no folder.
    """
    source = _source(data_dir, results_dir, params)
    values, reads = {}, {}
    for name in dict.fromkeys(sections):
        values.update(_glue_section(source, name))
        reads[name] = source.sections[name]["digest"]
    _glue(READS, json.dumps(reads, sort_keys=True))
    if not results_dir and source.values[NOTICE]:
        _display_markdown(source.values[NOTICE])
    for name, text in values.items():
        if name.endswith(STALE_SUFFIX) and text:
            _show_stale(text)
    return values


def show_built(section: Section, stale: str = "") -> dict:
    """Glue a section built in this kernel, for parameters the build did not compute (the
    planning chapter's, or another run's), under the names `show` glues, so the page cites one
    set of names whatever its parameters; `stale` says why its result is out of date ("" when
    it is not). Returns its values."""
    for name, value in section.values.items():
        _glue(name, value)
    for name, table in section.tables.items():
        _glue_markdown(name, table.markdown())
    for name, figure in section.figures.items():
        _glue_figure(name, figure.png, figure.pdf)
    if stale:
        _show_stale(stale)
    return section.values


def _show_stale(text: str) -> None:
    _display_markdown(f":::{{admonition}} Stale result\n:class: warning\n\n{text}\n:::\n")


def show_patient(
    patient_id: str,
    *sections: str,
    data_dir: str | Path = "../data",
    results_dir: str | Path = "",
    **params: object,
) -> dict:
    """`show` for the patient template: the patient's own section plus `sections`; with no
    `patient_id` (the page run alone), the first patient of the data."""
    from calcinosis.names import slug

    if not patient_id:
        from calcinosis.data.trial import load_trial

        patient_id = str(load_trial(data_dir).patients["patient_id"].iloc[0])

    return show(
        f"patient_{slug(patient_id)}",
        *sections,
        data_dir=data_dir,
        results_dir=results_dir,
        **params,
    )


class _Memory:
    """Results computed in this kernel, laid out as a results folder reads."""

    def __init__(self, data_dir: str | Path, params: dict) -> None:
        from calcinosis.data.trial import load_trial
        from calcinosis.params import Parameters
        from calcinosis.report import results

        if not Path(data_dir).is_dir():  # a page run alone, from elsewhere than it expects
            raise FileNotFoundError(
                f"data_dir {str(data_dir)!r} is not a folder seen from {Path.cwd()}: run "
                "from the repository's root, or pass -p data_dir PATH (the dataset's folder)"
            )
        computed = results.compute(load_trial(data_dir), Parameters.of(params))
        self._tables = {
            section.item_name(name): table.markdown()
            for section in computed.values()
            for name, table in section.tables.items()
        }
        self._figures = {
            section.item_name(name): figure
            for section in computed.values()
            for name, figure in section.figures.items()
        }
        self.values = results.all_values(computed.values())
        self.sections = results.describe(computed.values())

    def table_markdown(self, name: str) -> str:
        return self._tables[name]

    def figure_png(self, name: str) -> bytes:
        return self._figures[name].png

    def figure_pdf(self, name: str) -> bytes:
        return self._figures[name].pdf


def stored_value(results_dir: str | Path, name: str) -> object:
    """A value the results stage stored, for a page that builds a section itself but needs a
    fact only the stage could judge (whether the shipped planning run is stale)."""
    from calcinosis.book.results_folder import Folder

    return Folder(Path(results_dir)).values.get(name, "")


def _source(data_dir, results_dir, params: dict):
    if not results_dir:
        return _Memory(data_dir, params)
    from calcinosis.book.results_folder import Folder

    folder = Folder(Path(results_dir))
    differ = {
        k: (v, folder.params.get(k))
        for k, v in params.items()
        if str(folder.params.get(k)) != str(v)
    }
    if differ:
        raise ValueError(
            "the results folder was computed with other parameters: "
            + ", ".join(f"{k}={old!r} there, {new!r} here" for k, (new, old) in differ.items())
        )
    return folder


def _glue_section(source, name: str) -> dict:
    if name not in source.sections:
        raise KeyError(
            f"no section '{name}' in the results (sections: {', '.join(sorted(source.sections))})"
        )
    entry = source.sections[name]
    scope = entry.get("scope") or ""
    value_prefix = f"patient_{scope}_" if scope else ""
    item_suffix = f"_{scope}" if scope else ""
    values = {}
    for full in entry["values"]:
        local = full.removeprefix(value_prefix)
        values[local] = source.values[full]
        _glue(local, source.values[full])
    for full in entry["tables"]:
        _glue_markdown(full.removesuffix(item_suffix), source.table_markdown(full))
    for full in entry["figures"]:
        _glue_figure(
            full.removesuffix(item_suffix), source.figure_png(full), source.figure_pdf(full)
        )
    return values


def is_reads(output: dict) -> bool:
    """Whether a cell's output is the page's READS glue (the cell that called show)."""
    return output.get("metadata", {}).get("scrapbook", {}).get("name") == READS


def markdown_output(text: str) -> dict:
    """The output `_display_markdown(text)` leaves in the notebook."""
    return {
        "output_type": "display_data",
        "data": {"text/markdown": text, "text/plain": "<IPython.core.display.Markdown object>"},
        "metadata": {},
    }


def _glue(name: str, value: object) -> None:
    from myst_nb import glue

    glue(name, value, display=False)


def _display_markdown(text: str) -> None:
    """An output of the page's cell, rendered as MyST (`nb_render_markdown_format`)."""
    from IPython.display import Markdown, display

    display(Markdown(text))


def _glue_markdown(name: str, text: str) -> None:
    from IPython.display import Markdown

    _glue(name, Markdown(text))


class _Figure:
    """A figure as PNG (the web page) and PDF (the book's PDF: myst-nb's LaTeX output prefers
    application/pdf, so the figures there stay vector)."""

    def __init__(self, png: bytes, pdf: bytes) -> None:
        self.png, self.pdf = png, pdf

    def _repr_mimebundle_(self, include=None, exclude=None) -> dict:
        import base64

        bundle = {"image/png": base64.b64encode(self.png).decode("ascii"), "text/plain": "figure"}
        if self.pdf:
            bundle["application/pdf"] = base64.b64encode(self.pdf).decode("ascii")
        return bundle


def _glue_figure(name: str, png: bytes, pdf: bytes) -> None:
    _glue(name, _Figure(png, pdf))
