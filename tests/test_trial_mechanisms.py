"""The simulated trial's mechanisms recover what they are given: the control arm's change,
the effect, dropout and missed visits, the within-patient allocation, the lesion cap, and the
variance components of the random-slope mixed model."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from calcinosis import paths
from calcinosis.data.trial import load_trial
from calcinosis.simulate import simulation
from calcinosis.stats import mixed, models

# whole-dataset fits and simulations: out of the quick loop
pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def model() -> simulation.Model:
    return simulation.fit_model(load_trial(paths.DATA_DIR))


def log_mean_slope(frame: pd.DataFrame) -> float:
    """Slope over visits of the log of the mean size (the population-average scale the
    model's arms differ on)."""
    means = frame.groupby("visit")["length_mm"].mean()
    return float(np.polyfit(means.index.to_numpy(float) - 1, np.log(means.to_numpy()), 1)[0])


def test_the_control_change_and_the_effect_are_recovered(model):
    exact = dataclasses.replace(model, resolution=0.0, resolution_mm=0.0)  # no 0s, no rounding
    control, effect = simulation.log_slope(-1.0), simulation.log_slope(-2.0)
    frame = simulation.simulate_trial(
        exact, simulation.Design(), 4000, effect, np.random.default_rng(5), control_slope=control
    )
    arms = {a: log_mean_slope(part) for a, part in frame.groupby("arm")}
    assert arms[0] == pytest.approx(control, abs=0.002)
    assert arms[1] - arms[0] == pytest.approx(effect, abs=0.002)
    assert simulation.pct_at_end(effect, 16) == pytest.approx(100 * (0.98**15 - 1))


def test_dropout_and_missed_visits_happen_at_their_rates(model):
    rng = np.random.default_rng(11)
    seen = simulation.attended(simulation.Design(dropout=0.2), 20000, rng)
    assert seen[:, 0].all()
    assert (~seen[:, -1]).mean() == pytest.approx(0.2, abs=0.01)
    # a dropout does not come back
    assert not np.any(np.diff(seen.astype(int), axis=1) > 0)
    seen = simulation.attended(simulation.Design(missed=0.1), 20000, rng)
    assert (~seen[:, 1:]).mean() == pytest.approx(0.1, abs=0.005)
    frame = simulation.simulate_trial(
        model, simulation.Design(dropout=0.5), 200, 0.0, np.random.default_rng(2)
    )
    last = frame.groupby("patient_id")["visit"].max()
    assert (last < 16).mean() == pytest.approx(0.5, abs=0.1)


def test_within_patient_allocation_splits_each_childs_lesions(model):
    design = simulation.Design(allocation="within", lesion_cap=None)
    frame = simulation.simulate_trial(model, design, 400, -0.02, np.random.default_rng(3))
    lesions = frame.drop_duplicates("lesion_id")
    per_child = lesions.groupby("patient_id")["arm"].agg(["sum", "size"])
    gap = (2 * per_child["sum"] - per_child["size"]).abs()
    assert (gap == per_child["size"] % 2).all()  # as even as the count allows
    odd = per_child[per_child["size"] % 2 == 1]
    assert (2 * odd["sum"] > odd["size"]).mean() == pytest.approx(0.5, abs=0.1)  # coin
    parallel = simulation.simulate_trial(
        model, simulation.Design(), 40, -0.02, np.random.default_rng(3)
    )
    arms = parallel.groupby("patient_id")["arm"].agg(["min", "max"])
    assert (arms["min"] == arms["max"]).all() and arms["max"].sum() == 20


def test_lesions_per_child_come_from_the_pilot_with_a_cap(model):
    design = simulation.Design(lesion_cap=2)
    frame = simulation.simulate_trial(model, design, 300, 0.0, np.random.default_rng(4))
    counts = frame.groupby("patient_id")["lesion_id"].nunique()
    allowed = {min(c, 2) for c in model.lesions_per_patient}
    assert set(counts) == allowed


def test_the_slope_variances_are_the_mixed_models(model):
    trial = load_trial(paths.DATA_DIR)
    frame = models.with_patient_id(trial.measurements).dropna(subset=["length_mm"])
    frame = frame[frame["length_mm"] > 0]
    data = pd.DataFrame(
        {
            "patient_id": frame["patient_id"],
            "lesion_id": frame["lesion_id"],
            "time": frame["visit"] - 1.0,
            "y": np.log(frame["length_mm"]),
        }
    )
    fit = mixed.fit_random_slopes(data, "y")
    assert model.slope_source == "random-slope mixed model (REML)"
    assert model.sd_patient_slope == pytest.approx(fit.sd_patient_slope)
    assert model.sd_lesion_slope == pytest.approx(fit.sd_lesion_slope)
    assert model.sd_residual == pytest.approx(fit.sd_residual)


def test_the_summary_slope_finds_a_large_effect_and_fails_in_words_when_it_cannot(model):
    for allocation in simulation.DESIGNS:
        design = simulation.Design(allocation=allocation)
        frame = simulation.simulate_trial(model, design, 40, -0.05, np.random.default_rng(6))
        test = simulation.summary_slope(frame, "length_mm", allocation)
        assert test.p < 0.01 and test.beta == pytest.approx(-0.05, abs=0.015)
    one_child = frame[frame["patient_id"] == frame["patient_id"].iloc[0]]
    assert np.isnan(simulation.summary_slope(one_child, "length_mm", "within").p)


def test_the_width_has_its_own_effect_and_shares_the_slope_correlation(model):
    """Co-primary width: its arms differ by its own effect, and the lesions' length and
    width slopes correlate as the model says (residual noise off so slopes are exact)."""
    quiet = dataclasses.replace(model, resolution=0.0, resolution_mm=0.0, sd_residual=1e-6)
    width = dataclasses.replace(quiet, outcome="width")
    joint = dataclasses.replace(quiet, width=width, slope_correlation=0.6)
    control, effect = simulation.log_slope(-1.0), simulation.log_slope(-3.0)
    frame = simulation.simulate_trial(
        joint, simulation.Design(), 3000, -0.01, np.random.default_rng(8), 0.0, (control, effect)
    )
    means = frame.groupby(["arm", "visit"])["width_mm"].mean()
    slopes = {a: np.polyfit(np.arange(16.0), np.log(means.loc[a].to_numpy()), 1)[0] for a in (0, 1)}
    assert slopes[0] == pytest.approx(control, abs=0.002)
    assert slopes[1] - slopes[0] == pytest.approx(effect, abs=0.002)
    per_lesion = frame.groupby("lesion_id").apply(
        lambda g: pd.Series(
            {c: np.polyfit(g["visit"], np.log(g[c]), 1)[0] for c in ("length_mm", "width_mm")}
        ),
        include_groups=False,
    )
    within_arm = per_lesion.join(frame.groupby("lesion_id")["arm"].first())
    r = within_arm[within_arm["arm"] == 0][["length_mm", "width_mm"]].corr().iloc[0, 1]
    assert r == pytest.approx(0.6, abs=0.05)


def _ends(rows) -> pd.DataFrame:
    """A trial from (child, lesion, arm, size at visit 1, size at visit 16)."""
    out = []
    for child, lesion, arm, first, last in rows:
        out += [(child, lesion, arm, 1, first), (child, lesion, arm, 16, last)]
    return pd.DataFrame(out, columns=["patient_id", "lesion_id", "arm", "visit", "length_mm"])


def test_responders_follow_the_stated_rule_and_the_exact_tests():
    """A child responds when its lesions' summed length falls by 30 % or more."""
    rows = [(c, c, 1, 10.0, 6.0) for c in range(6)]  # injected: fall 40 %: respond
    rows += [(c, c, 0, 10.0, 8.0) for c in range(6, 12)]  # control: fall 20 %: not
    test = simulation.responder(_ends(rows), "length_mm", "parallel")
    assert test.beta == 1.0
    assert test.p == pytest.approx(stats.fisher_exact([[6, 0], [0, 6]]).pvalue)
    # the sum decides: 10 → 5 and 10 → 9 is 20 → 14, a fall of exactly 30 %
    two = _ends([(0, 0, 1, 10.0, 5.0), (0, 1, 1, 10.0, 9.0), (1, 2, 0, 10.0, 10.0)])
    assert simulation.responder(two, "length_mm", "parallel").beta == 1.0
    # within: each child's injected lesions respond, its control ones do not
    within = []
    for c in range(7):
        within += [(c, 2 * c, 1, 10.0, 6.0), (c, 2 * c + 1, 0, 10.0, 9.5)]
    test = simulation.responder(_ends(within), "length_mm", "within")
    assert test.beta == 1.0 and test.p == pytest.approx(stats.binomtest(7, 7).pvalue)


def test_the_coprimary_analysis_needs_both_outcomes(model):
    width = dataclasses.replace(model, outcome="width")
    joint = dataclasses.replace(model, width=width, slope_correlation=0.5)
    rng = np.random.default_rng(4)
    frame = simulation.simulate_trial(joint, simulation.Design(), 40, -0.03, rng, 0.0, (0.0, 0.0))
    both = simulation.analyse(frame, "length_mm", "parallel", ("summary", "coprimary"))
    width = simulation.summary_slope(frame, "width_mm", "parallel")
    assert both["coprimary_p"] == max(both["summary_p"], width.p)
    assert both["coprimary_beta"] == width.beta
