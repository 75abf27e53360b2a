"""The primary model recovers a known rate from simulated trials with zeros and gaps."""

from __future__ import annotations

import numpy as np
import pytest

from calcinosis.stats import models
from stats_fixtures import simulate_measurements

# whole-dataset fits and simulations: out of the quick loop
pytestmark = pytest.mark.integration

REPLICATES = 100


@pytest.fixture(scope="module")
def replicates():
    rng = np.random.default_rng(20240611)
    fits, has_zero, has_gap = [], 0, 0
    for _ in range(REPLICATES):
        frame = simulate_measurements(rng, pct_per_visit=-3.0, missing=0.15)
        has_zero += bool((frame["length_mm"] == 0).any())
        has_gap += bool(frame["length_mm"].isna().any())
        fits.append(models.fit_gee(frame, "length"))
    return fits, has_zero, has_gap


def test_simulations_contain_zeros_and_missing_visits(replicates):
    _, has_zero, has_gap = replicates
    assert has_zero == REPLICATES and has_gap == REPLICATES


def test_rate_is_recovered_with_small_bias(replicates):
    fits, _, _ = replicates
    estimates = np.array([f.pct_per_visit for f in fits])
    assert abs(estimates.mean() - (-3.0)) < 0.25


def test_ci_covers_the_true_rate_in_most_replicates(replicates):
    fits, _, _ = replicates
    covered = np.mean([f.pct_ci_low <= -3.0 <= f.pct_ci_high for f in fits])
    assert covered >= 0.85


def test_small_sample_ci_covers_at_least_as_often():
    rng = np.random.default_rng(7)
    robust, md = [], []
    for _ in range(40):
        frame = simulate_measurements(rng, pct_per_visit=-2.0, missing=0.15)
        for target, cov in ((robust, "robust"), (md, "mancl_derouen")):
            fit = models.fit_gee(frame, "length", cov_type=cov)
            target.append(fit.pct_ci_low <= -2.0 <= fit.pct_ci_high)
    assert np.mean(md) >= np.mean(robust)
