"""Putting computed values into the book: numbers, figures and tables for myst-nb's glue.

Chapters call these instead of `myst_nb.glue` directly, for three reasons: numbers must be
plain Python floats/ints (a NumPy scalar renders blank in `{glue:text}` with only a warning,
MyST-NB#610); figures must be PNG (a glued SVG shows as a placeholder in the LaTeX PDF,
jupyter-book#1429); tables must be MyST Markdown (the one form that becomes a real, numbered,
captioned table in both the HTML and the PDF).
"""

from __future__ import annotations

import io
import math
import os
import subprocess
from collections.abc import Mapping
from functools import cache
from numbers import Integral, Real

import pandas as pd
from matplotlib.figure import Figure

from calcinosis import paths, theme


@cache
def commit() -> str:
    """The short git commit of the code that runs, '+dirty' when the tree has changes.

    `CALCINOSIS_COMMIT` overrides it (a build from an exported tarball has no .git);
    'unknown' when neither is available.
    """
    if os.environ.get("CALCINOSIS_COMMIT"):
        return os.environ["CALCINOSIS_COMMIT"]
    try:
        sha = subprocess.run(["git", "rev-parse", "--short=10", "HEAD"], cwd=paths.ROOT,
                             capture_output=True, text=True, timeout=10, check=True).stdout
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=paths.ROOT, capture_output=True, text=True, timeout=10,
                               check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return sha.strip() + ("+dirty" if dirty.strip() else "")


def plain(value: object) -> object:
    """A value as a plain Python int/float/str/bool (NumPy and pandas scalars converted)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, Integral):
        return int(value)
    if isinstance(value, Real):
        return float(value)
    if hasattr(value, "item"):  # numpy scalar of another kind
        return value.item()
    return value


def _glue(name: str, value: object) -> None:
    from myst_nb import glue  # imported late: the package must work without a kernel

    glue(name, value, display=False)


def numbers(values: Mapping[str, object], prefix: str = "") -> dict[str, object]:
    """Glue every value of a flat mapping under `prefix + key`, and return the plain values.

    NaN and None are skipped: prose that cites such a value then fails the build with a
    missing-glue warning instead of printing "nan".
    """
    glued = {}
    for key, value in values.items():
        value = plain(value)
        if value is None or (isinstance(value, float) and math.isnan(value)):
            continue
        _glue(prefix + key, value)
        glued[prefix + key] = value
        if (key == "p" or key.endswith("_p")) and isinstance(value, float):
            _glue(prefix + key + "_text", p_phrase(value))  # "p = 0.0123" or "p < 0.0001"
    return glued


def text(name: str, value: str) -> None:
    """Glue a short string (a word or phrase chosen by the data) for `{glue:text}`."""
    _glue(name, str(value))


def png(fig: Figure, dpi: int = theme.DPI) -> bytes:
    """The figure as PNG bytes."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    return buffer.getvalue()


def figure(name: str, fig: Figure) -> None:
    """Glue a matplotlib figure as a PNG image and close it."""
    import matplotlib.pyplot as plt
    from IPython.display import Image

    data = png(fig)
    plt.close(fig)
    _glue(name, Image(data=data, format="png"))


def _text(value: object) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return "–"
    return str(value)


def _cell(value: object) -> str:
    return _text(value).replace("|", "\\|").replace("\n", " ")


def markdown_table(frame: pd.DataFrame, decimals: int | Mapping[str, int] = 2) -> str:
    """A DataFrame as a GitHub/MyST pipe table: numbers right-aligned with fixed decimals."""
    numeric = [pd.api.types.is_numeric_dtype(frame[c]) and not pd.api.types.is_bool_dtype(
        frame[c]) for c in frame.columns]
    text = formatted(frame, decimals)
    header = "| " + " | ".join(_cell(c) for c in text.columns) + " |"
    rule = "|" + "|".join("--:" if n else ":--" for n in numeric) + "|"
    body = ["| " + " | ".join(_cell(v) for v in row) + " |"
            for row in text.itertuples(index=False)]
    return "\n".join([header, rule, *body])


def p_text(p: float) -> str:
    """A p-value as printed: 4 decimals, or '< 0.0001'."""
    return "–" if pd.isna(p) else ("< 0.0001" if p < 0.0001 else f"{p:.4f}")


def p_phrase(p: float) -> str:
    """'p = 0.0123' or 'p < 0.0001', for prose."""
    text_ = p_text(p)
    return f"p {text_}" if text_.startswith("<") else f"p = {text_}"


def formatted(frame: pd.DataFrame, decimals: int | Mapping[str, int] = 2) -> pd.DataFrame:
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


def table(name: str, frame: pd.DataFrame, decimals: int | Mapping[str, int] = 2) -> None:
    """Glue a table as a MyST pipe table, for a chapter to place with

        :::{table} Caption. Made by {source}`calcinosis.tables.tab_x`.
        :name: tab-x
        ```{glue:md} name
        :format: myst
        ```
        :::

    The caption and label stay in the chapter's Markdown: a label inside glued Markdown is
    parsed in a nested document and never becomes a cross-reference target.
    """
    from IPython.display import Markdown

    _glue(name, Markdown(markdown_table(frame, decimals) + "\n"))


GEE_DECIMALS = {"B": 4, "SE": 4, "CI low": 4, "CI high": 4, "Wald χ²": 2, "p": 4,
                "Exp(B)": 4, "Exp(B) CI low": 4, "Exp(B) CI high": 4}


def gee_outcome(trial, outcome: str, correlation: str, cluster: str) -> None:
    """Fit the GEE of one outcome with the given choices; glue its numbers
    (`this_<outcome>_<field>`) and its parameter table (`tab_gee_<outcome>`)."""
    from calcinosis import tables

    fit = tables.gee_fit(trial, outcome, correlation=correlation, cluster=cluster)
    numbers(tables.gee_numbers(fit), prefix=f"this_{outcome}_")
    table(f"tab_gee_{outcome}", tables.gee_parameters(fit), decimals=GEE_DECIMALS)


def _pct(value: float) -> str:
    return f"{value:+.2f} %".replace("-", "−")


def patient(page) -> dict[str, object]:
    """Glue what a patient's page cites: numbers (`course_*`, `age`, `duration`, `rate_*`)
    and the sentences whose wording depends on the data (`patient_sentence`,
    `decline_sentence`, `rate_sentence`). Returns the numbers."""
    info = page.patient
    sex = {"F": "girl", "M": "boy"}.get(str(info["sex"]), "child")
    values = {"age": float(info["age_years"]),
              "duration": float(info["disease_duration_months"]),
              **{f"course_{k}": v for k, v in page.course.items()}}
    for outcome, rate in (("length", page.rate_length), ("width", page.rate_width)):
        values.update({f"rate_{outcome}_{k}": getattr(rate, k)
                       for k in ("pct_per_visit", "ci_low", "ci_high", "p")})
    glued = numbers(values)
    sites = ", ".join(dict.fromkeys(page.lesions["site"]))
    text("patient_sentence",
         f"A {info['age_years']:g}-year-old {sex} who had lived with JDM for "
         f"{info['disease_duration_months']:g} months, treated for {len(page.lesions)} "
         f"lesion(s) at: {sites}.")
    start = page.course.get("median_decline_start")
    text("decline_sentence",
         f"A steady decline in length began, in the median lesion, at visit {start:g}."
         if start is not None and not math.isnan(start) else
         "No visit at which a steady decline in length began can be named: the sizes either "
         "did not fall or fell across visits that were not measured.")
    rates = [(o, r) for o, r in (("length", page.rate_length), ("width", page.rate_width))]
    if all(r.estimable for _, r in rates):
        text("rate_sentence", "Fitted to this patient's lesions alone, the size changed by "
             + " and ".join(f"{_pct(r.pct_per_visit)} per visit in {o} (95 % CI "
                            f"{_pct(r.ci_low)} to {_pct(r.ci_high)}; {p_phrase(r.p)})"
                            for o, r in rates) + ".")
    else:
        reasons = "; ".join(dict.fromkeys(r.reason for _, r in rates if not r.estimable))
        text("rate_sentence", f"No rate can be fitted to this patient alone ({reasons}). "
             "The lesion still counts in the pooled analysis of all lesions.")
    return glued
