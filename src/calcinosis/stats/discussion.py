"""Response against disease duration: the paper's "under two years responded faster" remark.

Exploratory only: five patients, two of them in the short-duration group, and one of those
(patient 2) with a single lesion measured twice. Nothing here can confirm the remark; it
shows what the data say and how little they can say.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from calcinosis.data.memo import per_trial
from calcinosis.data.trial import Trial
from calcinosis.stats import models, patients

DURATION_CUT_MONTHS = 24
SHORT, LONG = "< 24 months", "≥ 24 months"


def duration_group(months: float) -> str:
    return SHORT if months < DURATION_CUT_MONTHS else LONG


def group_sizes(trial: Trial) -> tuple[int, int]:
    """Patients with shorter and with longer disease duration than the cut."""
    months = trial.patients["disease_duration_months"]
    short = int((months < DURATION_CUT_MONTHS).sum())
    return short, len(months) - short


def exploratory_note(trial: Trial) -> str:
    """The caveat the interaction model carries, with the group sizes it rests on."""
    short, long = group_sizes(trial)
    return (
        f"exploratory: {short + long} patients ({short} with {SHORT}); lesion clusters, "
        f"robust z; a between-patient contrast resting on {short} vs {long} patients"
    )


def points_sentence(trial: Trial) -> str:
    """How many children the duration comparison rests on, and why any are missing."""
    rates = patients.patient_rates(trial)
    missing = rates[~rates["estimable"]]
    n = len(trial.patients)
    if missing.empty:
        return f"Every child has a fitted rate, so the comparison rests on {n} points per outcome."
    per_outcome = rates.groupby("outcome")["estimable"].sum().astype(int)
    points = " and ".join(f"{k} points for {outcome}" for outcome, k in per_outcome.items())
    by_reason = missing.drop_duplicates("patient_id").groupby("reason", sort=False)["patient_id"]
    reasons = "; ".join(f"{', '.join(ids)}: {reason}" for reason, ids in by_reason)
    return f"Some children have no fitted rate ({reasons}), so the comparison rests on {points}."


def duration_rates(trial: Trial) -> pd.DataFrame:
    """Per patient: disease duration, its group, and the fitted change per visit per outcome."""
    rates = patients.patient_rates(trial)
    wide = rates.pivot(
        index="patient_id",
        columns="outcome",
        values=["pct_per_visit", "ci_low", "ci_high", "estimable"],
    )
    wide.columns = [f"{outcome}_{what}" for what, outcome in wide.columns]
    out = trial.patients[["patient_id", "disease_duration_months"]].copy()
    out["patient_id"] = out["patient_id"].astype(str)
    out["duration_group"] = out["disease_duration_months"].map(duration_group)
    return out.merge(wide.reset_index(), on="patient_id", how="left")


@per_trial("patients", "measurements")
def interaction_model(trial: Trial, outcome: str) -> pd.DataFrame:
    """Primary GEE plus duration ≥ 24 months and its interaction with time (exploratory).

    The interaction's Exp(B) is the ratio of per-visit change factors, long vs short duration.
    A model the data cannot support (a duration group without patients, too few pairs, a fit
    that ran off or did not converge) keeps its rows with every number missing and the reason
    in `reason`; it is never shown as B = 0.
    """
    column = models.outcome_column(outcome)
    frame = models.gee_frame(models.with_patient_id(trial.measurements), column)
    months = trial.patients.set_index("patient_id")["disease_duration_months"]
    long = (frame["patient_id"].map(months) >= DURATION_CUT_MONTHS).astype(float)
    covariates = pd.DataFrame(
        {"time": frame["time"], "long": long, "time_x_long": frame["time"] * long}
    )
    terms = (
        models.INTERCEPT,
        models.TIME_TERM,
        f"duration {LONG}",
        f"{models.TIME_TERM} × duration {LONG}",
    )
    try:
        result = _fit_interaction(frame, column, covariates)
    except models.NotEstimableError as err:
        nan = np.full(len(terms), np.nan)
        table = models.coefficient_table(terms, nan, np.diag(nan), None).reset_index()
        table["df"] = np.nan  # no test, so no degrees of freedom either
        table["reason"] = str(err).removeprefix(f"{column}: ")
    else:
        table = models.coefficient_table(
            terms, result.params.to_numpy(), result.cov_params().to_numpy(), None
        ).reset_index()
        table["reason"] = ""
    table["pct_per_visit_effect"] = np.where(
        table["term"].str.contains("time"), 100 * (table["Exp(B)"] - 1), np.nan
    )
    table["note"] = exploratory_note(trial)
    return table


def _fit_interaction(frame: pd.DataFrame, column: str, covariates: pd.DataFrame):
    """The interaction GEE, checked as `models.fit_gee` checks the main model."""
    for group, members in ((SHORT, covariates["long"] == 0), (LONG, covariates["long"] == 1)):
        if not members.any():
            raise models.NotEstimableError(
                f"{column}: no patient with disease duration {group} has measured lesions, so "
                "the groups cannot be compared"
            )
    models.check_pairs(frame, column, "lesion_id", "exchangeable", n_params=4)
    result, converged = models.fit_design(
        frame, column, covariates, "lesion_id", cov_struct="exchangeable", family="gaussian_log"
    )
    models.check_fit(result, column, frame, "gaussian_log")
    if not converged:
        raise models.NotEstimableError(
            f"{column}: the fit did not converge in {models.MAX_ITER} iterations"
        )
    return result
