"""The random-slope mixed model of a simulated trial, on arrays: REML by Fisher scoring.

The planning chapter fits lme4's `y ~ X + (1 + time | patient) + (1 + time | patient:lesion)`
to tens of thousands of simulated trials; `calcinosis.stats.mixed` (a general optimiser on a
numerical Hessian) costs a fifth of a second a fit, more than all other analyses of a
replicate together. Here the covariance of a patient's rows, V = Z G Z' + σ²I, is linear in
its seven parameters (the patient's and the lesions' 2 × 2 intercept–slope covariances, σ²),
so REML is maximised by Fisher scoring with the analytic score and expected information
(Lindstrom & Bates 1988; SAS PROC MIXED), every patient handled at once in batched q × q
algebra (q = 2 + 2·lesions, patients padded to the most lesions: a padded lesion has no rows
and adds nothing) through V⁻¹ = (I − Z H Z')/σ², H = G(σ²I + Z'Z G)⁻¹; V itself is never
formed. The start is the moment estimates of the lesions' least-squares lines.

The test of one coefficient uses Satterthwaite's df as lmerTest computes them,
df = 2·Var(β̂)² / (∇Var(β̂)' A ∇Var(β̂)), A the inverse of the observed REML information
(twice the expected information's average-information part minus the expected information,
exact for a covariance linear in its parameters); the df do not depend on the
parametrisation at an interior optimum, so these are lmerTest's.

The boundary: where the REML optimum has a 2 × 2 covariance singular (a variance at 0 or a
correlation at ±1, lme4's "singular fit"), the linear parameters cannot reach it; the fit
then goes on by Newton–Raphson in the Cholesky entries from the last interior point (lme4's
parametrisation, where the boundary is an ordinary point), is reported with its fixed
effects as lme4 and lmerTest report them, and says which component is on the boundary.
A fit that does not converge is not estimable.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

from calcinosis.stats import mixed
from calcinosis.stats.models import NotEstimableError, TermTest

MAX_ITER = 50
HALVINGS = 12  # a step halved this often without staying inside: the optimum is on the boundary
TOL = 1e-10  # the Newton decrement score' I⁻¹ score at which the REML optimum is reached
INTERIOR = 1e-6  # a 2 × 2 covariance whose smallest eigenvalue is below this share of its trace
# is too near the boundary for the linear parameters: the fit goes on in `_on_boundary`
# the seven parameters: patient (var int, cov, var slope), lesion (the same), residual variance
PATIENT = ("patient_var_int", "patient_cov", "patient_var_slope")
NAMES = (*PATIENT, "lesion_var_int", "lesion_cov", "lesion_var_slope", "residual_var")


@dataclass(frozen=True)
class Blocks:
    """Per patient (padded to the most lesions): Z'Z (patients, q, q), Z'F and F'F for
    F = [X | y], and the row count; Z holds the patient's intercept and time, then each
    lesion's."""

    ztz: np.ndarray
    ztf: np.ndarray
    ftf: np.ndarray
    rows: np.ndarray
    p: int
    start: np.ndarray  # the moment estimates the scoring starts from


@dataclass(frozen=True)
class MixedFit:
    """A REML fit: fixed effects and their covariance, the seven variance parameters, and
    the observed information of those parameters (for Satterthwaite's df)."""

    beta: np.ndarray
    cov: np.ndarray
    theta: np.ndarray
    iterations: int
    blocks: Blocks
    # on the boundary: the Cholesky entries the fit was continued in (see `_on_boundary`),
    # in which its df are computed, and which component is on the boundary, in words
    psi: np.ndarray | None = None
    singular: str = ""


def blocks(
    y: np.ndarray, x: np.ndarray, time: np.ndarray, patient: np.ndarray, lesion: np.ndarray
) -> Blocks:
    """The cross-products REML needs, by sums over rows (no loop over patients or lesions).
    `patient` and `lesion` are integer codes (lesion codes unique across patients)."""
    f = np.column_stack([x, y])
    m = f.shape[1]
    codes, lesion = np.unique(lesion, return_inverse=True)
    n_les = len(codes)

    def per_lesion(values: np.ndarray) -> np.ndarray:
        return np.bincount(lesion, values, minlength=n_les)

    owner = np.zeros(n_les, int)
    owner[lesion] = patient
    patients, owner = np.unique(owner, return_inverse=True)
    n_pat = len(patients)
    order = np.argsort(owner, kind="stable")
    first = np.searchsorted(owner[order], np.arange(n_pat))
    slot = np.empty(n_les, int)
    slot[order] = np.arange(n_les) - first[owner[order]]
    k = int(slot.max()) + 1
    q = 2 + 2 * k
    # per lesion: the 2 × 2 block of Z'Z and the two rows of Z'F
    n, st, stt = per_lesion(np.ones(len(y))), per_lesion(time), per_lesion(time * time)
    zz = np.stack([np.stack([n, st], -1), np.stack([st, stt], -1)], -2)
    zf = np.stack(
        [
            np.stack([per_lesion(f[:, j]) for j in range(m)], -1),
            np.stack([per_lesion(time * f[:, j]) for j in range(m)], -1),
        ],
        -2,
    )
    ztz = np.zeros((n_pat, q, q))
    ztf = np.zeros((n_pat, q, m))
    member = (owner == np.arange(n_pat)[:, None]).astype(float)  # patients × lesions
    ztz[:, :2, :2] = (member @ zz.reshape(n_les, -1)).reshape(n_pat, 2, 2)
    ztf[:, :2] = (member @ zf.reshape(n_les, -1)).reshape(n_pat, 2, m)
    for j in range(k):
        rows, at = slot == j, slice(2 + 2 * j, 4 + 2 * j)
        for block in ((at, at), (slice(0, 2), at), (at, slice(0, 2))):  # zz is symmetric
            ztz[(owner[rows], *block)] = zz[rows]
        ztf[owner[rows], at] = zf[rows]
    row_patient = np.searchsorted(patients, patient)
    order = np.argsort(row_patient, kind="stable")
    rows_per = np.bincount(row_patient, minlength=n_pat)
    sorted_f = f[order]
    # F'F per patient: sums of the rows' outer products over each patient's run of rows
    pairs = (sorted_f[:, :, None] * sorted_f[:, None, :]).reshape(len(y), m * m)
    ftf = np.add.reduceat(pairs, np.r_[0, np.cumsum(rows_per)[:-1]]).reshape(n_pat, m, m)
    rows_per = rows_per.astype(float)
    start = _moments(n, st, stt, zf[:, :, -1], per_lesion(f[:, -1] ** 2))
    return Blocks(ztz, ztf, ftf, rows_per, x.shape[1], start)


def _moments(n, st, stt, ty, yy) -> np.ndarray:
    """Start values from the lesions' least-squares lines of y on time (lesions with three
    rows or more): σ² their pooled residual variance, the spread of their intercepts and
    slopes split evenly between patients and lesions (no correlation)."""
    sy, sty = ty[:, 0], ty[:, 1]
    ok = n >= 3
    det = n * stt - st**2
    ok &= det > 0
    if ok.sum() < 2:
        raise NotEstimableError("the mixed model needs two lesions with three visits or more")
    slope = (n * sty - st * sy)[ok] / det[ok]
    level = (sy[ok] - slope * st[ok]) / n[ok]
    rss = yy[ok] - level * sy[ok] - slope * sty[ok]
    sigma2 = max(float(rss.sum() / (n[ok] - 2).sum()), 1e-8)
    spread = np.array([np.var(level), np.var(slope)]) / 2
    spread = np.maximum(spread, [1e-4, 1e-6]) + [sigma2 / n[ok].mean(), 0.0]
    return np.array([spread[0], 0.0, spread[1], spread[0], 0.0, spread[1], sigma2])


def _basis(q: int) -> np.ndarray:
    """∂G/∂θ for the six covariance parameters (q × q each)."""
    unit = [np.array(e, float) for e in ([[1, 0], [0, 0]], [[0, 1], [1, 0]], [[0, 0], [0, 1]])]
    out = np.zeros((6, q, q))
    for a, e in enumerate(unit):
        out[a, :2, :2] = e
        out[3 + a, 2:, 2:] = np.kron(np.eye((q - 2) // 2), e)
    return out


def _covariance(theta: np.ndarray, basis: np.ndarray) -> np.ndarray:
    return np.einsum("a,aqr->qr", theta[:6], basis)


def _parts(theta: np.ndarray, b: Blocks, basis: np.ndarray) -> dict:
    """Per-patient and summed quantities at θ: the REML criterion's pieces and the sums the
    score and information are made of."""
    s2 = theta[6]
    g = _covariance(theta, basis)
    s, zf = b.ztz, b.ztf
    q = s.shape[1]
    inner = s2 * np.eye(q) + s @ g  # σ²I + SG
    h = g @ np.linalg.inv(inner)  # H = G(σ²I + SG)⁻¹, symmetric
    hs = h @ s
    hzf = h @ zf
    tzf = zf - s @ hzf  # T'Z'F, T = I − HS
    sh = np.swapaxes(hs, 1, 2)
    t = np.eye(q) - hs
    zft = np.swapaxes(zf, 1, 2)
    fv1f = (b.ftf - zft @ hzf) / s2
    fv2f = (b.ftf - 2 * zft @ hzf + np.swapaxes(hzf, 1, 2) @ s @ hzf) / s2**2
    fv3f = (fv2f * s2**2 - np.swapaxes(tzf, 1, 2) @ h @ tzf) / s2**3
    k1 = tzf / s2  # Z'V⁻¹F
    k2 = (tzf - sh @ tzf) / s2**2  # Z'V⁻²F = T'T'Z'F/σ⁴
    q1 = s @ t / s2  # Z'V⁻¹Z
    q2 = np.swapaxes(t, 1, 2) @ s @ t / s2**2  # Z'V⁻²Z
    tr_hs = np.trace(hs, axis1=1, axis2=2)
    tr_v1 = float(np.sum(b.rows - tr_hs)) / s2
    tr_v2 = float(np.sum(b.rows - 2 * tr_hs + np.einsum("gqr,grq->g", hs, hs))) / s2**2
    sign, logdet = np.linalg.slogdet(inner)
    if np.any(sign <= 0):
        raise np.linalg.LinAlgError("V is not positive definite")
    logdet_v = float(np.sum((b.rows - q) * np.log(s2) + logdet))
    return {
        "fv1f": fv1f.sum(0),
        "fv2f": fv2f.sum(0),
        "fv3f": fv3f.sum(0),
        "k1": k1,
        "k2": k2,
        "q1": q1,
        "q2": q2,
        "tr_v1": tr_v1,
        "tr_v2": tr_v2,
        "logdet_v": logdet_v,
    }


def _criterion(parts: dict, p: int) -> tuple[float, np.ndarray, np.ndarray, np.ndarray]:
    """REML log-likelihood (up to a constant), β̂, (X'V⁻¹X)⁻¹ and c = [−β̂, 1] (r = F c)."""
    fv1f = parts["fv1f"]
    a = fv1f[:p, :p]
    a_inv = np.linalg.inv(a)
    beta = a_inv @ fv1f[:p, p]
    c = np.r_[-beta, 1.0]
    logdet_a = np.linalg.slogdet(a)[1]
    loglik = -0.5 * (parts["logdet_v"] + logdet_a + float(c @ fv1f @ c))
    return float(loglik), beta, a_inv, c


def _derivatives(parts: dict, p: int, a_inv, c, basis) -> tuple[np.ndarray, ...]:
    """REML score, expected information and observed information in θ.

    With V_a = ∂V/∂θ_a (Z E_a Z', or I for σ²) and P the REML projection:
    score_a = −½ tr(P V_a) + ½ y'P V_a P y, expected I_ab = ½ tr(P V_a P V_b), and (V linear
    in θ) observed = y'P V_a P V_b P y − expected."""
    k1, k2, q1, q2 = parts["k1"], parts["k2"], parts["q1"], parts["q2"]
    ek = basis[:, None] @ k1[None]  # E_a Z'V⁻¹F (BLAS products, not einsum: 5× faster)
    eq = basis[:, None] @ q1[None]  # E_a Z'V⁻¹Z
    m_g = np.tensordot(k1, ek, axes=([0, 1], [1, 2])).transpose(1, 0, 2)
    m_f = np.concatenate([m_g, parts["fv2f"][None]])
    tr_v = np.r_[np.trace(eq, axis1=2, axis2=3).sum(1), parts["tr_v1"]]
    tt = np.empty((7, 7))
    tt[:6, :6] = eq.reshape(6, -1) @ np.swapaxes(eq, 2, 3).reshape(6, -1).T
    tt[:6, 6] = tt[6, :6] = (basis.reshape(6, -1) @ q2.sum(0).reshape(-1)).ravel()
    tt[6, 6] = parts["tr_v2"]
    n_f = np.empty((7, 7) + m_f.shape[1:])
    q1ek = q1[None] @ ek
    n_f[:6, :6] = np.tensordot(ek, q1ek, axes=([1, 2], [1, 2])).transpose(0, 2, 1, 3)
    n_f[:6, 6] = np.tensordot(ek, k2, axes=([1, 2], [0, 1]))
    n_f[6, :6] = np.swapaxes(n_f[:6, 6], 1, 2)
    n_f[6, 6] = parts["fv3f"]
    mx = m_f[:, :p, :p]
    am = np.einsum("ij,ajk->aik", a_inv, mx)  # A⁻¹ M_a
    score = -0.5 * (tr_v - np.einsum("aii->a", am)) + 0.5 * np.einsum("i,aij,j->a", c, m_f, c)
    expected = 0.5 * (
        tt
        - 2 * np.einsum("ij,abji->ab", a_inv, n_f[:, :, :p, :p])
        + np.einsum("aij,bji->ab", am, am)
    )
    mc = (m_f @ c)[:, :p]
    average = 0.5 * (np.einsum("i,abij,j->ab", c, n_f, c) - mc @ a_inv @ mc.T)
    return score, expected, 2 * average - expected, m_f


def _interior(theta: np.ndarray) -> bool:
    """Both 2 × 2 covariances positive definite (not at lme4's boundary) and σ² > 0."""
    for g11, g12, g22 in (theta[:3], theta[3:6]):
        trace = g11 + g22
        det = g11 * g22 - g12**2
        smallest = trace / 2 - np.sqrt(max((g11 - g22) ** 2 / 4 + g12**2, 0.0))
        if not (trace > 0 and det > 0 and smallest > INTERIOR * trace):
            return False
    return bool(theta[6] > 0)


def fit(b: Blocks) -> MixedFit:
    """REML from the moment estimates: Newton–Raphson steps on the observed information
    where it is positive definite (quadratic convergence near the optimum), Fisher scoring
    on the expected information elsewhere, each step halved until it stays inside the
    parameter space and does not lower the criterion. A step that cannot stay inside goes
    on to the boundary (`_on_boundary`). Not estimable: no convergence."""
    basis = _basis(b.ztz.shape[1])
    theta = b.start
    parts = _parts(theta, b, basis)
    for iteration in range(1, MAX_ITER + 1):
        loglik, beta, a_inv, c = _criterion(parts, b.p)
        score, expected, observed, _ = _derivatives(parts, b.p, a_inv, c, basis)
        try:
            np.linalg.cholesky(observed)
            step = np.linalg.solve(observed, score)
        except np.linalg.LinAlgError:
            step = np.linalg.solve(expected, score)
        if abs(float(score @ step)) < TOL:
            return MixedFit(beta, a_inv, theta, iteration, b)
        inside = False
        for _ in range(HALVINGS):
            trial = theta + step
            if _interior(trial):
                inside = True
                try:
                    trial_parts = _parts(trial, b, basis)
                    # the criterion's rounding (relative 1e-13) must not stop the last steps
                    if _criterion(trial_parts, b.p)[0] >= loglik - 1e-9 * max(1.0, abs(loglik)):
                        break
                except np.linalg.LinAlgError:
                    pass
            step = step / 2
        else:
            if inside:
                raise NotEstimableError("the mixed model's REML scoring did not converge")
            return _on_boundary(theta, b, basis)
        theta, parts = trial, trial_parts
    raise NotEstimableError("the mixed model's REML scoring did not converge")


def _entries(theta: np.ndarray) -> np.ndarray:
    """ψ: each level's Cholesky factor entries (l₁₁, l₂₁, l₂₂), then σ², of an interior θ."""
    out = []
    for g11, g12, g22 in (theta[:3], theta[3:6]):
        l11 = np.sqrt(g11)
        out += [l11, g12 / l11, np.sqrt(max(g22 - (g12 / l11) ** 2, 0.0))]
    return np.array([*out, theta[6]])


def _theta(psi: np.ndarray) -> np.ndarray:
    out = []
    for l11, l21, l22 in (psi[:3], psi[3:6]):
        out += [l11 * l11, l11 * l21, l21 * l21 + l22 * l22]
    return np.array([*out, psi[6]])


def _jacobian(psi: np.ndarray) -> np.ndarray:
    """∂θ/∂ψ (7 × 7)."""
    jac = np.zeros((7, 7))
    for k in (0, 3):
        l11, l21, l22 = psi[k : k + 3]
        jac[k, k] = 2 * l11
        jac[k + 1, k], jac[k + 1, k + 1] = l21, l11
        jac[k + 2, k + 1], jac[k + 2, k + 2] = 2 * l21, 2 * l22
    jac[6, 6] = 1.0
    return jac


def _curvature(score: np.ndarray) -> np.ndarray:
    """Σ_t score_t ∂²θ_t/∂ψ∂ψ' (θ is quadratic in ψ: constant second derivatives)."""
    out = np.zeros((7, 7))
    for k in (0, 3):
        out[k, k] += 2 * score[k]
        out[k, k + 1] += score[k + 1]
        out[k + 1, k] += score[k + 1]
        out[k + 1, k + 1] += 2 * score[k + 2]
        out[k + 2, k + 2] += 2 * score[k + 2]
    return out


def _in_entries(psi: np.ndarray, b: Blocks, basis: np.ndarray):
    """REML criterion, score and observed information in ψ, and the pieces at θ(ψ)."""
    parts = _parts(_theta(psi), b, basis)
    loglik, beta, a_inv, c = _criterion(parts, b.p)
    score, expected, observed, _ = _derivatives(parts, b.p, a_inv, c, basis)
    jac = _jacobian(psi)
    info = jac.T @ observed @ jac - _curvature(score)
    return loglik, beta, a_inv, jac.T @ score, info, jac.T @ expected @ jac


def _on_boundary(theta: np.ndarray, b: Blocks, basis: np.ndarray) -> MixedFit:
    """The REML optimum where the linear parameters cannot reach it (a 2 × 2 covariance
    singular): Newton–Raphson in ψ, the Cholesky entries, where a variance at 0 or a
    correlation at ±1 is an ordinary point (lme4's parametrisation), from the last interior
    iterate. Its df are computed in ψ, as lmerTest computes them in lme4's θ."""
    psi = _entries(theta)
    for iteration in range(1, MAX_ITER + 1):
        loglik, beta, a_inv, score, info, fisher = _in_entries(psi, b, basis)
        try:
            np.linalg.cholesky(info)
            step = np.linalg.solve(info, score)
        except np.linalg.LinAlgError:
            ridge = 1e-8 * np.trace(fisher) * np.eye(7)
            step = np.linalg.lstsq(fisher + ridge, score, rcond=None)[0]
        if abs(float(score @ step)) < TOL:
            final = _theta(psi)
            note = _boundary_note(psi)
            return MixedFit(beta, a_inv, final, iteration, b, psi, note)
        for _ in range(HALVINGS):
            trial = psi + step
            if trial[6] > 0:
                try:
                    value = _criterion(_parts(_theta(trial), b, basis), b.p)[0]
                    if value >= loglik - 1e-9 * max(1.0, abs(loglik)):
                        break
                except np.linalg.LinAlgError:
                    pass
            step = step / 2
        else:
            break
        psi = trial
    raise NotEstimableError("the mixed model's REML fit did not converge")


def _boundary_note(psi: np.ndarray) -> str:
    """Which component is on the boundary, by lme4's rule (a relative Cholesky diagonal
    below 1e-4; `mixed.boundary_note` words it)."""
    sigma = np.sqrt(psi[6])
    patient, lesion = (
        np.array([[abs(psi[k]), 0.0], [psi[k + 1] * np.sign(psi[k] or 1.0), abs(psi[k + 2])]])
        / sigma
        for k in (0, 3)
    )
    return mixed.boundary_note(patient, lesion)


def term_test(result: MixedFit, term: int) -> TermTest:
    """Coefficient `term` with its REML SE and Satterthwaite t (lmerTest's df)."""
    b = result.blocks
    basis = _basis(b.ztz.shape[1])
    parts = _parts(result.theta, b, basis)
    _, beta, a_inv, c = _criterion(parts, b.p)
    score, _, observed, m_f = _derivatives(parts, b.p, a_inv, c, basis)
    variance = a_inv[term, term]
    gradient = np.einsum("i,aij,j->a", a_inv[term], m_f[:, : b.p, : b.p], a_inv[:, term])
    if result.psi is not None:  # in the Cholesky entries: the boundary is an ordinary point
        jac = _jacobian(result.psi)
        observed = jac.T @ observed @ jac - _curvature(score)
        gradient = jac.T @ gradient
    try:
        covariance = np.linalg.inv(observed)
    except np.linalg.LinAlgError:
        raise NotEstimableError("the REML information is singular") from None
    df = float(2 * variance**2 / (gradient @ covariance @ gradient))
    if not (np.isfinite(df) and df > 0):
        raise NotEstimableError("the Satterthwaite df are not defined")
    se = float(np.sqrt(variance))
    estimate = float(beta[term])
    return TermTest(estimate, se, df, float(2 * stats.t.sf(abs(estimate / se), df)))
