"""A producer's sections as data in the cache: one JSON document, never pickle.

Unpickling runs whatever the file says, so a planted cache entry ran a command when a build
loaded it. Sections hold only data: values (numbers, text), tables (a DataFrame per table, its
decimals) and figures (PNG, SVG, PDF bytes). Each table column is stored with its dtype and
restored to it, so a section read back shows exactly what was computed (same digest).

The document names the key it was stored under and the producer and sections it holds: a
reader that finds another key or producer (an entry swapped or planted) rejects it.
"""

from __future__ import annotations

import base64
import json
import math
from typing import TYPE_CHECKING

from calcinosis.report.sections import Figure, Section, Table

if TYPE_CHECKING:
    import pandas as pd

FORMAT = "calcinosis-sections/1"


class NotStorable(TypeError):
    """A value of a type the document cannot hold (the producer's sections are not cached)."""


class Mismatch(ValueError):
    """The document holds another key, producer or format than the one asked for."""


def dumps(sections: list[Section], key: str, producer: str) -> str:
    return json.dumps(
        {
            "format": FORMAT,
            "key": key,
            "producer": producer,
            "sections": [_section(s) for s in sections],
        },
        sort_keys=True,
        allow_nan=True,  # NaN stays NaN (a table's missing value); the file is ours alone
    )


def loads(text: str, key: str, producer: str) -> list[Section]:
    """The sections of `producer` stored under `key`; Mismatch if the document is another's."""
    doc = json.loads(text)
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise Mismatch("not a sections document of this version")
    if doc.get("key") != key:
        raise Mismatch(f"it was stored under key {str(doc.get('key'))[:12]}")
    if doc.get("producer") != producer:
        raise Mismatch(f"it holds the sections of producer {doc.get('producer')!r}")
    return [_read_section(s) for s in doc["sections"]]


def _section(section: Section) -> dict:
    for name, value in section.values.items():
        if value is not None and not isinstance(value, int | float | str):
            raise NotStorable(f"value {name} of section {section.name} is a {type(value)}")
    return {
        "name": section.name,
        "scope": section.scope,
        "values": section.values,
        "tables": {
            name: {
                "decimals": table.decimals,
                "frame": _frame(table.frame),
                "shown": None if table.shown is None else _frame(table.shown),
            }
            for name, table in section.tables.items()
        },
        "figures": {
            name: {
                kind: base64.b64encode(getattr(figure, kind)).decode("ascii")
                for kind in ("png", "svg", "pdf")
            }
            for name, figure in section.figures.items()
        },
    }


def _read_section(doc: dict) -> Section:
    return Section(
        doc["name"],
        dict(doc["values"]),
        {
            name: Table(
                _read_frame(t["frame"]),
                t["decimals"],
                None if t["shown"] is None else _read_frame(t["shown"]),
            )
            for name, t in doc["tables"].items()
        },
        {
            name: Figure(**{kind: base64.b64decode(data) for kind, data in f.items()})
            for name, f in doc["figures"].items()
        },
        doc["scope"],
    )


def _frame(frame: pd.DataFrame) -> dict:
    import pandas as pd

    if not isinstance(frame.index, pd.RangeIndex) or frame.index.start != 0:
        raise NotStorable("a table with an index of its own")
    if frame.attrs or not frame.columns.is_unique:
        raise NotStorable("a table with attributes or repeated column names")
    if not all(isinstance(c, str) for c in frame.columns):
        raise NotStorable("a table with columns not named by text")
    return {
        "rows": len(frame),
        "columns": [
            {"name": name, "dtype": str(column.dtype), "values": [_cell(v) for v in column]}
            for name, column in frame.items()
        ],
    }


def _cell(value: object) -> object:
    import numpy as np
    import pandas as pd

    if value is None or value is pd.NA:
        return None
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if not math.isnan(value) else math.nan
    raise NotStorable(f"a table cell of type {type(value).__name__}")


def _read_frame(doc: dict) -> pd.DataFrame:
    import pandas as pd

    columns = {
        c["name"]: pd.Series(c["values"], dtype=c["dtype"], index=pd.RangeIndex(doc["rows"]))
        for c in doc["columns"]
    }
    return pd.DataFrame(columns, index=pd.RangeIndex(doc["rows"]))
