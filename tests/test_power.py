"""Planning a definitive trial: the power run on the Dask runner, its performance measures,
the smooth sample-size read-out, and the shipped result the chapter shows."""

from __future__ import annotations

import dataclasses
import json

import jupytext
import numpy as np
import pandas as pd
import pytest
from scipy import stats

from calcinosis import paths
from calcinosis.book.build import _stale_results
from calcinosis.data.trial import load_trial
from calcinosis.report import power_report
from calcinosis.report.sections import Section
from calcinosis.simulate import power, simulation

TINY = power.Grid(
    children=(6, 8),
    scenarios=("quarter",),
    designs=("parallel",),
    effects=("zero", "pilot"),
    replicates=4,
    gee_replicates=2,
    lesion_gee_replicates=2,
    model_children_min=6,
    block=2,
    assurance_members=0,
)


@pytest.fixture(scope="module")
def trial():
    return load_trial(paths.DATA_DIR)


def true_power(children: int, delta: float, sd: float, alpha: float = 0.05) -> float:
    """Exact power of a two-sample t-test with `children` / 2 per arm."""
    m = children / 2
    df = children - 2
    ncp = delta / (sd * np.sqrt(2 / m))
    crit = stats.t.ppf(1 - alpha / 2, df)
    return float(stats.nct.sf(crit, df, ncp) + stats.nct.cdf(-crit, df, ncp))


@pytest.mark.parametrize("delta", [0.6, 1.0, 1.5])
def test_the_smooth_read_out_agrees_with_a_brute_force_grid(delta):
    """Counts from a known power curve at the grid's sizes: the probit curve in √n gives the
    size a brute-force search over every even size finds, within 10 % (exact counts) and
    within 20 % with the Monte-Carlo noise of 1 000 replicates."""
    grid = power.Grid().children
    every = np.arange(4, 241, 2)
    for target in (0.8, 0.9):
        brute = power.brute_force_needed(every, [true_power(n, delta, 1.0) for n in every], target)
        exact = [true_power(n, delta, 1.0) for n in grid]
        fit = power.smooth_fit(grid, np.round(np.array(exact) * 10**6), [10**6] * len(grid))
        smooth = power.children_needed(fit, target, max(grid))
        if brute is None or brute > max(grid):
            assert smooth is None
            continue
        assert smooth == pytest.approx(brute, rel=0.1, abs=2)
        rng = np.random.default_rng(int(100 * delta))
        noisy = rng.binomial(1000, exact)
        fit = power.smooth_fit(grid, noisy, [1000] * len(grid))
        assert power.children_needed(fit, target, max(grid)) == pytest.approx(brute, rel=0.2)


def test_the_read_out_never_extrapolates_and_brute_force_ignores_a_lucky_cell():
    fit = power.smooth_fit([8, 16, 24], [10, 20, 30], [100, 100, 100])
    assert power.children_needed(fit, 0.9, 24) is None
    assert power.brute_force_needed([4, 8, 12], [0.85, 0.7, 0.9], 0.8) == 12


def replicates_frame(p_values, effect="zero", analysis="summary", children=8) -> pd.DataFrame:
    n = len(p_values)
    return pd.DataFrame(
        {
            "design": "parallel",
            "scenario": "quarter",
            "effect": effect,
            "children": children,
            "replicate": range(n),
            "true_effect": 0.0,
            "n_lesions": 10,
            f"{analysis}_p": p_values,
            f"{analysis}_beta": [0.0 if np.isfinite(p) else np.nan for p in p_values],
            f"{analysis}_se": 0.01,
            f"{analysis}_df": 10.0,
            f"{analysis}_ran": True,
        }
    )


def test_failed_fits_are_counted_apart_and_each_rate_has_its_own_se():
    frame = replicates_frame([0.01, 0.2, np.nan, 0.03])
    (row,) = power.performance(frame, 0.05).itertuples(index=False)
    assert (row.replicates, row.failed, row.valid, row.rejected) == (4, 1, 3, 2)
    assert row.power == pytest.approx(2 / 3)  # the failed fit is not a non-rejection
    assert row.mcse == pytest.approx(np.sqrt(2 / 3 * 1 / 3 / 3))
    # 0.248 from 1 000 trials: its SE is 0.014, not the 0.007 of α
    many = replicates_frame([0.01] * 248 + [0.5] * 752)
    (row,) = power.performance(many, 0.05).itertuples(index=False)
    assert row.power == pytest.approx(0.248) and row.mcse == pytest.approx(0.01366, abs=1e-4)
    assert row.coverage == 1.0 and row.bias == 0.0


def test_an_analysis_that_rejects_too_often_is_not_offered():
    level_ok = replicates_frame([0.01] * 50 + [0.5] * 950)
    too_often = replicates_frame([0.01] * 90 + [0.5] * 910, analysis="gee_lesion")
    perf = power.performance(pd.concat([level_ok, too_often]), 0.05)
    assert power.level(perf, "parallel", "quarter", "summary", 0.05).holds
    bad = power.level(perf, "parallel", "quarter", "gee_lesion", 0.05)
    assert not bad.holds and "rejects too often" in bad.verdict
    assert bad.rate == pytest.approx(0.09)


def _two_size_run(parts: dict[str, tuple[int, float]]) -> power.Run:
    """A run of sizes 8 and 16 per analysis: (trials per cell, share rejecting without
    effect); with the effect every analysis rejects in 70 % (8) and 95 % (16) of them."""
    frames = []
    for analysis, (n, type1) in parts.items():
        for children, share in ((8, 0.7), (16, 0.95)):
            hits = round(type1 * n)
            frames.append(
                replicates_frame([0.001] * hits + [0.5] * (n - hits), "zero", analysis, children)
            )
            hits = round(share * n)
            frames.append(
                replicates_frame([0.001] * hits + [0.5] * (n - hits), "pilot", analysis, children)
            )
    grid = power.dataclasses_replace(
        TINY, children=(8, 16), analyses=tuple(parts), assurance_members=0
    )
    return power.Run(pd.concat(frames, ignore_index=True), pd.DataFrame(), {"grid": grid.as_dict()})


def test_the_answer_table_lists_only_analyses_that_hold_their_level():
    """The pilot's lesion-clustered GEE rejects too often: it is a warning in the levels
    table, not a row of the answer; a curve on fewer than 1 000 trials is shown, not read."""
    run = _two_size_run(
        {"summary": (1000, 0.05), "gee_lesion": (1000, 0.2), "gee_patient": (200, 0.05)}
    )
    choice = power_report.Choice()
    table = power_report.tab_answer(run, choice)
    labels = power.ANALYSIS_LABELS
    assert set(table["Analysis"]) == {labels["summary"], labels["gee_patient"]}
    read = table.set_index("Analysis")["Children for 80 % power"]
    assert read[labels["summary"]] in {"8 or fewer", "10", "12", "14", "16"}
    assert read[labels["gee_patient"]].startswith("not read:")
    assert "fewer than 1000 trials" in read[labels["gee_patient"]]
    assert any(c.startswith("Assurance at that size") for c in table.columns)
    levels = power_report.tab_levels(run, choice).set_index("Analysis")["Verdict"]
    assert levels[labels["gee_lesion"]].startswith("rejects too often")
    assert levels[labels["summary"]].startswith("holds its level")


def test_the_chapter_refuses_a_cell_the_run_does_not_hold_before_building(tmp_path):
    from click.testing import CliRunner

    from calcinosis.cli import main

    for args, says in (
        (["-p", "scenario=most"], "(the power run holds none, quarter, half)"),
        (["-p", "design=crossover"], "(the power run holds parallel, within)"),
        (["-p", f"power_dir={tmp_path}"], "holds no readable power run"),
    ):
        out = tmp_path / "review"
        result = CliRunner().invoke(main, ["chapter", "power", *args, "--out", str(out)])
        assert result.exit_code == 2, result.output
        assert result.output.count("\n") == 1 and says in result.output, result.output
        assert not out.exists()


@pytest.mark.integration
def test_one_or_two_workers_give_the_same_replicates_and_a_run_resumes(trial, tmp_path):
    one = power.compute(trial, TINY, tmp_path / "one", workers=1, progress=False)
    two = power.compute(trial, TINY, tmp_path / "two", workers=2, progress=False)
    pd.testing.assert_frame_equal(one.replicates, two.replicates)
    cells = 2 * 2  # sizes × effects
    assert len(one.replicates) == cells * TINY.replicates
    ran = one.replicates["gee_patient_ran"].fillna(False).astype(bool)
    assert ran.sum() == cells * TINY.gee_replicates  # the GEEs on the first replicates only
    assert one.replicates["summary_ran"].all()
    assert one.manifest["computed"] == one.manifest["tasks"] and one.manifest["complete"]
    again = power.compute(trial, TINY, tmp_path / "one", workers=1, progress=False)
    assert again.manifest["computed"] == 0
    pd.testing.assert_frame_equal(again.replicates, one.replicates)
    power.write(one, tmp_path / "out")
    first = (tmp_path / "out" / power.REPLICATES_FILE).read_bytes()
    power.write(power.read(tmp_path / "out"), tmp_path / "out")
    assert (tmp_path / "out" / power.REPLICATES_FILE).read_bytes() == first  # byte-stable
    back = power.read(tmp_path / "out")
    assert back.grid() == TINY and back.model() == simulation.fit_model(trial)
    assert power.staleness(back, trial) == []
    # a stopped run is collected for what it holds, and says so
    for path in sorted((tmp_path / "one").glob("*.json"))[:3]:
        path.unlink()
    partial = power.collect(trial, TINY, tmp_path / "one")
    assert partial.manifest["missing_tasks"] == 3 and not partial.manifest["complete"]
    assert [r for r in power.staleness(partial, trial) if "incomplete" in r]


@pytest.mark.integration
def test_a_changed_code_hash_or_other_measurements_are_stale(trial, tiny_dataset):
    manifest = {"code_sha256": "0" * 64, "data_sha256": "0" * 64, "complete": True}
    reasons = power.staleness(power.Run(pd.DataFrame(), pd.DataFrame(), manifest), trial)
    assert len(reasons) == 2 and "code" in reasons[0] and "other measurements" in reasons[1]
    current = {
        "code_sha256": power.code_hash(),
        "data_sha256": power.data_fingerprint(trial),
        "complete": True,
    }
    run = power.Run(pd.DataFrame(), pd.DataFrame(), current)
    assert power.staleness(run, trial) == []
    other = load_trial(tiny_dataset)
    assert [r for r in power.staleness(run, other) if "other measurements" in r]
    # the fingerprint is of the measurements the model reads: one size moved changes it,
    # the other tables do not
    moved = trial.measurements.copy()
    moved.loc[moved.index[0], "length_mm"] += 0.5
    assert (
        power.data_fingerprint(dataclasses.replace(trial, measurements=moved))
        != current["data_sha256"]
    )
    events = trial.adverse_events.iloc[:0]
    assert (
        power.data_fingerprint(dataclasses.replace(trial, adverse_events=events))
        == current["data_sha256"]
    )
    section = Section("power", {"power_stale_warning": "stale because"})
    assert _stale_results([section]) == ["stale because"]


def test_assurance_reads_each_members_own_curve_of_the_analysis_asked():
    rows = []
    # the summary slope on both members; the patient GEE, with a steeper curve, on one
    for member, shift, analysis in (
        (1, 0.0, "summary"),
        (2, -1.0, "summary"),
        (1, 1.0, "gee_patient"),
    ):
        for children in (8, 16, 32, 64):
            share = stats.norm.cdf(-2 + shift + 0.4 * np.sqrt(children))
            k = round(200 * share)
            p_values = [0.001] * k + [0.5] * (200 - k)
            part = replicates_frame(p_values, "pilot", analysis, children=children)
            rows.append(part.assign(member=member))
    run = power.Run(pd.DataFrame(), pd.concat(rows), {})
    result = power.assurance(run, 0.05, 32, "parallel", "summary")
    expected = [stats.norm.cdf(-2 + s + 0.4 * np.sqrt(32)) for s in (0.0, -1.0)]
    assert result["members"] == 2
    assert result["assurance"] == pytest.approx(np.mean(expected), abs=0.03)
    assert result["p10"] < result["assurance"]
    gee = power.assurance(run, 0.05, 32, "parallel", "gee_patient")
    assert gee["members"] == 1
    assert gee["assurance"] == pytest.approx(stats.norm.cdf(-1 + 0.4 * np.sqrt(32)), abs=0.03)
    assert power.assurance(run, 0.05, 32, "parallel", "responder")["members"] == 0


def test_the_within_design_alone_gets_the_small_sizes_and_the_gees_skip_them():
    grid = power.Grid(children=(8, 16), within_small=(4, 6))
    assert grid.sizes("within") == (4, 6, 8, 16) and grid.sizes("parallel") == (8, 16)
    assert power.analysed_sizes(grid, "within", "quarter", "gee_patient") == [8, 16]
    assert power.analysed_sizes(grid, "within", "quarter", "mixed") == [8, 16]
    assert power.analysed_sizes(grid, "within", "quarter", "summary") == [4, 6, 8, 16]
    assert "coprimary" not in power.assurance_analyses(grid)
    assert {"gee_patient", "mixed", "summary", "responder"} <= set(power.assurance_analyses(grid))
    # a grid starting below the models' floor still gives them to the members where they run
    assert "mixed" in power.assurance_analyses(power.Grid(children=(6, 8)))
    with pytest.raises(ValueError, match="even numbers"):
        power.Grid(within_small=(5,))


def test_a_grid_or_page_choice_the_run_does_not_hold_is_refused_in_one_line(tmp_path):
    with pytest.raises(ValueError, match="unknown scenario 'most'"):
        power.Grid(scenarios=("most",))
    with pytest.raises(ValueError, match="even numbers"):
        power.Grid(children=(7,))
    run = power.Run(pd.DataFrame(), pd.DataFrame(), {"grid": TINY.as_dict()})
    for change, holds in (({"scenario": "half"}, "quarter"), ({"design": "within"}, "parallel")):
        with pytest.raises(ValueError) as err:
            power_report.check(run, power_report.Choice(**change))
        assert "\n" not in str(err.value) and f"it holds {holds}" in str(err.value)
    with pytest.raises(ValueError, match="between 0 and 1"):
        power_report.check(run, power_report.Choice(alpha=1.5))


def test_the_command_names_a_bad_dataset_or_choice_without_a_traceback(tmp_path):
    from click.testing import CliRunner

    from calcinosis.cli import main

    result = CliRunner().invoke(main, ["power", "--out", str(tmp_path), "--data", "/nonexistent"])
    assert result.exit_code != 0
    assert "/nonexistent" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "tasks").exists()
    result = CliRunner().invoke(main, ["power", "--out", str(tmp_path), "--children", "7"])
    assert result.exit_code != 0 and "even numbers" in result.output
    assert "Traceback" not in result.output


@pytest.mark.integration
def test_the_shipped_result_is_current_complete_and_covers_the_chapter(trial):
    """The book shows the shipped run: made with this code from these data, complete, every
    cell the answer reads with ≥ 1 000 fitted trials, and the chapter's parameters among
    what it holds."""
    run = power.read()
    assert power.staleness(run, trial) == []
    manifest = json.loads((power.SHIPPED_DIR / power.MANIFEST_FILE).read_text())
    assert {"versions", "wall_seconds", "task_seconds", "workers", "member_models"} <= set(manifest)
    cells = jupytext.read(paths.CHAPTERS_DIR / "power.md").cells
    (params,) = [c for c in cells if "parameters" in c.metadata.get("tags", [])]
    defaults: dict = {}
    exec(params.source, {}, defaults)
    choice = power_report.Choice(
        **{k: defaults[k] for k in dataclasses.asdict(power_report.Choice())}
    )
    power_report.check(run, choice)
    found = power_report.values(run, choice)
    answers = power.answer(run, choice.alpha)
    offered = answers[answers["offered"]]
    assert not offered.empty and (offered["replicates"] >= power.MIN_ANSWER_REPLICATES).all()
    mine = offered[(offered["design"] == choice.design) & (offered["scenario"] == choice.scenario)]
    if mine.empty:  # none holds its level here: the page says so, and why
        assert found["answer_analysis"] == "none" and "rejects" in str(found["refused"])
    else:
        assert found["answer_analysis"] in {power.ANALYSIS_LABELS[a] for a in mine["analysis"]}
    lesion = answers[answers["analysis"] == "gee_lesion"]
    assert not lesion["offered"].any()  # the pilot's lesion-clustered test is not an answer
    # every analysis offered in the main scenario rests on >= 1 000 trials a size, and the
    # answer table shows no analysis that fails its level
    main = answers[answers["scenario"].isin(run.grid().main_scenarios)]
    full = main[main["analysis"] != "gee_lesion"]  # the others run on every trial there
    assert (full["replicates"] >= power.MIN_ANSWER_REPLICATES).all()
    holding, offered_ = (set(full.loc[full[k], "analysis"]) for k in ("level_holds", "offered"))
    assert holding <= offered_
    shown = power_report.tab_answer(run, choice)["Analysis"]
    assert set(shown) <= {
        power.ANALYSIS_LABELS[a] for a in answers.loc[answers["level_holds"], "analysis"]
    }
    # the page's other choices the run holds: another α, effect and scenario
    for change in ({"alpha": 0.01}, {"effect": "bound"}, {"scenario": "none"}):
        other = dataclasses.replace(choice, **change)
        power_report.check_params(dataclasses.asdict(other))
        assert power_report.values(run, other)["answer_sentence"]
