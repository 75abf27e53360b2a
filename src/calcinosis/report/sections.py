"""The small types the results stage hands to the book: a section of results (its numbers and
sentences, tables and figures, under stable names) and a rendered figure.

A section is the unit a page shows and the unit of change: a page that shows the sections
`design` and `safety` re-executes only when one of those changed. Per-patient sections carry a
`scope` (the patient's slug): their items are named `patient_<scope>_<name>` (values) and
`<name>_<scope>` (tables, figures) in `results.json` and the supplement, and by their short
names on the patient's page.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pandas is imported where a table is printed, not where a build starts
    import pandas as pd

    from calcinosis.formatting import Decimals

Value = int | float | str


@dataclass
class Table:
    """A table as computed (full precision) and how many decimals the book prints; `shown`,
    when set, is the table as the book prints it, for a table whose rows each need their own
    format (numbers of several kinds in one column): the supplement stores `frame`."""

    frame: pd.DataFrame
    decimals: Decimals = 2
    shown: pd.DataFrame | None = None
    _markdown: str | None = field(default=None, init=False, repr=False, compare=False)

    def markdown(self) -> str:
        """The table as the book prints it, rendered once (the digest, the results folder and
        the page all ask for it)."""
        if self._markdown is None:
            from calcinosis.formatting import markdown_table

            printed = self.frame if self.shown is None else self.shown
            self._markdown = markdown_table(printed, self.decimals)
        return self._markdown


@dataclass(frozen=True)
class Figure:
    """A figure rendered once: PNG for the web page, PDF for the book's PDF (vector), SVG for
    the supplement."""

    png: bytes
    svg: bytes
    pdf: bytes = b""


@dataclass
class Section:
    name: str
    values: dict[str, Value] = field(default_factory=dict)
    tables: dict[str, Table] = field(default_factory=dict)
    figures: dict[str, Figure] = field(default_factory=dict)
    scope: str = ""

    def add(self, values: Mapping[str, object], prefix: str = "") -> None:
        """Add plain values under `prefix + name`; a p-value also as a phrase (`<name>_text`)."""
        from calcinosis.formatting import p_phrase, plain

        for name, value in values.items():
            value = plain(value)
            self.values[prefix + name] = value
            if (name == "p" or name.endswith("_p")) and isinstance(value, float):
                self.values[prefix + name + "_text"] = p_phrase(value)

    def value_name(self, name: str) -> str:
        return f"patient_{self.scope}_{name}" if self.scope else name

    def item_name(self, name: str) -> str:
        return f"{name}_{self.scope}" if self.scope else name

    def digest(self) -> str:
        """Hash of everything the section shows: equal digests, equal pages."""
        h = hashlib.sha256()
        h.update(json.dumps(self.values, sort_keys=True, ensure_ascii=False).encode())
        for name in sorted(self.tables):
            h.update(name.encode() + self.tables[name].markdown().encode())
        for name in sorted(self.figures):
            figure = self.figures[name]
            h.update(name.encode() + hashlib.sha256(figure.png).digest())
            h.update(hashlib.sha256(figure.pdf).digest())
        return h.hexdigest()
