"""Fits that fail say so in words, with the true reason, and never as a number: the main GEE
under parameters the data cannot support, a diverged fit, the interaction model with an empty
duration group, and working correlations without enough within-cluster pairs."""

from __future__ import annotations

import re
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from calcinosis.data import trial as data
from calcinosis.formatting import NOT_ESTIMABLE
from calcinosis.params import Parameters
from calcinosis.report import gee_sentences, results, tables
from calcinosis.stats import discussion, models, patients
from stats_fixtures import data_trial, simulate_measurements, trial_from

# A number in a cell or sentence: what a failed fit must never show.
NUMBER = re.compile(r"\d+\.\d+|\bnan\b|\binf\b", re.IGNORECASE)


@pytest.fixture(scope="module")
def trial():
    return data_trial()


def _gee(trial, params):
    (producer,) = [p for p in results.PRODUCERS if p.name == "gee"]
    (section,) = results.run(producer, trial, params)
    return section


def _numeric_cells(markdown: str) -> list[str]:
    """The cells of a printed table except its first column and a Note."""
    lines = [line for line in markdown.splitlines() if line.startswith("|")]
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    cells = []
    for line in lines[2:]:
        row = [c.strip() for c in line.strip("|").split("|")]
        cells += [c for h, c in list(zip(header, row, strict=True))[1:] if h != "Note"]
    return cells


@pytest.mark.integration
def test_main_gee_on_patient_clusters_is_said_not_estimable_and_the_build_goes_on(trial):
    """The reviewer's first experiment (issue 18): exchangeable GEE clustered by patient
    diverges on the bundled data. Its values are "not estimable" with a reason, its tables
    keep their rows blank, and its sentences quote no number."""
    section = _gee(trial, Parameters(cluster="patient"))
    values = section.values
    for outcome in ("length", "width"):
        assert values[f"gee_{outcome}_estimable"] == 0
        for field in results.GEE_FIELDS:
            assert values[f"gee_{outcome}_{field}"] == NOT_ESTIMABLE
        reason = values[f"gee_{outcome}_reason"]
        assert "diverged" in reason
        sentence = values[f"gee_{outcome}_sentence"]
        assert sentence == f"the main model is {NOT_ESTIMABLE}: {reason}."
        assert not NUMBER.search(sentence)
        table = section.tables[f"tab_gee_{outcome}"].markdown()
        assert set(_numeric_cells(table)) == {"–"}
        assert "not estimable" in table
    assert set(_numeric_cells(section.tables["tab_gee_summary"].markdown())) == {"–"}
    assert "not estimable, so it has neither" in values["gee_correlation_sentence"]
    assert section.figures["fig_gee_curve"].png and section.figures["fig_gee_checks"].png


def test_a_diverged_fit_is_said_to_have_diverged_without_its_value():
    """A mean curve that runs off is not quoted (it was "reaches 2.89e+31 mm")."""
    frame = pd.DataFrame({"time": [0.0, 30.0], "length_mm": [10.0, 9.0]})
    result = SimpleNamespace(
        model=SimpleNamespace(cov_struct=SimpleNamespace(dep_params=None)),
        params=pd.Series([np.log(10.0), 2.4]),
        bse=pd.Series([0.1, 0.1]),
    )
    with pytest.raises(models.NotEstimableError) as err:
        models.check_fit(result, "length_mm", frame, "gaussian_log")
    assert "diverged" in str(err.value)
    assert not re.search(r"\d", str(err.value).removeprefix("length_mm"))


def test_a_working_correlation_at_nan_is_not_called_the_edge():
    result = SimpleNamespace(model=SimpleNamespace(cov_struct=SimpleNamespace(dep_params=np.nan)))
    with pytest.raises(models.NotEstimableError) as err:
        models.check_fit(result, "length_mm", pd.DataFrame(), "gaussian_log")
    assert "edge" not in str(err.value) and "nan" not in str(err.value)


def _one_duration_group(tmp_path) -> data.Trial:
    """A trial whose patients all have a short disease duration (no long group)."""
    measurements = simulate_measurements(np.random.default_rng(3), n_patients=3)
    trial_from(measurements, tmp_path)
    patients_csv = tmp_path / "patients.csv"
    table = pd.read_csv(patients_csv)
    table["disease_duration_months"] = 12
    table.to_csv(patients_csv, index=False)
    return data.load_trial(tmp_path)


@pytest.mark.integration
def test_interaction_with_an_empty_duration_group_is_not_estimable(tmp_path):
    """No patient of long duration: rows "not estimable: no patient with …", never
    B = 0.0000, SE 0.0000, Exp(B) 1.0000 (issue 18), in tables, sentences and values."""
    trial = _one_duration_group(tmp_path)
    for outcome in ("length", "width"):
        model = discussion.interaction_model(trial, outcome)
        assert model[["B", "SE", "p", "Exp(B)", "pct_per_visit_effect"]].isna().all().all()
        assert (model["reason"].str.startswith("no patient with disease duration ≥ 24")).all()
        printed = results.Table(tables.tab_interaction(trial, outcome), results.GEE_DECIMALS)
        assert set(_numeric_cells(printed.markdown())) == {"–"}
        assert "not estimable: no patient with disease duration ≥ 24 months" in (
            printed.markdown().replace("\\", "")
        )
    section = results._discussion(trial)
    for outcome in ("length", "width"):
        assert section.values[f"interaction_{outcome}_beta"] == NOT_ESTIMABLE
        assert section.values[f"interaction_{outcome}_p"] == NOT_ESTIMABLE
        assert f"interaction_{outcome}_p_text" not in section.values
    note = section.values["interaction_note"]
    assert "for length the model is not estimable: no patient with disease duration" in note


def test_interaction_checks_convergence_like_the_main_model(tmp_path, monkeypatch):
    trial = trial_from(simulate_measurements(np.random.default_rng(3), n_patients=3), tmp_path)
    real = models.fit_design
    # statsmodels warned that the fit did not converge
    monkeypatch.setattr(models, "fit_design", lambda *a, **k: (real(*a, **k)[0], False))
    model = discussion.interaction_model.__wrapped__(trial, "length")
    assert model["B"].isna().all()
    assert (model["reason"] == f"the fit did not converge in {models.MAX_ITER} iterations").all()


def _two_visits(n_lesions: int, visits: tuple[int, ...] = (1, 2)) -> pd.DataFrame:
    """One patient, `n_lesions` lesions each measured at `visits` only."""
    rows = [
        {
            "lesion_id": f"A-{k}",
            "patient_id": "A",
            "visit": v,
            "length_mm": 10.0 + k - 0.5 * v + 0.3 * (k % 2) * v,
            "width_mm": 6.0 + 0.5 * k - 0.2 * v + 0.2 * (k % 3) * v,
        }
        for k in range(1, n_lesions + 1)
        for v in visits
    ]
    return pd.DataFrame(rows)


@pytest.mark.parametrize("cov_struct", ["exchangeable", "ar1"])
def test_working_correlation_with_too_few_pairs_says_why(cov_struct):
    """A patient with one visit after baseline and two lesions has two within-lesion pairs for
    two coefficients: α is undefined (n_pairs − p = 0), not at the edge of (−1, 1)."""
    with pytest.raises(models.NotEstimableError) as err:
        models.fit_gee(_two_visits(2), "length", cov_struct=cov_struct, qic=False)
    text = str(err.value)
    assert "too few within-lesion pairs" in text
    assert "edge" not in text and "nan" not in text.lower() and "α =" not in text
    # with three lesions there is a pair to spare: whatever becomes of the fit, not this
    try:
        models.fit_gee(_two_visits(3), "length", cov_struct=cov_struct, qic=False)
    except models.NotEstimableError as other:
        assert "pairs" not in str(other)


def test_working_correlation_at_the_edge_with_two_visits_names_the_visits():
    """Lesions of different sizes seen twice: α rests on one pair per lesion and leaves
    (−1, 1); the reason names the two visits (the cause), not only the edge (the symptom)."""
    with pytest.raises(models.NotEstimableError) as err:
        models.fit_gee(_two_visits(4), "length", cov_struct="exchangeable", qic=False)
    assert "at most two measured visits" in str(err.value)


@pytest.mark.parametrize("cov_struct", ["exchangeable", "ar1"])
def test_working_correlation_without_pairs_says_no_lesion_has_two_visits(cov_struct):
    frame = pd.concat(  # lesion A-k measured at visit k only
        [_two_visits(1, (k,)).assign(lesion_id=f"A-{k}") for k in (1, 2, 3)], ignore_index=True
    )
    with pytest.raises(models.NotEstimableError) as err:
        models.fit_gee(frame, "length", cov_struct=cov_struct, qic=False)
    assert "no lesion has two measured visits" in str(err.value)


def test_patient_page_and_table_give_the_pairs_reason(tmp_path):
    """The per-patient rate (exchangeable, lesion clusters) of a patient seen once after
    baseline: the page's sentence and the patients table say why, with no "(α = nan)"."""
    measurements = _two_visits(2)
    other = simulate_measurements(np.random.default_rng(5), n_patients=2, missing=0.0)
    trial = trial_from(pd.concat([measurements, other], ignore_index=True), tmp_path)
    page = patients.patient_page(trial, "A")
    assert not page.rate_length.estimable
    assert "too few within-lesion pairs" in page.rate_length.reason
    sentence = patients.page_sentences(page)["rate_sentence"]
    table = results.Table(tables.tab_patient_rates(trial), 2).markdown()
    for text in (sentence, table):
        assert "nan" not in text.lower() and "edge of" not in text


@pytest.mark.integration
def test_gee_page_leads_with_the_corrected_test_when_clusters_are_few(trial):
    """Issue 22 item 5: with patient clusters (5 < `FEW_CLUSTERS`) the lead is the CR2 t-test
    with its df and p, and the robust z stands beside it, labelled; the values are those of
    `models.fit_gee` with the CR2 covariance (checked against clubSandwich in
    test_small_sample.py)."""
    params = Parameters(cluster="patient", correlation="independence")
    values = _gee(trial, params).values
    assert values["gee_n_clusters"] == 5 and values["gee_leads_with_correction"] == 1
    assert "fewer than" in values["gee_lead_reason_sentence"]
    for outcome in ("length", "width"):
        corrected = models.fit_gee(
            trial,
            outcome,
            cov_struct="independence",
            cluster="patient",
            cov_type=gee_sentences.SMALL_SAMPLE_COV,
            qic=False,
        )
        assert values[f"gee_{outcome}_small_sample_p"] == corrected.p
        assert values[f"gee_{outcome}_small_sample_df"] == corrected.ref_df[1]
        sentence = values[f"gee_{outcome}_sentence"]
        lead, robust = sentence.split("beside it")
        assert models.COV_TYPE_NAMES[gee_sentences.SMALL_SAMPLE_COV] in lead
        assert f"t on {corrected.ref_df[1]:.1f} df" in lead
        assert "robust z-test as SPSS prints it" in robust
        assert values[f"gee_{outcome}_p_text"].split()[-1] in robust


def test_many_clusters_lead_with_the_robust_test():
    fit = SimpleNamespace(
        n_clusters=gee_sentences.FEW_CLUSTERS,
        n_obs=400,
        n_lesions=40,
        pct_per_visit=-2.0,
        pct_ci_low=-3.0,
        pct_ci_high=-1.0,
        wald_chi2=16.0,
        p=0.0001,
    )
    sentence = gee_sentences.outcome_sentence(fit, "", None, "")
    assert "Wald χ² = 16.0" in sentence and "t on" not in sentence
    assert not gee_sentences.leads_with_correction(gee_sentences.FEW_CLUSTERS)


@pytest.mark.integration
def test_gee_figures_say_not_estimable_and_draw_no_curve(trial):
    from calcinosis.report import figures

    params = Parameters(cluster="patient")
    curve = figures.fig_gee_curve(trial, params)
    legend = [t.get_text() for t in curve.axes[0].get_legend().get_texts()]
    assert legend == ["one lesion"]  # no "population mean (GEE)" without a fit
    for ax in curve.axes:
        texts = [t.get_text().replace("\n", " ") for t in ax.texts]
        assert any(t.startswith("GEE not estimable: the fit diverged") for t in texts)
        assert not any(line.get_label() == "GEE fit" for line in ax.lines)
    checks = figures.fig_gee_checks(trial, params)
    assert all(any("not estimable" in t.get_text() for t in ax.texts) for ax in checks.axes)
