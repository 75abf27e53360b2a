"""The GEE models: the paper's primary model and the variants the sensitivity grid needs.

The primary model is what SPSS GENLIN with REPEATED fits for "change per visit" read as
100·(Exp(B) − 1): Gaussian family, log link, visit − 1 as a continuous term, one cluster per
lesion, exchangeable working correlation, robust (sandwich) covariance, and the scale divided
by N − p as SPSS does.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import statsmodels.api as sm
from scipy import stats

OUTCOMES = ("length_mm", "width_mm")


def gee_frame(measurements: pd.DataFrame, outcome: str, cluster: str = "lesion_id") -> pd.DataFrame:
    """Rows used by a model: measured visits only (zeros kept), sorted by cluster and visit."""
    frame = measurements.dropna(subset=[outcome]).copy()
    frame["time"] = frame["visit"].astype(float) - 1.0
    return frame.sort_values([cluster, "visit"], kind="mergesort").reset_index(drop=True)


def fit_primary(measurements: pd.DataFrame, outcome: str):
    """Fit the paper's primary model to one outcome and return the statsmodels results."""
    frame = gee_frame(measurements, outcome)
    exog = sm.add_constant(frame[["time"]], prepend=True)
    model = sm.GEE(
        frame[outcome].astype(float),
        exog,
        groups=frame["lesion_id"],
        family=sm.families.Gaussian(link=sm.families.links.Log()),
        cov_struct=sm.cov_struct.Exchangeable(),
    )
    # Start from the log of the pooled mean: the identity-link OLS start can give a
    # negative fitted mean, which the log link cannot take.
    start = np.array([np.log(frame[outcome].mean()), 0.0])
    return model.fit(start_params=start, maxiter=200)


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
    """The time coefficient of the primary model with its robust SE and Wald p."""
    result = fit_primary(measurements, outcome)
    beta = float(result.params["time"])
    se = float(result.bse["time"])
    p = float(2 * stats.norm.sf(abs(beta / se)))
    return RateEstimate(beta=beta, se=se, p=p)
