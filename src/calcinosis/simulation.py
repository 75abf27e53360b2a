"""A model of lesion trajectories fitted to the trial's data, and simulated randomised trials.

Every value of the model is estimated from the measurements of one outcome (length by
default) or taken from the data as they are; `calcinosis.power.assumptions` lists each with
its source.

On the log scale, lesion j of patient i measures at visit v (time t = v − 1)

    log y = μ + aᵢ + bᵢⱼ + (β_arm + cᵢ + dᵢⱼ)·t + eᵢⱼₜ − ½·Var(aᵢ + bᵢⱼ + (cᵢ + dᵢⱼ)·t + eᵢⱼₜ)

with independent normal patient (a, c) and lesion (b, d) deviations in level and slope, and
AR(1) within-lesion errors e over visits. The last term centres the deviations on the mean
scale, so the population-average size is exactly exp(μ + β_arm·t): the model the pilot's
GEE (Gaussian, log link) fits, and the arms differ by exactly `effect` on that scale.
Sizes are recorded to the data's recording step, and a lesion resolves (0 from then on)
with the share of lesions the data see resolve, at a visit drawn uniformly, in both arms
alike: resolution multiplies both arms' means by one factor, so the effect stays what it is.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from calcinosis import models
from calcinosis.data import Trial

OUTCOME = "length"
MIN_POINTS = 3  # nonzero measurements a lesion needs to give a level, a slope and residuals


@dataclass(frozen=True)
class Model:
    """The fitted simulation model (log scale, per visit). See the module docstring."""

    outcome: str
    log_mean_baseline: float  # μ
    sd_patient_level: float  # a
    sd_lesion_level: float  # b
    sd_patient_slope: float  # c
    sd_lesion_slope: float  # d
    sd_residual: float  # e
    ar1: float  # correlation of e between consecutive visits
    resolution: float  # share of lesions resolved (0) by their last measurement
    resolution_mm: float  # sizes are recorded to this step
    lesions_per_patient: tuple[int, ...]  # as observed, drawn with replacement
    n_lesions_fitted: int  # lesions with ≥ MIN_POINTS nonzero values behind the variances

    def as_dict(self) -> dict:
        return asdict(self)


def fit_model(trial: Trial, outcome: str = OUTCOME) -> Model:
    """The simulation model's values from the trial's measurements (see `Model.assumptions`)."""
    column = models.outcome_column(outcome)
    frame = models.with_patient_id(trial.measurements).dropna(subset=[column])
    lines = _lesion_lines(frame, column)
    level = _split_variance(lines, "level")
    slope = _split_variance(lines, "slope")
    residuals = [r for r in lines["residuals"] if len(r) > 2]
    last = frame.sort_values("visit").groupby("lesion_id")[column].last()
    counts = frame.groupby("patient_id")["lesion_id"].nunique().sort_index()
    return Model(
        outcome=outcome,
        log_mean_baseline=float(lines["level"].mean()),
        sd_patient_level=level[0],
        sd_lesion_level=level[1],
        sd_patient_slope=slope[0],
        sd_lesion_slope=slope[1],
        sd_residual=float(np.sqrt(np.mean(np.concatenate(residuals) ** 2))),
        ar1=_lag1(residuals),
        resolution=float((last == 0).mean()),
        resolution_mm=_step(frame[column]),
        lesions_per_patient=tuple(int(c) for c in counts),
        n_lesions_fitted=len(lines),
    )


def _lesion_lines(frame: pd.DataFrame, column: str) -> pd.DataFrame:
    """Level (log size at visit 1), slope per visit and residuals of each lesion's line."""
    rows = []
    for (patient, lesion), part in frame[frame[column] > 0].groupby(["patient_id", "lesion_id"]):
        if len(part) < MIN_POINTS:
            continue
        t = part["visit"].to_numpy(float) - 1.0
        y = np.log(part[column].to_numpy(float))
        slope, level = np.polyfit(t, y, 1)
        rows.append(
            {
                "patient_id": patient,
                "lesion_id": lesion,
                "level": level,
                "slope": slope,
                "residuals": y - (level + slope * t),
            }
        )
    if len(rows) < 2:
        raise models.NotEstimableError(
            f"{column}: fewer than two lesions with {MIN_POINTS} nonzero measurements; "
            "no simulation model can be fitted"
        )
    return pd.DataFrame(rows)


def _split_variance(lines: pd.DataFrame, name: str) -> tuple[float, float]:
    """(between-patient SD, within-patient SD) of a lesion quantity: one-way ANOVA moments
    for unbalanced groups, the between part floored at 0."""
    groups = [g[name].to_numpy() for _, g in lines.groupby("patient_id")]
    n, k = len(lines), len(groups)
    grand = lines[name].mean()
    within_df = n - k
    ss_within = sum(((g - g.mean()) ** 2).sum() for g in groups)
    ss_between = sum(len(g) * (g.mean() - grand) ** 2 for g in groups)
    ms_within = ss_within / within_df if within_df > 0 else 0.0
    if k < 2:
        return 0.0, float(np.sqrt(ms_within))
    n0 = (n - sum(len(g) ** 2 for g in groups) / n) / (k - 1)
    between = max((ss_between / (k - 1) - ms_within) / n0, 0.0)
    return float(np.sqrt(between)), float(np.sqrt(ms_within))


def _lag1(residuals: list[np.ndarray]) -> float:
    """Pooled lag-1 autocorrelation of the lesions' residual series."""
    num = sum(float(r[1:] @ r[:-1]) for r in residuals)
    den = sum(float(r @ r) for r in residuals)
    return float(np.clip(num / den, -0.99, 0.99)) if den > 0 else 0.0


def _step(values: pd.Series) -> float:
    """The coarsest of 1, 0.5, 0.1 and 0.01 mm that every value is a multiple of."""
    for step in (1.0, 0.5, 0.1, 0.01):
        if np.allclose(values / step, np.round(values / step)):
            return step
    return 0.0


# --------------------------------------------------------------------------------------------
# Simulated trials
# --------------------------------------------------------------------------------------------


def simulate_trial(
    model: Model,
    n_per_arm: int,
    visits: int,
    effect: float,
    rng: np.random.Generator,
    control_slope: float = 0.0,
    lesions_per_patient: int | None = None,
) -> pd.DataFrame:
    """One randomised trial: `n_per_arm` patients per arm, measured at visits 1..`visits`.

    `effect` is the difference in log size per visit, injection minus control;
    `control_slope` the control arm's own change (0: none). Lesions per patient are drawn
    from the observed counts unless `lesions_per_patient` fixes them. Rows: patient_id,
    lesion_id, arm (1 injection, 0 control), visit, size (the outcome's column name).
    """
    arms = np.repeat([0, 1], n_per_arm)
    counts = (
        np.full(arms.size, lesions_per_patient)
        if lesions_per_patient
        else rng.choice(model.lesions_per_patient, size=arms.size)
    )
    patient = np.repeat(np.arange(arms.size), counts)
    n_lesions = patient.size
    t = np.arange(visits, dtype=float)
    a = rng.normal(0, model.sd_patient_level, arms.size)[patient]
    c = rng.normal(0, model.sd_patient_slope, arms.size)[patient]
    b = rng.normal(0, model.sd_lesion_level, n_lesions)
    d = rng.normal(0, model.sd_lesion_slope, n_lesions)
    e = _ar1_errors(rng, n_lesions, visits, model.sd_residual, model.ar1)
    slope = control_slope + effect * arms[patient]
    variance = (
        model.sd_patient_level**2
        + model.sd_lesion_level**2
        + (model.sd_patient_slope**2 + model.sd_lesion_slope**2) * t**2
        + model.sd_residual**2
    )
    log_size = (
        model.log_mean_baseline + (a + b)[:, None] + (slope + c + d)[:, None] * t + e - variance / 2
    )
    size = np.exp(log_size)
    resolves = rng.random(n_lesions) < model.resolution
    at = rng.integers(1, visits, size=n_lesions) if visits > 1 else np.zeros(n_lesions, int)
    size[resolves[:, None] & (np.arange(visits) >= at[:, None])] = 0.0
    if model.resolution_mm > 0:
        size = np.round(size / model.resolution_mm) * model.resolution_mm
    column = models.outcome_column(model.outcome)
    return pd.DataFrame(
        {
            "patient_id": np.repeat([f"S{i + 1:03d}" for i in patient], visits),
            "lesion_id": np.repeat(
                [f"S{p + 1:03d}-L{j + 1}" for j, p in enumerate(patient)], visits
            ),
            "arm": np.repeat(arms[patient], visits),
            "visit": np.tile(np.arange(1, visits + 1), n_lesions),
            column: size.ravel(),
        }
    )


def _ar1_errors(rng: np.random.Generator, rows: int, visits: int, sd: float, phi: float):
    """Stationary AR(1) series with marginal SD `sd`, one per row."""
    e = np.empty((rows, visits))
    e[:, 0] = rng.normal(0, sd, rows)
    innovation = sd * np.sqrt(1 - phi**2)
    for v in range(1, visits):
        e[:, v] = phi * e[:, v - 1] + rng.normal(0, innovation, rows)
    return e


def log_slope(pct_per_visit: float) -> float:
    """Change per visit in percent as a difference in log size per visit."""
    return float(np.log1p(pct_per_visit / 100.0))


# --------------------------------------------------------------------------------------------
# Analyses of a simulated trial, and a block of replicates
# --------------------------------------------------------------------------------------------

# name: (cluster column, covariance); see calcinosis.power for why these two
ANALYSES = {"patient": ("patient_id", "bias_reduced"), "lesion": ("lesion_id", "robust")}
TERM = "arm × time"
# What a block of replicates reads from a power grid (plain values, so a task pickles small)
RUN_SETTINGS = ("seed", "replicates", "block", "control_slope_pct", "lesions_per_patient")


def analyse(trial: pd.DataFrame, column: str) -> dict[str, float]:
    """The arm × time effect of one simulated trial under each analysis: estimate, SE, p
    (p is NaN when the fit failed or did not converge)."""
    out: dict[str, float] = {}
    for name, (cluster, cov_type) in ANALYSES.items():
        frame = trial.sort_values([cluster, "visit"], kind="mergesort").reset_index(drop=True)
        frame["time"] = frame["visit"] - 1.0
        covariates = pd.DataFrame(
            {"arm": frame["arm"], "time": frame["time"], TERM: frame["arm"] * frame["time"]}
        )
        try:
            result, converged = models.fit_design(
                frame, column, covariates, cluster, cov_struct="exchangeable", family="gaussian_log"
            )
            test = models.term_test(result, TERM, cov_type)
        except (models.NotEstimableError, np.linalg.LinAlgError, ValueError):
            converged, test = False, models.TermTest(np.nan, np.nan, None, np.nan)
        out[f"{name}_beta"] = test.beta
        out[f"{name}_se"] = test.se
        out[f"{name}_p"] = test.p if converged else np.nan
    return out


def replicate_rng(seed: int, n_per_arm: int, visits: int, replicate: int) -> np.random.Generator:
    """A generator that depends on these numbers only: not on the effect (cells that differ
    only in effect share their simulated patients), the block, the worker or the order."""
    return np.random.default_rng(np.random.SeedSequence([seed, n_per_arm, visits, replicate]))


def run_block(
    model: dict, settings: dict, n_per_arm: int, effect_pct: float, visits: int, block: int
) -> list[dict]:
    """Rows of one block of replicates of one grid cell (a runner task: plain arguments in,
    plain rows out). `settings` holds the grid's RUN_SETTINGS."""
    sim = Model(**{**model, "lesions_per_patient": tuple(model["lesions_per_patient"])})
    column = models.outcome_column(sim.outcome)
    first = block * settings["block"]
    rows = []
    for r in range(first, min(first + settings["block"], settings["replicates"])):
        trial = simulate_trial(
            sim,
            n_per_arm,
            visits,
            log_slope(effect_pct),
            replicate_rng(settings["seed"], n_per_arm, visits, r),
            control_slope=log_slope(settings["control_slope_pct"]),
            lesions_per_patient=settings["lesions_per_patient"],
        )
        rows.append(
            {
                "n_per_arm": n_per_arm,
                "effect_pct": effect_pct,
                "visits": visits,
                "replicate": r,
                "n_lesions": int(trial["lesion_id"].nunique()),
                **analyse(trial, column),
            }
        )
    return rows
