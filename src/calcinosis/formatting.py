"""How results are written for readers: plain scalars, p-values as text, and tables as MyST
Markdown whose cells are always text (data never becomes markup, math, a link or an image)."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from numbers import Integral, Real

import pandas as pd

NOT_ESTIMABLE = "not estimable"
Decimals = int | Mapping[str, int]


def plain(value: object) -> int | float | str:
    """A JSON- and glue-safe scalar: NumPy/pandas scalars to Python (a NumPy scalar renders
    blank in `{glue:text}`, MyST-NB#610); bools to 0/1; NaN or None to "not estimable"."""
    if value is None or value is pd.NA:
        return NOT_ESTIMABLE
    if isinstance(value, str):
        return value
    if isinstance(value, bool) or type(value).__name__ == "bool_":
        return int(bool(value))
    if isinstance(value, Integral):
        return int(value)
    if isinstance(value, Real):
        value = float(value)
        return NOT_ESTIMABLE if math.isnan(value) else value
    if hasattr(value, "item"):
        return plain(value.item())
    return str(value)


def p_text(p: float) -> str:
    """A p-value as printed: 4 decimals, or '< 0.0001'."""
    return "–" if pd.isna(p) else ("< 0.0001" if p < 0.0001 else f"{p:.4f}")


def p_phrase(p: float) -> str:
    """'p = 0.0123' or 'p < 0.0001', for prose."""
    text = p_text(p)
    return f"p {text}" if text.startswith("<") else f"p = {text}"


def signed_pct(value: float) -> str:
    """'−2.66 %' with a true minus sign, '+1.20 %'."""
    return f"{value:+.2f} %".replace("-", "−")


# Every ASCII punctuation character can be backslash-escaped in CommonMark/MyST: escaping all of
# them leaves no way for a cell to open a tag, a role, math ($), a link, an image or a table cell.
_PUNCTUATION = re.compile(r"([!-/:-@\[-`{-~])")


def escape_myst(text: str) -> str:
    """`text` as literal MyST inline text (newlines become spaces)."""
    return _PUNCTUATION.sub(r"\\\1", " ".join(str(text).splitlines()))


def _text(value: object) -> str:
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return str(value)


def formatted(frame: pd.DataFrame, decimals: Decimals = 2) -> pd.DataFrame:
    """Numbers as text with fixed decimals (integers stay integers), for printing."""
    out = frame.copy()
    for column in out.columns:
        series = out[column]
        if pd.api.types.is_bool_dtype(series):
            out[column] = series.map({True: "yes", False: "no"})
        elif pd.api.types.is_integer_dtype(series):
            out[column] = series.astype("object").map(_text)
        elif column in ("p", "Sig.", "p-value") and pd.api.types.is_float_dtype(series):
            out[column] = series.map(p_text)
        elif pd.api.types.is_float_dtype(series):
            d = decimals if isinstance(decimals, int) else decimals.get(column, 2)
            out[column] = series.map(lambda v, d=d: "–" if pd.isna(v) else f"{v:.{d}f}")
        else:
            out[column] = series.astype("object").map(_text)
    return out


def markdown_table(frame: pd.DataFrame, decimals: Decimals = 2) -> str:
    """A DataFrame as a MyST pipe table: numbers right-aligned with fixed decimals, every cell
    escaped."""
    numeric = [
        pd.api.types.is_numeric_dtype(frame[c]) and not pd.api.types.is_bool_dtype(frame[c])
        for c in frame.columns
    ]
    text = formatted(frame, decimals)
    header = "| " + " | ".join(escape_myst(c) for c in text.columns) + " |"
    rule = "|" + "|".join("--:" if n else ":--" for n in numeric) + "|"
    body = [
        "| " + " | ".join(escape_myst(v) for v in row) + " |"
        for row in text.itertuples(index=False)
    ]
    return "\n".join([header, rule, *body]) + "\n"
