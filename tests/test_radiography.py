"""Radiographic summaries, per-lesion change and the exact signed-rank test."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from calcinosis import radiography
from stats_fixtures import data_trial

PUBLISHED = {  # mean, sd, min, max as printed in the paper
    ("baseline", "length"): (12.09, 5.05, 6.00, 25.50),
    ("baseline", "width"): (6.35, 3.00, 2.00, 16.00),
    ("final", "length"): (5.59, 7.05, 0.00, 23.00),
    ("final", "width"): (3.41, 4.05, 0.00, 13.00),
}


@pytest.fixture(scope="module")
def trial():
    return data_trial()


def test_summary_reproduces_the_printed_values(trial):
    table = radiography.summary(trial).set_index(["timepoint", "outcome"])
    for key, printed in PUBLISHED.items():
        row = table.loc[key]
        assert row["n"] == 18
        assert tuple(round(row[s], 2) for s in ("mean", "sd", "min", "max")) == printed


def test_per_lesion_change(trial):
    table = radiography.per_lesion(trial)
    assert len(table) == 36
    row = table.set_index(["lesion_id", "outcome"]).loc[("P1-L1", "length")]
    assert (row["baseline"], row["final"], row["change_mm"]) == (9.5, 0.0, -9.5)
    assert row["resolved"] and row["change_pct"] == -100


def test_n_resolved(trial):
    assert radiography.n_resolved(trial) == 7


def test_paired_tests(trial):
    table = radiography.paired_tests(trial)
    assert table["outcome"].tolist() == ["length", "width"]
    assert {"n", "statistic", "p", "method", "rank_biserial"} <= set(table.columns)
    assert (table["p"] < 0.001).all() and (table["rank_biserial"] == -1).all()
    assert table["method"].str.startswith("exact").all()


def test_signed_rank_matches_scipy_without_ties():
    diffs = np.array([1.0, -2, 3, 4, -5, 6, 7, 8.5, 9, -10])
    ours = radiography.signed_rank(diffs)
    theirs = stats.wilcoxon(diffs, method="exact")
    assert ours["p"] == pytest.approx(theirs.pvalue)
    assert min(ours["statistic"], 55 - ours["statistic"]) == theirs.statistic


def test_signed_rank_with_ties_and_zeros_is_exact():
    diffs = np.array([0.0, 0.0, -1, -1, -2, -2, -2, 3])
    result = radiography.signed_rank(diffs)
    assert result["n_nonzero"] == 6 and result["method"].startswith("exact")
    assert 0 < result["p"] <= 1


def test_signed_rank_all_zero_is_not_estimable():
    result = radiography.signed_rank(np.zeros(5))
    assert np.isnan(result["p"]) and "not estimable" in result["method"]
