"""Every number the book reports, under one stable flat name.

The chapters glue these names and the build writes them to results.json, so values are plain
Python ints, floats and strings (numpy scalars break Jupyter Book's glue). A quantity that
cannot be estimated is the string "not estimable", never NaN (NaN is not valid JSON).
"""

from __future__ import annotations

import math

import numpy as np

from calcinosis import discussion, models, patients, radiography, safety, sensitivity
from calcinosis.data import Trial
from calcinosis.memo import per_trial

NOT_ESTIMABLE = "not estimable"
GEE_FIELDS = ("pct_per_visit", "pct_ci_low", "pct_ci_high", "beta", "se", "ci_low", "ci_high",
              "wald_chi2", "p", "exp_b", "exp_b_ci_low", "exp_b_ci_high", "intercept",
              "working_correlation", "scale", "qic", "n_obs", "n_lesions", "n_patients")


@per_trial
def collect(trial: Trial) -> dict[str, float | int | str]:
    """All reported numbers for `trial`, deterministic and JSON-ready."""
    out: dict[str, object] = {}
    out.update(_design(trial))
    out.update(_gee(trial))
    out.update(_radiography(trial))
    out.update(_safety(trial))
    out.update(_patients(trial))
    out.update(_discussion(trial))
    out.update(_sensitivity(trial))
    return {name: plain(value) for name, value in out.items()}


def plain(value):
    """A JSON- and glue-safe scalar: numpy → Python, NaN/None → "not estimable"."""
    if value is None:
        return NOT_ESTIMABLE
    if isinstance(value, str):
        return value
    if isinstance(value, bool | np.bool_):
        return int(value)
    if isinstance(value, int | np.integer):
        return int(value)
    value = float(value)
    return NOT_ESTIMABLE if math.isnan(value) else value


def _design(trial: Trial) -> dict:
    measured = trial.measurements[["length_mm", "width_mm"]].notna().any(axis=1)
    return {"n_patients": len(trial.patients), "n_lesions": len(trial.lesions),
            "n_visits": int(trial.measurements["visit"].max()),
            "n_observations": int(measured.sum())}


def _gee(trial: Trial) -> dict:
    out = {}
    for outcome in ("length", "width"):
        fit = models.primary(trial, outcome)
        out.update({f"gee_{outcome}_{field}": getattr(fit, field) for field in GEE_FIELDS})
    return out


def _radiography(trial: Trial) -> dict:
    out = {}
    for row in radiography.summary(trial).itertuples(index=False):
        for stat in ("n", "mean", "sd", "min", "max"):
            out[f"rad_{row.timepoint}_{row.outcome}_{stat}"] = getattr(row, stat)
    for row in radiography.paired_tests(trial).itertuples(index=False):
        out[f"rad_{row.outcome}_wilcoxon_statistic"] = row.statistic
        out[f"rad_{row.outcome}_wilcoxon_p"] = row.p
        out[f"rad_{row.outcome}_rank_biserial"] = row.rank_biserial
        out[f"rad_{row.outcome}_median_change_mm"] = row.median_change_mm
        out[f"rad_{row.outcome}_n_nonzero_change"] = row.n_nonzero
    out["rad_n_resolved"] = radiography.n_resolved(trial)
    return out


def _safety(trial: Trial) -> dict:
    events = safety.adverse_events(trial)
    exposure = safety.exposure(trial)
    return {"n_adverse_events": int(events["total"].sum()),
            "n_adverse_events_related": int(events["related"].sum()),
            "n_injections": int(exposure["injections"].sum()),
            "total_dose_mg": float(exposure["total_dose_mg"].sum())}


def _patients(trial: Trial) -> dict:
    out = {}
    for patient_id in trial.patients["patient_id"].astype(str):
        page = patients.patient_page(trial, patient_id)
        prefix = f"patient_{patient_id}"
        out[f"{prefix}_disease_duration_months"] = page.patient["disease_duration_months"]
        out[f"{prefix}_age_years"] = page.patient["age_years"]
        for key, value in page.course.items():
            out[f"{prefix}_{key}"] = value
        for outcome, rate in (("length", page.rate_length), ("width", page.rate_width)):
            out[f"{prefix}_{outcome}_pct_per_visit"] = rate.pct_per_visit
            out[f"{prefix}_{outcome}_ci_low"] = rate.ci_low
            out[f"{prefix}_{outcome}_ci_high"] = rate.ci_high
            out[f"{prefix}_{outcome}_p"] = rate.p
    return out


def _discussion(trial: Trial) -> dict:
    out = {}
    for outcome in ("length", "width"):
        table = discussion.interaction_model(trial, outcome).set_index("term")
        row = table.iloc[-1]  # the time × duration interaction
        out[f"interaction_{outcome}_beta"] = row["B"]
        out[f"interaction_{outcome}_p"] = row["p"]
        out[f"interaction_{outcome}_pct_effect"] = row["pct_per_visit_effect"]
    return out


def _sensitivity(trial: Trial) -> dict:
    table = sensitivity.grid(trial)
    significant, estimated = sensitivity.significant_share(table)
    out = {"sens_n_rows": len(table), "sens_n_estimated": estimated,
           "sens_n_significant": significant}
    for outcome, rows in table.groupby("outcome"):
        out[f"sens_{outcome}_pct_min"] = rows["pct_per_visit"].min()
        out[f"sens_{outcome}_pct_max"] = rows["pct_per_visit"].max()
        out[f"sens_{outcome}_p_max"] = rows["p"].max()
    return out
