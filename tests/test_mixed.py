"""The random-slope mixed model against R's lme4 + lmerTest, an independent implementation."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from calcinosis import data, mixed, models, paths, sensitivity

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


@pytest.mark.r
@requires_lmertest
def test_singular_in_both(tmp_path):
    """Lesions that share one rate: lme4 calls the fit singular, and it is not estimable here."""
    from stats_fixtures import simulate_measurements

    frame = _frame(simulate_measurements(np.random.default_rng(7), missing=0.2), "length_mm")
    assert bool(_lmer(frame, tmp_path)["singular"])
    with pytest.raises(models.NotEstimableError, match="singular"):
        mixed.fit_random_slopes(frame)


def test_grid_row_uses_random_slopes_and_satterthwaite():
    trial = data.load_trial(paths.DATA_DIR)
    table = sensitivity.grid(trial)
    rows = table[table["factor"] == "mixed model"]
    assert len(rows) == 2 and rows["choice"].str.contains("random intercepts and slopes").all()
    assert rows["reference"].str.startswith("Satterthwaite t(").all()
    # the patient-level variation of the slope is what widens the interval
    assert (rows["df"] < len(trial.patients)).all()
