"""Small-sample sandwiches with Satterthwaite df against R's clubSandwich (Pustejovsky &
Tipton 2018), an independent implementation.

clubSandwich 0.5.8 has no method for geeglm, so the GEE is matched by models with the same
estimates: with an independence working correlation, the Gaussian log-link GLM; with an
exchangeable one, GLS with the correlation fixed at the GEE's α (identity link, log(size + 1)),
whose working model (weights V⁻¹, target V) is then the GEE's.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from calcinosis import paths
from calcinosis.data import trial as data
from calcinosis.stats import models
from stats_fixtures import simulate_measurements

pytestmark = pytest.mark.r
SCRIPT = Path(__file__).parent / "r" / "club_sandwich.R"
COV_TYPES = {"CR2": "bias_reduced", "CR3": "mancl_derouen"}


def _have_club_sandwich() -> bool:
    if shutil.which("Rscript") is None:
        return False
    probe = subprocess.run(["Rscript", "-e", "library(clubSandwich)"], capture_output=True)
    return probe.returncode == 0


requires_club_sandwich = pytest.mark.skipif(
    not _have_club_sandwich(), reason="needs Rscript with clubSandwich"
)

DATASETS = {
    "data": lambda: data.load_trial(paths.DATA_DIR).measurements,
    "simulated": lambda: simulate_measurements(np.random.default_rng(7), missing=0.2),
}


def _reference(frame, column, cluster_col, model, alpha, tmp_path) -> pd.DataFrame:
    source, target = tmp_path / "in.csv", tmp_path / "out.csv"
    frame.rename(columns={cluster_col: "cluster", column: "y"})[["cluster", "time", "y"]].to_csv(
        source, index=False
    )
    subprocess.run(
        ["Rscript", str(SCRIPT), str(source), model, repr(alpha), str(target)],
        check=True,
        capture_output=True,
    )
    return pd.read_csv(target).set_index(["type", "term"])


def _agree(fit: models.GEEFit, reference: pd.DataFrame, type_: str, rtol: float) -> None:
    time = reference.loc[(type_, "time")]
    np.testing.assert_allclose(fit.beta, time["beta"], rtol=rtol)
    np.testing.assert_allclose(fit.se, time["se"], rtol=rtol)
    np.testing.assert_allclose(fit.ref_df[1], time["df"], rtol=rtol)
    np.testing.assert_allclose(fit.p, time["p"], rtol=rtol)
    np.testing.assert_allclose(fit.ref_df[0], reference.loc[(type_, "intercept"), "df"], rtol=rtol)


@requires_club_sandwich
@pytest.mark.parametrize("dataset", sorted(DATASETS))
@pytest.mark.parametrize("outcome", ["length", "width"])
def test_patient_clusters_independence(dataset, outcome, tmp_path):
    """The rows with five clusters: R's GLM stops at its own tolerance; 6 digits agree."""
    measurements = models.with_patient_id(DATASETS[dataset]())
    column = models.outcome_column(outcome)
    frame = models.gee_frame(measurements, column, "patient_id")
    reference = _reference(frame, column, "patient_id", "glm_log", "NA", tmp_path)
    for type_, cov_type in COV_TYPES.items():
        fit = models.fit_gee(
            measurements,
            outcome,
            cluster="patient",
            cov_struct="independence",
            cov_type=cov_type,
            ctol=1e-10,
        )
        _agree(fit, reference, type_, rtol=1e-5)


@requires_club_sandwich
@pytest.mark.parametrize("dataset", sorted(DATASETS))
def test_lesion_clusters_exchangeable(dataset, tmp_path):
    """A non-independence working correlation: 10 digits agree."""
    measurements = models.with_patient_id(DATASETS[dataset]())
    frame = models._model_frame(measurements, "length_mm", "lesion_id", "log1p")
    fits = {
        type_: models.fit_gee(
            measurements,
            "length",
            family="gaussian_identity",
            transform="log1p",
            cov_type=cov_type,
            ctol=1e-10,
        )
        for type_, cov_type in COV_TYPES.items()
    }
    alpha = fits["CR2"].working_correlation
    assert 0.1 < alpha < 0.99
    reference = _reference(frame, "length_mm", "lesion_id", "gls_exchangeable", alpha, tmp_path)
    for type_, fit in fits.items():
        _agree(fit, reference, type_, rtol=1e-9)


def test_satterthwaite_df_is_below_clusters_minus_one():
    """With five clusters of unequal leverage the df fall well below G − 1 = 4."""
    measurements = data.load_trial(paths.DATA_DIR).measurements
    fit = models.fit_gee(
        measurements,
        "length",
        cluster="patient",
        cov_struct="independence",
        cov_type="bias_reduced",
    )
    assert 1 < fit.ref_df[1] < fit.n_clusters - 1
    assert fit.reference.startswith("Satterthwaite t(")
