"""The planning simulation's random-slope mixed model (`arraymixed`) against R's lme4 +
lmerTest and against the book's own `mixed.fit_random_slopes`: independent implementations."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from calcinosis import paths
from calcinosis.data.trial import load_trial
from calcinosis.simulate import power, simulation
from calcinosis.stats import arraymixed, mixed, models

# simulated from the model fitted to the bundled dataset, and R: out of the quick loop
pytestmark = pytest.mark.integration

SCRIPT = Path(__file__).parent / "r" / "lmer_arm_fit.R"
requires_lmertest = pytest.mark.skipif(
    shutil.which("Rscript") is None
    or subprocess.run(["Rscript", "-e", "library(lmerTest)"], capture_output=True).returncode,
    reason="needs Rscript with lmerTest",
)
# (allocation, children, effect, seed): dropout and missed visits in every one
CASES = [
    ("parallel", 8, "zero", 1),
    ("parallel", 8, "pilot", 2),
    ("within", 8, "pilot", 3),
    ("parallel", 40, "zero", 4),
    ("parallel", 40, "pilot", 5),
    ("within", 40, "zero", 6),
    ("within", 40, "pilot", 7),
]


@pytest.fixture(scope="module")
def setting():
    trial = load_trial(paths.DATA_DIR)
    return simulation.fit_model(trial), power.pilot_effects(trial)


def simulated(setting, allocation: str, children: int, effect: str, seed: int) -> pd.DataFrame:
    model, pilot = setting
    control, slope = power.slopes(pilot, "quarter", effect)
    design = simulation.Design(allocation, dropout=0.2, missed=0.1)
    rng = np.random.default_rng(seed)
    return simulation.simulate_trial(model, design, children, slope, rng, control)


def _arrays(trial: pd.DataFrame, x_columns: str = "arm"):
    time = trial["visit"].to_numpy(float) - 1.0
    y = np.log1p(trial["length_mm"].to_numpy(float))
    if x_columns == "arm":
        arm = trial["arm"].to_numpy(float)
        x = np.column_stack([np.ones(len(y)), arm, time, arm * time])
    else:
        x = np.column_stack([np.ones(len(y)), time])
    blocks = arraymixed.blocks(
        y, x, time, trial["patient_id"].to_numpy(), trial["lesion_id"].to_numpy()
    )
    return blocks, time, y


def _lmer(trial: pd.DataFrame, folder: Path) -> pd.Series:
    source, target = folder / "in.csv", folder / "out.csv"
    pd.DataFrame(
        {
            "patient_id": trial["patient_id"],
            "lesion_id": trial["lesion_id"],
            "arm": trial["arm"],
            "time": trial["visit"] - 1,
            "y": np.log1p(trial["length_mm"]),
        }
    ).to_csv(source, index=False)
    subprocess.run(["Rscript", str(SCRIPT), str(source), str(target)], check=True)
    return pd.read_csv(target).iloc[0]


@pytest.mark.r
@requires_lmertest
@pytest.mark.parametrize("case", CASES, ids=["-".join(map(str, c)) for c in CASES])
def test_matches_lmertest(case, setting, tmp_path):
    """β, SE and df of arm × time and the seven REML variance parameters agree with lme4 +
    lmerTest, on the boundary too (lme4's singular fit: said so, and still estimated)."""
    trial = simulated(setting, *case)
    theirs = _lmer(trial, tmp_path)
    blocks, _, _ = _arrays(trial)
    result = arraymixed.fit(blocks)
    assert bool(result.singular) == bool(theirs["singular"])
    ours = arraymixed.term_test(result, 3)
    assert ours.beta == pytest.approx(theirs["beta"], rel=1e-5, abs=1e-8)
    assert ours.se == pytest.approx(theirs["se"], rel=1e-5)
    assert ours.df == pytest.approx(theirs["df"], rel=1e-3)
    assert ours.p == pytest.approx(theirs["p"], rel=1e-3, abs=1e-8)
    scale = max(abs(theirs[n]) for n in arraymixed.NAMES[:3])
    for k, name in enumerate(arraymixed.NAMES):
        level = scale if k < 3 else max(abs(theirs[n]) for n in arraymixed.NAMES[3:])
        assert result.theta[k] == pytest.approx(theirs[name], rel=1e-4, abs=1e-5 * level)


@pytest.mark.parametrize("seed", [2, 5, 7])
def test_time_only_model_matches_the_books_mixed_model(seed, setting):
    """`y ~ time` with the same random effects: the book's `mixed.fit_random_slopes`
    (a different algorithm: a quasi-Newton optimiser, a numerical Hessian) gives the same
    time coefficient, SE, df and slope SDs."""
    trial = simulated(setting, "parallel", 40, "pilot", seed)
    blocks, time, y = _arrays(trial, "time")
    try:
        result = arraymixed.fit(blocks)
    except models.NotEstimableError:
        pytest.skip("on the boundary: compared with lme4 above")
    ours = arraymixed.term_test(result, 1)
    frame = pd.DataFrame(
        {"patient_id": trial["patient_id"], "lesion_id": trial["lesion_id"], "time": time, "y": y}
    )
    theirs = mixed.fit_random_slopes(frame)
    assert not theirs.singular
    assert ours.beta == pytest.approx(theirs.beta, rel=1e-5)
    assert ours.se == pytest.approx(theirs.se, rel=1e-4)
    assert ours.df == pytest.approx(theirs.df, rel=1e-3)
    assert np.sqrt(result.theta[2]) == pytest.approx(theirs.sd_patient_slope, rel=1e-3)
    assert np.sqrt(result.theta[5]) == pytest.approx(theirs.sd_lesion_slope, rel=1e-3)
    assert np.sqrt(result.theta[6]) == pytest.approx(theirs.sd_residual, rel=1e-4)


def test_a_trial_without_enough_lesion_lines_is_not_estimable():
    """Fewer than two lesions with three visits: no start, said in words."""
    y, time = np.array([1.0, 0.9, 1.2, 1.1]), np.array([0.0, 1.0, 0.0, 1.0])
    x = np.column_stack([np.ones(4), time])
    with pytest.raises(models.NotEstimableError, match="two lesions"):
        arraymixed.blocks(y, x, time, np.array([0, 0, 1, 1]), np.array([0, 0, 1, 1]))
