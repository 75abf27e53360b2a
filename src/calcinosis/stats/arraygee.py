"""The pilot's GEE (Gaussian, log link, exchangeable) of a simulated trial, on arrays.

The planning chapter fits this GEE to tens of thousands of simulated trials, and
statsmodels' loops over clusters cost more than simulating them. This module computes
exactly what `models.fit_design` and `models.term_test` compute for that model, by sums over
rows and batched matrix algebra over clusters (padded to the largest): the same Gauss–Newton
steps from the same start, the same moment estimate of the working correlation after each
step (scale on N − p, pairs on n_pairs − p), the same stopping rule (score norm below `ctol`
after at least one correlation update) and the same covariances: the robust sandwich with z,
or the bias-reduced linearisation (CR2) with its Satterthwaite df (`models.adjusted_sandwich`,
whose Cholesky roots it uses). The tests hold it to statsmodels and to `models` on simulated
trials.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

from calcinosis.stats import models

CTOL = 1e-6  # statsmodels' default, which `models.fit_design` keeps


@dataclass(frozen=True)
class Fit:
    """A fitted GEE: coefficients, working correlation, whether it converged, and the
    per-row means and mean derivatives at the coefficients."""

    params: np.ndarray
    rho: float
    converged: bool
    mean: np.ndarray
    deriv: np.ndarray


def fit(y: np.ndarray, x: np.ndarray, cluster: np.ndarray, max_iter: int = models.MAX_ITER):
    """Fit the GEE to rows sorted by `cluster` (integer codes 0 .. G − 1, each used).
    `x` holds the intercept column first. Not converged: a singular step or the
    iteration limit, as statsmodels warns."""
    n, p = x.shape
    sizes = np.bincount(cluster).astype(float)
    pairs = float(np.sum(sizes * (sizes - 1) / 2))
    params = np.r_[np.log(y.mean()), np.zeros(p - 1)]
    rho, updates, norm = 0.0, 0, -1.0
    converged = True
    mean, deriv = _means(x, params)
    for _ in range(max_iter):
        bmat, score = _information(deriv, y - mean, cluster, sizes, rho)
        try:
            step = np.linalg.solve(bmat, score)
        except np.linalg.LinAlgError:
            converged = False
            break
        params = params + step
        mean, deriv = _means(x, params)
        norm = float(np.sqrt(np.sum(score**2)))
        if norm < CTOL and updates > 0:
            break
        rho = _exchangeable(y - mean, cluster, n, p, pairs)
        updates += 1
    if not norm < CTOL:
        converged = False
    return Fit(params, rho, converged, mean, deriv)


def _means(x: np.ndarray, params: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mean = np.exp(x @ params)
    return mean, x * mean[:, None]


def _sums(values: np.ndarray, cluster: np.ndarray, groups: int) -> np.ndarray:
    """Per-cluster sums of each column of `values` (rows × k)."""
    out = np.zeros((groups, values.shape[1]))
    np.add.at(out, cluster, values)
    return out


def _information(deriv, resid, cluster, sizes, rho) -> tuple[np.ndarray, np.ndarray]:
    """Σ D'V⁻¹D and Σ D'V⁻¹r with V⁻¹ = (I − c·11')/(1 − ρ)-form of the exchangeable
    correlation (Gaussian variance 1), as statsmodels' closed-form solve."""
    groups = len(sizes)
    c = rho / (1.0 - rho) / (1.0 + rho * (sizes - 1))
    sum_d = _sums(deriv, cluster, groups)
    sum_r = np.bincount(cluster, resid, minlength=groups)
    bmat = deriv.T @ deriv / (1.0 - rho) - (sum_d * c[:, None]).T @ sum_d
    score = deriv.T @ resid / (1.0 - rho) - sum_d.T @ (c * sum_r)
    return bmat, score


def _exchangeable(resid, cluster, n, p, pairs) -> float:
    """statsmodels' moment estimate of the exchangeable correlation (ddof = p)."""
    ssr = float(resid @ resid)
    scale = ssr / (n * (n - p) / n)
    per = np.bincount(cluster, resid)
    cross = float(np.sum(per**2) - ssr) / 2 / scale
    return cross / (pairs * (pairs - p) / pairs)


def term_test(
    result: Fit, y: np.ndarray, cluster: np.ndarray, term: int, cov_type: str
) -> models.TermTest:
    """Coefficient `term` with the robust sandwich and z, or CR2 (`bias_reduced`) and its
    Satterthwaite t, as `models.term_test`."""
    sizes = np.bincount(cluster).astype(float)
    resid = y - result.mean
    if cov_type == "robust":
        cov = _robust(result, resid, cluster, sizes)
        df = None
    elif cov_type == "bias_reduced":
        cov, df = _cr2(result, resid, cluster, sizes, term)
    else:
        raise ValueError(f"cov_type {cov_type!r}: use robust or bias_reduced")
    beta = float(result.params[term])
    se = float(np.sqrt(cov[term, term]))
    z = beta / se
    p = 2 * (stats.norm.sf(abs(z)) if df is None else stats.t.sf(abs(z), df))
    return models.TermTest(beta, se, df, float(p))


def _robust(result: Fit, resid, cluster, sizes) -> np.ndarray:
    groups = len(sizes)
    bmat, _ = _information(result.deriv, resid, cluster, sizes, result.rho)
    rho = result.rho
    c = rho / (1.0 - rho) / (1.0 + rho * (sizes - 1))
    sum_d = _sums(result.deriv, cluster, groups)
    sum_dr = _sums(result.deriv * resid[:, None], cluster, groups)
    sum_r = np.bincount(cluster, resid, minlength=groups)
    scores = sum_dr / (1.0 - rho) - sum_d * (c * sum_r)[:, None]
    bread = np.linalg.inv(bmat)
    return bread @ (scores.T @ scores) @ bread


def _padded(values: np.ndarray, cluster: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """Rows placed into (G × m × k) blocks, m the largest cluster, zeros beyond a cluster."""
    width = int(sizes.max())
    starts = np.r_[0, np.cumsum(sizes)[:-1]].astype(int)
    position = np.arange(len(cluster)) - starts[cluster]
    out = np.zeros((len(sizes), width, *values.shape[1:]))
    out[cluster, position] = values
    return out


def _cr2(result: Fit, resid, cluster, sizes, term: int) -> tuple[np.ndarray, float]:
    """`models.adjusted_sandwich(model, −½)` for this model without a cluster's n × n
    matrices. CR2 and its df do not depend on which root of Vⱼ is used, so the symmetric one
    (closed form for the exchangeable Vⱼ) replaces the Cholesky root; with it the matrix to
    take to the power −½ is Vⱼ² − GⱼMGⱼ', Gⱼ = Vⱼ^½Dⱼ, which is (1 − ρ)²·I outside the span
    of 1 and Gⱼ's columns: only a (p + 1)-square problem per cluster is left."""
    rho = result.rho
    real = _padded(np.ones(len(cluster)), cluster, sizes)  # G × m, 1 on a cluster's rows
    d = _padded(result.deriv, cluster, sizes)  # G × m × p
    e = _padded(resid, cluster, sizes)  # G × m

    def power(x, s):
        return _exchangeable_power(x, real, sizes, rho, s)

    dt = power(d, -0.5)
    g = power(d, 0.5)
    bread = np.linalg.inv(np.einsum("gmi,gmj->ij", dt, dt))
    p = bread.shape[0]
    own_info = np.swapaxes(dt, 1, 2) @ dt  # G × p × p
    if np.any(np.abs(np.linalg.det(np.eye(p) - bread @ own_info)) < 1e-12):
        raise models.NotEstimableError(_LEVERAGE_ONE)
    span = np.concatenate([real[:, :, None], g], axis=2)  # G × m × (p + 1)
    # an orthonormal basis of that span, on a cluster's own rows (QR of the columns scaled
    # to length 1; a column QR adds where the span has fewer dimensions lies in its
    # complement, and one on padded rows is dropped)
    norms = np.linalg.norm(span, axis=1, keepdims=True)
    q = np.linalg.qr(span / np.where(norms > 0, norms, 1.0))[0] * real[:, :, None]
    keep = np.linalg.norm(q, axis=1) > 0.5  # G × (p + 1)
    q = q * keep[:, None, :]
    inner_q = power(q, 2.0) - g @ (bread @ (np.swapaxes(g, 1, 2) @ q))
    small = np.swapaxes(q, 1, 2) @ inner_q
    small = (small + np.swapaxes(small, 1, 2)) / 2 + np.eye(small.shape[1]) * ~keep[:, None, :]
    values, vectors = np.linalg.eigh(small)
    if values.min() <= 1e-12 or (1 - rho) ** 2 <= 1e-12:
        raise models.NotEstimableError(_LEVERAGE_ONE)
    root = (vectors * values[:, None, :] ** -0.5) @ np.swapaxes(vectors, 1, 2)
    qd = np.swapaxes(q, 1, 2) @ dt  # G × q × p
    inner_dt = (dt - q @ qd) / (1 - rho) + q @ (root @ qd)  # (Vⱼ² − GⱼMGⱼ')^−½ D̃ⱼ
    pre_t = power(inner_dt, 0.5)  # (Dⱼ'WⱼAⱼ)'
    scores = np.einsum("gmp,gm->gp", pre_t, e)
    cov = bread @ (scores.T @ scores) @ bread
    lead = (bread @ (np.swapaxes(pre_t, 1, 2) @ d) @ bread)[:, term, :]  # G × p
    own = power((pre_t @ bread)[:, :, term : term + 1], 0.5)[:, :, 0]  # G × m
    mixed = np.einsum("gmp,gm->gp", dt, own)
    cc = np.linalg.inv(bread)
    cross = lead @ cc @ lead.T - lead @ mixed.T - mixed @ lead.T + np.diag(np.sum(own**2, 1))
    return cov, float(np.trace(cross) ** 2 / np.sum(cross**2))


_LEVERAGE_ONE = "a cluster's leverage is 1: the small-sample correction fails"


def _exchangeable_power(x, real, sizes, rho, s) -> np.ndarray:
    """Vⱼ^s·x for each cluster's exchangeable correlation Vⱼ (eigenvalues 1 − ρ, and
    1 + (nⱼ − 1)ρ along 1); padded rows stay 0."""
    low = (1 - rho) ** s
    high = (1 + (sizes - 1) * rho) ** s
    total = x.sum(axis=1, keepdims=True)  # G × 1 × k
    return low * x + ((high - low) / sizes)[:, None, None] * real[:, :, None] * total
