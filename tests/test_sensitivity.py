"""The sensitivity grid: its shape, its primary rows, and what it shows."""

from __future__ import annotations

import numpy as np
import pytest

from calcinosis import models, sensitivity
from stats_fixtures import data_trial


@pytest.fixture(scope="module")
def trial():
    return data_trial()


@pytest.fixture(scope="module")
def grid(trial):
    return sensitivity.grid(trial)


def test_grid_columns(grid):
    table = grid
    assert list(table.columns) == sensitivity.COLUMNS
    assert set(table["factor"]) == {
        "working correlation",
        "cluster",
        "covariance",
        "model form",
        "mixed model",
        "leave one patient out",
    }


def test_primary_rows_are_the_primary_model(trial, grid):
    table = grid
    for outcome in ("length", "width"):
        primary = table[(table["outcome"] == outcome) & table["is_primary"]]
        assert len(primary) == 4  # one per factor that varies the primary model
        fit = models.primary(trial, outcome)
        np.testing.assert_allclose(primary["pct_per_visit"], fit.pct_per_visit)
        assert (primary["reference"] == "z").all()


def test_small_sample_rows_use_t_on_g_minus_1(grid):
    table = grid
    patient_md = table[table["choice"] == "Mancl–DeRouen, patient clusters (independence)"]
    assert (patient_md["reference"] == "t(G−1) = t(4)").all()


def test_leave_one_patient_out_has_a_row_per_patient(grid):
    table = grid
    loo = table[table["factor"] == "leave one patient out"]
    assert len(loo) == 10 and loo["pct_per_visit"].notna().all()


def test_not_estimable_rows_stay_with_a_reason(grid):
    table = grid
    missing = table[table["pct_per_visit"].isna()]
    assert len(missing) > 0 and missing["note"].str.startswith("not estimable").all()


def test_headline(grid):
    """Most rows keep p < 0.05; the patient-level small-sample rows are where it fails."""
    table = grid
    significant, estimated = sensitivity.significant_share(table)
    assert estimated > significant > estimated / 2
    failing = table[table["p"] >= 0.05]
    assert failing["choice"].str.contains("patient clusters").all()
