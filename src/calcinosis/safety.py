"""Adverse events and exposure: the safety table, which must read correctly when empty.

The trial reported no adverse events, so the tables are all zeros with every patient listed;
exposure (injections given) is what makes "none" informative.
"""

from __future__ import annotations

import pandas as pd

from calcinosis.data import Trial

SEVERITIES = ("mild", "moderate", "severe")


def adverse_events(trial: Trial) -> pd.DataFrame:
    """Events per patient × severity (zero-filled), with totals and those judged related."""
    events = trial.adverse_events
    severities = list(SEVERITIES) + sorted(set(events["severity"].str.lower()) - set(SEVERITIES))
    patients = trial.patients["patient_id"].astype(str).tolist()
    counts = pd.crosstab(events["patient_id"].astype(str), events["severity"].str.lower()).reindex(
        index=patients, columns=severities, fill_value=0
    )
    counts.index.name, counts.columns.name = "patient_id", None
    counts["total"] = counts[severities].sum(axis=1)
    related = events[_is_related(events)]["patient_id"].astype(str).value_counts()
    counts["related"] = related.reindex(patients, fill_value=0).to_numpy()
    return counts.astype(int).reset_index()


def _is_related(events: pd.DataFrame) -> pd.Series:
    answer = events["related_to_treatment"].astype(str).str.strip().str.lower()
    return answer.isin({"yes", "y", "true", "1", "related", "probable", "possible", "definite"})


def exposure(trial: Trial) -> pd.DataFrame:
    """Per patient: lesions, weekly visits, injections (lesions × visits) and total dose (mg)."""
    visits = trial.measurements.groupby("lesion_id")["visit"].nunique()
    lesions = trial.lesions.assign(visits=lambda d: d["lesion_id"].map(visits))
    lesions["dose_total_mg"] = lesions["dose_mg"] * lesions["visits"]
    out = lesions.groupby("patient_id", sort=False).agg(
        lesions=("lesion_id", "size"),
        visits=("visits", "max"),
        injections=("visits", "sum"),
        total_dose_mg=("dose_total_mg", "sum"),
    )
    out = out.reindex(trial.patients["patient_id"]).reset_index()
    out["patient_id"] = out["patient_id"].astype(str)
    return out.astype({"lesions": int, "visits": int, "injections": int})
