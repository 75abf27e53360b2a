"""Radiographic summaries, per-lesion change and the signed-rank test (exact below 50)."""

from __future__ import annotations

import subprocess
from pathlib import Path
from types import SimpleNamespace

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


def _samples(trial) -> dict[str, np.ndarray]:
    """Differences with ties and zeros: below scipy's exact limit of 20, between it and the
    switch at 50, at the switch (49 and 50 non-zero), well above it, and the bundled data's."""
    rng = np.random.default_rng(11)
    out = {
        # 22 lesions, 21 non-zero: where scipy's normal approximation was 84 times off
        "n22": np.round(rng.normal(-3, 3, 22) * 2) / 2,
        "n40_ties": np.round(rng.normal(-1, 3, 40)),
        "n48_half_ties": np.round(rng.normal(0.5, 4, 48) * 2) / 2,
        "n12_many_zeros": np.array([0, 0, 0, -1, -1, -2, 1, -3, -3, -0.5, 0, -2.5]),
        "n60_half_ties": np.round(rng.normal(0.5, 4, 60) * 2) / 2,
        "n80_ties_zeros": np.round(rng.normal(-1, 3, 80)),
        "n300_caliper": np.round(rng.normal(-0.4, 2, 300) * 2) / 2,
        "n1000_far_from_0": np.round(rng.normal(-3, 2, 1000)),
        "n64_symmetric": np.repeat([-3.0, -1, 1, 3, 0], [16, 16, 16, 16, 4]),
    }
    out["n22"][:1] = 0.0
    for nonzero in (49, 50):  # the switch: the same draw, with 6 zeros beside it
        diffs = np.round(rng.normal(-0.5, 3, nonzero) * 2) / 2
        diffs[diffs == 0] = 0.5
        out[f"switch_{nonzero}"] = np.concatenate([diffs, np.zeros(6)])
    table = radiography.per_lesion(trial)
    for outcome in radiography.OUTCOMES:
        out[f"bundled_{outcome}"] = table.loc[table["outcome"] == outcome, "change_mm"].to_numpy()
    return out


@pytest.fixture(scope="module")
def r_wilcox(trial, tmp_path_factory):
    """Our samples and R's answers for them, from one Rscript call (tests/r/wilcox.R)."""
    found = subprocess.run(
        ["Rscript", "-e", "library(exactRankTests)"], capture_output=True
    ).returncode
    if found != 0:
        pytest.skip("needs Rscript with exactRankTests")
    folder = tmp_path_factory.mktemp("wilcox")
    samples = _samples(trial)
    rows = [{"sample": k, "d": v} for k, values in samples.items() for v in values]
    pd.DataFrame(rows).to_csv(folder / "in.csv", index=False)
    subprocess.run(
        ["Rscript", str(R_DIR / "wilcox.R"), str(folder / "in.csv"), str(folder / "o.csv")],
        check=True,
        capture_output=True,
    )
    return samples, pd.read_csv(folder / "o.csv").set_index("sample")


@pytest.mark.r
def test_exact_p_matches_exact_rank_tests_below_the_switch(r_wilcox):
    samples, theirs = r_wilcox
    below = {k: v for k, v in samples.items() if np.count_nonzero(v) < 50}
    assert len(below) >= 6
    for name, diffs in below.items():
        ours = radiography.signed_rank(diffs)
        assert ours["method"] == radiography.EXACT_METHOD, name
        assert ours["statistic"] == pytest.approx(theirs.at[name, "exact_statistic"], rel=1e-12)
        assert ours["p"] == pytest.approx(theirs.at[name, "exact_p"], rel=1e-12), name


@pytest.mark.r
def test_normal_p_matches_wilcox_test_from_the_switch_on(r_wilcox):
    """R's wilcox.test(exact = FALSE, correct = TRUE): ties, zeros, W+ at its mean (z = 0,
    no correction), and a p far in the tail."""
    samples, theirs = r_wilcox
    above = {k: v for k, v in samples.items() if np.count_nonzero(v) >= 50}
    assert len(above) >= 5
    for name, diffs in above.items():
        ours = radiography.signed_rank(diffs)
        assert ours["method"] == radiography.NORMAL_METHOD, name
        assert ours["statistic"] == pytest.approx(theirs.at[name, "normal_statistic"], rel=1e-10)
        assert ours["p"] == pytest.approx(theirs.at[name, "normal_p"], rel=1e-10, abs=0), name
    assert radiography.signed_rank(samples["n64_symmetric"])["p"] == 1.0
    assert radiography.signed_rank(samples["n1000_far_from_0"])["p"] < 1e-50


@pytest.mark.r
def test_switch_is_at_50_non_zero_differences(r_wilcox):
    """49 non-zero differences (and 6 zeros) are counted exactly, 50 approximated: the p-values
    are R's exact and R's approximate ones, which differ, so a moved switch fails here."""
    samples, theirs = r_wilcox
    below, at = (radiography.signed_rank(samples[f"switch_{n}"]) for n in (49, 50))
    assert (below["n_nonzero"], at["n_nonzero"]) == (49, 50)
    assert below["p"] == pytest.approx(theirs.at["switch_49", "exact_p"], rel=1e-12)
    assert below["p"] != pytest.approx(theirs.at["switch_49", "normal_p"], rel=1e-6)
    assert at["p"] == pytest.approx(theirs.at["switch_50", "normal_p"], rel=1e-10)
    assert at["p"] != pytest.approx(
        radiography.exact_p(stats.rankdata(np.abs(samples["switch_50"][:50])), at["statistic"]),
        rel=1e-6,
    )


@pytest.mark.r
def test_bundled_data_is_tested_exactly(trial, r_wilcox):
    """18 lesions: the exact test, R's exact numbers, as before the switch existed."""
    _, theirs = r_wilcox
    for row in radiography.paired_tests(trial).itertuples(index=False):
        name = f"bundled_{row.outcome}"
        assert row.n == 18 and row.method == radiography.EXACT_METHOD
        assert row.statistic == pytest.approx(theirs.at[name, "exact_statistic"], rel=1e-12)
        assert row.p == pytest.approx(theirs.at[name, "exact_p"], rel=1e-12)


def test_method_sentence_names_each_outcomes_method():
    rows = pd.DataFrame({"outcome": ["length", "width"], "method": [radiography.NORMAL_METHOD] * 2})
    assert radiography.method_sentence(rows) == f"a {radiography.NORMAL_METHOD}"
    rows.loc[1, "method"] = radiography.EXACT_METHOD
    sentence = radiography.method_sentence(rows)
    assert f"for length, a {radiography.NORMAL_METHOD}" in sentence
    assert f"for width, an {radiography.EXACT_METHOD}" in sentence


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


def _trial(radiographs: pd.DataFrame) -> SimpleNamespace:
    """A trial of these radiographs only, its lesions all one patient's."""
    lesions = pd.DataFrame({"lesion_id": radiographs["lesion_id"].unique(), "patient_id": "P1"})
    return SimpleNamespace(radiography=radiographs, lesions=lesions)


def test_sd_sentence_says_fell_when_it_fell():
    rows = [
        (lesion, timepoint, size, size / 2)
        for lesion, (base, final) in enumerate([(4.0, 3.0), (12.0, 4.0), (20.0, 5.0)])
        for timepoint, size in (("baseline", base), ("final", final))
    ]
    frame = pd.DataFrame(rows, columns=["lesion_id", "timepoint", "length_mm", "width_mm"])
    words = radiography.sentences(_trial(frame))
    assert words["rad_sd_sentence"] == (
        "The standard deviation fell after treatment for both length and width."
    )


def test_sd_sentence_claims_no_direction_without_a_spread():
    """One radiograph at a timepoint has no standard deviation: nothing is said of it."""
    rows = [
        ("L1", "baseline", 10.0, 5.0),
        ("L1", "final", 8.0, 4.0),
        ("L2", "baseline", 12.0, 6.0),
        ("L2", "final", None, 4.5),
    ]
    frame = pd.DataFrame(rows, columns=["lesion_id", "timepoint", "length_mm", "width_mm"])
    words = radiography.sentences(_trial(frame))
    assert words["rad_sd_sentence"] == "The standard deviation of width fell after treatment."
    words = radiography.sentences(_trial(frame.iloc[:2]))
    assert words["rad_sd_sentence"] == ""


def test_each_outcome_says_the_computation_its_own_data_took():
    """55 lesions whose length all changed and whose width changed at 45: length by the normal
    approximation, width exactly, and the chapter's sentence names both."""
    rng = np.random.default_rng(5)
    base = rng.uniform(5, 20, 55).round()
    length = base - rng.integers(1, 6, 55)
    width = base / 2 - np.where(np.arange(55) < 45, rng.integers(1, 4, 55), 0)
    rows = [
        (f"L{k}", timepoint, size, half)
        for k in range(55)
        for timepoint, size, half in (
            ("baseline", base[k], base[k] / 2),
            ("final", length[k], width[k]),
        )
    ]
    frame = pd.DataFrame(rows, columns=["lesion_id", "timepoint", "length_mm", "width_mm"])
    tests = radiography.paired_tests(_trial(frame)).set_index("outcome")
    assert tests["n_nonzero"].tolist() == [55, 45]
    assert tests.at["length", "method"] == radiography.NORMAL_METHOD
    assert tests.at["width", "method"] == radiography.EXACT_METHOD
    sentence = radiography.sentences(_trial(frame))["rad_test_sentence"]
    assert "for length, a signed-rank test by the normal approximation" in sentence
    assert "for width, an exact signed-rank test" in sentence
