"""Results per patient: what one patient's page in the book needs, and the rates across patients.

A patient's rate of change is the primary model (Gaussian, log link, exchangeable, lesion
clusters) fitted to that patient's lesions alone, with the Mancl–DeRouen sandwich and t on
Satterthwaite df: with two or three lesions the plain sandwich is far too optimistic. One lesion, or
lesions measured at one visit, give no rate ("not estimable", with the reason).

A lesion has resolved when its length and its width are both 0 (`is_resolved`; Radiography
uses the same rule on the final radiograph).

A decline's onset (`decline_start`) is read from a monotone fit, not from single readings: the
lengths are fitted by a non-increasing step function (isotonic regression by pool-adjacent-
violators; Robertson, Wright & Dykstra 1988), in which a re-measurement a millimetre up or down
is averaged with its neighbours instead of starting or ending a decline. The candidate onset is
the first measured visit at which the fit lies `ONSET_STEP_MM` (one step of the 0.5 mm caliper
grid) below its starting level. The decline is clear, and the candidate its onset, when it
cannot be rater noise of ±`NOISE_MM`: the fit falls by more than twice that in all, or the mean
of the readings from the onset on lies at least `MIN_SHIFT_MM` below the mean of those before.
`MIN_SHIFT_MM` is set so that a flat lesion read with that noise at 16 visits gets an onset in
fewer than 5 % of cases, while a fall of 2 mm is found (tests/test_patients.py).
A lesion whose last reading exceeds its first by more than noise could explain grew, and has no
onset. Visits are the numbers the data hold, on any schedule; only a fall across visits the
data list without a measurement leaves the onset unknown. A lesion without a clear onset has
none (NA), and a patient's page names it with the reason.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from calcinosis.data.memo import per_trial
from calcinosis.data.trial import Trial
from calcinosis.stats import models

OUTCOME_NAMES = ("length", "width")


@dataclass(frozen=True)
class PatientRate:
    """A patient's change per visit (%), or why there is none."""

    pct_per_visit: float
    ci_low: float
    ci_high: float
    p: float
    estimable: bool
    reason: str
    n_lesions: int
    reference: str


@dataclass(frozen=True)
class PatientPage:
    """Everything one patient's page shows."""

    patient: pd.Series
    lesions: pd.DataFrame
    trajectories: pd.DataFrame
    rate_length: PatientRate
    rate_width: PatientRate
    course: dict


@per_trial("patients", "lesions", "measurements")
def patient_page(trial: Trial, patient_id: str) -> PatientPage:
    """The patient's characteristics, lesion courses, fitted rates and a short course summary
    (remembered: the page's sentences, both tables and its figure all start from it)."""
    if patient_id not in set(trial.patients["patient_id"]):
        raise KeyError(f"no patient {patient_id!r} in the data")
    patient = trial.patients.set_index("patient_id").loc[patient_id]
    measurements = _patient_measurements(trial, patient_id)
    lesions = lesion_courses(trial, patient_id)
    return PatientPage(
        patient=patient,
        lesions=lesions,
        trajectories=_trajectories(measurements),
        rate_length=patient_rate(measurements, "length"),
        rate_width=patient_rate(measurements, "width"),
        course=_course(lesions),
    )


@per_trial("patients", "lesions", "measurements")
def patient_rates(trial: Trial) -> pd.DataFrame:
    """One row per patient × outcome: disease duration and the fitted change per visit."""
    rows = []
    for patient in trial.patients.itertuples(index=False):
        page = patient_page(trial, patient.patient_id)  # its fits, made once
        for outcome in OUTCOME_NAMES:
            rate = getattr(page, f"rate_{outcome}")
            rows.append(
                {
                    "patient_id": patient.patient_id,
                    "outcome": outcome,
                    "disease_duration_months": float(patient.disease_duration_months),
                    "n_lesions": rate.n_lesions,
                    "pct_per_visit": rate.pct_per_visit,
                    "ci_low": rate.ci_low,
                    "ci_high": rate.ci_high,
                    "p": rate.p,
                    "estimable": rate.estimable,
                    "reason": rate.reason,
                }
            )
    return pd.DataFrame(rows)


def patient_rate(measurements: pd.DataFrame, outcome: str) -> PatientRate:
    """The primary model on one patient's lesions (MD sandwich, Satterthwaite t), or why not."""
    n_lesions = int(measurements["lesion_id"].nunique())
    try:
        fit = models.fit_gee(measurements, outcome, cov_type="mancl_derouen", qic=False)
    except models.NotEstimableError as err:
        return PatientRate(
            np.nan, np.nan, np.nan, np.nan, False, _reason(err, n_lesions), n_lesions, ""
        )
    return PatientRate(
        fit.pct_per_visit,
        fit.pct_ci_low,
        fit.pct_ci_high,
        fit.p,
        True,
        "",
        n_lesions,
        fit.reference,
    )


def _reason(err: Exception, n_lesions: int) -> str:
    if n_lesions < 2:
        return "one lesion: a rate with a CI needs at least two lesions (clusters)"
    return str(err)


def _patient_measurements(trial: Trial, patient_id: str) -> pd.DataFrame:
    lesion_ids = trial.lesions.loc[trial.lesions["patient_id"] == patient_id, "lesion_id"]
    rows = trial.measurements[trial.measurements["lesion_id"].isin(lesion_ids)]
    return models.with_patient_id(rows).reset_index(drop=True)


def _trajectories(measurements: pd.DataFrame) -> pd.DataFrame:
    """Long table lesion_id, visit, outcome, size: measured visits only."""
    long = measurements.melt(
        id_vars=["lesion_id", "visit"],
        value_vars=list(models.OUTCOMES),
        var_name="outcome",
        value_name="size",
    ).dropna(subset=["size"])
    long["outcome"] = long["outcome"].str.removesuffix("_mm")
    return long.sort_values(["lesion_id", "outcome", "visit"]).reset_index(drop=True)


def lesion_courses(trial: Trial, patient_id: str) -> pd.DataFrame:
    """Per lesion: first and last measured sizes, their change, resolution, decline start."""
    lesions = trial.lesions[trial.lesions["patient_id"] == patient_id]
    measurements = _patient_measurements(trial, patient_id)
    rows = []
    for lesion in lesions.itertuples(index=False):
        own = measurements[measurements["lesion_id"] == lesion.lesion_id]
        row = {"lesion_id": lesion.lesion_id, "site": lesion.site}
        for outcome in OUTCOME_NAMES:
            row.update(_change(own, outcome))
        row["resolved"] = is_resolved(row["length_last"], row["width_last"])
        onset, row["decline_note"] = decline_onset(own["visit"], own["length_mm"])
        row["decline_start_visit"] = onset
        rows.append(row)
    out = pd.DataFrame(rows)
    out["decline_start_visit"] = out["decline_start_visit"].astype("Int64")
    return out


def _change(own: pd.DataFrame, outcome: str) -> dict:
    """First and last measured size of one outcome and the change between them."""
    measured = own.dropna(subset=[f"{outcome}_mm"])
    if measured.empty:  # this diameter was never read (the other one was): no change
        return {f"{outcome}_{k}": np.nan for k in ("first", "last", "change_mm", "change_pct")}
    first, last = measured.iloc[0], measured.iloc[-1]
    size0, size1 = float(first[f"{outcome}_mm"]), float(last[f"{outcome}_mm"])
    return {
        "first_visit": int(first["visit"]),
        "last_visit": int(last["visit"]),
        f"{outcome}_first": size0,
        f"{outcome}_last": size1,
        f"{outcome}_change_mm": size1 - size0,
        f"{outcome}_change_pct": 100 * (size1 - size0) / size0 if size0 > 0 else np.nan,
    }


NOISE_MM = 1.0
ONSET_STEP_MM = 0.5
MIN_SHIFT_MM = 1.25


def is_resolved(length: float, width: float) -> bool:
    """The book's one definition of a resolved lesion: length and width both 0."""
    return bool(length == 0 and width == 0)


def decline_start(visits: pd.Series, sizes: pd.Series) -> int | None:
    """First visit of a clear decline in a monotone fit of the sizes, or None (module doc)."""
    return decline_onset(visits, sizes)[0]


NO_CLEAR_DROP = "its length fell by no more than reading noise of ±{noise:g} mm can explain"
UNSEEN_ONSET = "its length fell across visits listed without a measurement"
GREW = "its length grew"


def decline_onset(
    visits: pd.Series,
    sizes: pd.Series,
    noise: float = NOISE_MM,
    step: float = ONSET_STEP_MM,
    shift: float = MIN_SHIFT_MM,
) -> tuple[int | None, str]:
    """(onset visit, "") of a clear decline, or (None, why there is none): `visits` and `sizes`
    are one lesion's rows; a size of NaN is a listed visit without a measurement."""
    from scipy.optimize import isotonic_regression

    course = pd.DataFrame({"visit": visits, "size": sizes}).sort_values("visit")
    measured = course.dropna()
    no_drop = NO_CLEAR_DROP.format(noise=noise)
    sizes_ = measured["size"].to_numpy(float)
    fit = isotonic_regression(sizes_, increasing=False).x if len(sizes_) else sizes_
    if len(sizes_) < 2:
        return None, no_drop
    if sizes_[-1] - sizes_[0] > 2 * noise + 1e-9:
        return None, GREW
    if fit[0] - fit[-1] < step - 1e-9:
        return None, no_drop
    first = int(np.argmax(fit <= fit[0] - step + 1e-9))
    fell = fit[0] - fit[-1] > 2 * noise + 1e-9
    shifted = sizes_[:first].mean() - sizes_[first:].mean() >= shift - 1e-9
    if not (fell or shifted):
        return None, no_drop
    onset, before = int(measured["visit"].iloc[first]), int(measured["visit"].iloc[first - 1])
    if course["visit"].between(before, onset, inclusive="neither").any():
        return None, UNSEEN_ONSET
    return onset, ""


def _course(lesions: pd.DataFrame) -> dict:
    """Numbers the prose of a patient's page quotes."""
    starts = lesions["decline_start_visit"].dropna()
    return {
        "n_lesions": int(len(lesions)),
        "n_resolved": int(lesions["resolved"].sum()),
        "n_with_decline_start": int(len(starts)),
        "median_decline_start": float(starts.median()) if len(starts) else None,
        "median_length_change_pct": float(lesions["length_change_pct"].median()),
        "median_width_change_pct": float(lesions["width_change_pct"].median()),
    }


def decline_sentence(lesions: pd.DataFrame) -> str:
    """When a clear decline in length began, over the lesions that have one; the others are
    named with the reason, not dropped from the count."""
    starts = lesions["decline_start_visit"]
    known = starts.dropna()
    parts = []
    if len(known) == 1:
        (lesion,) = lesions.loc[starts.notna(), "lesion_id"].astype(str)
        parts.append(f"A clear decline in length began at visit {known.iloc[0]:g} ({lesion}).")
    elif len(known) > 1 and known.min() == known.max():
        parts.append(
            f"A clear decline in length began at visit {known.iloc[0]:g} in each of the "
            f"{len(known)} lesions with one."
        )
    elif len(known) > 1:
        parts.append(
            f"A clear decline in length began at visit {known.median():g} in the median of "
            f"the {len(known)} lesions with one (visits {known.min():g} to {known.max():g})."
        )
    without = lesions[starts.isna()]
    for note, group in without.groupby("decline_note", sort=False):
        names = ", ".join(group["lesion_id"].astype(str))
        parts.append(f"No clear onset of a decline for {names}: {_they(len(group), note)}.")
    return " ".join(parts)


def _lesions(n: int) -> str:
    """'1 lesion', '5 lesions'."""
    return f"{n} lesion" + ("" if n == 1 else "s")


def course_sentence(course: dict) -> str:
    """How many of the patient's lesions had gone by the last measurement, in words: "none"
    and "all" rather than "0 had gone" or "5 of 5"."""
    n, gone = course["n_lesions"], course["n_resolved"]
    if n == 1:
        had = "had" if gone else "had not"
        return f"This patient's one lesion {had} gone by the last measurement."
    counted = "none" if gone == 0 else "all" if gone == n else str(gone)
    return f"Of this patient's {n} lesions, {counted} had gone by the last measurement."


def _they(n: int, note: str) -> str:
    """`note` ("its ... fell") said of one lesion or of several."""
    return note if n == 1 else note.replace("its ", "their ", 1)


def page_sentences(page: PatientPage) -> dict[str, str]:
    """The sentences of a patient's page whose wording depends on the data."""
    from calcinosis.formatting import p_phrase, signed_pct

    info = page.patient
    sex = {"F": "girl", "M": "boy"}.get(str(info["sex"]), "child")
    sites = ", ".join(dict.fromkeys(page.lesions["site"].astype(str)))
    out = {
        "patient_sentence": f"{_a(info['age_years'])} {info['age_years']:g}-year-old {sex} who "
        "had lived with JDM for "
        f"{info['disease_duration_months']:g} months, treated for "
        f"{_lesions(len(page.lesions))} at: {sites}."
    }
    out["course_sentence"] = course_sentence(page.course)
    out["decline_sentence"] = decline_sentence(page.lesions)
    rates = (("length", page.rate_length), ("width", page.rate_width))
    if all(r.estimable for _, r in rates):
        out["rate_sentence"] = (
            "Fitted to this patient's lesions alone, the size changed by "
            + " and ".join(
                f"{signed_pct(r.pct_per_visit)} per visit in {o} (95 % CI "
                f"{signed_pct(r.ci_low)} to {signed_pct(r.ci_high)}; "
                f"{p_phrase(r.p)})"
                for o, r in rates
            )
            + "."
        )
    else:
        reasons = "; ".join(dict.fromkeys(r.reason for _, r in rates if not r.estimable))
        out["rate_sentence"] = (
            f"No rate can be fitted to this patient alone ({reasons}). "
            "The lesions still count in the pooled analysis of all lesions."
        )
    return out


def _a(number: float) -> str:
    """The article before a number said in English: "An 8-year-old", "An 11-year-old"."""
    spoken = f"{number:g}"
    return (
        "An"
        if spoken.startswith("8") or spoken in ("11", "18") or spoken.startswith("18.")
        else "A"
    )


def sparse_lesions_sentence(trial: Trial, most: int = 2) -> str:
    """Which lesions were measured at `most` visits or fewer, whose lines in the trajectory
    figure join far-apart points (patient 2's lesion in the article: first and last visit)."""
    measured = trial.measurements.dropna(subset=["length_mm"])
    visits = measured.groupby("lesion_id")["visit"].agg(list)
    sparse = visits[visits.map(len) <= most]
    if sparse.empty:
        return f"Every lesion was measured at more than {most} visits."
    described = "; ".join(
        f"{lesion} at visit{'s' if len(v) > 1 else ''} {' and '.join(map(str, v))}"
        for lesion, v in sparse.items()
    )
    return (
        f"Some lesions were measured at {most} visits or fewer ({described}); "
        "each line joins the visits measured."
    )


def lesion_changes(trial: Trial) -> pd.DataFrame:
    """Per lesion of a listed patient, in one pass over the measurements (linear in them, where
    `lesion_courses` patient by patient is not): `length_change_pct` and `resolved`, as
    `lesion_courses` computes them (first and last measured size of each diameter, in the
    rows' order)."""
    listed = set(trial.patients["patient_id"].astype(str))
    lesions = trial.lesions.loc[trial.lesions["patient_id"].isin(listed), "lesion_id"]
    rows = trial.measurements[trial.measurements["lesion_id"].isin(set(lesions))]
    sizes = rows.groupby("lesion_id", sort=False)[["length_mm", "width_mm"]]
    first, last = sizes.first().reindex(lesions), sizes.last().reindex(lesions)
    start, end = first["length_mm"], last["length_mm"]
    change = (100 * (end - start) / start).where(start > 0)
    resolved = (end == 0) & (last["width_mm"] == 0)
    return pd.DataFrame(
        {"length_change_pct": change.to_numpy(), "resolved": resolved.to_numpy()},
        index=pd.Index(lesions, name="lesion_id"),
    )


def lesion_spread_sentence(trial: Trial) -> str:
    """How far single lesions' courses spread around the average curve: the range of their
    change in length from the first to the last measured visit, and how many resolved."""
    courses = lesion_changes(trial)
    change = courses["length_change_pct"].dropna()
    resolved = int(courses["resolved"].sum())
    if change.empty:
        return "No lesion was measured at a size above zero, so no change can be computed."
    from calcinosis.formatting import signed_pct

    gone = f"; {resolved} of {len(courses)} lesions resolved" if resolved else ""
    return (
        f"Single lesions' length changed by between {signed_pct(change.min(), 0)} and "
        f"{signed_pct(change.max(), 0)} from their first to their last measured visit{gone}."
    )
