"""What the data show of the trial's design: the visits, the body sites, the lesions beyond the
dose rule. The article describes its own trial; these sentences describe whatever data the
book reads, so that a chapter never types a schedule, a site or a count that other data would
make false (tests/test_prose.py checks the typed prose).
"""

from __future__ import annotations

import pandas as pd
import yaml

from calcinosis import paths
from calcinosis.data import dose
from calcinosis.data.trial import Trial

MOST_VISITS_LISTED = 12  # more distinct visit numbers than this are given as a range


def measured_visits(trial: Trial) -> pd.DataFrame:
    """The rows of measurements.csv with a length or a width."""
    rows = trial.measurements
    return rows[rows[["length_mm", "width_mm"]].notna().any(axis=1)]


def schedule_sentence(trial: Trial) -> str:
    """At which visit numbers the lesions were measured, how many per lesion, and (when the data
    record doses) which visits were injections: no schedule is assumed, weekly or other."""
    measured = measured_visits(trial)
    if measured.empty:
        return "No lesion has a measurement."
    visits = sorted(int(v) for v in measured["visit"].unique())
    per_lesion = measured.groupby("lesion_id")["visit"].nunique()
    if visits == list(range(visits[0], visits[-1] + 1)):
        at = f"at visits {visits[0]} to {visits[-1]}"
    elif len(visits) <= MOST_VISITS_LISTED:
        at = f"at visits {_and(visits)}"
    else:
        at = f"at {len(visits)} different visit numbers from {visits[0]} to {visits[-1]}"
    low, high = int(per_lesion.min()), int(per_lesion.max())
    count = (
        f"{_count(low, 'measured visit')} per lesion"
        if low == high
        else f"from {low} to {high} measured visits per lesion"
    )
    return f"The lesions were measured {at}, {count}.{_injection_clause(trial)}"


def _injection_clause(trial: Trial) -> str:
    """Which visits carried a recorded injection, when the data record doses and some visits
    had none (follow-up); nothing otherwise."""
    if "dose_mg" not in trial.measurements.columns:
        return ""
    dosed = trial.measurements["dose_mg"] > 0
    injected = sorted(int(v) for v in trial.measurements.loc[dosed, "visit"].unique())
    without = sorted(
        int(v) for v in trial.measurements.loc[~dosed, "visit"].unique() if v not in injected
    )
    if not without:
        return ""
    return (
        f" Injections are recorded at {_span('visit', injected)}; "
        f"{_span('visit', without)} carried none."
    )


def sites_sentence(trial: Trial, facts: dict | None = None) -> str:
    """The data's body sites set against those of the article's case descriptions."""
    facts = facts or yaml.safe_load(paths.FACTS_FILE.read_text(encoding="utf-8"))
    described = {str(s) for patient in facts["patients"] for s in patient.get("sites", [])}
    sites = list(dict.fromkeys(trial.lesions["site"].astype(str)))
    if not sites:
        return ""
    named = [s for s in sites if s in described]
    listed = _and(sites)
    if len(named) == len(sites) and set(sites) == described:
        return f"The data read here hold exactly the sites of the case descriptions: {listed}."
    if len(named) == len(sites):
        return f"Every site in the data read here is one the case descriptions name: {listed}."
    if not named:
        return f"The data read here name other sites than the case descriptions: {listed}."
    return (
        f"Of the {len(sites)} sites in the data read here ({listed}), "
        f"{len(named)} are named in the case descriptions."
    )


def lesions_per_child(trial: Trial) -> str:
    """'Between 1 and 9' lesions per child, or '2' when every child has as many."""
    per_patient = trial.lesions.groupby("patient_id").size()
    low, high = int(per_patient.min()), int(per_patient.max())
    return f"{low}" if low == high else f"Between {low} and {high}"


def over_limit_sentence(trial: Trial) -> str:
    """Which lesions of the data lie above the dose rule's area limit, and that the book keeps
    them; said also when there are none."""
    lesions = trial.lesions.sort_values("lesion_id")
    over = lesions[[dose.rule_dose(area) is None for area in lesions["baseline_area_cm2"]]]
    if over.empty:
        return "No lesion in the data read here lies above that limit."
    named = _and(
        [
            f"{lesion} ({site}, {area:g} cm²)"
            for lesion, site, area in zip(
                over["lesion_id"], over["site"], over["baseline_area_cm2"], strict=True
            )
        ]
    )
    them = "it" if len(over) == 1 else "them"
    return (
        f"In the data read here, {_count(len(over), 'lesion')} lie{'s' if len(over) == 1 else ''}"
        f" above that limit: {named}. The book keeps {them} in every analysis."
    )


def _span(noun: str, numbers: list[int]) -> str:
    """'visits 1 to 16' for a run, 'visits 1, 2 and 4' otherwise, 'visit 3' for one."""
    if len(numbers) == 1:
        return f"{noun} {numbers[0]}"
    if numbers == list(range(numbers[0], numbers[-1] + 1)):
        return f"{noun}s {numbers[0]} to {numbers[-1]}"
    if len(numbers) <= MOST_VISITS_LISTED:
        return f"{noun}s {_and(numbers)}"
    return f"{len(numbers)} {noun}s from {numbers[0]} to {numbers[-1]}"


def _and(items: list) -> str:
    words = [str(item) for item in items]
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} and {words[-1]}"


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")
