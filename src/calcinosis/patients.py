"""Results per patient: what one patient's page in the book needs, and the rates across patients.

A patient's rate of change is the primary model (Gaussian, log link, exchangeable, lesion
clusters) fitted to that patient's lesions alone, with the Mancl–DeRouen sandwich and t on
Satterthwaite df: with two or three lesions the plain sandwich is far too optimistic. One lesion, or
lesions measured at one visit, give no rate ("not estimable", with the reason).

A lesion has resolved when its length and its width are both 0 (`is_resolved`; Radiography
uses the same rule on the final radiograph).

Steady decline starts at the first visit whose size is below the previous visit's, after which
the size never comes back to the level before that fall and never rises more than
`NOISE_MM` (one step of the 0.5 mm caliper grid) above its lowest value since: one
re-measurement half a millimetre up is noise, not the end of a decline. It is NA when the size
never falls that way, or when the fall spans unmeasured visits (the visit it began at is then
unknown); a patient's page names the lesions without one.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from calcinosis import models
from calcinosis.data import Trial
from calcinosis.memo import per_trial

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
        fit = models.fit_gee(measurements, outcome, cov_type="bias_reduced", qic=False)
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
        row["decline_start_visit"] = decline_start(own["visit"], own["length_mm"])
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


NOISE_MM = 0.5


def is_resolved(length: float, width: float) -> bool:
    """The book's one definition of a resolved lesion: length and width both 0."""
    return bool(length == 0 and width == 0)


def decline_start(visits: pd.Series, sizes: pd.Series, noise: float = NOISE_MM) -> int | None:
    """First visit of a steady decline, tolerating rises up to `noise` (see module doc)."""
    course = pd.DataFrame({"visit": visits, "size": sizes}).dropna()
    v, s = course["visit"].to_numpy(), course["size"].to_numpy(float)
    for i in range(1, len(s)):
        if not s[i] < s[i - 1]:
            continue
        later = s[i:]
        lowest = np.minimum.accumulate(later)
        steady = np.all(later[1:] <= lowest[:-1] + noise + 1e-9) and np.all(later < s[i - 1])
        if steady:
            return int(v[i]) if v[i] - v[i - 1] == 1 else None
    return None


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
    """When a steady decline in length began, over the lesions that have one; the others are
    named, not dropped from the count."""
    starts = lesions["decline_start_visit"]
    without = lesions.loc[starts.isna(), "lesion_id"].astype(str).tolist()
    known = starts.dropna()
    if known.empty:
        return (
            f"No visit at which a steady decline in length began can be named for "
            f"{', '.join(without)}: the size did not fall steadily, or fell across visits that "
            "were not measured."
        )
    where = (
        f"at visit {known.iloc[0]:g}"
        if len(known) == 1
        else f"in the median of the {len(known)} lesions with one, at visit {known.median():g}"
    )
    text = f"A steady decline in length began {where}."
    if without:
        text += (
            f" No such visit can be named for {', '.join(without)} (the size did not fall "
            "steadily, or fell across visits that were not measured)."
        )
    return text


def page_sentences(page: PatientPage) -> dict[str, str]:
    """The sentences of a patient's page whose wording depends on the data."""
    from calcinosis.formatting import p_phrase, signed_pct

    info = page.patient
    sex = {"F": "girl", "M": "boy"}.get(str(info["sex"]), "child")
    sites = ", ".join(dict.fromkeys(page.lesions["site"].astype(str)))
    out = {
        "patient_sentence": f"A {info['age_years']:g}-year-old {sex} who had lived with JDM for "
        f"{info['disease_duration_months']:g} months, treated for {len(page.lesions)} "
        f"lesion(s) at: {sites}."
    }
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


def lesion_spread_sentence(trial: Trial) -> str:
    """How far single lesions' courses spread around the average curve: the range of their
    change in length from the first to the last measured visit, and how many resolved."""
    courses = pd.concat(
        [lesion_courses(trial, pid) for pid in trial.patients["patient_id"].astype(str)]
    )
    change = courses["length_change_pct"].dropna()
    resolved = int(courses["resolved"].sum())
    if change.empty:
        return "No lesion was measured at a size above zero, so no change can be computed."
    gone = f"; {resolved} of {len(courses)} lesions resolved" if resolved else ""
    return (
        f"Single lesions' length changed by between {change.min():.0f} % and "
        f"{change.max():+.0f} % from their first to their last measured visit{gone}."
    )
