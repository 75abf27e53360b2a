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


def sentences(events: pd.DataFrame) -> dict[str, str]:
    """The safety sentences whose wording depends on the data, from `adverse_events`' table:
    what was recorded, and what so few children can say about how often harm occurs."""
    total, related = int(events["total"].sum()), int(events["related"].sum())
    n, with_event = len(events), int((events["total"] > 0).sum())
    if total == 0:
        recorded = "No adverse event was recorded."
        bound = (
            f"The absence of events in {n} children says little about rare harms: with no "
            "events among n patients, the upper 95 % confidence bound of the event rate is "
            f'about 3/n (the "rule of three"), here {100 * 3 / n:.0f} %.'
        )
    else:
        events_word = "adverse event was" if total == 1 else "adverse events were"
        judged = (
            "judged related to treatment"
            if related == total
            else f"{related} of them judged related to treatment"
            if related
            else "none judged related to treatment"
        )
        recorded = f"{total} {events_word} recorded, {judged}."
        bound = (
            f"{with_event} of the {n} children had at least one event: enough to show that "
            "events occur, far too few to estimate how often."
        )
    return {"adverse_events_sentence": recorded, "safety_bound_sentence": bound}
