"""Column headers as readers see them: words with units instead of the analysis' snake_case.

The analysis modules name their columns for code (`change_mm`, `sd_max_possible`); the tables
of the book and the supplement show them under these labels (`calcinosis.report.tables` applies
them). A name not listed is turned into words, its unit suffix into a unit in brackets, so a
new column never reaches a reader as `snake_case`.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

LABELS = {
    "patient_id": "Patient",
    "lesion_id": "Lesion",
    "term": "Term",
    "outcome": "Outcome",
    "timepoint": "Time point",
    "quantity": "Published summary",
    # radiography and the published summaries: lesion sizes, in mm
    "n": "n",
    "mean": "Mean (mm)",
    "sd": "SD (mm)",
    "min": "Min (mm)",
    "max": "Max (mm)",
    "baseline": "Before (mm)",
    "final": "After (mm)",
    "change_mm": "Change (mm)",
    "change_pct": "Change (%)",
    "resolved": "Resolved",
    "n_nonzero": "Lesions that changed",
    "statistic": "Signed-rank W",
    "method": "Method",
    "rank_biserial": "Rank-biserial r",
    "median_change_mm": "Median change (mm)",
    # safety
    "total": "Total",
    "related": "Related to treatment",
    "lesions": "Lesions",
    "visits": "Visits",
    "injections": "Injections",
    "total_dose_mg": "Total dose (mg)",
    # discussion
    "disease_duration_months": "Disease duration (months)",
    "duration_group": "Duration group",
    "pct_per_visit": "Change per visit (%)",
    "ci_low": "95 % CI low",
    "ci_high": "95 % CI high",
    "estimable": "Estimable",
    # reproducibility
    "name": "Claim",
    "relation": "Relation",
    "published": "Published",
    "recomputed": "Recomputed",
    "recomputed_rounded": "Recomputed, rounded as published",
    "verdict": "Verdict",
    "source": "Where published",
    "grid": "Grid (mm)",
    "consistent": "Possible",
    "grim_consistent": "Mean possible (GRIM)",
    "grimmer_consistent": "SD possible (GRIMMER)",
    "sd_min_possible": "Smallest possible SD (mm)",
    "sd_max_possible": "Largest possible SD (mm)",
    "feasible": "Possible",
}

_UNITS = {"mm": "mm", "pct": "%", "mg": "mg", "cm2": "cm²", "months": "months", "years": "years"}


def label(name: object) -> str:
    """The reader's header for a column named `name`."""
    text = str(name)
    if text in LABELS:
        return LABELS[text]
    if text != text.lower() or "_" not in text:
        return text  # already written for readers
    words = text.split("_")
    unit = _UNITS.get(words[-1])
    if unit:
        words = words[:-1]
    words = ["%" if w == "pct" else w for w in words]
    phrase = " ".join(words).capitalize()
    return f"{phrase} ({unit})" if unit else phrase


def readable(frame: pd.DataFrame, first: Sequence[str] = ()) -> pd.DataFrame:
    """`frame` with reader headers, the columns named in `first` (reader headers) leading."""
    out = frame.rename(columns=label)
    lead = [c for c in first if c in out.columns]
    return out[lead + [c for c in out.columns if c not in lead]]
