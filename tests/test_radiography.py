"""Radiographic summaries, per-lesion change and the exact signed-rank test."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from calcinosis.stats import radiography
from stats_fixtures import data_trial

R_DIR = Path(__file__).parent / "r"

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


def _samples() -> dict[str, np.ndarray]:
    """Differences with ties and zeros, on both sides of scipy's exact limit of 20."""
    rng = np.random.default_rng(11)
    out = {
        # 22 lesions, 21 non-zero: where scipy's normal approximation was 84 times off
        "n22": np.round(rng.normal(-3, 3, 22) * 2) / 2,
        "n40_ties": np.round(rng.normal(-1, 3, 40)),
        "n60_half_ties": np.round(rng.normal(0.5, 4, 60) * 2) / 2,
        "n12_many_zeros": np.array([0, 0, 0, -1, -1, -2, 1, -3, -3, -0.5, 0, -2.5]),
    }
    out["n22"][:1] = 0.0
    return out


@pytest.mark.r
@pytest.mark.skipif(
    subprocess.run(["Rscript", "-e", "library(exactRankTests)"], capture_output=True).returncode
    != 0,
    reason="needs Rscript with exactRankTests",
)
def test_exact_p_matches_exact_rank_tests_at_every_n(tmp_path):
    samples = _samples()
    rows = [{"sample": k, "d": v} for k, values in samples.items() for v in values]
    pd.DataFrame(rows).to_csv(tmp_path / "in.csv", index=False)
    subprocess.run(
        [
            "Rscript",
            str(R_DIR / "wilcox_exact.R"),
            str(tmp_path / "in.csv"),
            str(tmp_path / "o.csv"),
        ],
        check=True,
        capture_output=True,
    )
    theirs = pd.read_csv(tmp_path / "o.csv").set_index("sample")
    for name, diffs in samples.items():
        ours = radiography.signed_rank(diffs)
        assert ours["method"].startswith("exact")
        assert ours["statistic"] == pytest.approx(theirs.at[name, "statistic"], rel=1e-12)
        assert ours["p"] == pytest.approx(theirs.at[name, "p"], rel=1e-12), name


def test_null_distribution_sums_to_one_and_is_symmetric():
    ranks = stats.rankdata(np.abs([1, -1, 2, 2.5, -2.5, 3, 4, 4, 4]))
    prob = radiography.null_distribution(ranks)
    assert prob.sum() == pytest.approx(1.0) and np.allclose(prob, prob[::-1])


def test_radiography_sentences_follow_the_data(trial):
    words = radiography.sentences(trial)
    table = radiography.summary(trial).set_index(["timepoint", "outcome"])["sd"]
    grew = table[("final", "length")] > table[("baseline", "length")]
    assert ("grew" in words["rad_sd_sentence"]) == grew
    assert words["rad_test_sentence"].startswith("an exact signed-rank test")


def test_sd_sentence_says_fell_when_it_fell():
    from types import SimpleNamespace

    rows = [
        (lesion, timepoint, size, size / 2)
        for lesion, (base, final) in enumerate([(4.0, 3.0), (12.0, 4.0), (20.0, 5.0)])
        for timepoint, size in (("baseline", base), ("final", final))
    ]
    frame = pd.DataFrame(rows, columns=["lesion_id", "timepoint", "length_mm", "width_mm"])
    words = radiography.sentences(SimpleNamespace(radiography=frame))
    assert words["rad_sd_sentence"] == (
        "The standard deviation fell after treatment for both length and width."
    )


def test_sd_sentence_claims_no_direction_without_a_spread():
    """One radiograph at a timepoint has no standard deviation: nothing is said of it."""
    from types import SimpleNamespace

    rows = [
        ("L1", "baseline", 10.0, 5.0),
        ("L1", "final", 8.0, 4.0),
        ("L2", "baseline", 12.0, 6.0),
        ("L2", "final", None, 4.5),
    ]
    frame = pd.DataFrame(rows, columns=["lesion_id", "timepoint", "length_mm", "width_mm"])
    words = radiography.sentences(SimpleNamespace(radiography=frame))
    assert words["rad_sd_sentence"] == "The standard deviation of width fell after treatment."
    words = radiography.sentences(SimpleNamespace(radiography=frame.iloc[:2]))
    assert words["rad_sd_sentence"] == ""
