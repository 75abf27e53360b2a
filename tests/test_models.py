"""The primary model and the general GEE fitter: what SPSS prints, conventions, edge cases."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from calcinosis.data import trial as data
from calcinosis.stats import models
from stats_fixtures import data_trial, simulate_measurements


@pytest.fixture(scope="module")
def trial():
    return data_trial()


@pytest.mark.parametrize("outcome,printed", [("length", -2.66), ("width", -3.32)])
def test_primary_reproduces_the_paper(trial, outcome, printed):
    fit = models.primary(trial, outcome)
    assert round(fit.pct_per_visit, 2) == printed
    assert fit.p < 0.05
    assert (fit.n_obs, fit.n_lesions, fit.n_patients, fit.n_clusters) == (274, 18, 5, 18)
    assert fit.correlation_structure == "exchangeable" and fit.reference == "z"
    assert 0 < fit.working_correlation < 1
    assert fit.qic is not None and np.isfinite(fit.qic)
    assert fit.converged


def test_primary_accepts_column_names_and_agrees_with_primary_rate(trial):
    fit = models.primary(trial, "length_mm")
    rate = models.primary_rate(trial.measurements, "length_mm")
    assert fit.beta == pytest.approx(rate.beta, rel=1e-12)
    assert fit.se == pytest.approx(rate.se, rel=1e-12)
    assert fit.pct_per_visit == pytest.approx(rate.pct_per_visit, rel=1e-12)


def test_geefit_is_frozen(trial):
    fit = models.primary(trial, "width")
    with pytest.raises(dataclasses.FrozenInstanceError):
        fit.beta = 0.0  # type: ignore[misc]


def test_parameter_table_is_internally_consistent(trial):
    fit = models.primary(trial, "length")
    table = fit.parameter_table()
    assert list(table.index) == [models.INTERCEPT, models.TIME_TERM]
    assert list(table.columns) == [
        "B",
        "SE",
        "CI low",
        "CI high",
        "Wald χ²",
        "df",
        "p",
        "Exp(B)",
        "Exp(B) CI low",
        "Exp(B) CI high",
    ]
    row = table.loc[models.TIME_TERM]
    z = stats.norm.ppf(0.975)
    assert row["B"] == pytest.approx(fit.beta)
    assert row["CI low"] == pytest.approx(fit.beta - z * fit.se)
    assert row["Wald χ²"] == pytest.approx((fit.beta / fit.se) ** 2)
    assert row["p"] == pytest.approx(stats.chi2.sf(row["Wald χ²"], 1))
    assert row["Exp(B) CI high"] == pytest.approx(np.exp(row["CI high"]))
    assert fit.pct_ci_low == pytest.approx(100 * (row["Exp(B) CI low"] - 1))
    assert fit.pct_ci_low < fit.pct_per_visit < fit.pct_ci_high


def test_fitted_curve_covers_every_visit(trial):
    fit = models.primary(trial, "length")
    curve = fit.fitted_curve()
    assert list(curve.columns) == ["visit", "fitted", "ci_low", "ci_high"]
    assert curve["visit"].tolist() == list(range(1, 17))
    assert curve.loc[0, "fitted"] == pytest.approx(np.exp(fit.intercept))
    ratio = curve["fitted"].iloc[1:].to_numpy() / curve["fitted"].iloc[:-1].to_numpy()
    np.testing.assert_allclose(ratio, fit.exp_b)
    assert (curve["ci_low"] < curve["fitted"]).all() and (curve["fitted"] < curve["ci_high"]).all()


def test_scale_convention_spss_versus_geepack(trial):
    """SPSS divides the scale by N − p (the default here); ddof_scale=0 is geepack's N."""
    spss = models.fit_gee(trial, "length")
    geepack = models.fit_gee(trial, "length", ddof_scale=0)
    assert spss.scale != pytest.approx(geepack.scale, rel=1e-6)
    assert spss.scale == pytest.approx(geepack.scale * spss.n_obs / (spss.n_obs - 2), rel=1e-3)


def test_independence_needs_no_correlation(trial):
    fit = models.fit_gee(trial, "width", cov_struct="independence")
    assert fit.working_correlation == 0.0


def test_time_aware_ar1_uses_visit_gaps():
    """A lesion seen at visits 1 and 16 is 15 lags apart, not 1."""
    from calcinosis.stats.covstruct import TimeAR1

    rng = np.random.default_rng(3)
    frame = simulate_measurements(rng, missing=0.0)
    frame = frame[~((frame["lesion_id"] == "P1-L1") & frame["visit"].between(2, 15))]
    fit = models.fit_gee(frame, "length", cov_struct="ar1")
    assert 0 < fit.working_correlation < 1
    structure = TimeAR1()
    structure.dep_params = fit.working_correlation
    structure._lags = [np.abs(np.subtract.outer([1.0, 16.0], [1.0, 16.0]))]
    corr, is_corr = structure.covariance_matrix(None, 0)
    assert is_corr and corr[0, 1] == pytest.approx(fit.working_correlation**15)


def test_small_sample_covariances_grow_and_use_t(trial):
    robust = models.fit_gee(trial, "length")
    md = models.fit_gee(trial, "length", cov_type="mancl_derouen")
    kc = models.fit_gee(trial, "length", cov_type="bias_reduced")
    assert md.beta == robust.beta
    assert robust.se < kc.se < md.se
    assert md.reference.startswith("Satterthwaite t(") and 15 < md.ref_df[1] < 17


def test_mancl_derouen_matches_statsmodels_bias_reduced(trial):
    result = models.fit_primary(trial.measurements, "length_mm")
    reference = result.model.fit(
        start_params=result.params.to_numpy(), maxiter=200, cov_type="bias_reduced"
    )
    ours, _ = models.adjusted_sandwich(result.model, -1.0)
    np.testing.assert_allclose(np.sqrt(np.diag(ours)), reference.bse, rtol=1e-6)
    plain, _ = models.adjusted_sandwich(result.model, 0.0)
    np.testing.assert_allclose(plain, result.cov_params(), rtol=1e-8)


def test_patient_clusters(trial):
    fit = models.fit_gee(trial, "length", cluster="patient", cov_struct="independence")
    assert fit.n_clusters == 5 and fit.cluster == "patient"


def test_additive_model_reports_percentage_points(trial):
    fit = models.fit_gee(trial, "length", family="gaussian_identity", transform="pct_baseline")
    assert fit.scale_kind == "additive" and fit.pct_per_visit == pytest.approx(fit.beta)


def test_qic_only_for_gaussian(trial):
    assert models.fit_gee(trial, "length", family="tweedie_log").qic is None


# ---- edge cases: clear errors, never wrong numbers -------------------------------------------


def _frame(rows):
    return pd.DataFrame(rows, columns=["lesion_id", "visit", "length_mm", "width_mm"])


def test_single_cluster_is_not_estimable():
    frame = _frame([["P1-L1", v, 10 - v, 5] for v in range(1, 6)])
    with pytest.raises(models.NotEstimableError, match="single cluster"):
        models.fit_gee(frame, "length")


def test_all_zero_outcome_is_not_estimable():
    frame = _frame([[f"P1-L{k}", v, 0.0, 0.0] for k in (1, 2) for v in (1, 2, 3)])
    with pytest.raises(models.NotEstimableError, match="every value is 0"):
        models.fit_gee(frame, "width")


def test_one_visit_is_not_estimable():
    frame = _frame([["P1-L1", 1, 10, 5], ["P1-L2", 1, 8, 4]])
    with pytest.raises(models.NotEstimableError, match="one visit"):
        models.fit_gee(frame, "length")


def test_ar1_with_patient_clusters_is_refused(trial):
    with pytest.raises(models.NotEstimableError, match="one row per visit"):
        models.fit_gee(trial, "length", cluster="patient", cov_struct="ar1")


def test_diverging_fit_is_reported_not_returned(trial):
    """Exchangeable with patient clusters runs off here (α leaves (−1, 1)); statsmodels
    returns numbers without a warning, the fitter refuses them."""
    with pytest.raises(models.NotEstimableError):
        models.fit_gee(trial, "length", cluster="patient")


def test_lesion_with_one_visit_is_used(tiny_dataset):
    trial = data.load_trial(tiny_dataset)
    frame = trial.measurements.copy()
    frame.loc[(frame["lesion_id"] == "P2-L1") & (frame["visit"] > 1), "length_mm"] = np.nan
    fit = models.fit_gee(frame, "length", cov_struct="independence")
    assert fit.n_obs == 6 and fit.n_lesions == 3


@pytest.mark.parametrize(
    "option,value",
    [("cov_struct", "ar2"), ("cluster", "visit"), ("cov_type", "naive"), ("family", "gamma")],
)
def test_unknown_options_are_errors(trial, option, value):
    with pytest.raises(ValueError, match=option):
        models.fit_gee(trial, "length", **{option: value})


def test_unknown_outcome_is_an_error(trial):
    with pytest.raises(ValueError, match="unknown outcome"):
        models.primary(trial, "area")
