"""A time-aware AR(1) working correlation for statsmodels' GEE.

statsmodels' `Autoregressive` builds each cluster's matrix from row positions, so a lesion
measured only at visits 1 and 16 is treated as one lag apart. Here the correlation between
visits s and t is α^|s − t|, the difference of the visit numbers themselves, and α solves
geepack's moment equation: least squares of the pairwise products of standardised residuals
on α^|s − t| over all within-cluster pairs.

This is not what geepack's `corstr = "ar1"` with `waves = visit` fits: geeglm turns `waves`
into a factor, so its lags are differences of the *ranks* of the visit numbers that occur in
the data, not of the visit numbers. The two agree only when every visit number between the
first and the last occurs somewhere in the data (as in the bundled data, on which
tests/test_geepack.py compares them); on an irregular schedule (visits 1, 2, 4, 8) they differ.
"""

from __future__ import annotations

import numpy as np
from statsmodels.genmod.cov_struct import CovStruct

_ALPHA_BOUND = 0.999


class TimeAR1(CovStruct):
    """Time-aware AR(1): corr(y_s, y_t) = α^|t − s| with t the `time` given to the GEE model
    (here the visit number, not its rank among the visits: see the module's docstring)."""

    def initialize(self, model):
        super().initialize(model)
        if model.time is None:
            raise ValueError("TimeAR1 needs the GEE model's `time` (the visit of each row)")
        self._lags = [np.abs(np.subtract.outer(t[:, 0], t[:, 0])) for t in model.time_li]
        self.dep_params = 0.0

    def update(self, params):
        """Re-estimate α from the current fit (called by GEE between mean updates)."""
        model = self.model
        scale = model.estimate_scale()
        lags, products = [], []
        for i in range(model.num_group):
            expval, _ = model.cached_means[i]
            resid = (model.endog_li[i] - expval) / np.sqrt(model.family.variance(expval))
            upper = np.triu_indices(len(resid), k=1)
            lags.append(self._lags[i][upper])
            products.append(np.outer(resid, resid)[upper] / scale)
        self.dep_params = _solve_alpha(
            np.concatenate(lags), np.concatenate(products), float(self.dep_params)
        )

    def covariance_matrix(self, expval, index):
        return float(self.dep_params) ** self._lags[index], True

    def summary(self):
        return f"Time-aware AR(1): correlation α^|visit difference| with α = {self.dep_params:.4f}"


def _solve_alpha(lags: np.ndarray, products: np.ndarray, alpha: float) -> float:
    """Gauss–Newton for Σ d·α^(d−1)·(z − α^d) = 0, the estimating equation geepack uses."""
    if lags.size == 0:
        return 0.0
    for _ in range(100):
        rho = alpha**lags
        deriv = lags * alpha ** np.maximum(lags - 1, 0)
        denom = float(np.sum(deriv * deriv))
        if denom == 0.0:
            # At α = 0 only lag-1 pairs have a derivative; with none, α stays at 0.
            return 0.0
        step = float(np.sum(deriv * (products - rho))) / denom
        alpha = float(np.clip(alpha + step, -_ALPHA_BOUND, _ALPHA_BOUND))
        if abs(step) < 1e-13:
            break
    return alpha
