"""A linear mixed model with random slopes, for the sensitivity grid: log(size + 1 mm) on visit
with a random intercept and a random slope for time by patient and by lesion within patient,
each pair correlated — lme4's `y ~ time + (1 + time | patient) + (1 + time | patient:lesion)`.

Fitted by REML here (statsmodels' MixedLM cannot give a lesion-level intercept and slope that
are correlated), with Satterthwaite degrees of freedom for the time coefficient as lmerTest
computes them: df = 2·Var(β̂)² / (∇Var(β̂)' A ∇Var(β̂)), A the asymptotic covariance of the
variance parameters (twice the inverse Hessian of the REML deviance). The parameters are
the log-Cholesky factors of the random-effect covariances relative to σ², and log σ, for the
optimiser; the df are computed in lme4's own parameters (the Cholesky factors' entries and σ),
where a variance at 0 is an ordinary point rather than −∞, so that a singular fit has df too.

The REML surface can have a boundary local optimum beside the interior one: the optimiser
starts from several points (`STARTS`) and keeps the lowest criterion. A fit whose optimum is
on the boundary (a variance at 0, or an intercept–slope correlation at ±1: lme4's "singular"
fit) is reported with its fixed effects, as lme4 and lmerTest report them, and a note that
says which component is on the boundary. A fit that does not converge is not estimable.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import optimize, stats

from calcinosis.stats.models import NotEstimableError

GRADIENT_TOL = 1e-4  # of the REML criterion in log-Cholesky parameters: its rounding noise
SINGULAR = 1e-4  # a Cholesky diagonal below this share of the residual SD is 0 (lme4's rule)
# Starting points of the optimiser: log relative SDs (patient level, lesion level), no
# correlation. The first is lme4's start; the others reach optima it can miss.
STARTS = ((0.0, 0.0), (-2.0, -2.0), (0.0, -2.0))
LEVELS = ("patient", "lesion")
# Reads the relative Cholesky factors (patient, lesion) from six variance parameters
Factors = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]


@dataclass(frozen=True)
class MixedFit:
    """The time coefficient of the random-slope model and how it was estimated."""

    beta: float
    se: float
    df: float
    p: float
    ci_low: float
    ci_high: float
    sd_patient_slope: float
    sd_lesion_slope: float
    sd_residual: float
    singular: str = ""  # which variance component is on the boundary, in words ("": none)


@dataclass(frozen=True)
class _Stack:
    """The patients with the same number of lesions: their cross-products of the random design
    Z with itself, the fixed design X and the outcome y, stacked along the first axis so that
    the likelihood handles them in a few batched matrix operations, not a loop over patients
    (at 100 patients the loop made each evaluation 7 times slower)."""

    n_lesions: int
    ztz: np.ndarray  # (patients, q, q)
    zt_xy: np.ndarray  # (patients, q, 3): Z'X beside Z'y


@dataclass(frozen=True)
class _Clusters:
    """Everything the REML criterion needs from the data (it never forms V): the stacks, and
    X'X, X'y, y'y summed over all observations."""

    stacks: tuple[_Stack, ...]
    ols: np.ndarray  # the least-squares line, taken out of y (see `_clusters`)
    n_patients: int
    n: int
    xtx: np.ndarray
    xty: np.ndarray
    yty: float


def fit_random_slopes(frame: pd.DataFrame, outcome: str = "y") -> MixedFit:
    """REML fit of `outcome` on `time` (columns patient_id, lesion_id, time, outcome)."""
    clusters = _clusters(frame, outcome)
    if clusters.n_patients < 2:
        raise NotEstimableError("the mixed model needs at least two patients")
    theta = _best_optimum(clusters)
    sigma = float(np.sqrt(_sums(*_log_factors(theta), clusters)[-1]))
    factors = _log_factors(theta)
    singular = boundary_note(*factors)
    # The df in the optimiser's log-Cholesky parameters (then log σ), or, for a singular fit,
    # in lme4's θ (the factors' entries), where the boundary is a finite point
    if singular:
        theta = np.concatenate([_entries(f) for f in factors])
        diagonal = np.array([0, 2, 3, 5])
        theta[diagonal] = np.where(theta[diagonal] < SINGULAR, 0.0, theta[diagonal])
    to_factors: Factors = _raw_factors if singular else _log_factors
    psi = np.r_[theta, np.log(sigma)]
    variance = _beta_cov(psi, clusters, to_factors)[1, 1]
    gradient = _gradient(lambda p: _beta_cov(p, clusters, to_factors)[1, 1], psi)
    hessian = _hessian(lambda p: _deviance(p, clusters, to_factors), psi)
    try:
        covariance = 2 * np.linalg.inv(hessian)
    except np.linalg.LinAlgError:
        raise NotEstimableError("the mixed model's REML Hessian is singular") from None
    df = float(2 * variance**2 / (gradient @ covariance @ gradient))
    if not (np.isfinite(df) and df > 0):
        raise NotEstimableError("the mixed model's Satterthwaite df are not defined")
    beta = float(_beta(psi, clusters, to_factors)[1])
    se = float(np.sqrt(variance))
    crit = stats.t.ppf(0.975, df)
    patient, lesion = (f * sigma for f in factors)
    return MixedFit(
        beta=beta,
        se=se,
        df=df,
        p=float(2 * stats.t.sf(abs(beta / se), df)),
        ci_low=beta - crit * se,
        ci_high=beta + crit * se,
        sd_patient_slope=float(np.hypot(*patient[1])),
        sd_lesion_slope=float(np.hypot(*lesion[1])),
        sd_residual=sigma,
        singular=singular,
    )


def _best_optimum(clusters: _Clusters) -> np.ndarray:
    """The optimum from lme4's start or, when that one is on the boundary or not reached, the
    one with the lowest REML criterion over `STARTS` (log-Cholesky parameters): an interior
    optimum is the REML estimate and needs no other start, which keeps a fit to seconds."""
    found: list[tuple[float, tuple]] = []
    failures: list[str] = []
    for patient, lesion in STARTS:
        if found and not boundary_note(*_log_factors(np.array(min(found)[1]))):
            break
        start = np.array([patient, 0.0, patient, lesion, 0.0, lesion])
        try:
            with np.errstate(all="ignore"):  # an overflow shows as a non-finite criterion
                theta = _minimise(lambda t: _profiled(t, clusters), start)
        except (np.linalg.LinAlgError, ValueError) as err:
            failures.append(f"the mixed model's optimiser failed numerically ({err})")
            continue
        except NotEstimableError as err:
            failures.append(str(err))
            continue
        if np.all(np.isfinite(theta)):
            found.append((_profiled(theta, clusters), tuple(theta)))
    if not found:
        raise NotEstimableError(
            failures[0] if failures else "the mixed model's optimiser ran off to infinite variances"
        )
    return np.array(min(found)[1])


def boundary_note(patient: np.ndarray, lesion: np.ndarray) -> str:
    """Which variance component of a fit is on the boundary, in lme4's sense (a diagonal entry
    of a relative Cholesky factor below `SINGULAR`), or "" for an interior fit. `patient` and
    `lesion` are the relative Cholesky factors [[l₁₁, 0], [l₂₁, l₂₂]] of (intercept, slope)."""
    notes = []
    for level, factor in zip(LEVELS, (patient, lesion), strict=True):
        (l11, _), (l21, l22) = factor
        if l11 < SINGULAR and np.hypot(l21, l22) < SINGULAR:
            notes.append(f"both {level}-level variances are estimated at 0")
        elif l11 < SINGULAR:
            notes.append(f"the {level}-level intercept variance is estimated at 0")
        elif l22 < SINGULAR and abs(l21) < SINGULAR:
            notes.append(f"the {level}-level slope variance is estimated at 0")
        elif l22 < SINGULAR:
            sign = "+1" if l21 > 0 else "−1"
            notes.append(f"the {level}-level intercept–slope correlation is estimated at {sign}")
    if not notes:
        return ""
    return "singular fit (as lme4 calls it): " + "; ".join(notes)


def _minimise(func, start: np.ndarray) -> np.ndarray:
    """BFGS on central-difference gradients, then damped Newton steps on a numerical Hessian
    until the gradient is at the level of the criterion's rounding noise: the REML surface
    is flat along some directions, where BFGS alone stops short."""
    result = optimize.minimize(
        func, start, method="BFGS", jac="3-point", options={"gtol": 1e-6, "maxiter": 1000}
    )
    x = result.x
    for _ in range(20):
        gradient = _gradient(func, x)
        if np.max(np.abs(gradient)) < GRADIENT_TOL:
            return x
        hessian = _hessian(func, x)
        if not (np.all(np.isfinite(hessian)) and np.all(np.isfinite(gradient))):
            break  # ran off where the criterion is not finite
        step = np.linalg.lstsq(hessian, -gradient, rcond=None)[0]
        while func(x + step) > func(x) + 1e-9 and np.max(np.abs(step)) > 1e-12:
            step = step / 2  # never uphill
        x = x + step
    raise NotEstimableError("the mixed model did not converge (its REML gradient is not 0)")


def _clusters(frame: pd.DataFrame, outcome: str) -> _Clusters:
    """Per patient, the cross-products the likelihood needs, stacked by number of lesions.

    y is replaced by its residual from the least-squares line: the REML criterion does not
    change (X holds that line), and r'R⁻¹r is then no longer the small difference of two large
    sums, whose rounding made the criterion noisy at the level that moves the df."""
    design = np.column_stack([np.ones(len(frame)), frame["time"].to_numpy(float)])
    ols = np.linalg.lstsq(design, frame[outcome].to_numpy(float), rcond=None)[0]
    by_lesions: dict[int, list[tuple[np.ndarray, np.ndarray]]] = {}
    xtx, xty, yty = np.zeros((2, 2)), np.zeros(2), 0.0
    for _, rows in frame.groupby("patient_id", sort=True):
        x = np.column_stack([np.ones(len(rows)), rows["time"].to_numpy(float)])
        y = rows[outcome].to_numpy(float) - x @ ols
        lesion = rows["lesion_id"].to_numpy()
        columns = [x] + [x * (lesion == name)[:, None] for name in pd.unique(lesion)]
        z = np.hstack(columns)  # patient intercept and slope, then each lesion's
        by_lesions.setdefault(len(columns) - 1, []).append((z.T @ z, z.T @ np.c_[x, y]))
        xtx, xty, yty = xtx + x.T @ x, xty + x.T @ y, yty + float(y @ y)
    stacks = tuple(
        _Stack(k, *(np.stack(parts) for parts in zip(*rows, strict=True)))
        for k, rows in sorted(by_lesions.items())
    )
    return _Clusters(
        stacks,
        ols,
        sum(len(rows) for rows in by_lesions.values()),
        len(frame),
        xtx,
        xty,
        yty,
    )


def _chol(part: np.ndarray) -> np.ndarray:
    """A relative Cholesky factor from its log-Cholesky parameters (the optimiser's)."""
    return np.array([[np.exp(part[0]), 0.0], [part[1], np.exp(part[2])]])


def _log_factors(theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return _chol(theta[:3]), _chol(theta[3:6])


def _raw_factors(raw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The relative Cholesky factors from their entries (lme4's θ)."""
    patient, lesion = (np.array([[raw[k], 0.0], [raw[k + 1], raw[k + 2]]]) for k in (0, 3))
    return patient, lesion


def _entries(factor: np.ndarray) -> np.ndarray:
    return np.array([factor[0, 0], factor[1, 0], factor[1, 1]])


def _sums(lp: np.ndarray, ll: np.ndarray, clusters: _Clusters):
    """log|R|, X'R⁻¹X, X'R⁻¹y, β̂ and σ̂² = r'R⁻¹r / (N − p), for V = σ²R with
    R = I + ZΛΛ'Z' (Λ the relative Cholesky factors), through the q × q matrix
    I + Λ'Z'ZΛ as lme4 does: accurate, and small."""
    logdet, xrx, xry, yry = 0.0, clusters.xtx.copy(), clusters.xty.copy(), clusters.yty
    for s in clusters.stacks:
        lam = np.kron(np.eye(1 + s.n_lesions), ll)
        lam[:2, :2] = lp
        chol = np.linalg.cholesky(lam.T @ s.ztz @ lam + np.eye(len(lam)))
        # [Λ'Z'X | Λ'Z'y] solved together: one batched triangular system per stack
        u = np.linalg.solve(chol, lam.T @ s.zt_xy)
        logdet += float(2 * np.log(np.diagonal(chol, axis1=1, axis2=2)).sum())
        products = (u.transpose(0, 2, 1) @ u).sum(axis=0)
        xrx -= products[:2, :2]
        xry -= products[:2, 2]
        yry -= float(products[2, 2])
    beta = np.linalg.solve(xrx, xry)
    return logdet, xrx, xry, beta, (yry - beta @ xry) / (clusters.n - 2)


def _profiled(theta: np.ndarray, clusters: _Clusters) -> float:
    """The REML criterion with σ² profiled out (up to a constant), as lme4 minimises it."""
    try:
        logdet, xrx, _, _, sigma2 = _sums(*_log_factors(theta), clusters)
    except np.linalg.LinAlgError:
        return np.inf
    n = clusters.n
    return float(logdet + np.linalg.slogdet(xrx)[1] + (n - 2) * np.log(sigma2))


def _deviance(psi: np.ndarray, clusters: _Clusters, to_factors: Factors) -> float:
    """The REML criterion in all variance parameters (θ, read by `to_factors`, and log σ), up
    to a constant."""
    sigma2 = np.exp(2 * psi[6])
    logdet, xrx, xry, beta, s2 = _sums(*to_factors(psi[:6]), clusters)
    n = clusters.n
    return float(
        logdet + n * np.log(sigma2) + np.linalg.slogdet(xrx / sigma2)[1] + (n - 2) * s2 / sigma2
    )


def _beta(psi, clusters, to_factors: Factors) -> np.ndarray:
    return clusters.ols + _sums(*to_factors(psi[:6]), clusters)[3]


def _beta_cov(psi, clusters, to_factors: Factors) -> np.ndarray:
    return np.exp(2 * psi[6]) * np.linalg.inv(_sums(*to_factors(psi[:6]), clusters)[1])


def _gradient(func, x: np.ndarray, step: float = 1e-4) -> np.ndarray:
    """Central differences with one Richardson step (error of order step⁴)."""

    def central(h):
        return np.array(
            [(func(x + h * e) - func(x - h * e)) / (2 * h) for e in np.eye(len(x))], dtype=float
        )

    return (4 * central(step / 2) - central(step)) / 3


def _hessian(func, x: np.ndarray, step: float = 1e-3) -> np.ndarray:
    """Central second differences of `func` at `x`."""
    n = len(x)
    out = np.zeros((n, n))
    f0 = func(x)
    basis = np.eye(n) * step
    for i in range(n):
        for j in range(i, n):
            if i == j:
                value = (func(x + basis[i]) - 2 * f0 + func(x - basis[i])) / step**2
            else:
                value = (
                    func(x + basis[i] + basis[j])
                    - func(x + basis[i] - basis[j])
                    - func(x - basis[i] + basis[j])
                    + func(x - basis[i] - basis[j])
                ) / (4 * step**2)
            out[i, j] = out[j, i] = value
    return out
