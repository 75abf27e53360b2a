"""The random-slope mixed model against R's lme4 + lmerTest, an independent implementation."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from calcinosis import paths
from calcinosis.data import trial as data
from calcinosis.formatting import NOT_ESTIMABLE
from calcinosis.stats import mixed, models, sensitivity
from stats_fixtures import simulate_measurements
from trials import write_trial

SCRIPT = Path(__file__).parent / "r" / "lmer_fit.R"


def _have_lmertest() -> bool:
    if shutil.which("Rscript") is None:
        return False
    return (
        subprocess.run(["Rscript", "-e", "library(lmerTest)"], capture_output=True).returncode == 0
    )


requires_lmertest = pytest.mark.skipif(not _have_lmertest(), reason="needs Rscript with lmerTest")


def _frame(measurements: pd.DataFrame, column: str) -> pd.DataFrame:
    frame = models.gee_frame(models.with_patient_id(measurements), column)
    frame["y"] = np.log1p(frame[column])
    return frame[["patient_id", "lesion_id", "time", "y"]]


def varying_slopes(seed: int = 3) -> pd.DataFrame:
    """Six patients of three lesions whose rates of change vary by patient and by lesion."""
    rng = np.random.default_rng(seed)
    rows = []
    for p in range(1, 7):
        patient_slope, patient_base = rng.normal(-0.04, 0.03), rng.normal(2.2, 0.4)
        for k in range(1, 4):
            slope = patient_slope + rng.normal(0, 0.02)
            base = patient_base + rng.normal(0, 0.3)
            for visit in range(1, 17):
                y = np.exp(base + slope * (visit - 1) + rng.normal(0, 0.1)) - 1
                rows.append(
                    {
                        "lesion_id": f"P{p}-L{k}",
                        "patient_id": f"P{p}",
                        "visit": visit,
                        "length_mm": max(y, 0.0),
                    }
                )
    return pd.DataFrame(rows)


def copies(measurements: pd.DataFrame, k: int) -> pd.DataFrame:
    """`k` copies of the measurements under new lesion ids (P1-L1 → P6-L1, …): a registry-sized
    dataset, on which the criterion's rounding once kept the optimiser from converging."""
    frame = models.with_patient_id(measurements)
    number = {p: i for i, p in enumerate(sorted(frame["patient_id"].unique()))}
    parts = []
    for copy in range(k):
        new = frame["patient_id"].map(lambda p, c=copy: f"P{c * len(number) + number[p] + 1}")
        lesion = frame["lesion_id"].str.partition("-")[2]
        parts.append(frame.assign(lesion_id=new + "-" + lesion).drop(columns="patient_id"))
    return pd.concat(parts, ignore_index=True)


def _lmer(frame: pd.DataFrame, tmp_path: Path) -> pd.Series:
    source, target = tmp_path / "in.csv", tmp_path / "out.csv"
    frame.to_csv(source, index=False)
    subprocess.run(
        ["Rscript", str(SCRIPT), str(source), str(target)], check=True, capture_output=True
    )
    return pd.read_csv(target).iloc[0]


CASES = {
    "data-length": lambda: _frame(data.load_trial(paths.DATA_DIR).measurements, "length_mm"),
    "data-width": lambda: _frame(data.load_trial(paths.DATA_DIR).measurements, "width_mm"),
    "varying": lambda: _frame(varying_slopes(), "length_mm"),
    "data-length-x20": lambda: _frame(
        copies(data.load_trial(paths.DATA_DIR).measurements, 20), "length_mm"
    ),
}


@pytest.mark.r
@requires_lmertest
@pytest.mark.parametrize("case", sorted(CASES))
def test_matches_lmertest(case, tmp_path):
    """The REML surface is flat along the patient-level parameters: two optimisers stopping
    within 1e-6 of the same criterion give SEs that agree to about 5 digits and Satterthwaite
    df to about 4 (lmerTest differentiates numerically too; before y was taken off its
    least-squares line the criterion's rounding moved our df in the third digit)."""
    frame = CASES[case]()
    theirs = _lmer(frame, tmp_path)
    assert not theirs["singular"]
    ours = mixed.fit_random_slopes(frame)
    np.testing.assert_allclose(ours.beta, theirs["beta"], rtol=1e-5)
    np.testing.assert_allclose(ours.se, theirs["se"], rtol=1e-4)
    np.testing.assert_allclose(ours.df, theirs["df"], rtol=1e-4)
    np.testing.assert_allclose(ours.p, theirs["p"], rtol=1e-3)  # p near 1e-9 at x20
    np.testing.assert_allclose(ours.sd_residual, theirs["sd_residual"], rtol=1e-4)
    np.testing.assert_allclose(ours.sd_patient_slope, theirs["sd_patient_slope"], rtol=1e-3)
    np.testing.assert_allclose(ours.sd_lesion_slope, theirs["sd_lesion_slope"], rtol=1e-3)


def growing_lesions(seed: int, n_patients: int) -> pd.DataFrame:
    """Lesions that grow about 2.3 % a visit, at rates that vary by patient and by lesion,
    measured weekly on a 0.5 mm ruler (the trial of issue 18 on which the optimiser once
    stopped at a boundary although the REML optimum is interior)."""
    rng = np.random.default_rng(seed)
    rows = []
    for p in range(1, n_patients + 1):
        patient_slope, patient_base = rng.normal(0.023, 0.02), rng.normal(2.2, 0.4)
        for k in range(1, 4):
            slope, base = patient_slope + rng.normal(0, 0.015), patient_base + rng.normal(0, 0.3)
            for visit in range(1, 13):
                y = np.exp(base + slope * (visit - 1) + rng.normal(0, 0.08)) - 1
                rows.append(
                    {
                        "lesion_id": f"G{p}-{k}",
                        "patient_id": f"G{p}",
                        "visit": visit,
                        "length_mm": round(max(y, 0.0) * 2) / 2,
                    }
                )
    return pd.DataFrame(rows)


def _agree(ours: mixed.MixedFit, theirs: pd.Series) -> None:
    np.testing.assert_allclose(ours.beta, theirs["beta"], rtol=1e-6)
    np.testing.assert_allclose(ours.se, theirs["se"], rtol=1e-5)
    np.testing.assert_allclose(ours.df, theirs["df"], rtol=1e-3)
    np.testing.assert_allclose(ours.p, theirs["p"], rtol=1e-3)


@pytest.mark.r
@requires_lmertest
def test_growing_lesions_reach_lme4s_interior_optimum(tmp_path):
    """Eight patients whose lesions grow: lme4 finds an interior REML optimum, and so does the
    fit here (several starts, the lowest criterion kept), with the same β, SE and df."""
    frame = _frame(growing_lesions(1, n_patients=8), "length_mm")
    theirs = _lmer(frame, tmp_path)
    assert not theirs["singular"]
    ours = mixed.fit_random_slopes(frame)
    assert ours.singular == "" and ours.beta > 0
    _agree(ours, theirs)


OTHER_CASES = {
    # lesions that share one rate
    "shared-rate": lambda: _frame(
        simulate_measurements(np.random.default_rng(7), missing=0.2), "length_mm"
    ),
    "growing-5": lambda: _frame(growing_lesions(2, n_patients=5), "length_mm"),
    "growing-2.3": lambda: _frame(
        simulate_measurements(np.random.default_rng(2), pct_per_visit=2.3), "length_mm"
    ),
}


@pytest.mark.r
@requires_lmertest
@pytest.mark.parametrize("case", sorted(OTHER_CASES))
def test_singular_or_not_as_lmertest_says(case, tmp_path):
    """Where lme4 calls a fit singular, lmerTest still reports the time coefficient: so does
    the fit here, with the same β, SE and Satterthwaite df (to 0.5 %: at the boundary both
    differentiate numerically, in different parameters), and a note that names the component
    on the boundary; where lme4's fit is interior, so is this one."""
    frame = OTHER_CASES[case]()
    theirs = _lmer(frame, tmp_path)
    ours = mixed.fit_random_slopes(frame)
    assert bool(ours.singular) == bool(theirs["singular"]), (ours, theirs)
    if ours.singular:
        assert ours.singular.startswith("singular fit (as lme4 calls it): ")
        assert re.search(
            r"variance is estimated at 0|correlation is estimated at [+−]1", ours.singular
        )
    np.testing.assert_allclose(ours.beta, theirs["beta"], rtol=1e-6)
    np.testing.assert_allclose(ours.se, theirs["se"], rtol=1e-5)
    np.testing.assert_allclose(ours.df, theirs["df"], rtol=5e-3 if ours.singular else 1e-3)


@pytest.mark.parametrize(
    ("patient", "words"),
    [
        (
            [[0.5, 0.0], [0.3, 0.0]],
            "the patient-level intercept–slope correlation is estimated at +1",
        ),
        (
            [[0.5, 0.0], [-0.3, 0.0]],
            "the patient-level intercept–slope correlation is estimated at −1",
        ),
        ([[0.5, 0.0], [0.0, 0.0]], "the patient-level slope variance is estimated at 0"),
        ([[0.0, 0.0], [0.2, 0.4]], "the patient-level intercept variance is estimated at 0"),
        ([[0.0, 0.0], [0.0, 0.0]], "both patient-level variances are estimated at 0"),
    ],
)
def test_boundary_note_names_the_component_on_the_boundary(patient, words):
    interior = np.array([[0.5, 0.0], [0.1, 0.3]])
    assert mixed.boundary_note(interior, interior) == ""
    note = mixed.boundary_note(np.array(patient), interior)
    assert note == f"singular fit (as lme4 calls it): {words}"


@pytest.mark.integration
def test_grid_row_uses_random_slopes_and_satterthwaite():
    trial = data.load_trial(paths.DATA_DIR)
    table = sensitivity.grid(trial)
    rows = table[table["factor"] == "mixed model"]
    assert len(rows) == 2 and rows["choice"].str.contains("random intercepts and slopes").all()
    assert rows["reference"].str.startswith("Satterthwaite t(").all()
    # the patient-level variation of the slope is what widens the interval
    assert (rows["df"] < len(trial.patients)).all()


def _generated(seed: int, folder: Path, column: str) -> pd.DataFrame:
    return _frame(data.load_trial(write_trial(seed, folder / "trial")).measurements, column)


ROW_CASES = {
    "data-length": CASES["data-length"],
    "data-width": CASES["data-width"],
    "data-length-x20": CASES["data-length-x20"],
    "varying": CASES["varying"],
    "growing-5": OTHER_CASES["growing-5"],
}


@pytest.mark.r
@requires_lmertest
@pytest.mark.parametrize("case", sorted(ROW_CASES))
def test_grid_row_fit_matches_lmertest(case, tmp_path):
    """The grid's mixed-model row (`sensitivity.random_slopes`, Fisher scoring) gives
    lmerTest's β, SE and Satterthwaite df, interior or singular as lme4 says."""
    frame = ROW_CASES[case]()
    theirs = _lmer(frame, tmp_path)
    ours = sensitivity.random_slopes(frame)
    assert bool(ours.singular) == bool(theirs["singular"]), (ours, theirs)
    np.testing.assert_allclose(ours.beta, theirs["beta"], rtol=1e-6)
    np.testing.assert_allclose(ours.se, theirs["se"], rtol=1e-5)
    np.testing.assert_allclose(ours.df, theirs["df"], rtol=5e-3 if ours.singular else 1e-4)
    np.testing.assert_allclose(ours.p, theirs["p"], rtol=1e-3)


@pytest.mark.r
@requires_lmertest
def test_grid_row_falls_back_where_scoring_does_not_converge(tmp_path):
    """A generated trial (seed 11) whose REML optimum has both patient-level variances at 0:
    Fisher scoring does not converge there, the general optimiser does, at lme4's optimum."""
    frame = _generated(11, tmp_path, "length_mm")
    theirs = _lmer(frame, tmp_path)
    ours = sensitivity.random_slopes(frame)
    assert theirs["singular"] and "both patient-level variances" in ours.singular
    _agree(ours, theirs)


@pytest.mark.r
@requires_lmertest
def test_grid_row_not_estimable_where_lme4_refuses(tmp_path):
    """The bundled data's first two visits: as many rows as lesion-level random effects.
    lme4 refuses to fit (the variances cannot be identified); the row says so in words."""
    frame = CASES["data-length"]()
    frame = frame[frame["time"] < 2]
    frame.to_csv(tmp_path / "in.csv", index=False)
    run = subprocess.run(
        ["Rscript", str(SCRIPT), str(tmp_path / "in.csv"), str(tmp_path / "out.csv")],
        capture_output=True,
        text=True,
    )
    assert run.returncode != 0 and "number of random effects" in run.stderr
    with pytest.raises(models.NotEstimableError, match="cannot be identified"):
        sensitivity.random_slopes(frame)
    measurements = data.load_trial(paths.DATA_DIR).measurements
    row = sensitivity._mixed_row(measurements[measurements["visit"] <= 2], "length")
    assert np.isnan(row["pct_per_visit"]) and row["note"] == (
        f"{NOT_ESTIMABLE} ({len(frame)} measurements for {2 * frame['lesion_id'].nunique()} "
        "lesion-level random effects: the variances cannot be identified)"
    )
