"""Radiographic sizes before the first and after the last injection, as the paper reports them.

The paper prints mean ± SD (min–max) over lesions; the paired comparison here is the Wilcoxon
signed-rank test computed exactly: zero differences dropped (Wilcoxon's convention), tied
absolute differences given mid-ranks, and the p-value from all 2^n sign patterns, so ties and
zeros do not force a normal approximation with n ≤ 18.
"""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
from scipy import stats

from calcinosis.data import Trial

OUTCOMES = ("length", "width")
TIMEPOINTS = ("baseline", "final")
MAX_EXACT_N = 20  # 2^20 sign patterns; beyond that the normal approximation is used


def summary(trial: Trial) -> pd.DataFrame:
    """Rows timepoint × outcome: n, mean, SD (n − 1), min, max over lesions."""
    rows = []
    for timepoint, outcome in itertools.product(TIMEPOINTS, OUTCOMES):
        values = _values(trial, timepoint, outcome)
        rows.append(
            {
                "timepoint": timepoint,
                "outcome": outcome,
                "n": int(len(values)),
                "mean": float(values.mean()),
                "sd": float(values.std(ddof=1)),
                "min": float(values.min()),
                "max": float(values.max()),
            }
        )
    return pd.DataFrame(rows)


def _values(trial: Trial, timepoint: str, outcome: str) -> pd.Series:
    rows = trial.radiography[trial.radiography["timepoint"] == timepoint]
    return rows[f"{outcome}_mm"].dropna()


def per_lesion(trial: Trial) -> pd.DataFrame:
    """One row per lesion × outcome with both radiographs: baseline, final, change, resolved."""
    wide = trial.radiography.pivot(
        index="lesion_id", columns="timepoint", values=["length_mm", "width_mm"]
    )
    patient = trial.lesions.set_index("lesion_id")["patient_id"]
    rows = []
    for lesion_id, outcome in itertools.product(wide.index, OUTCOMES):
        base, final = (
            wide.at[lesion_id, (f"{outcome}_mm", "baseline")],
            wide.at[lesion_id, (f"{outcome}_mm", "final")],
        )
        if pd.isna(base) or pd.isna(final):
            continue
        rows.append(
            {
                "lesion_id": lesion_id,
                "patient_id": patient[lesion_id],
                "outcome": outcome,
                "baseline": float(base),
                "final": float(final),
                "change_mm": float(final - base),
                "change_pct": float(100 * (final - base) / base) if base > 0 else np.nan,
                "resolved": bool(final == 0),
            }
        )
    return pd.DataFrame(rows)


def n_resolved(trial: Trial) -> int:
    """Lesions gone on the final radiograph (length and width both 0)."""
    table = per_lesion(trial)
    gone = table.groupby("lesion_id")["resolved"].all()
    return int(gone.sum())


def paired_tests(trial: Trial) -> pd.DataFrame:
    """Wilcoxon signed-rank of final vs baseline per outcome, with the rank-biserial r."""
    table = per_lesion(trial)
    rows = []
    for outcome in OUTCOMES:
        diffs = table.loc[table["outcome"] == outcome, "change_mm"].to_numpy()
        rows.append(
            {
                "outcome": outcome,
                "n": int(len(diffs)),
                **signed_rank(diffs),
                "median_change_mm": float(np.median(diffs)),
            }
        )
    return pd.DataFrame(rows)


def signed_rank(diffs: np.ndarray) -> dict:
    """Wilcoxon signed-rank: W+ (sum of ranks of positive differences), two-sided p, method,
    and the matched-pairs rank-biserial correlation (W+ − W−)/(W+ + W−)."""
    nonzero = diffs[diffs != 0]
    n = len(nonzero)
    if n == 0:
        return {
            "n_nonzero": 0,
            "statistic": np.nan,
            "p": np.nan,
            "method": "not estimable: every difference is 0",
            "rank_biserial": np.nan,
        }
    ranks = stats.rankdata(np.abs(nonzero))
    w_plus = float(ranks[nonzero > 0].sum())
    total = float(ranks.sum())
    if n <= MAX_EXACT_N:
        p, method = _exact_p(ranks, w_plus), "exact (all sign patterns; mid-ranks, zeros dropped)"
    else:
        p = float(stats.wilcoxon(nonzero, method="approx").pvalue)
        method = "normal approximation (zeros dropped)"
    return {
        "n_nonzero": n,
        "statistic": w_plus,
        "p": p,
        "method": method,
        "rank_biserial": (2 * w_plus - total) / total,
    }


def _exact_p(ranks: np.ndarray, w_plus: float) -> float:
    """Two-sided p: share of the 2^n equally likely sign patterns at least as far from the
    centre as the observed W+."""
    n = len(ranks)
    signs = (np.arange(2**n)[:, None] >> np.arange(n)) & 1
    null = signs @ ranks
    centre = ranks.sum() / 2
    extreme = np.abs(null - centre) >= abs(w_plus - centre) - 1e-9
    return float(extreme.mean())
