"""The sensitivity grid: its shape, its primary rows, and what it shows."""

from __future__ import annotations

import numpy as np
import pytest

from calcinosis import paths
from calcinosis.book.compare import Change, compare_results
from calcinosis.data import trial as data
from calcinosis.formatting import NOT_ESTIMABLE
from calcinosis.report import tables
from calcinosis.stats import models, sensitivity
from stats_fixtures import data_trial, with_extra_visit

# whole-dataset fits and simulations: out of the quick loop
pytestmark = pytest.mark.integration


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


def test_small_sample_rows_use_satterthwaite_t(grid):
    table = grid
    small = table[table["choice"].str.startswith(("Mancl–DeRouen", "bias-reduced linearisation"))]
    assert len(small) == 8 and small["reference"].str.startswith("Satterthwaite t(").all()
    patient = small[small["choice"].str.contains("patient clusters")]
    assert (patient["reference"].str.extract(r"t\((.*)\)")[0].astype(float) < 4).all()


def test_leave_one_patient_out_has_a_row_per_patient(grid):
    table = grid
    loo = table[table["factor"] == "leave one patient out"]
    assert len(loo) == 10 and loo["pct_per_visit"].notna().all()


def test_not_estimable_rows_stay_with_a_reason(grid):
    table = grid
    missing = table[table["pct_per_visit"].isna()]
    assert len(missing) > 0 and missing["note"].str.startswith("not estimable (").all()


def test_headline(grid):
    """Most analyses keep p < 0.05; the patient-level rows (small-sample patient clusters,
    random slopes by patient) are where it fails."""
    table = grid
    significant, estimated = sensitivity.significant_share(table)
    assert estimated > significant > estimated / 2
    failing = table[table["p"] >= 0.05]
    assert failing["analysis"].map(sensitivity._patient_level).all()
    assert (failing["factor"] == "mixed model").sum() == 2  # random slopes by patient


def test_tallies_count_each_distinct_analysis_once(grid):
    """The primary model stands in four factors' groups and the patient-cluster independence
    model in two: each is one analysis."""
    distinct = sensitivity.distinct(grid)
    for outcome in ("length", "width"):
        part = distinct[distinct["outcome"] == outcome]
        assert part["analysis"].is_unique
        assert (part["analysis"] == "all patients: primary").sum() == 1
        repeated = grid[grid["outcome"] == outcome]["analysis"].value_counts()
        assert repeated["all patients: primary"] == 4
        assert repeated["all patients: cluster=patient, cov_struct=independence"] == 2
        assert len(part) == len(grid[grid["outcome"] == outcome]) - 4
    significant, estimated = sensitivity.significant_share(grid)
    fitted = sensitivity.estimable(distinct)
    assert estimated == len(fitted) and significant == int((fitted["p"] < 0.05).sum())


def test_choice_labels_count_the_data(trial, grid):
    n_lesions, n_patients = len(trial.lesions), len(trial.patients)
    assert f"lesion ({n_lesions})" in set(grid["choice"])
    assert f"patient ({n_patients}), exchangeable" in set(grid["choice"])


@pytest.fixture(scope="module")
def visit17(tmp_path_factory):
    """The bundled data with a visit 17 for three lesions: the patient-cluster exchangeable
    fit then ran off to +15 395 % per visit on main."""
    folder = tmp_path_factory.mktemp("visit17")
    return with_extra_visit(paths.DATA_DIR, folder, n_lesions=3)


def test_a_diverged_fit_is_not_a_result(visit17):
    trial = data.load_trial(visit17)
    with pytest.raises(models.NotEstimableError, match="diverged|did not converge"):
        models.fit_gee(trial, "length", cluster="patient")
    table = sensitivity.grid(trial)
    row = table[(table["outcome"] == "length") & table["choice"].str.endswith("exchangeable")]
    row = row[row["factor"] == "cluster"].iloc[0]
    assert np.isnan(row["pct_per_visit"]) and row["note"].startswith("not estimable (")
    # nothing absurd is left anywhere in the grid, its ranges or its sentences
    fitted = sensitivity.estimable(table)
    assert fitted["pct_per_visit"].abs().max() < 100
    summary = tables.sensitivity_summary(trial)
    assert -100 < summary["length_min"] <= summary["length_max"] < 100
    assert summary["length_n_not_estimable"] >= 1
    assert "patient" in summary["length_not_estimable"]
    shown = tables.tab_sensitivity(trial)
    assert shown["Note"].str.startswith("not estimable (").sum() >= 2
    assert shown["Change per visit (%)"].abs().max() < 100
    words = sensitivity.sentences(trial)
    assert "could not be fitted" in words["not_estimable_sentence"]


def test_forest_plot_leaves_a_diverged_fit_out(visit17):
    import matplotlib.pyplot as plt

    from calcinosis.report import figures

    fig = figures.fig_sensitivity_forest(data.load_trial(visit17))
    try:
        for ax in fig.axes:
            low, high = ax.get_xlim()
            assert -100 < low < high < 100  # main's axis ran to 40 000
            labels = [t.get_text() for t in ax.texts]
            assert "not estimable" in labels or not labels
        assert any("not estimable" in t.get_text() for ax in fig.axes for t in ax.texts)
    finally:
        plt.close(fig)


def test_compare_does_not_difference_a_not_estimable_value():
    assert Change("x", -2.5, NOT_ESTIMABLE).delta == "now not estimable"
    assert Change("x", NOT_ESTIMABLE, -2.5).delta == "now estimable"
    old, new = {"x": -2.5, "y": NOT_ESTIMABLE}, {"x": NOT_ESTIMABLE, "y": "z"}
    result = compare_results(old, new, [], [])
    assert not result.flips


def test_qic_for_working_correlations_on_one_scale(trial, grid):
    with_qic = grid.dropna(subset=["qic"])
    assert set(with_qic["factor"]) == {"working correlation"} and len(with_qic) == 6
    independence = models.fit_gee(trial, "length", cov_struct="independence")
    exchangeable = models.fit_gee(trial, "length")
    # each QIC is on the independence model's scale: residual part / φ_I, not its own φ
    assert exchangeable.scale != independence.scale
    best = with_qic[with_qic["outcome"] == "length"].sort_values("qic").iloc[0]["choice"]
    assert f"{best} for length" in sensitivity.sentences(trial)["qic_sentence"]


def test_printed_grid_folds_notes_and_the_primary_mark_into_the_choice(trial):
    """The book's Table 8.1 has no Note or Primary column (it was cut at 1 400 px); each
    note follows its choice, the primary model is marked there, the supplement keeps both."""
    table = tables.tab_sensitivity(trial)
    shown = tables.sensitivity_as_printed(table)
    assert "Note" not in shown and "Primary" not in shown and len(shown) == len(table)
    for (_, row), choice in zip(table.iterrows(), shown["Choice"], strict=True):
        assert choice.startswith(row["Choice"])
        assert choice.endswith(row["Note"] or row["Choice"] + (" (primary)" * row["Primary"]))
        assert (tables.PRIMARY_MARK in choice) == row["Primary"]
    assert shown["Choice"].str.contains(f" — {NOT_ESTIMABLE} (", regex=False).sum() >= 2
