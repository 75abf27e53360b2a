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


def test_the_mixed_model_is_an_analysis_of_every_simulated_trial():
    """`analyse` runs the random-slope model (arraymixed on log(length + 1 mm)) beside the
    others, and the grid gives it a thousand trials in the main scenario's cells."""
    from calcinosis import paths
    from calcinosis.data.trial import load_trial
    from calcinosis.simulate import power, simulation
    from calcinosis.stats import arraymixed

    trial = load_trial(paths.DATA_DIR)
    model, pilot = simulation.fit_model(trial), power.pilot_effects(trial)
    control, effect = power.slopes(pilot, "quarter", "pilot")
    design = power.Grid().design("within")
    frame = simulation.simulate_trial(model, design, 12, effect, np.random.default_rng(3), control)
    row = simulation.analyse(frame, "length_mm", "within", ("summary", "mixed"))
    assert "mixed" in simulation.ANALYSES and row["mixed_ran"]
    time = frame["visit"].to_numpy(float) - 1.0
    arm = frame["arm"].to_numpy(float)
    x = np.column_stack([np.ones(len(frame)), arm, time, arm * time])
    blocks = arraymixed.blocks(
        np.log1p(frame["length_mm"].to_numpy(float)),
        x,
        time,
        frame["patient_id"].to_numpy(),
        frame["lesion_id"].to_numpy(),
    )
    direct = arraymixed.term_test(arraymixed.fit(blocks), 3)
    assert row["mixed_beta"] == direct.beta and row["mixed_df"] == direct.df
    assert 0 < row["mixed_p"] < 1
    grid = power.Grid()
    main = {"children": 16, "scenario": grid.main_scenarios[0]}
    other = {
        "children": 16,
        "scenario": next(s for s in grid.scenarios if s not in grid.main_scenarios),
    }
    assert power._limits(grid, main)["mixed"] >= power.MIN_ANSWER_REPLICATES
    assert power._limits(grid, other)["mixed"] == grid.other_mixed_replicates
    assert "mixed" in power.SLOPE_ANALYSES and "mixed" in power.ANALYSIS_LABELS
