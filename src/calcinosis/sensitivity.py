"""How much the paper's conclusion depends on choices it did not state: one grid of refits.

Each row changes one thing in the primary model (Gaussian, log link, exchangeable, lesion
clusters, robust z) and reports the change per visit with its 95 % CI and p. The mixed
model handles zeros by modelling log(size + 1 mm). A row that cannot be estimated stays in
the grid with its reason, because that too is an answer.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import statsmodels.formula.api as smf
from scipy import stats

from calcinosis import models
from calcinosis.data import Trial
from calcinosis.memo import per_trial

COLUMNS = [
    "outcome",
    "factor",
    "choice",
    "pct_per_visit",
    "ci_low",
    "ci_high",
    "p",
    "reference",
    "is_primary",
    "note",
]

# factor, choice, fit_gee options, is_primary
GEE_VARIANTS: tuple[tuple[str, str, dict, bool], ...] = (
    ("working correlation", "exchangeable", {}, True),
    ("working correlation", "independence", {"cov_struct": "independence"}, False),
    (
        "working correlation",
        "AR(1), time-aware (α^|visit difference|)",
        {"cov_struct": "ar1"},
        False,
    ),
    ("cluster", "lesion (18)", {}, True),
    ("cluster", "patient (5), exchangeable", {"cluster": "patient"}, False),
    (
        "cluster",
        "patient (5), independence",
        {"cluster": "patient", "cov_struct": "independence"},
        False,
    ),
    ("covariance", "robust, lesion clusters", {}, True),
    ("covariance", "Mancl–DeRouen, lesion clusters", {"cov_type": "bias_reduced"}, False),
    ("covariance", "Kauermann–Carroll, lesion clusters", {"cov_type": "kauermann_carroll"}, False),
    (
        "covariance",
        "robust, patient clusters (independence)",
        {"cluster": "patient", "cov_struct": "independence"},
        False,
    ),
    (
        "covariance",
        "Mancl–DeRouen, patient clusters (independence)",
        {"cluster": "patient", "cov_struct": "independence", "cov_type": "bias_reduced"},
        False,
    ),
    (
        "covariance",
        "Kauermann–Carroll, patient clusters (independence)",
        {"cluster": "patient", "cov_struct": "independence", "cov_type": "kauermann_carroll"},
        False,
    ),
    ("model form", "Gaussian, log link", {}, True),
    (
        "model form",
        f"Tweedie (power {models.TWEEDIE_POWER}), log link",
        {"family": "tweedie_log"},
        False,
    ),
    (
        "model form",
        "linear on log(size), zeros dropped",
        {"family": "gaussian_identity", "transform": "log"},
        False,
    ),
    (
        "model form",
        "linear on log(size + 1 mm)",
        {"family": "gaussian_identity", "transform": "log1p"},
        False,
    ),
    (
        "model form",
        "linear on percent of baseline",
        {"family": "gaussian_identity", "transform": "pct_baseline"},
        False,
    ),
)
NOTES = {"transform=pct_baseline": "percentage points of the first measured size per visit"}


@per_trial
def grid(trial: Trial) -> pd.DataFrame:
    """Every sensitivity row for length and width (see the module docstring)."""
    rows = []
    for outcome in ("length", "width"):
        for factor, choice, options, primary in GEE_VARIANTS:
            rows.append(_gee_row(trial.measurements, outcome, factor, choice, options, primary))
        rows.append(_mixed_row(trial.measurements, outcome))
        rows += _leave_one_out_rows(trial, outcome)
    return pd.DataFrame(rows, columns=COLUMNS)


def _gee_row(measurements, outcome, factor, choice, options, primary) -> dict:
    row = {"outcome": outcome, "factor": factor, "choice": choice, "is_primary": primary}
    try:
        fit = models.fit_gee(measurements, outcome, **options)
    except models.NotEstimableError as err:
        return {**row, **_not_estimable(str(err))}
    note = NOTES.get(f"transform={options.get('transform')}", "")
    if not fit.converged:
        note = "; ".join(filter(None, [note, "did not converge"]))
    return {
        **row,
        "pct_per_visit": fit.pct_per_visit,
        "ci_low": fit.pct_ci_low,
        "ci_high": fit.pct_ci_high,
        "p": fit.p,
        "reference": "z" if fit.ref_df is None else f"t(G−1) = t({fit.ref_df})",
        "note": note,
    }


def _not_estimable(reason: str) -> dict:
    return {
        "pct_per_visit": np.nan,
        "ci_low": np.nan,
        "ci_high": np.nan,
        "p": np.nan,
        "reference": "",
        "note": f"not estimable: {reason}",
    }


def _leave_one_out_rows(trial: Trial, outcome: str) -> list[dict]:
    """The primary model without each patient in turn."""
    measurements = models.with_patient_id(trial.measurements)
    rows = []
    for patient_id in trial.patients["patient_id"].astype(str):
        kept = measurements[measurements["patient_id"] != patient_id]
        n = int(kept["lesion_id"].nunique())
        rows.append(
            _gee_row(
                kept,
                outcome,
                "leave one patient out",
                f"without {patient_id} ({n} lesions left)",
                {},
                False,
            )
        )
    return rows


def _mixed_row(measurements: pd.DataFrame, outcome: str) -> dict:
    """Linear mixed model on log(size + 1 mm): random intercepts for patients and for lesions
    within patients; REML; Wald z."""
    column = models.outcome_column(outcome)
    frame = models.gee_frame(models.with_patient_id(measurements), column)
    frame["y"] = np.log1p(frame[column])
    row = {
        "outcome": outcome,
        "factor": "mixed model",
        "choice": "LMM on log(size + 1 mm), lesions nested in patients",
        "is_primary": False,
    }
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = smf.mixedlm(
            "y ~ time",
            frame,
            groups="patient_id",
            re_formula="1",
            vc_formula={"lesion": "0 + C(lesion_id)"},
        )
        result = model.fit(reml=True)
    beta, se = float(result.fe_params["time"]), float(result.bse_fe["time"])
    if not np.isfinite(se):
        return {**row, **_not_estimable("the mixed model's SE is not finite")}
    crit = stats.norm.ppf(0.975)
    trouble = [
        str(w.message)
        for w in caught
        if "converge" in str(w.message).lower() or "boundary" in str(w.message).lower()
    ]
    return {
        **row,
        "pct_per_visit": 100 * np.expm1(beta),
        "ci_low": 100 * np.expm1(beta - crit * se),
        "ci_high": 100 * np.expm1(beta + crit * se),
        "p": float(2 * stats.norm.sf(abs(beta / se))),
        "reference": "z",
        "note": "zeros kept via +1 mm" + ("; fit warning: " + trouble[0] if trouble else ""),
    }


def significant_share(table: pd.DataFrame, alpha: float = 0.05) -> tuple[int, int]:
    """(rows with p < alpha, rows estimated): the grid's headline."""
    estimated = table["p"].notna()
    return int((table.loc[estimated, "p"] < alpha).sum()), int(estimated.sum())
