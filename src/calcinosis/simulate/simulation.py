"""A model of lesion trajectories fitted to the trial's data, and simulated randomised trials.

Every value of the model is estimated from the measurements of one outcome (length by
default) or taken from the data as they are; `calcinosis.simulate.power.assumptions` lists each with
its source.

On the log scale, lesion j of patient i measures at visit v (time t = v − 1)

    log y = μ + aᵢ + bᵢⱼ + (s_arm + cᵢ + dᵢⱼ)·t + eᵢⱼₜ − ½·Var(aᵢ + bᵢⱼ + (cᵢ + dᵢⱼ)·t + eᵢⱼₜ)

with independent normal patient (a, c) and lesion (b, d) deviations in level and slope, and
AR(1) within-lesion errors e over visits. The last term centres the deviations on the mean
scale, so the population-average size is exactly exp(μ + s_arm·t): the model the pilot's
GEE (Gaussian, log link) fits, and the arms differ by exactly `effect` on that scale, the
control arm changing by `control_slope` per visit (a stated scenario: the pilot had no
control arm, so its own change cannot be told from spontaneous regression).

The slope and residual SDs come from the random-slope mixed model (`calcinosis.stats.mixed`, REML),
which separates the spread of true slopes from the error of estimating each lesion's slope;
the level SDs, which that error barely touches, from the lesions' least-squares lines. Sizes
are recorded to the data's recording step, and a lesion resolves (0 from then on) with the
share of lesions the data see resolve, at a visit drawn uniformly, in both arms alike.

A trial (`Design`) randomises children (parallel groups) or each child's lesions
(within-patient), draws each child's lesion count from the pilot's counts capped at
`lesion_cap`, loses a child after a uniformly drawn visit with probability `dropout` and
each later visit of a child with probability `missed`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import numpy as np
import pandas as pd
from scipy import stats

from calcinosis.data.trial import Trial
from calcinosis.stats import arraygee, arraymixed, mixed, models

OUTCOME = "length"
SECOND = "width"  # the co-primary outcome: both must show the effect
MIN_POINTS = 3  # nonzero measurements a lesion needs to give a level, a slope and residuals
DESIGNS = ("parallel", "within")


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
    slope_source: str  # how the slope and residual SDs were estimated
    # the co-primary outcome (width): its own model, and the correlation between a lesion's
    # length and width slopes (per-lesion least-squares lines), which the simulated
    # patient and lesion slope deviations share
    width: Model | None = None
    slope_correlation: float = 0.0

    def as_dict(self) -> dict:
        return asdict(self)


def model_from_dict(plain: dict) -> Model:
    """A `Model` from `Model.as_dict()` (JSON lists back to tuples, the width model too)."""
    width = plain.get("width")
    return Model(
        **{
            **plain,
            "lesions_per_patient": tuple(plain["lesions_per_patient"]),
            "width": model_from_dict(width) if width else None,
        }
    )


def fit_model(trial: Trial, outcome: str = OUTCOME, second: str | None = SECOND) -> Model:
    """The simulation model's values from the trial's measurements (see `power.assumptions`),
    with the co-primary outcome's (`second`; None: none) and the correlation of the two
    outcomes' slopes."""
    primary = _fit_one(trial, outcome)
    if second is None:
        return primary
    return replace(
        primary,
        width=_fit_one(trial, second),
        slope_correlation=slope_correlation(trial, outcome, second),
    )


def slope_correlation(trial: Trial, first: str, second: str) -> float:
    """Pearson correlation of the lesions' least-squares slopes of log size on visit in the
    two outcomes (lesions with MIN_POINTS nonzero values in both; 0 when fewer than three).
    Each slope carries its estimation error, which pulls the correlation towards 0."""
    frame = models.with_patient_id(trial.measurements)
    try:
        lines = [_lesion_lines(frame, models.outcome_column(o)) for o in (first, second)]
    except models.NotEstimableError:
        return 0.0
    both = lines[0].merge(lines[1], on=["patient_id", "lesion_id"], suffixes=("_1", "_2"))
    if len(both) < 3:
        return 0.0
    value = float(np.corrcoef(both["slope_1"], both["slope_2"])[0, 1])
    return float(np.clip(value, -0.99, 0.99)) if np.isfinite(value) else 0.0


def _fit_one(trial: Trial, outcome: str) -> Model:
    column = models.outcome_column(outcome)
    frame = models.with_patient_id(trial.measurements).dropna(subset=[column])
    lines = _lesion_lines(frame, column)
    level = _split_variance(lines, "level")
    residuals = [r for r in lines["residuals"] if len(r) > 2]
    last = frame.sort_values("visit").groupby("lesion_id")[column].last()
    counts = frame.groupby("patient_id")["lesion_id"].nunique().sort_index()
    slopes = _slope_components(frame, column, lines, residuals)
    return Model(
        outcome=outcome,
        log_mean_baseline=float(lines["level"].mean()),
        sd_patient_level=level[0],
        sd_lesion_level=level[1],
        sd_patient_slope=slopes[0],
        sd_lesion_slope=slopes[1],
        sd_residual=slopes[2],
        ar1=_lag1(residuals),
        resolution=float((last == 0).mean()),
        resolution_mm=_step(frame[column]),
        lesions_per_patient=tuple(int(c) for c in counts),
        n_lesions_fitted=len(lines),
        slope_source=slopes[3],
    )


def _slope_components(
    frame: pd.DataFrame, column: str, lines: pd.DataFrame, residuals: list[np.ndarray]
) -> tuple[float, float, float, str]:
    """(patient slope SD, lesion slope SD, residual SD, source): from the REML random-slope
    model of log size on time when it is estimable, else the least-squares lines' ANOVA
    moments (which count each slope's estimation error as spread between lesions)."""
    positive = frame[frame[column] > 0]
    data = pd.DataFrame(
        {
            "patient_id": positive["patient_id"],
            "lesion_id": positive["lesion_id"],
            "time": positive["visit"].to_numpy(float) - 1.0,
            "y": np.log(positive[column].to_numpy(float)),
        }
    )
    try:
        fit = mixed.fit_random_slopes(data, "y")
    except models.NotEstimableError as err:
        slope = _split_variance(lines, "slope")
        rmse = float(np.sqrt(np.mean(np.concatenate(residuals) ** 2)))
        return slope[0], slope[1], rmse, f"per-lesion lines, ANOVA moments ({err})"
    return (
        fit.sd_patient_slope,
        fit.sd_lesion_slope,
        fit.sd_residual,
        "random-slope mixed model (REML)",
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


@dataclass(frozen=True)
class Design:
    """How a simulated trial is run: what is randomised, lesions per child, losses."""

    allocation: str = "parallel"  # "parallel": children randomised; "within": their lesions
    visits: int = 16
    lesion_cap: int | None = 4  # a child's lesion count is drawn from the pilot's, capped here
    dropout: float = 0.0  # share of children lost after a uniformly drawn visit
    missed: float = 0.0  # share of a remaining child's visits after the first not attended

    def __post_init__(self) -> None:
        if self.allocation not in DESIGNS:
            raise ValueError(f"design {self.allocation!r}: use one of {', '.join(DESIGNS)}")
        if not (0 <= self.dropout < 1 and 0 <= self.missed < 1):
            raise ValueError(f"dropout={self.dropout}, missed={self.missed}: use shares in [0, 1)")


def simulate_trial(
    model: Model,
    design: Design,
    children: int,
    effect: float,
    rng: np.random.Generator,
    control_slope: float = 0.0,
    width_slopes: tuple[float, float] | None = None,
) -> pd.DataFrame:
    """One randomised trial of `children` children (even; parallel: half per arm).

    `effect` is the difference in log size per visit, injection minus control;
    `control_slope` the control arm's own change. Rows (visits not attended left out):
    patient_id, lesion_id (integer codes: this runs for every simulated trial, and strings
    cost more than the analyses), arm (1 injection, 0 control), visit, size (the outcome's
    column); with `width_slopes` (control arm's change, effect) and the model's width model,
    the width's column too, drawn after everything else (so the lengths do not depend on
    it), its slope deviations correlated with the length's, resolving with the lesion.
    """
    visits = design.visits
    counts = rng.choice(model.lesions_per_patient, size=children)
    if design.lesion_cap:
        counts = np.minimum(counts, design.lesion_cap)
    patient = np.repeat(np.arange(children), counts)
    arm = allocate(design.allocation, counts, rng)
    n_lesions = patient.size
    normal = {
        "a": rng.normal(0, 1, children),
        "c": rng.normal(0, 1, children),
        "b": rng.normal(0, 1, n_lesions),
        "d": rng.normal(0, 1, n_lesions),
    }
    e = _ar1_errors(rng, n_lesions, visits, model.sd_residual, model.ar1)
    size = _sizes(model, normal, e, patient, control_slope + effect * arm, visits)
    resolves = rng.random(n_lesions) < model.resolution
    at = rng.integers(1, visits, size=n_lesions) if visits > 1 else np.zeros(n_lesions, int)
    gone = resolves[:, None] & (np.arange(visits) >= at[:, None])
    seen = attended(design, children, rng)[patient]
    columns = {models.outcome_column(model.outcome): _recorded(size, gone, model)}
    if width_slopes is not None and model.width is not None:
        columns[models.outcome_column(model.width.outcome)] = _width(
            model, normal, patient, arm, width_slopes, gone, rng
        )
    frame = pd.DataFrame(
        {
            "patient_id": np.repeat(patient, visits),
            "lesion_id": np.repeat(np.arange(n_lesions), visits),
            "arm": np.repeat(arm, visits),
            "visit": np.tile(np.arange(1, visits + 1), n_lesions),
            **{name: values.ravel() for name, values in columns.items()},
        }
    )
    return frame[seen.ravel()].reset_index(drop=True)


def _sizes(model: Model, normal: dict, e: np.ndarray, patient, slope, visits: int):
    """Sizes (lesions × visits) on the model's mean scale from standard normal deviations."""
    t = np.arange(visits, dtype=float)
    a = model.sd_patient_level * normal["a"][patient]
    c = model.sd_patient_slope * normal["c"][patient]
    b = model.sd_lesion_level * normal["b"]
    d = model.sd_lesion_slope * normal["d"]
    variance = (
        model.sd_patient_level**2
        + model.sd_lesion_level**2
        + (model.sd_patient_slope**2 + model.sd_lesion_slope**2) * t**2
        + model.sd_residual**2
    )
    log_size = (
        model.log_mean_baseline + (a + b)[:, None] + (slope + c + d)[:, None] * t + e - variance / 2
    )
    return np.exp(log_size)


def _recorded(size: np.ndarray, gone: np.ndarray, model: Model) -> np.ndarray:
    """Resolved lesions at 0, sizes to the recording step."""
    size = np.where(gone, 0.0, size)
    if model.resolution_mm > 0:
        size = np.round(size / model.resolution_mm) * model.resolution_mm
    return size


def _width(model: Model, normal: dict, patient, arm, slopes, gone, rng) -> np.ndarray:
    """The co-primary outcome: its own model's levels, errors and slope SDs; its slope
    deviations share `slope_correlation` with the length's (patient and lesion alike)."""
    width = model.width
    assert width is not None
    r = model.slope_correlation
    children, n_lesions = len(normal["a"]), len(normal["b"])
    own = {
        "a": rng.normal(0, 1, children),
        "b": rng.normal(0, 1, n_lesions),
        "c": r * normal["c"] + np.sqrt(1 - r**2) * rng.normal(0, 1, children),
        "d": r * normal["d"] + np.sqrt(1 - r**2) * rng.normal(0, 1, n_lesions),
    }
    visits = gone.shape[1]
    e = _ar1_errors(rng, n_lesions, visits, width.sd_residual, width.ar1)
    size = _sizes(width, own, e, patient, slopes[0] + slopes[1] * arm, visits)
    return _recorded(size, gone, width)


def allocate(allocation: str, counts: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Each lesion's arm. Parallel: the first half of the children control, the second
    injection (children are exchangeable draws, so this is a randomisation). Within: each
    child's lesions split as evenly as they can be, the odd lesion's arm by a coin."""
    if allocation == "parallel":
        half = len(counts) // 2
        return np.repeat((np.arange(len(counts)) >= half).astype(int), counts)
    arms = []
    for k in counts:
        split = np.arange(k) % 2
        if k % 2 and rng.random() < 0.5:
            split = 1 - split
        arms.append(rng.permutation(split))
    return np.concatenate(arms).astype(int)


def attended(design: Design, children: int, rng: np.random.Generator) -> np.ndarray:
    """(children × visits) True where the child came: all at visit 1; a dropout's visits
    after a uniformly drawn last visit lost; each other later visit missed at `missed`."""
    visits = design.visits
    seen = np.ones((children, visits), bool)
    if visits < 2:
        return seen
    drops = rng.random(children) < design.dropout
    last = rng.integers(1, visits, size=children)  # last visit attended: 1 .. visits − 1
    seen[drops[:, None] & (np.arange(1, visits + 1)[None, :] > last[:, None])] = False
    seen[:, 1:] &= rng.random((children, visits - 1)) >= design.missed
    return seen


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


def pct_at_end(effect: float, visits: int) -> float:
    """A difference in log size per visit as the per cent difference in size at the last
    visit, injection against control (visits − 1 intervals)."""
    return float(100.0 * np.expm1(effect * (visits - 1)))


# --------------------------------------------------------------------------------------------
# Analyses of a simulated trial, and a block of replicates
# --------------------------------------------------------------------------------------------

# GEE name: (cluster column, covariance); see calcinosis.simulate.power for why these
GEE = {"gee_patient": ("patient_id", "bias_reduced"), "gee_lesion": ("lesion_id", "robust")}
# summary slope of length and of width: the trial succeeds only if both reject
COPRIMARY = "coprimary"
RESPONDER = "responder"
MIXED = "mixed"
ANALYSES = (*GEE, MIXED, "summary", COPRIMARY, RESPONDER)
TERM = "arm × time"
# A lesion responds when its length at the last visit is at most this share of its first
# (a fall of 30 % or more, RECIST's partial response); a child responds when the sum of
# its lesions' lengths does (lesions measured at both visits; a child not seen at the last
# visit does not respond).
RESPONSE_SHARE = 0.7


def analyse(trial: pd.DataFrame, column: str, allocation: str, analyses=ANALYSES) -> dict:
    """The effect of one simulated trial under each of `analyses`: estimate, SE, reference
    df (inf: z) and p, NaN when the fit failed or did not converge, and `<name>_ran` true
    (a run may leave costly analyses out of some replicates). The co-primary analysis's p is
    the larger of the two outcomes' (both reject at α exactly when it is below α) and its
    estimate the width's; the responder analysis's estimate is the difference in shares."""
    out: dict[str, float] = {}
    for name in analyses:
        if name in GEE:
            test = _gee(trial, column, *GEE[name])
        elif name == COPRIMARY:
            test = coprimary(trial, column, models.outcome_column(SECOND), allocation)
        elif name == RESPONDER:
            test = responder(trial, column, allocation)
        elif name == MIXED:
            test = random_slopes(trial, column)
        else:
            test = summary_slope(trial, column, allocation)
        out.update(_named(name, test))
    return out


def coprimary(trial: pd.DataFrame, first: str, second: str, allocation: str) -> models.TermTest:
    """Both outcomes' summary slopes; p the larger of their p (an intersection–union test:
    its level is at most α whatever the outcomes' correlation)."""
    tests = [summary_slope(trial, c, allocation) for c in (first, second)]
    if not all(np.isfinite(t.p) for t in tests):
        return FAILED
    return models.TermTest(tests[1].beta, tests[1].se, tests[1].df, max(t.p for t in tests))


def responder(trial: pd.DataFrame, column: str, allocation: str) -> models.TermTest:
    """Responders by arm (`RESPONSE_SHARE`). Parallel: children, by Fisher's exact test.
    Within: each child's injected and control lesions judged apart (as a child's sum), the
    children whose two verdicts differ compared by an exact binomial (McNemar) test. The
    estimate is the difference in the share responding; no SE (an exact test)."""
    visit = trial["visit"].to_numpy()
    last = int(visit.max())
    size = trial[column].to_numpy(float)
    lesion = trial["lesion_id"].to_numpy()
    n = int(lesion.max()) + 1
    first_size, last_size = np.full(n, np.nan), np.full(n, np.nan)
    first_size[lesion[visit == 1]] = size[visit == 1]
    last_size[lesion[visit == last]] = size[visit == last]
    both = np.isfinite(first_size) & np.isfinite(last_size)
    # per child and arm (code 2·child + arm): sums over the lesions seen at both visits
    unit = np.zeros(n, int)
    unit[lesion] = trial["patient_id"].to_numpy() * 2 + trial["arm"].to_numpy()
    units = np.unique(unit[np.isin(np.arange(n), lesion)])
    start = np.bincount(unit[both], first_size[both], minlength=units.max() + 1)
    end = np.bincount(unit[both], last_size[both], minlength=units.max() + 1)
    responds = (start > 0) & (end <= RESPONSE_SHARE * start)
    verdict = pd.Series(
        responds[units].astype(int),
        index=pd.MultiIndex.from_arrays([units // 2, units % 2], names=["patient_id", "arm"]),
    )
    if allocation == "within":
        table = verdict.unstack("arm").dropna()
        if table.shape[1] < 2 or len(table) < 2:
            return FAILED
        better, worse = int(np.sum(table[1] > table[0])), int(np.sum(table[1] < table[0]))
        p = float(stats.binomtest(better, better + worse).pvalue) if better + worse else 1.0
        beta = float(table[1].mean() - table[0].mean())
    else:
        arm = verdict.index.get_level_values("arm")
        counts = [[int(verdict[arm == a].sum()), int((arm == a).sum())] for a in (1, 0)]
        if min(c[1] for c in counts) < 1:
            return FAILED
        table2 = [[k, n - k] for k, n in counts]
        p = float(stats.fisher_exact(table2).pvalue)
        beta = counts[0][0] / counts[0][1] - counts[1][0] / counts[1][1]
    return models.TermTest(beta, np.nan, None, p)


def _named(name: str, test: models.TermTest) -> dict[str, float]:
    return {
        f"{name}_beta": test.beta,
        f"{name}_se": test.se,
        f"{name}_df": np.inf if test.df is None else test.df,
        f"{name}_p": test.p,
        f"{name}_ran": True,
    }


FAILED = models.TermTest(np.nan, np.nan, np.nan, np.nan)


def _gee(trial: pd.DataFrame, column: str, cluster: str, cov_type: str) -> models.TermTest:
    """The arm × time term of the pilot's GEE (Gaussian, log link, exchangeable), fitted on
    arrays (`calcinosis.stats.arraygee`: what `models.fit_design` and `models.term_test` give, at a
    fraction of their cost)."""
    frame = trial.sort_values([cluster, "visit"], kind="mergesort")
    time = frame["visit"].to_numpy(float) - 1.0
    arm = frame["arm"].to_numpy(float)
    x = np.column_stack([np.ones(len(frame)), arm, time, arm * time])
    y = frame[column].to_numpy(float)
    code = pd.factorize(frame[cluster])[0]
    try:
        fit = arraygee.fit(y, x, code)
        test = arraygee.term_test(fit, y, code, 3, cov_type)
    except (models.NotEstimableError, np.linalg.LinAlgError, ValueError):
        return FAILED
    return test if fit.converged and np.isfinite(test.p) else FAILED


def random_slopes(trial: pd.DataFrame, column: str) -> models.TermTest:
    """The arm × time term of the random-slope mixed model (`calcinosis.stats.arraymixed`:
    lme4's `y ~ arm * time + (1 + time | patient) + (1 + time | patient:lesion)` by REML, with
    lmerTest's Satterthwaite t) on y = log(size + 1 mm), so a resolved lesion's 0 stays in.
    A singular fit (a variance at 0) counts, as lmerTest reports it; failed: not converged."""
    time = trial["visit"].to_numpy(float) - 1.0
    arm = trial["arm"].to_numpy(float)
    x = np.column_stack([np.ones(len(trial)), arm, time, arm * time])
    y = np.log1p(trial[column].to_numpy(float))
    patient, lesion = trial["patient_id"].to_numpy(), trial["lesion_id"].to_numpy()
    try:
        result = arraymixed.fit(arraymixed.blocks(y, x, time, patient, lesion))
        return arraymixed.term_test(result, 3)
    except (models.NotEstimableError, np.linalg.LinAlgError):
        return FAILED


def summary_slope(trial: pd.DataFrame, column: str, allocation: str) -> models.TermTest:
    """The patient-level summary-slope analysis: each lesion's least-squares slope of log
    size on visit (its nonzero measurements, at least MIN_POINTS, one at visit 1), averaged
    per child and arm. Parallel: the children's mean slopes by ANCOVA on arm and the child's
    mean log size at visit 1 (t with n − 3 df). Within: each child's injected minus control
    mean slope, by a one-sample t-test (children with lesions in both arms). One number per
    child, so the test's level does not rest on a working correlation."""
    child, arm, slope, baseline = _lesion_slopes(trial, column)
    # per child and arm: mean slope and baseline (sums over lesions, no loop)
    cell, where = np.unique(child * 2 + arm, return_inverse=True)
    count = np.bincount(where)
    mean_slope = np.bincount(where, slope) / count
    mean_base = np.bincount(where, baseline) / count
    cell_child, cell_arm = cell // 2, cell % 2
    if allocation == "within":
        both = np.intersect1d(cell_child[cell_arm == 0], cell_child[cell_arm == 1])
        if len(both) < 2:
            return FAILED
        treated = mean_slope[cell_arm == 1][np.isin(cell_child[cell_arm == 1], both)]
        control = mean_slope[cell_arm == 0][np.isin(cell_child[cell_arm == 0], both)]
        diff = treated - control
        beta, df = float(diff.mean()), len(diff) - 1.0
        se = float(diff.std(ddof=1) / np.sqrt(len(diff)))
    else:
        if min(np.sum(cell_arm == 0), np.sum(cell_arm == 1)) < 2 or len(cell) < 4:
            return FAILED
        x = np.column_stack([np.ones(len(cell)), cell_arm, mean_base]).astype(float)
        coef, *_ = np.linalg.lstsq(x, mean_slope, rcond=None)
        df = len(cell) - 3.0
        resid = mean_slope - x @ coef
        cov = (resid @ resid / df) * np.linalg.pinv(x.T @ x)
        beta, se = float(coef[1]), float(np.sqrt(cov[1, 1]))
    if not (se > 0 and np.isfinite(se)):
        return FAILED
    p = float(2 * stats.t.sf(abs(beta / se), df))
    return models.TermTest(beta, se, df, p)


def _lesion_slopes(trial: pd.DataFrame, column: str) -> tuple[np.ndarray, ...]:
    """Per lesion with MIN_POINTS nonzero sizes, one at visit 1: child (an integer code),
    arm, least-squares slope of log size on visit and log size at visit 1 (sums over rows,
    not a loop over lesions: this runs for every simulated trial)."""
    positive = trial[trial[column] > 0]
    lesion = pd.factorize(positive["lesion_id"])[0]
    child = pd.factorize(positive["patient_id"])[0]
    arm = positive["arm"].to_numpy(int)
    t = positive["visit"].to_numpy(float) - 1.0
    y = np.log(positive[column].to_numpy(float))
    n = np.bincount(lesion).astype(float)
    st, sy = np.bincount(lesion, t), np.bincount(lesion, y)
    stt, sty = np.bincount(lesion, t * t), np.bincount(lesion, t * y)
    first = t == 0
    base = np.bincount(lesion, np.where(first, y, 0.0))
    has_first = np.bincount(lesion, first.astype(float)) > 0
    keep = (n >= MIN_POINTS) & has_first
    head = np.zeros(len(n), int)
    head[lesion[::-1]] = np.arange(len(lesion))[::-1]  # each lesion's first row
    slope = (n * sty - st * sy) / np.where(keep, n * stt - st**2, 1.0)
    return child[head][keep], arm[head][keep], slope[keep], base[keep]


def replicate_rng(
    seed: int, allocation: str, children: int, visits: int, replicate: int
) -> np.random.Generator:
    """A generator that depends on these numbers only: not on the effect or the control
    arm's change (cells that differ only in those share their simulated children), the
    block, the worker or the order."""
    code = DESIGNS.index(allocation)
    return np.random.default_rng(np.random.SeedSequence([seed, code, children, visits, replicate]))


def run_block(model: dict, design: dict, cell: dict, seed: int, first: int, last: int) -> list:
    """Rows of replicates `first`..`last` of one grid cell (a runner task: plain arguments
    in, plain rows out). `cell` holds its names (design, scenario, effect, children), the
    control arm's change and the effect (log per visit), the analyses to run, and for an
    ensemble member's trials its seed (`member`)."""
    sim = model_from_dict(model)
    plan = Design(**design)
    column = models.outcome_column(sim.outcome)
    names = ("member", "design", "scenario", "effect", "children", "true_effect")
    head = {k: cell[k] for k in names if k in cell}
    width_slopes = None
    if COPRIMARY in cell["analyses"]:
        width_slopes = (cell["control_slope_width"], cell["true_effect_width"])
    rows = []
    for r in range(first, last + 1):
        rng = replicate_rng(seed, plan.allocation, cell["children"], plan.visits, r)
        trial = simulate_trial(
            sim,
            plan,
            cell["children"],
            cell["true_effect"],
            rng,
            cell["control_slope"],
            width_slopes,
        )
        rows.append(
            {
                **head,
                "replicate": r,
                "n_lesions": int(trial["lesion_id"].nunique()),
                **analyse(trial, column, plan.allocation, cell["analyses"]),
            }
        )
    return rows
