"""How results are written for readers: plain scalars, p-values as text, and tables as MyST
Markdown whose cells are always text (data never becomes markup, math, a link or an image)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from numbers import Integral, Real

import pandas as pd

from calcinosis import markup

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


MINUS = "\u2212"  # the minus sign: a hyphen is shorter, and breaks a line after it


def fixed(value: float, decimals: int, sign: bool = False) -> str:
    """`value` with `decimals` decimals and a true minus sign ('+' too when `sign`); a value
    that rounds to zero is printed unsigned ("0.00", never "−0.00" or "+0.00")."""
    text = f"{value:{'+' if sign else ''}.{decimals}f}"
    if float(text) == 0:
        text = f"{0:.{decimals}f}"
    return text.replace("-", MINUS)


def signed(value: float, decimals: int = 2) -> str:
    """'−2.66', '+1.20', '0.00'."""
    return fixed(value, decimals, sign=True)


def signed_pct(value: float, decimals: int = 2) -> str:
    """'−2.66 %' with a true minus sign, '+1.20 %', '0.00 %'."""
    return f"{signed(value, decimals)} %"


def _text(value: object) -> str:
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return str(value)


def number_text(value: object, decimals: int) -> str:
    """A number as printed: fixed decimals (integers as they are), a true minus sign, yes/no
    for a truth value, "–" when missing."""
    if isinstance(value, bool) or type(value).__name__ == "bool_":
        return "yes" if value else "no"
    if isinstance(value, Integral):
        text = str(int(value))
    elif isinstance(value, Real):
        if math.isnan(float(value)):
            return "–"
        return fixed(float(value), decimals)
    else:
        return _text(value)
    return MINUS + text[1:] if text.startswith("-") else text


def formatted(frame: pd.DataFrame, decimals: Decimals = 2) -> pd.DataFrame:
    """Numbers as text with fixed decimals (integers stay integers) and true minus signs,
    p-values as `p_text`, truth values as yes/no, for printing."""
    out = frame.copy()
    for column in out.columns:
        series = out[column]
        d = decimals if isinstance(decimals, int) else decimals.get(column, 2)
        if column in ("p", "Sig.", "p-value") and pd.api.types.is_float_dtype(series):
            out[column] = series.map(p_text)
        else:
            out[column] = series.astype("object").map(lambda v, d=d: number_text(v, d))
    return out


EMPTY_ROW = "none recorded"


def markdown_table(frame: pd.DataFrame, decimals: Decimals = 2) -> str:
    """A DataFrame as a MyST pipe table: numbers right-aligned with fixed decimals, every cell
    escaped (`calcinosis.markup.myst`). A table without rows gets one saying so (a table with
    no body breaks Sphinx's LaTeX writer, and an empty grid reads as a rendering fault)."""
    numeric = [
        pd.api.types.is_numeric_dtype(frame[c]) and not pd.api.types.is_bool_dtype(frame[c])
        for c in frame.columns
    ]
    text = formatted(frame, decimals)
    header = "| " + " | ".join(markup.myst(c) for c in text.columns) + " |"
    rule = "|" + "|".join("--:" if n else ":--" for n in numeric) + "|"
    body = [
        "| " + " | ".join(markup.myst(v) for v in row) + " |"
        for row in text.itertuples(index=False)
    ] or ["| " + " | ".join([EMPTY_ROW] + [""] * (len(text.columns) - 1)) + " |"]
    return "\n".join([header, rule, *body]) + "\n"
