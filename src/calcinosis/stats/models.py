"""The GEE models: the paper's primary model and the variants the sensitivity grid needs.

The primary model is what SPSS GENLIN with REPEATED fits for "change per visit" read as
100·(Exp(B) − 1): Gaussian family, log link, visit − 1 as a continuous term, one cluster per
lesion, exchangeable working correlation, robust (sandwich) covariance with Wald z, and the
scale (and the exchangeable α) divided by N − p as SPSS does. geepack divides by N instead;
`fit_gee(..., ddof_scale=0)` gives its convention, which the geepack test pins.
"""

from __future__ import annotations

import hashlib
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
import statsmodels.api as sm
from scipy import stats
from statsmodels.tools.sm_exceptions import ConvergenceWarning, IterationLimitWarning

from calcinosis.data.trial import Trial
from calcinosis.params import CLUSTERS, COV_STRUCTS
from calcinosis.stats.covstruct import TimeAR1

OUTCOMES = ("length_mm", "width_mm")
TIME_TERM = "time (visit − 1)"
INTERCEPT = "(Intercept)"
CORRELATION_PHRASES = {
    "exchangeable": "an exchangeable working correlation",
    "independence": "an independence working correlation",
    "ar1": "a time-aware AR(1) working correlation (α^|visit difference|)",
}
# The plain sandwich; Mancl–DeRouen's (clubSandwich's CR3, statsmodels' `bias_reduced`); and
# the bias-reduced linearisation of Bell and McCaffrey (CR2), which is Kauermann–Carroll's only
# under an independence working correlation.
COV_TYPES = ("robust", "mancl_derouen", "bias_reduced")
# What each covariance is called wherever the book names it (one name per method).
COV_TYPE_NAMES = {
    "robust": "robust (sandwich)",
    "mancl_derouen": "Mancl–DeRouen",
    "bias_reduced": "bias-reduced linearisation (Bell–McCaffrey), CR2",
}
FAMILIES = ("gaussian_log", "tweedie_log", "gaussian_identity")
TRANSFORMS = ("none", "log", "log1p", "pct_baseline")
TWEEDIE_POWER = 1.5
ALPHA_LIMIT = 0.999  # |α| at or beyond this is a fit that ran to the boundary
MAX_ITER = 200
# A log-link fit whose mean curve leaves the data by this factor has run off (one such fit gave
# +15 395 % per visit): its numbers describe no lesion and are not a result.
DIVERGENCE_FACTOR = 10.0


class NotEstimableError(ValueError):
    """The data cannot support the requested model; the message says why."""


def outcome_column(outcome: str) -> str:
    """Accept "length", "width" or the column names "length_mm", "width_mm"."""
    column = outcome if outcome.endswith("_mm") else f"{outcome}_mm"
    if column not in OUTCOMES:
        raise ValueError(f"unknown outcome {outcome!r}; use one of {OUTCOMES}")
    return column


def gee_frame(measurements: pd.DataFrame, outcome: str, cluster: str = "lesion_id") -> pd.DataFrame:
    """Rows used by a model: measured visits only (zeros kept), sorted by cluster and visit."""
    frame = measurements.dropna(subset=[outcome]).copy()
    frame["time"] = frame["visit"].astype(float) - 1.0
    return frame.sort_values([cluster, "visit"], kind="mergesort").reset_index(drop=True)


def fit_primary(measurements: pd.DataFrame, outcome: str):
    """Fit the paper's primary model to one outcome and return the statsmodels results."""
    frame = gee_frame(measurements, outcome)
    return _fit_statsmodels(
        frame,
        outcome,
        frame[["time"]],
        "lesion_id",
        cov_struct="exchangeable",
        family="gaussian_log",
    )


@dataclass(frozen=True)
class RateEstimate:
    """Change per visit on the multiplicative scale, as SPSS's parameter table reports it."""

    beta: float
    se: float
    p: float

    @property
    def pct_per_visit(self) -> float:
        return 100.0 * (np.exp(self.beta) - 1.0)


def primary_rate(measurements: pd.DataFrame, outcome: str) -> RateEstimate:
    """The time coefficient of the primary model with its robust SE and Wald p.

    Kept light (no GEEFit) because the reconstruction calls it hundreds of times.
    """
    result = fit_primary(measurements, outcome)
    beta = float(result.params["time"])
    se = float(result.bse["time"])
    p = float(2 * stats.norm.sf(abs(beta / se)))
    return RateEstimate(beta=beta, se=se, p=p)


# --------------------------------------------------------------------------------------------
# The result object
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GEEFit:
    """One fitted GEE summarised for a reader: the time term as SPSS prints it, and context.

    `pct_*` is 100·(Exp(B) − 1) for log-scale models; for the percent-of-baseline model
    (`scale_kind == "additive"`) it is B itself, in percentage points of baseline per visit.
    """

    outcome: str
    beta: float
    se: float
    ci_low: float
    ci_high: float
    wald_chi2: float
    df: int
    p: float
    exp_b: float
    exp_b_ci_low: float
    exp_b_ci_high: float
    pct_per_visit: float
    pct_ci_low: float
    pct_ci_high: float
    intercept: float
    intercept_se: float
    n_obs: int
    n_lesions: int
    n_patients: int
    n_clusters: int
    cluster: str
    working_correlation: float
    correlation_structure: str
    cov_type: str
    reference: str
    ref_df: tuple[float, ...] | None  # per term: Satterthwaite df, or None for z
    family: str
    transform: str
    scale_kind: str
    scale: float
    qic: float | None
    converged: bool
    max_visit: int
    terms: tuple[str, ...]
    params: tuple[float, ...]
    cov: tuple[tuple[float, ...], ...]

    def parameter_table(self) -> pd.DataFrame:
        """SPSS's "Parameter Estimates" table: one row per term."""
        return coefficient_table(self.terms, np.array(self.params), np.array(self.cov), self.ref_df)

    def fitted_curve(self) -> pd.DataFrame:
        """Population-average fitted size per visit with its pointwise 95 % CI."""
        visits = np.arange(1, self.max_visit + 1)
        design = np.column_stack([np.ones(len(visits)), visits - 1.0])
        eta = design @ np.array(self.params[:2])
        cov = np.array(self.cov)[:2, :2]
        se = np.sqrt(np.einsum("ij,jk,ik->i", design, cov, design))
        crit = _critical(None if self.ref_df is None else self.ref_df[1])
        inverse = np.exp if self.scale_kind == "multiplicative" else (lambda x: x)
        return pd.DataFrame(
            {
                "visit": visits,
                "fitted": inverse(eta),
                "ci_low": inverse(eta - crit * se),
                "ci_high": inverse(eta + crit * se),
            }
        )


def coefficient_table(terms, params: np.ndarray, cov: np.ndarray, ref_df=None) -> pd.DataFrame:
    """B, SE, Wald CI, Wald χ², df, p, Exp(B) and its CI: z, or t on `ref_df` df (one number,
    or one per term)."""
    se = np.sqrt(np.diag(cov))
    crit = _critical(ref_df)
    low, high = params - crit * se, params + crit * se
    return pd.DataFrame(
        {
            "B": params,
            "SE": se,
            "CI low": low,
            "CI high": high,
            "Wald χ²": (params / se) ** 2,
            "df": 1,
            "p": _p_value(params / se, ref_df),
            "Exp(B)": np.exp(params),
            "Exp(B) CI low": np.exp(low),
            "Exp(B) CI high": np.exp(high),
        },
        index=pd.Index(list(terms), name="term"),
    )


def _critical(ref_df):
    if ref_df is None:
        return float(stats.norm.ppf(0.975))
    return stats.t.ppf(0.975, np.asarray(ref_df, dtype=float))


def _p_value(z, ref_df):
    return 2 * (stats.norm.sf(np.abs(z)) if ref_df is None else stats.t.sf(np.abs(z), ref_df))


# --------------------------------------------------------------------------------------------
# Fitting
# --------------------------------------------------------------------------------------------


def primary(trial: Trial, outcome: str, params=None) -> GEEFit:
    """The main model for one outcome ("length" or "width"): the paper's Table 1 model, with
    the working correlation and cluster level of `params` (a `calcinosis.params.Parameters`)."""
    if params is None:
        return fit_gee(trial, outcome)
    return fit_gee(trial, outcome, cov_struct=params.correlation, cluster=params.cluster)


def cluster_count(trial: Trial, cluster: str) -> int:
    """How many clusters the main model has at this cluster level (lesions or patients with a
    measured value)."""
    measured = trial.measurements.dropna(subset=list(OUTCOMES), how="all")
    return int(with_patient_id(measured)[CLUSTERS[cluster]].nunique())


def primary_or_reason(trial: Trial, outcome: str, params=None) -> tuple[GEEFit | None, str]:
    """The main model, or None and why the data cannot support it: a page, table or figure
    says "not estimable: <reason>" where the numbers would be, and the build goes on."""
    try:
        return primary(trial, outcome, params), ""
    except NotEstimableError as err:  # the caller names the outcome: drop the column's name
        return None, str(err).removeprefix(f"{outcome_column(outcome)}: ")


def fit_gee(
    data: Trial | pd.DataFrame,
    outcome: str,
    *,
    cov_struct: str = "exchangeable",
    cluster: str = "lesion",
    cov_type: str = "robust",
    family: str = "gaussian_log",
    transform: str = "none",
    ddof_scale: int | None = None,
    ctol: float = 1e-6,
    qic: bool = True,
) -> GEEFit:
    """Any of the GEE variants the book shows, summarised for its time term.

    `data` is a Trial or a measurements frame (lesion_id, visit, sizes; patient_id optional).
    `transform` rescales the outcome before a `gaussian_identity` fit: log (zeros dropped),
    log1p (log(size + 1 mm)), pct_baseline (100·size / first measured size).
    Small-sample covariances use t on Satterthwaite df (`adjusted_sandwich`); robust uses z,
    as SPSS does. `qic=False` leaves out the QIC (None), and with it the fit of the
    independence model it takes its scale from: the per-patient and leave-one-out fits never
    show one, and at 100 patients that second fit was half the sensitivity grid's time.
    """
    _check_choice("cov_struct", cov_struct, COV_STRUCTS)
    _check_choice("cluster", cluster, tuple(CLUSTERS))
    _check_choice("cov_type", cov_type, COV_TYPES)
    _check_choice("family", family, FAMILIES)
    _check_choice("transform", transform, TRANSFORMS)
    if (transform == "none") == (family == "gaussian_identity"):
        raise ValueError("transforms go with family='gaussian_identity', and only they do")
    column = outcome_column(outcome)
    frame = _model_frame(data, column, CLUSTERS[cluster], transform)
    options = (column, cov_struct, cluster, cov_type, family, transform, ddof_scale, ctol)
    fingerprint = _fingerprint(frame)
    key = (fingerprint, options, qic)
    if not qic and (fingerprint, options, True) in _FITS:  # the same fit, with its QIC
        key = (fingerprint, options, True)
    if key not in _FITS:
        if len(_FITS) >= _FITS_KEPT:
            _FITS.pop(next(iter(_FITS)))
        _FITS[key] = _fit_frame(frame, *options, qic)
    found = _FITS[key]
    if isinstance(found, NotEstimableError):
        raise found
    return found


# Fits already made, by the content of their model frame and their options: one page, table or
# figure after another asks for the same model (the primary one above all), and it is fitted
# once per process. A GEEFit is not changed after it is made, so sharing it is safe.
_FITS: dict[tuple, GEEFit | NotEstimableError] = {}
_FITS_KEPT = 512


def _fingerprint(frame: pd.DataFrame) -> str:
    hashed = pd.util.hash_pandas_object(frame, index=True).to_numpy()
    columns = "|".join(map(str, frame.columns)).encode()
    return hashlib.sha256(hashed.tobytes() + columns).hexdigest()


def _fit_frame(
    frame, column, cov_struct, cluster, cov_type, family, transform, ddof_scale, ctol, qic
) -> GEEFit | NotEstimableError:
    try:
        return _fit_checked(
            frame, column, cov_struct, cluster, cov_type, family, transform, ddof_scale, ctol, qic
        )
    except NotEstimableError as err:
        return err


def _fit_checked(
    frame, column, cov_struct, cluster, cov_type, family, transform, ddof_scale, ctol, qic
) -> GEEFit:
    _check_estimable(frame, column, CLUSTERS[cluster])
    check_pairs(frame, column, CLUSTERS[cluster], cov_struct, n_params=2, ddof_scale=ddof_scale)
    if cov_struct == "ar1" and frame.duplicated([CLUSTERS[cluster], "visit"]).any():
        raise NotEstimableError(
            "AR(1) needs one row per visit within a cluster; clustered by patient, lesions "
            "measured at the same visit would be perfectly correlated"
        )
    result, converged = fit_design(
        frame,
        column,
        frame[["time"]],
        CLUSTERS[cluster],
        cov_struct=cov_struct,
        family=family,
        ddof_scale=ddof_scale,
        ctol=ctol,
    )
    check_fit(result, column, frame, family)
    if not converged:
        raise NotEstimableError(f"{column}: the fit did not converge in {MAX_ITER} iterations")
    n_clusters = int(frame[CLUSTERS[cluster]].nunique())
    cov, ref_df = _covariance(result, cov_type)
    qic_value = None
    if qic and family != "tweedie_log":
        reference = result
        if cov_struct != "independence":
            reference, _ = fit_design(
                frame,
                column,
                frame[["time"]],
                CLUSTERS[cluster],
                cov_struct="independence",
                family=family,
                ddof_scale=ddof_scale,
                ctol=ctol,
            )
        qic_value = gaussian_qic(result, float(reference.scale))
    return _summarise(
        result,
        frame,
        column,
        cov,
        ref_df,
        cluster=cluster,
        n_clusters=n_clusters,
        cov_struct=cov_struct,
        cov_type=cov_type,
        family=family,
        transform=transform,
        converged=converged,
        qic=qic_value,
    )


def _check_choice(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"{name}={value!r}; use one of {allowed}")


def with_patient_id(measurements: pd.DataFrame) -> pd.DataFrame:
    """Measurements with patient_id. A loaded Trial's measurements carry it (from
    lesions.csv); frames made in memory without it (simulated trials, whose lesion ids are
    written "P1-L2") take it from the lesion id."""
    if "patient_id" in measurements.columns:
        return measurements
    out = measurements.copy()
    out["patient_id"] = out["lesion_id"].astype(str).str.split("-").str[0]
    return out


def _model_frame(data, column: str, cluster_col: str, transform: str) -> pd.DataFrame:
    """The rows a model uses, with the outcome transformed as asked."""
    measurements = data.measurements if isinstance(data, Trial) else data
    frame = gee_frame(with_patient_id(measurements), column, cluster_col)
    if transform == "log":
        frame = frame[frame[column] > 0].copy()
        frame[column] = np.log(frame[column])
    elif transform == "log1p":
        frame[column] = np.log1p(frame[column])
    elif transform == "pct_baseline":
        first = frame.groupby("lesion_id")[column].transform("first")
        if (first <= 0).any():
            raise NotEstimableError("a lesion's first measured size is 0: no percent of baseline")
        frame[column] = 100.0 * frame[column] / first
    return frame.reset_index(drop=True)


def _check_estimable(frame: pd.DataFrame, column: str, cluster_col: str) -> None:
    """Refuse data that would give numbers without meaning."""
    if frame.empty:
        raise NotEstimableError(f"{column}: no measured values")
    if frame[cluster_col].nunique() < 2:
        raise NotEstimableError(
            f"{column}: a single cluster; a sandwich covariance needs at least two"
        )
    if frame["visit"].nunique() < 2:
        raise NotEstimableError(f"{column}: all values are from one visit; no change over time")
    if (frame[column] == 0).all():
        raise NotEstimableError(f"{column}: every value is 0; the log-scale rate is undefined")


def check_pairs(
    frame: pd.DataFrame,
    column: str,
    cluster_col: str,
    cov_struct: str,
    *,
    n_params: int,
    ddof_scale: int | None = None,
) -> None:
    """Refuse a working correlation that the data give no pairs to estimate: α is a mean of
    products over within-cluster pairs divided by n_pairs − p (statsmodels' exchangeable
    divisor; geepack's with `ddof_scale=0`), so with n_pairs ≤ p it is undefined, not at the
    edge of (−1, 1). The time-aware AR(1) is refused on the same count."""
    if cov_struct == "independence":
        return
    sizes = frame.groupby(cluster_col).size().to_numpy()
    n_pairs = int(np.sum(sizes * (sizes - 1) // 2))
    unit = "lesion" if cluster_col == "lesion_id" else "patient"
    ddof = n_params if ddof_scale is None else ddof_scale
    if n_pairs == 0:
        raise NotEstimableError(
            f"{column}: no {unit} has two measured visits, so there is no within-{unit} "
            "pair to estimate the working correlation from"
        )
    if n_pairs - ddof <= 0:
        raise NotEstimableError(
            f"{column}: too few within-{unit} pairs to estimate the working correlation "
            f"({n_pairs} pairs for {n_params} coefficients)"
        )


def check_fit(result, column: str, frame: pd.DataFrame, family: str) -> None:
    """A fit that ran off (estimates not finite, working correlation outside (−1, 1), a mean
    curve far outside the data) is not a result: statsmodels can stop there without a
    warning."""
    alpha = result.model.cov_struct.dep_params
    if alpha is not None and not np.isfinite(float(alpha)):
        raise NotEstimableError(f"{column}: the working correlation could not be estimated")
    if alpha is not None and not abs(float(alpha)) < ALPHA_LIMIT:
        raise NotEstimableError(f"{column}: {_edge_reason(result.model.groups)}")
    if not (
        np.all(np.isfinite(result.params))
        and np.all(np.isfinite(result.bse))
        and np.all(result.bse > 0)
    ):
        raise NotEstimableError(f"{column}: the fit diverged (estimates or SEs not finite)")
    if family != "gaussian_identity":
        times = np.array([0.0, float(frame["time"].max())])
        curve = np.exp(result.params.iloc[0] + result.params.iloc[1] * times)
        largest = float(frame[column].max())
        if curve.max() > DIVERGENCE_FACTOR * largest:
            raise NotEstimableError(
                f"{column}: the fit diverged (its mean curve runs far above every size measured)"
            )


def _edge_reason(groups: np.ndarray) -> str:
    """Why α ran to ±1, with the likely cause when the design gives it: with at most two
    visits in every cluster, α rests on one pair of residuals per cluster, an estimate loose
    enough to leave (−1, 1) — the reader should hear about the visits, not only about α."""
    _, sizes = np.unique(groups, return_counts=True)
    if sizes.max() <= 2:
        return (
            "every cluster has at most two measured visits, so the working correlation rests "
            "on one pair per cluster, and its estimate ran to the edge of (−1, 1)"
        )
    return "the working correlation's estimate ran to the edge of (−1, 1)"


def _family(name: str):
    log = sm.families.links.Log()
    if name == "gaussian_log":
        return sm.families.Gaussian(link=log)
    if name == "tweedie_log":
        return sm.families.Tweedie(var_power=TWEEDIE_POWER, link=log)
    return sm.families.Gaussian()


def _cov_struct(name: str):
    if name == "exchangeable":
        return sm.cov_struct.Exchangeable()
    if name == "ar1":
        return TimeAR1()
    return sm.cov_struct.Independence()


def _fit_statsmodels(
    frame: pd.DataFrame,
    column: str,
    covariates: pd.DataFrame,
    cluster_col: str,
    *,
    cov_struct: str,
    family: str,
    ddof_scale: int | None = None,
    ctol: float = 1e-6,
):
    """statsmodels GEE on sorted rows; log-link fits start from log(mean), slopes 0."""
    exog = sm.add_constant(covariates, prepend=True, has_constant="add")
    model = sm.GEE(
        frame[column].astype(float),
        exog,
        groups=frame[cluster_col],
        time=frame["visit"].astype(float).to_numpy(),
        family=_family(family),
        cov_struct=_cov_struct(cov_struct),
    )
    # The identity-link OLS start can give a negative fitted mean, which the log link
    # cannot take; log of the pooled mean cannot.
    first = np.log(frame[column].mean()) if family != "gaussian_identity" else frame[column].mean()
    start = np.r_[first, np.zeros(exog.shape[1] - 1)]
    return model.fit(start_params=start, maxiter=MAX_ITER, ctol=ctol, ddof_scale=ddof_scale)


def fit_design(
    frame: pd.DataFrame, column: str, covariates: pd.DataFrame, cluster_col: str, **options
):
    """Fit a GEE with extra terms (e.g. an interaction); returns (statsmodels result, converged)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = _fit_statsmodels(frame, column, covariates, cluster_col, **options)
    return result, not _convergence_trouble(caught)


@dataclass(frozen=True)
class TermTest:
    """One coefficient of a fitted design: estimate, SE, reference df (None: z) and p."""

    beta: float
    se: float
    df: float | None
    p: float


def term_test(result, term: str, cov_type: str) -> TermTest:
    """Test one coefficient of a `fit_design` result with the covariance `cov_type` and the
    reference distribution the book pairs with it (the same as `fit_gee` uses), so designs
    with extra terms (a randomised trial's arm × time) follow the book's convention."""
    _check_choice("cov_type", cov_type, COV_TYPES)
    cov, ref_df = _covariance(result, cov_type)
    terms = list(result.params.index)
    row = coefficient_table(terms, result.params.to_numpy(), cov, ref_df).loc[term]
    df = None if ref_df is None else float(ref_df[terms.index(term)])
    return TermTest(float(row["B"]), float(row["SE"]), df, float(row["p"]))


def _convergence_trouble(caught) -> bool:
    return any(issubclass(w.category, ConvergenceWarning | IterationLimitWarning) for w in caught)


def _summarise(
    result,
    frame,
    column,
    cov,
    ref_df,
    *,
    cluster,
    n_clusters,
    cov_struct,
    cov_type,
    family,
    transform,
    converged,
    qic,
) -> GEEFit:
    """Collect the time term, the context and the whole (small) parameter covariance."""
    params = result.params.to_numpy()
    table = coefficient_table((INTERCEPT, TIME_TERM), params, cov, ref_df).loc[TIME_TERM]
    additive = transform == "pct_baseline"
    to_pct = (lambda b: float(b)) if additive else (lambda b: float(100 * (np.exp(b) - 1)))
    alpha = result.model.cov_struct.dep_params
    return GEEFit(
        outcome=column.removesuffix("_mm"),
        beta=float(table["B"]),
        se=float(table["SE"]),
        ci_low=float(table["CI low"]),
        ci_high=float(table["CI high"]),
        wald_chi2=float(table["Wald χ²"]),
        df=1,
        p=float(table["p"]),
        exp_b=float(table["Exp(B)"]),
        exp_b_ci_low=float(table["Exp(B) CI low"]),
        exp_b_ci_high=float(table["Exp(B) CI high"]),
        pct_per_visit=to_pct(table["B"]),
        pct_ci_low=to_pct(table["CI low"]),
        pct_ci_high=to_pct(table["CI high"]),
        intercept=float(params[0]),
        intercept_se=float(np.sqrt(cov[0, 0])),
        n_obs=int(len(frame)),
        n_lesions=int(frame["lesion_id"].nunique()),
        n_patients=int(frame["patient_id"].nunique()),
        n_clusters=n_clusters,
        cluster=cluster,
        working_correlation=0.0 if alpha is None else float(alpha),
        correlation_structure=cov_struct,
        cov_type=cov_type,
        reference="z" if ref_df is None else f"Satterthwaite t({ref_df[1]:.2f})",
        ref_df=ref_df,
        family=family,
        transform=transform,
        scale_kind="additive" if additive else "multiplicative",
        scale=float(result.scale),
        qic=qic,
        converged=converged,
        max_visit=int(frame["visit"].max()),
        terms=(INTERCEPT, TIME_TERM),
        params=tuple(float(x) for x in params),
        cov=tuple(tuple(float(x) for x in row) for row in cov),
    )


def gaussian_qic(result, scale: float) -> float:
    """Pan's (2001) QIC of a Gaussian GEE on a given scale φ:
    Σ(y − μ̂)²/φ + 2·tr(Ω_I V_R), Ω_I = Σᵢ Dᵢ'Dᵢ/φ the information under independence at the
    model's estimates and V_R its robust covariance. QICs compare working correlations only
    on one φ; the book takes the independence model's (N − p), as Pan's definition does."""
    model = result.model
    residuals, omega = 0.0, 0.0
    for i in range(model.num_group):
        expval, lin_pred = model.cached_means[i]
        dmat = model.mean_deriv(model.exog_li[i], lin_pred)
        residuals += float(np.sum((model.endog_li[i] - expval) ** 2))
        omega = omega + dmat.T @ dmat
    penalty = float(np.trace(omega @ result.cov_params().to_numpy()))
    return (residuals + 2 * penalty) / scale


# --------------------------------------------------------------------------------------------
# Small-sample sandwich covariances
# --------------------------------------------------------------------------------------------


def _covariance(result, cov_type: str) -> tuple[np.ndarray, tuple[float, ...] | None]:
    """Robust (with z), or Mancl–DeRouen (residuals ×(I − H)⁻¹, CR3) or the bias-reduced
    linearisation (CR2) with the Satterthwaite df of each coefficient."""
    if cov_type == "robust":
        return result.cov_params().to_numpy(), None
    return adjusted_sandwich(result.model, -1.0 if cov_type == "mancl_derouen" else -0.5)


def adjusted_sandwich(model, power: float) -> tuple[np.ndarray, tuple[float, ...]]:
    """Sandwich with each cluster's residuals multiplied by an adjustment matrix Aⱼ, and the
    Satterthwaite degrees of freedom of each coefficient, as clubSandwich computes them
    (Pustejovsky & Tipton 2018) with the GEE's working model: weights Wⱼ = Vⱼ⁻¹, target Vⱼ.

    power 0 is the plain sandwich (CR0); −1 Mancl–DeRouen (clubSandwich's CR3),
    Aⱼ = (I − Hⱼⱼ)⁻¹; −½ the bias-reduced linearisation of Bell and McCaffrey (CR2; it is
    Kauermann–Carroll's only with an independence working correlation),
    Aⱼ = Uⱼ'(Uⱼ(I − Hⱼⱼ)VⱼUⱼ')^−½Uⱼ with Vⱼ = Uⱼ'Uⱼ.
    A coefficient's sandwich is a quadratic form Σⱼ (gⱼ'z)² in standardised outcomes z;
    its mean and variance give df = (Σⱼ gⱼ'gⱼ)² / Σᵢⱼ (gᵢ'gⱼ)². The tests check both
    against clubSandwich.
    """
    if power not in (0.0, -0.5, -1.0):
        raise ValueError(f"power={power}; use 0 (CR0), -0.5 (CR2) or -1 (CR3)")
    xs, ws, es, roots = [], [], [], []
    for i in range(model.num_group):
        expval, lin_pred = model.cached_means[i]
        xs.append(model.mean_deriv(model.exog_li[i], lin_pred))
        sdev = np.sqrt(model.family.variance(expval))
        corr, _ = model.cov_struct.covariance_matrix(expval, i)
        vmat = np.atleast_2d(corr) * np.outer(sdev, sdev)
        ws.append(np.linalg.inv(vmat))
        roots.append(np.linalg.cholesky(vmat))  # lower: V = L L'
        es.append(model.endog_li[i] - expval)
    bread = np.linalg.inv(sum(xj.T @ wj @ xj for xj, wj in zip(xs, ws, strict=True)))
    # Everything is computed cluster by cluster, never over all N rows (N × N matrices made
    # a simulated trial of 3,000 rows take half a minute per fit). With H = X M X'W and the
    # target's Cholesky root L (block diagonal), cluster j's map from standardised outcomes
    # to its estimate is gⱼ = Pⱼ(Eⱼ − XⱼM X'W)L = Eⱼ(PⱼLⱼ) − (PⱼXⱼM)C, where C = X'WL has
    # blocks Cᵢ = Xᵢ'WᵢLᵢ and Eⱼ places a block at cluster j's columns.
    blocks = [xj.T @ wj @ lj for xj, wj, lj in zip(xs, ws, roots, strict=True)]
    cc = sum(cj @ cj.T for cj in blocks)
    meat = np.zeros_like(bread)
    lead, own = [], []  # per cluster: PⱼXⱼM (p × p) and PⱼLⱼ (p × nⱼ)
    for xj, wj, ej, lj in zip(xs, ws, es, roots, strict=True):
        leverage = np.eye(len(ej)) - xj @ bread @ xj.T @ wj
        if abs(np.linalg.det(leverage)) < 1e-12:
            raise NotEstimableError("a cluster's leverage is 1: the small-sample correction fails")
        if power == 0.0:  # the plain sandwich (CR0)
            adjust = np.eye(len(ej))
        elif power == -1.0:
            adjust = np.linalg.inv(leverage)
        else:
            upper = lj.T
            inner = upper @ leverage @ lj @ lj.T @ upper.T
            adjust = upper.T @ _matrix_power(inner, power) @ upper
        score = xj.T @ wj @ adjust @ ej
        meat += np.outer(score, score)
        pj = bread @ xj.T @ wj @ adjust
        lead.append(pj @ xj @ bread)
        own.append(pj @ lj)
    dfs = []
    for k in range(bread.shape[0]):
        a = np.stack([aj[k] for aj in lead])  # G × p
        d = np.stack([cj @ oj[k] for cj, oj in zip(blocks, own, strict=True)])  # G × p
        cross = a @ cc @ a.T - a @ d.T - d @ a.T + np.diag([oj[k] @ oj[k] for oj in own])
        dfs.append(float(np.trace(cross) ** 2 / np.sum(cross**2)))
    return bread @ meat @ bread, tuple(dfs)


def _matrix_power(matrix: np.ndarray, power: float) -> np.ndarray:
    """Symmetric matrix power via the eigen-decomposition."""
    values, vectors = np.linalg.eigh((matrix + matrix.T) / 2)
    if values.min() <= 1e-12:
        raise NotEstimableError("a cluster's leverage is 1: the small-sample correction fails")
    return (vectors * values**power) @ vectors.T
