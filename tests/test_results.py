"""The flat results mapping the chapters glue and the build writes to results.json."""

from __future__ import annotations

import json

import pytest

from calcinosis import results
from stats_fixtures import data_trial, simulate_measurements, trial_from


@pytest.fixture(scope="module")
def trial():
    return data_trial()


@pytest.fixture(scope="module")
def collected(trial):
    return results.collect(trial)


def test_plain_json_safe_values(collected):
    values = collected
    assert all(type(v) in (int, float, str) for v in values.values())
    json.dumps(values, allow_nan=False)  # no NaN: it is not valid JSON


def test_deterministic(trial, collected):
    assert results.collect(trial) == collected


def test_reproduces_the_paper(collected):
    values = collected
    assert round(values["gee_length_pct_per_visit"], 2) == -2.66
    assert round(values["gee_width_pct_per_visit"], 2) == -3.32
    assert values["gee_length_p"] < 0.05 and values["gee_width_p"] < 0.05
    printed = {"rad_baseline_length": (12.09, 5.05, 6.0, 25.5),
               "rad_baseline_width": (6.35, 3.00, 2.0, 16.0),
               "rad_final_length": (5.59, 7.05, 0.0, 23.0),
               "rad_final_width": (3.41, 4.05, 0.0, 13.0)}
    for prefix, expected in printed.items():
        got = tuple(round(values[f"{prefix}_{s}"], 2) for s in ("mean", "sd", "min", "max"))
        assert got == expected
    assert (values["n_patients"], values["n_lesions"], values["n_visits"]) == (5, 18, 16)


def test_names(collected):
    values = collected
    for outcome in ("length", "width"):
        for field in ("pct_per_visit", "pct_ci_low", "pct_ci_high", "beta", "se", "p",
                      "wald_chi2", "exp_b", "working_correlation", "qic", "n_obs"):
            assert f"gee_{outcome}_{field}" in values
        assert f"rad_{outcome}_wilcoxon_p" in values
    for name in ("n_observations", "rad_n_resolved", "n_adverse_events",
                 "n_adverse_events_related", "n_injections", "patient_P1_length_pct_per_visit",
                 "sens_n_significant"):
        assert name in values
    assert values["patient_P2_length_pct_per_visit"] == results.NOT_ESTIMABLE


def test_collect_runs_on_another_dataset(tmp_path):
    import numpy as np

    trial = trial_from(simulate_measurements(np.random.default_rng(5)), tmp_path)
    values = results.collect(trial)
    assert values["n_lesions"] == 20 and values["n_patients"] == 5
    assert -5 < values["gee_length_pct_per_visit"] < -1
