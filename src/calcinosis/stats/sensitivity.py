"""How much the paper's conclusion depends on choices it did not state: one grid of refits.

Each row changes one thing in the primary model (Gaussian, log link, exchangeable, lesion
clusters, robust z) and reports the change per visit with its 95 % CI and p. The mixed
model (random intercepts and slopes, `random_slopes`) handles zeros by modelling
log(size + 1 mm). A row that cannot be estimated stays in
the grid with its reason, because that too is an answer.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from calcinosis.data.memo import per_trial
from calcinosis.data.trial import Trial
from calcinosis.formatting import NOT_ESTIMABLE
from calcinosis.stats import arraymixed, influence, mixed, models

COLUMNS = [
    "outcome",
    "factor",
    "choice",
    "pct_per_visit",
    "ci_low",
    "ci_high",
    "p",
    "reference",
    "df",
    "qic",
    "is_primary",
    "analysis",
    "note",
]

_MD, _CR2 = models.COV_TYPE_NAMES["mancl_derouen"], models.COV_TYPE_NAMES["bias_reduced"]
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
    ("cluster", "lesion ({n_lesions})", {}, True),
    ("cluster", "patient ({n_patients}), exchangeable", {"cluster": "patient"}, False),
    (
        "cluster",
        "patient ({n_patients}), independence",
        {"cluster": "patient", "cov_struct": "independence"},
        False,
    ),
    ("covariance", "robust, lesion clusters", {}, True),
    ("covariance", f"{_MD}, lesion clusters", {"cov_type": "mancl_derouen"}, False),
    ("covariance", f"{_CR2}, lesion clusters", {"cov_type": "bias_reduced"}, False),
    (
        "covariance",
        "robust, patient clusters (independence)",
        {"cluster": "patient", "cov_struct": "independence"},
        False,
    ),
    (
        "covariance",
        f"{_MD}, patient clusters (independence)",
        {"cluster": "patient", "cov_struct": "independence", "cov_type": "mancl_derouen"},
        False,
    ),
    (
        "covariance",
        f"{_CR2}, patient clusters (independence)",
        {"cluster": "patient", "cov_struct": "independence", "cov_type": "bias_reduced"},
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
QIC_FACTOR = "working correlation"
# Leaving out each patient costs a refit per patient, each on nearly all the data: patients ×
# measurements. Up to EXACT_LEAVE_ONE_OUT_MAX patients every patient is refitted; beyond, the
# one-step estimates (`calcinosis.stats.influence`) rank them and the INFLUENTIAL_REFITS most
# influential are refitted exactly.
EXACT_LEAVE_ONE_OUT_MAX = 30
INFLUENTIAL_REFITS = 10
NOTES = {"transform=pct_baseline": "percentage points of the first measured size per visit"}


@per_trial("patients", "lesions", "measurements")
def grid(trial: Trial) -> pd.DataFrame:
    """Every sensitivity row for length and width (see the module docstring)."""
    counts = {
        "n_lesions": int(trial.measurements["lesion_id"].nunique()),
        "n_patients": int(models.with_patient_id(trial.measurements)["patient_id"].nunique()),
    }
    rows = []
    for outcome in ("length", "width"):
        for factor, choice, options, primary in GEE_VARIANTS:
            label = choice.format(**counts)
            rows.append(_gee_row(trial.measurements, outcome, factor, label, options, primary))
        rows.append(_mixed_row(trial.measurements, outcome))
        rows += _leave_one_out_rows(trial, outcome)
    return pd.DataFrame(rows, columns=COLUMNS)


def analysis_key(options: dict, subset: str = "all patients") -> str:
    """What makes an analysis distinct: its data and its model options. The primary model
    stands in several factors' groups as their reference; it is one analysis."""
    spec = ", ".join(f"{k}={v}" for k, v in sorted(options.items())) or "primary"
    return f"{subset}: {spec}"


def _gee_row(
    measurements, outcome, factor, choice, options, primary, subset="all patients", qic=True
):
    row = {
        "outcome": outcome,
        "factor": factor,
        "choice": choice,
        "is_primary": primary,
        "analysis": analysis_key(options, subset),
    }
    try:
        fit = models.fit_gee(measurements, outcome, qic=qic, **options)
    except models.NotEstimableError as err:
        return {**row, **_not_estimable(str(err))}
    note = NOTES.get(f"transform={options.get('transform')}", "")
    return {
        **row,
        "pct_per_visit": fit.pct_per_visit,
        "ci_low": fit.pct_ci_low,
        "ci_high": fit.pct_ci_high,
        "p": fit.p,
        "reference": fit.reference,
        "df": np.nan if fit.ref_df is None else fit.ref_df[1],
        # QIC compares working correlations of one model on one scale (`models.gaussian_qic`)
        "qic": fit.qic if factor == QIC_FACTOR and fit.qic is not None else np.nan,
        "note": note,
    }


def _not_estimable(reason: str) -> dict:
    return {
        "pct_per_visit": np.nan,
        "ci_low": np.nan,
        "ci_high": np.nan,
        "p": np.nan,
        "reference": "",
        "df": np.nan,
        "qic": np.nan,
        "note": f"{NOT_ESTIMABLE} ({reason})",
    }


@per_trial("patients", "lesions", "measurements")
def influence_table(trial: Trial) -> pd.DataFrame:
    """One-step deletion estimates for every patient and both outcomes
    (`calcinosis.stats.influence`); an outcome whose primary model cannot be estimated has no
    rows."""
    frames = [pd.DataFrame(columns=["outcome", *influence.COLUMNS])]
    for outcome in ("length", "width"):
        try:  # with its QIC, as the grid asks for it: one fit shared, whichever comes first
            models.fit_gee(trial, outcome)
        except models.NotEstimableError:
            continue
        table = influence.one_step_deletion(trial.measurements, outcome)
        frames.append(table.assign(outcome=outcome)[["outcome", *influence.COLUMNS]])
    return pd.concat(frames, ignore_index=True)


def refitted_patients(trial: Trial, outcome: str) -> list[str]:
    """The patients left out one at a time and refitted exactly: all of them up to
    EXACT_LEAVE_ONE_OUT_MAX, else the most influential by the one-step measure."""
    patients = trial.patients["patient_id"].astype(str).tolist()
    if len(patients) <= EXACT_LEAVE_ONE_OUT_MAX:
        return patients
    table = influence_table(trial)
    return influence.most_influential(table[table["outcome"] == outcome], INFLUENTIAL_REFITS)


def _leave_one_out_rows(trial: Trial, outcome: str) -> list[dict]:
    """The primary model without each patient in turn (`refitted_patients`)."""
    measurements = models.with_patient_id(trial.measurements)
    rows = []
    for patient_id in refitted_patients(trial, outcome):
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
                subset=f"without {patient_id}",
                qic=False,  # a subset shows no QIC
            )
        )
    return rows


def _mixed_row(measurements: pd.DataFrame, outcome: str) -> dict:
    """Linear mixed model on log(size + 1 mm) with random intercepts and slopes for time by
    patient and by lesion within patient (`random_slopes`); REML, Satterthwaite t."""
    column = models.outcome_column(outcome)
    frame = models.gee_frame(models.with_patient_id(measurements), column)
    frame["y"] = np.log1p(frame[column])
    row = {
        "outcome": outcome,
        "factor": "mixed model",
        "choice": "LMM on log(size + 1 mm), random intercepts and slopes by patient and lesion",
        "is_primary": False,
        "analysis": "all patients: linear mixed model, random slopes",
    }
    try:
        fit = random_slopes(frame)
    except models.NotEstimableError as err:
        return {**row, **_not_estimable(str(err))}
    return {
        **row,
        "pct_per_visit": 100 * np.expm1(fit.beta),
        "ci_low": 100 * np.expm1(fit.ci_low),
        "ci_high": 100 * np.expm1(fit.ci_high),
        "p": fit.p,
        "reference": f"Satterthwaite t({fit.df:.2f})",
        "df": fit.df,
        "qic": np.nan,
        "note": "; ".join(filter(None, ["zeros kept via +1 mm", fit.singular])),
    }


@dataclass(frozen=True)
class RandomSlopes:
    """The time coefficient of the random-slope model: estimate, SE, Satterthwaite df, p,
    95 % CI, and which variance component is on the boundary, in words ("": none)."""

    beta: float
    se: float
    df: float
    p: float
    ci_low: float
    ci_high: float
    singular: str


def random_slopes(frame: pd.DataFrame) -> RandomSlopes | mixed.MixedFit:
    """lme4's `y ~ time + (1 + time | patient) + (1 + time | patient:lesion)` by REML with
    lmerTest's Satterthwaite t (columns patient_id, lesion_id, time, y), fitted by Fisher
    scoring with analytic derivatives (`calcinosis.stats.arraymixed`): the general optimiser
    of `calcinosis.stats.mixed` differentiates numerically and costs seconds a fit where this
    costs milliseconds. Not estimable where lme4 refuses to fit: fewer than two patients, or
    no more rows than a term has random effects (its variances cannot be identified).
    Where Fisher scoring fails, the general optimiser (several fixed starts) fits the model:
    scoring starts from the lesions' own least-squares lines, so it has no start with fewer
    than two lesions measured at three visits or more, and it does not converge where both
    patient-level variances are at 0 (a generated trial's; lme4 reaches that optimum, and so
    does the general optimiser)."""
    patients = frame["patient_id"].astype(str)
    lesion_key = patients + "\0" + frame["lesion_id"].astype(str)
    if patients.nunique() < 2:
        raise models.NotEstimableError("the mixed model needs at least two patients")
    for level, key in (("patient", patients), ("lesion", lesion_key)):
        if len(frame) <= 2 * key.nunique():
            raise models.NotEstimableError(
                f"{len(frame)} measurements for {2 * key.nunique()} {level}-level random "
                "effects: the variances cannot be identified"
            )
    time = frame["time"].to_numpy(float)
    x = np.column_stack([np.ones(len(frame)), time])
    y = frame["y"].to_numpy(float)
    patient, lesion = pd.factorize(patients)[0], pd.factorize(lesion_key)[0]
    try:
        fit = arraymixed.fit(arraymixed.blocks(y, x, time, patient, lesion))
        test = arraymixed.term_test(fit, 1)
    except (models.NotEstimableError, np.linalg.LinAlgError):
        return mixed.fit_random_slopes(frame)
    df = float(test.df)  # type: ignore[arg-type]  # always Satterthwaite's, never None (z)
    crit = stats.t.ppf(0.975, df)
    return RandomSlopes(
        beta=test.beta,
        se=test.se,
        df=df,
        p=test.p,
        ci_low=test.beta - crit * test.se,
        ci_high=test.beta + crit * test.se,
        singular=fit.singular,
    )


def small_sample_numbers(trial: Trial) -> dict[str, float]:
    """The Satterthwaite df of the bias-reduced (CR2) rows with patient and with lesion
    clusters, beside G − 1, for Methods' statement of the convention."""
    table = grid(trial)
    out: dict[str, float] = {}
    cr2 = table[table["analysis"].str.contains("cov_type=bias_reduced", regex=False)]
    by_patient = cr2["analysis"].str.contains("cluster=patient", regex=False)
    for cluster in ("patient", "lesion"):
        for outcome in ("length", "width"):
            rows = cr2[(cr2["outcome"] == outcome) & (by_patient == (cluster == "patient"))]
            out[f"{outcome}_cr2_{cluster}_df"] = float(rows["df"].iloc[0]) if len(rows) else np.nan
        column = "patient_id" if cluster == "patient" else "lesion_id"
        clusters = models.with_patient_id(trial.measurements)[column].nunique()
        out[f"{cluster}_clusters"] = int(clusters)
        out[f"{cluster}_clusters_minus_1"] = int(clusters) - 1
    return out


def small_sample_sentence(numbers: dict[str, float]) -> str:
    """Methods' statement of the CR2 Satterthwaite df beside G − 1 (`small_sample_numbers`),
    with a fit that could not be made said in words, never as a number."""

    def df(outcome: str, cluster: str) -> str:
        value = numbers[f"{outcome}_cr2_{cluster}_df"]
        return f"{value:.1f}" if np.isfinite(value) else "not estimable"

    patients, lesions = (numbers[f"{c}_clusters"] for c in ("patient", "lesion"))
    return (
        f"With the {patients:d} patients as clusters these are {df('length', 'patient')} for "
        f"length and {df('width', 'patient')} for width, not "
        f"{numbers['patient_clusters_minus_1']:d}; with the {lesions:d} lesions as clusters, "
        f"{df('length', 'lesion')} and {df('width', 'lesion')} rather than "
        f"{numbers['lesion_clusters_minus_1']:d}."
    )


def distinct(table: pd.DataFrame) -> pd.DataFrame:
    """One row per outcome and distinct analysis (the grid repeats the primary model as the
    reference of each factor): what every count and range of the grid is taken over."""
    return table.drop_duplicates(["outcome", "analysis"]).reset_index(drop=True)


def estimable(table: pd.DataFrame) -> pd.DataFrame:
    """The rows with an estimate: ranges, tallies and plots leave the others out."""
    return table[table["pct_per_visit"].notna()]


def significant_share(table: pd.DataFrame, alpha: float = 0.05) -> tuple[int, int]:
    """(distinct analyses with p < alpha, distinct analyses estimated): the grid's headline."""
    fitted = estimable(distinct(table))
    return int((fitted["p"] < alpha).sum()), int(len(fitted))


def sentences(trial: Trial) -> dict[str, str]:
    """The sensitivity chapter's statements, over distinct analyses: how many there are, which
    directions their intervals take, which include no change or could not be fitted, and
    what follows — worded from the grid, so other data get other words."""
    table = distinct(grid(trial))
    n_patients = int(models.with_patient_id(trial.measurements)["patient_id"].nunique())
    parts = {"length": "", "width": ""}
    crossing_all, missing_all, below, fitted_n = [], [], 0, 0
    for outcome in parts:
        rows = table[table["outcome"] == outcome]
        fitted = estimable(rows)
        down, up = int((fitted["ci_high"] < 0).sum()), int((fitted["ci_low"] > 0).sum())
        crossing = fitted[(fitted["ci_low"] <= 0) & (fitted["ci_high"] >= 0)]
        crossing_all.append(crossing)
        missing_all.append(rows[rows["pct_per_visit"].isna()])
        below += int((fitted["pct_per_visit"] < 0).sum())
        fitted_n += len(fitted)
        parts[outcome] = (
            f"Of the {len(rows)} distinct analyses of {outcome}, {len(fitted)} could be fitted: "
            f"{down} give an interval entirely below zero, {up} entirely above it, and "
            f"{len(crossing)} an interval that includes no change."
        )
    qic = table.dropna(subset=["qic"])
    best = [
        f"{rows.loc[rows['qic'].idxmin(), 'choice']} for {outcome}"
        for outcome, rows in qic.groupby("outcome", sort=False)
    ]
    out_qic = (
        "Among the working correlations, QIC (each on the scale of the independence model) is "
        "smallest with " + " and ".join(best) + "."
        if best
        else "No working correlation could be compared by QIC."
    )
    crossing = pd.concat(crossing_all)
    missing = pd.concat(missing_all)
    out = {
        "qic_sentence": out_qic,
        "count_sentence": f"The grid holds {len(table) // 2} distinct analyses per outcome; the "
        "primary model, shown as the reference of several factors, counts once. "
        + " ".join(parts.values()),
        "crossing_sentence": _listed(
            crossing,
            "Every interval that could be fitted excludes no change.",
            "The interval includes no change for",
        ),
        "not_estimable_sentence": _listed(
            missing,
            "Every analysis could be fitted.",
            "These analyses could not be fitted, and are left out of every count, range and plot:",
            reasons=True,
        ),
    }
    out["leave_out_sentence"] = leave_out_sentence(trial)
    direction = (
        f"{'Every one' if below == fitted_n else f'{below}'} of the {fitted_n} estimable "
        "analyses (both outcomes) puts the change below zero"
    )
    if crossing.empty:
        out["conclusion"] = f"{direction}, and every interval excludes no change."
    elif crossing["analysis"].map(_patient_level).all():
        out["conclusion"] = (
            f"{direction}; the intervals that include no change all come from analyses that "
            f"take the {n_patients} patients, not the lesions, as the independent units "
            "(patients as clusters, or a change per visit that varies between patients), so "
            "whether the change is distinguishable from chance at the level of patients "
            "depends on treating lesions as independent."
        )
    else:
        out["conclusion"] = (
            f"{direction}; {len(crossing)} intervals include no change, from several kinds of "
            "analysis (listed above)."
        )
    return out


def leave_out_method() -> str:
    """How leaving out one patient is computed, for Methods: the switch and its method."""
    return (
        f"Leaving out one patient at a time refits the primary model without each patient "
        f"while a trial has at most {EXACT_LEAVE_ONE_OUT_MAX} patients. Beyond that the "
        "change in the time coefficient from deleting each patient is estimated in one step "
        "from the full fit (the cluster-deletion diagnostic of Preisser and Qaqish, with the "
        "working correlation and scale held at their full-data values), and the "
        f"{INFLUENTIAL_REFITS} patients whose deletion moves it most, in units of its robust "
        "standard error, are refitted exactly. The one-step change is shown for every patient "
        "in either case."
    )


def leave_out_sentence(trial: Trial) -> str:
    """Which patients the grid's leave-one-out rows refit, in these data."""
    n_patients = len(trial.patients)
    if n_patients <= EXACT_LEAVE_ONE_OUT_MAX:
        return f"Each of the {n_patients} patients is left out in turn and the model refitted."
    return (
        f"With {n_patients} patients, the grid refits the model without each of the "
        f"{INFLUENTIAL_REFITS} patients whose one-step deletion estimate moves the change per "
        "visit most (for each outcome); the one-step estimate for every patient is in the "
        "influence plot."
    )


def _patient_level(analysis: str) -> bool:
    """Whether an analysis draws its uncertainty from the patients: patient clusters, or a
    random slope for each patient."""
    return "cluster=patient" in analysis or "random slopes" in analysis


def _listed(rows: pd.DataFrame, none: str, lead: str, reasons: bool = False) -> str:
    if rows.empty:
        return none
    columns = rows[["outcome", "factor", "choice", "note"]]
    items = [
        f"{outcome}, {factor}: {choice}" + (f" — {note}" if reasons else "")
        for outcome, factor, choice, note in columns.itertuples(index=False)
    ]
    return f"{lead} " + "; ".join(items) + "."
