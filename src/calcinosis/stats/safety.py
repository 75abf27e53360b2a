"""Adverse events and exposure: what was recorded, to whom, and what so few children can say.

Every sentence here is built from the adverse-event table, so it stays true when events are
recorded. Exposure (injections given) is what makes "none" informative; it is read from the
dose recorded at each visit, and only inferred from the visits measured when a dataset does
not record doses.
"""

from __future__ import annotations

import pandas as pd
from scipy import stats

from calcinosis.data.schema import SEVERITIES
from calcinosis.data.trial import Trial

CONFIDENCE = 0.95
# shown as columns of the table by patient even when no event has them
USUAL_SEVERITIES = SEVERITIES[:3]


def adverse_events(trial: Trial) -> pd.DataFrame:
    """Events per patient × severity (zero-filled), with totals and those judged related."""
    events = trial.adverse_events
    present = set(events["severity"])
    severities = [s for s in SEVERITIES if s in USUAL_SEVERITIES or s in present]
    patients = trial.patients["patient_id"].astype(str).tolist()
    counts = pd.crosstab(events["patient_id"].astype(str), events["severity"]).reindex(
        index=patients, columns=severities, fill_value=0
    )
    counts.index.name, counts.columns.name = "patient_id", None
    counts["total"] = counts[severities].sum(axis=1)
    related = events.loc[events["related_to_treatment"] == "yes", "patient_id"].astype(str)
    counts["related"] = related.value_counts().reindex(patients, fill_value=0).to_numpy()
    return counts.astype(int).reset_index()


def event_list(trial: Trial) -> pd.DataFrame:
    """Every recorded event, by patient and visit: what, how severe, whether related."""
    events = trial.adverse_events.sort_values(["patient_id", "visit"], kind="stable")
    related = events["related_to_treatment"].replace("", "not assessed")
    return pd.DataFrame(
        {
            "Patient": events["patient_id"].astype(str).to_numpy(),
            "Visit": events["visit"].to_numpy(),
            "Event": events["event"].to_numpy(),
            "Severity": events["severity"].to_numpy(),
            "Related to treatment": related.to_numpy(),
        }
    )


def doses_recorded(trial: Trial) -> bool:
    """Whether the measurements table records the dose given at each visit."""
    return "dose_mg" in trial.measurements.columns


def injections(trial: Trial) -> pd.DataFrame:
    """One row per injection: lesion, visit and dose (mg).

    With doses recorded, an injection is a visit with a dose above zero, so follow-up visits
    are not injections. Without them, every visit with a row is taken as one injection of
    the lesion's dose: the only reading the data allow, and the book says it is an inference.
    """
    rows = trial.measurements[["lesion_id", "visit"]].copy()
    if doses_recorded(trial):
        rows["dose_mg"] = trial.measurements["dose_mg"].to_numpy()
        return rows[rows["dose_mg"] > 0].reset_index(drop=True)
    rows["dose_mg"] = rows["lesion_id"].map(trial.lesions.set_index("lesion_id")["dose_mg"])
    return rows.reset_index(drop=True)


def exposure(trial: Trial) -> pd.DataFrame:
    """Per patient: lesions, injection visits, injections and total dose (mg)."""
    given = injections(trial).merge(trial.lesions[["lesion_id", "patient_id"]], on="lesion_id")
    per_patient = given.groupby("patient_id", sort=False).agg(
        visits=("visit", "nunique"),
        injections=("visit", "size"),
        total_dose_mg=("dose_mg", "sum"),
    )
    lesions = trial.lesions.groupby("patient_id", sort=False)["lesion_id"].size()
    patients = trial.patients["patient_id"]
    out = per_patient.reindex(patients, fill_value=0)
    out.insert(0, "lesions", lesions.reindex(patients, fill_value=0).to_numpy())
    out.index.name = "patient_id"
    out = out.reset_index()
    out["patient_id"] = out["patient_id"].astype(str)
    return out.astype({"lesions": int, "visits": int, "injections": int, "total_dose_mg": float})


def upper_bound_no_events(n: int, confidence: float = CONFIDENCE) -> float:
    """Exact one-sided upper confidence bound of a proportion when 0 of n had the event.

    Solves (1 − p)^n = 1 − confidence: the Clopper–Pearson bound, 45 % for n = 5 at 95 %.
    The "rule of three" (3/n) approximates it only for large n (it gives 60 % for n = 5).
    """
    return 1.0 - (1.0 - confidence) ** (1.0 / n)


def proportion_interval(k: int, n: int, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Exact (Clopper–Pearson) two-sided interval of the proportion k of n."""
    ci = stats.binomtest(k, n).proportion_ci(confidence_level=confidence, method="exact")
    return float(ci.low), float(ci.high)


def sentences(events: pd.DataFrame, listing: pd.DataFrame) -> dict[str, str]:
    """The safety sentences whose wording depends on the data: what was recorded (from the
    table by patient and the event list), and what so few children can say about how often
    harm occurs."""
    total, related = int(events["total"].sum()), int(events["related"].sum())
    n, with_event = len(events), int((events["total"] > 0).sum())
    if total == 0:
        recorded = "No adverse event was recorded."
        bound = (
            f"No events among {n} children says little about rare harms: the exact one-sided "
            f"{100 * CONFIDENCE:.0f} % upper confidence bound of the proportion of children "
            f"with an event is {100 * upper_bound_no_events(n):.0f} %."
        )
        return {"adverse_events_sentence": recorded, "safety_bound_sentence": bound}
    events_word = "adverse event was" if total == 1 else "adverse events were"
    unassessed = int((listing["Related to treatment"] == "not assessed").sum())
    unknown = int((listing["Related to treatment"] == "unknown").sum())
    judged = f"{related} judged related to treatment" if related else "none judged related"
    if unassessed or unknown:
        judged += f" ({_count(unassessed + unknown, 'event')} not assessed or of unknown relation)"
    counts = listing["Severity"].value_counts()
    severity = ", ".join(f"{counts[grade]} {grade}" for grade in SEVERITIES if grade in counts)
    recorded = (
        f"{total} {events_word} recorded in {with_event} of the {n} children "
        f"({severity}), {judged}."
    )
    low, high = proportion_interval(with_event, n)
    bound = (
        f"With {with_event} of {n} children affected, the exact {100 * CONFIDENCE:.0f} % "
        f"confidence interval of the proportion with an event runs from {100 * low:.0f} % to "
        f"{100 * high:.0f} %: enough to show that events occur, far too few to say how often."
    )
    return {"adverse_events_sentence": recorded, "safety_bound_sentence": bound}


def exposure_sentence(trial: Trial) -> str:
    """Where the count of injections comes from: the recorded doses, or an inference."""
    if doses_recorded(trial):
        return "Injections and doses are those recorded at each visit."
    rows = trial.measurements
    measured = int(rows[["length_mm", "width_mm"]].notna().any(axis=1).sum())
    listed = _count(len(rows), "visit")
    of_them = "all" if measured == len(rows) else f"{measured}"
    return (
        "This dataset does not record which visits were injections, so each of the "
        f"{listed} listed for a lesion in measurements.csv ({of_them} of them with a "
        "measurement) is counted as one injection of the lesion's dose."
    )


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")
