"""Planning a definitive trial: the simulation model, the simulated trials' analyses on the
Dask runner, and the shipped result the chapter shows."""

from __future__ import annotations

import dataclasses
import json

import jupytext
import numpy as np
import pandas as pd
import pytest

from calcinosis import paths, power, simulation
from calcinosis.book.build import _stale_results
from calcinosis.data import load_trial
from calcinosis.sections import Section

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def trial():
    return load_trial(paths.DATA_DIR)


@pytest.fixture(scope="module")
def model(trial) -> simulation.Model:
    return simulation.fit_model(trial)


def settings(**changes) -> dict:
    grid = dataclasses.replace(power.Grid(), **changes)
    return {name: getattr(grid, name) for name in simulation.RUN_SETTINGS}


def block(model, n, effect, visits, replicates) -> pd.DataFrame:
    """All replicates of one cell, as one block, without Dask."""
    rows = simulation.run_block(
        model.as_dict(), settings(replicates=replicates, block=replicates), n, effect, visits, 0
    )
    return pd.DataFrame(rows)


def test_the_model_comes_from_the_data(trial, model):
    measured = trial.measurements.dropna(subset=["length_mm"])
    counts = measured.merge(trial.lesions, on="lesion_id").groupby("patient_id")["lesion_id"]
    assert sorted(model.lesions_per_patient) == sorted(counts.nunique())
    assert model.n_lesions_fitted <= len(trial.lesions)
    assert model.resolution_mm == 0.5  # every bundled size is a multiple of 0.5 mm
    assert 0 < model.resolution < 1  # some lesion ends at 0, not all
    assert model.sd_patient_slope > 0 and -1 < model.ar1 < 1
    ids = {row[0] for row in power.assumptions(model)}
    assert {"SD of patient slope per visit (c)", "lesions per patient"} <= ids


def test_a_simulated_trial_has_the_design(model):
    rng = np.random.default_rng(1)
    frame = simulation.simulate_trial(model, 4, 6, -0.03, rng, lesions_per_patient=2)
    assert len(frame) == 2 * 4 * 2 * 6
    assert frame.groupby("arm")["patient_id"].nunique().to_dict() == {0: 4, 1: 4}
    assert (frame["length_mm"] >= 0).all()
    assert np.allclose(frame["length_mm"] / 0.5, np.round(frame["length_mm"] / 0.5))
    # a resolved lesion stays at 0
    for _, sizes in frame.groupby("lesion_id")["length_mm"]:
        first_zero = np.flatnonzero(sizes.to_numpy() == 0)
        if first_zero.size and first_zero[0] > 0:
            assert (sizes.to_numpy()[first_zero[0] :] == 0).all()


def test_the_seed_of_a_replicate_is_its_own(model):
    """Block boundaries do not change a replicate's numbers."""
    whole = simulation.run_block(model.as_dict(), settings(replicates=4, block=4), 3, -2.0, 4, 0)
    halves = [
        row
        for b in (0, 1)
        for row in simulation.run_block(
            model.as_dict(), settings(replicates=4, block=2), 3, -2.0, 4, b
        )
    ]
    assert pd.DataFrame(whole).equals(pd.DataFrame(halves))


def test_power_rises_with_patients_and_with_effect(model):
    reps = 24
    share = {
        (n, e): float((block(model, n, e, 8, reps)["patient_p"] < 0.05).mean())
        for n, e in ((3, -6.0), (12, -6.0), (12, -1.5))
    }
    assert share[(12, -6.0)] > share[(3, -6.0)]
    assert share[(12, -6.0)] > share[(12, -1.5)]


def test_a_pilot_sized_trial_recovers_the_true_effect_and_holds_its_level(trial, model):
    """Five patients per arm as the pilot treated five, 16 visits, the pilot's effect: the
    mean GEE estimate is within 3 Monte-Carlo SE of the simulated effect; with no effect the
    corrected test rejects within 3 Monte-Carlo SE of α (the shipped run, with many more
    trials, gives the chapter's verdict)."""
    effect = power.pilot_effects(trial).estimate_pct
    reps = 40
    treated = block(model, 5, effect, 16, reps)
    estimates = treated["patient_beta"]
    mcse = estimates.std(ddof=1) / np.sqrt(reps)
    assert abs(estimates.mean() - simulation.log_slope(effect)) < 3 * mcse
    null = block(model, 5, 0.0, 16, reps)
    rejected = float((null["patient_p"] < 0.05).mean())
    assert abs(rejected - 0.05) < 3 * np.sqrt(0.05 * 0.95 / reps)


def test_one_or_two_workers_give_the_same_replicates_and_a_run_resumes(trial, tmp_path):
    grid = power.Grid(patients_per_arm=(3,), visits=(4,), replicates=4, block=2, alphas=(0.05,))
    one = power.compute(trial, grid, tmp_path / "one", workers=1, progress=False)
    two = power.compute(trial, grid, tmp_path / "two", workers=2, progress=False)
    pd.testing.assert_frame_equal(one.replicates, two.replicates)
    assert len(one.replicates) == 3 * 4  # three effects: none, CI bound, estimate
    assert one.manifest["computed"] == one.manifest["tasks"] == 6
    again = power.compute(trial, grid, tmp_path / "one", workers=1, progress=False)
    assert again.manifest["computed"] == 0 and again.manifest["reused"] == 6
    pd.testing.assert_frame_equal(again.replicates, one.replicates)
    power.write(one, tmp_path / "out")
    back = power.read(tmp_path / "out")
    assert back.grid() == power.with_pilot_effects(grid, power.pilot_effects(trial))
    assert back.model() == simulation.fit_model(trial)
    assert power.staleness(back, trial) == []


def test_a_changed_code_hash_model_or_dataset_is_stale(trial, tiny_dataset):
    run = power.Run(pd.DataFrame(), {"code_sha256": "0" * 64, "model": {}, "grid": {}})
    run.manifest["model"] = simulation.fit_model(trial).as_dict()
    assert [r for r in power.staleness(run, trial) if "code" in r]
    run.manifest["code_sha256"] = power.code_hash()
    assert power.staleness(run, trial) == []
    run.manifest["model"] = {**run.manifest["model"], "ar1": 0.5}
    assert [r for r in power.staleness(run, trial) if "model" in r]
    tiny = load_trial(tiny_dataset)
    assert [r for r in power.staleness(run, tiny) if "differs" in r]
    one = dataclasses.replace(tiny, measurements=tiny.measurements.iloc[:3])  # one lesion
    assert [r for r in power.staleness(run, one) if "no simulation model" in r]
    section = Section("power", {"power_stale_warning": "stale because", "power_alpha": 0.05})
    assert _stale_results([section]) == ["stale because"]
    assert _stale_results([Section("power", {"power_stale_warning": ""})]) == []


def test_power_table_counts_failed_fits_as_not_rejecting():
    replicates = pd.DataFrame(
        {
            "n_per_arm": 3,
            "effect_pct": -2.0,
            "visits": 4,
            "replicate": range(4),
            "patient_p": [0.01, 0.2, np.nan, 0.03],
            "patient_beta": [-0.02, -0.01, np.nan, -0.03],
            "lesion_p": [0.01, 0.01, 0.01, 0.5],
            "lesion_beta": [-0.02, -0.01, -0.02, -0.03],
        }
    )
    table = power.cell_power(power.power_table(replicates, [0.05]), 0.05)
    patient = table.loc[(-2.0, 4, "patient", 3)]
    assert (patient["rejected"], patient["failed"], patient["power"]) == (2, 1, 0.5)
    assert patient["mcse"] == pytest.approx(np.sqrt(0.25 / 4))
    assert table.loc[(-2.0, 4, "lesion", 3), "power"] == 0.75


def test_patients_needed_ignores_a_lucky_small_cell():
    index = pd.MultiIndex.from_product(
        [[-2.0], [16], ["patient"], [4, 8, 12]],
        names=["effect_pct", "visits", "analysis", "n_per_arm"],
    )
    cells = pd.DataFrame({"power": [0.85, 0.7, 0.9]}, index=index)
    assert power.patients_needed(cells, 0.8) == {(-2.0, 16, "patient"): 12}
    assert power.patients_needed(cells, 0.95) == {(-2.0, 16, "patient"): "more than 12"}


def test_the_shipped_result_is_current_and_covers_the_chapter(trial):
    """The book shows the shipped run: it must be the default grid's, made with this code
    from these data (else re-run `calcinosis power` and ship it), and the chapter's
    parameters must be the ones its numbers use."""
    run = power.read()
    assert power.staleness(run, trial) == []
    grid = run.grid()
    expected = power.with_pilot_effects(power.Grid(), power.pilot_effects(trial))
    assert set(expected.effects_pct) <= set(grid.effects_pct)  # a run may add effects
    assert grid == dataclasses.replace(expected, effects_pct=grid.effects_pct)
    assert len(run.replicates) == grid.replicates * len(grid.cells())
    assert run.replicates["patient_p"].notna().mean() > 0.95
    manifest = json.loads((power.SHIPPED_DIR / power.MANIFEST_FILE).read_text())
    assert {"versions", "wall_seconds", "task_seconds", "workers"} <= set(manifest)
    cells = jupytext.read(paths.CHAPTERS_DIR / "power.md").cells
    (params,) = [c for c in cells if "parameters" in c.metadata.get("tags", [])]
    defaults: dict = {}
    exec(params.source, {}, defaults)
    assert defaults["alpha"] == grid.alphas[0] and defaults["target_power"] in grid.targets
    assert defaults["lesions_per_patient"] == grid.lesions_per_patient
    table = power.planning(
        defaults["alpha"],
        defaults["target_power"],
        defaults["effect_sizes"],
        defaults["lesions_per_patient"],
    )
    assert r"Patients per arm for 80 \% power" in table
    assert table.count("\n") == 2 + 2 * len(grid.visits) * len(power.ANALYSES)
    with pytest.raises(ValueError, match="not in the shipped grid"):
        power.planning(0.05, 0.8, [-9.99])


def test_the_command_names_a_bad_dataset_without_a_traceback(tmp_path):
    from click.testing import CliRunner

    from calcinosis.cli import main

    result = CliRunner().invoke(main, ["power", "--out", str(tmp_path), "--data", "/nonexistent"])
    assert result.exit_code != 0
    assert "/nonexistent" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "tasks").exists()
