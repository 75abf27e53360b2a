"""The reconstruction: byte-for-byte reproducible, and true to every fact the paper prints."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import yaml
from click.testing import CliRunner

from calcinosis import paths
from calcinosis.cli import main
from calcinosis.data import dose
from calcinosis.data.trial import load_trial
from calcinosis.simulate import reconstruct
from calcinosis.simulate.sprite import rounds_to
from calcinosis.stats import models


@pytest.fixture(scope="module")
def trial():
    return load_trial(paths.DATA_DIR)


@pytest.fixture(scope="module")
def facts():
    return reconstruct.load_facts()


@pytest.mark.integration
def test_committed_data_is_the_default_seed_output(tmp_path):
    result = CliRunner().invoke(main, ["reconstruct", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    written = sorted(p.name for p in tmp_path.iterdir())
    assert written == sorted(
        [
            "patients.csv",
            "lesions.csv",
            "measurements.csv",
            "radiography.csv",
            "adverse_events.csv",
            "datapackage.json",
            "published.yml",
        ]
    )
    for name in written:
        assert (tmp_path / name).read_bytes() == (paths.DATA_DIR / name).read_bytes(), name


@pytest.mark.integration
def test_another_seed_gives_other_data_that_still_meets_the_targets(facts):
    other = reconstruct.reconstruct(seed=7, facts=facts)
    default = reconstruct.reconstruct(facts=facts)
    assert not other.radiography.equals(default.radiography)
    for outcome in models.OUTCOMES:
        key = outcome.removesuffix("_mm")
        pct = models.primary_rate(other.measurements, outcome).pct_per_visit
        assert round(pct, 2) == facts["results"]["gee_percent_change_per_visit"][key]


def test_bundled_facts_are_the_shared_facts_file():
    if not paths.SHARED_FACTS_FILE.exists():
        pytest.skip("shared/paper is not beside this checkout")
    bundled = paths.FACTS_FILE.read_text(encoding="utf-8").splitlines()
    # The copy adds a 3-line header and quotes one item that is not valid YAML unquoted.
    body = "\n".join(bundled[3:])
    body = body.replace('  - "per-visit', "  - per-visit").replace('differ"', "differ")
    assert body.strip() == paths.SHARED_FACTS_FILE.read_text(encoding="utf-8").strip()


@pytest.mark.parametrize("outcome", models.OUTCOMES)
def test_primary_gee_gives_the_published_change_per_visit(trial, facts, outcome):
    published = facts["results"]["gee_percent_change_per_visit"]
    rate = models.primary_rate(trial.measurements, outcome)
    assert round(rate.pct_per_visit, 2) == published[outcome.removesuffix("_mm")]
    assert rate.p < published["significant_at"]


@pytest.mark.parametrize("timepoint", ["baseline", "final"])
@pytest.mark.parametrize("outcome", ["length", "width"])
def test_radiography_matches_the_printed_summary(trial, facts, timepoint, outcome):
    printed = facts["results"]["radiography_mm"]["week16" if timepoint == "final" else timepoint]
    values = trial.radiography.loc[trial.radiography["timepoint"] == timepoint, f"{outcome}_mm"]
    assert len(values) == 18
    for stat, value in {
        "mean": values.mean(),
        "sd": values.std(ddof=1),
        "min": values.min(),
        "max": values.max(),
    }.items():
        assert rounds_to(value, printed[outcome][stat], 2), (stat, value)


def test_cohort_is_the_published_cohort(trial, facts):
    for fact in facts["patients"]:
        pid = f"P{fact['id']}"
        row = trial.patients.set_index("patient_id").loc[pid]
        assert (row["sex"], row["age_years"], row["disease_duration_months"]) == (
            fact["sex"],
            fact["age"],
            fact["duration_months"],
        )
        lesions = trial.lesions[trial.lesions["patient_id"] == pid]
        assert len(lesions) == fact["lesions"]
        assert set(lesions["site"]) <= {s.removeprefix("the ") for s in fact["sites"]}
    assert trial.adverse_events.empty


def test_doses_follow_the_published_rule_and_the_top_dose_above_it(trial):
    for lesion in trial.lesions.itertuples():
        assert lesion.dose_mg == (dose.rule_dose(lesion.baseline_area_cm2) or 40)
    over = trial.lesions[trial.lesions["baseline_area_cm2"] > 5]
    assert over["lesion_id"].tolist() == ["P2-L1"]


def test_measurements_are_weekly_on_a_half_millimetre_grid(trial):
    m = trial.measurements
    assert sorted(m["visit"].unique()) == list(range(1, 17))
    sizes = m[["length_mm", "width_mm"]].stack().dropna()
    assert np.allclose(sizes * 2, np.round(sizes * 2))
    measured = m.dropna(subset=["length_mm"])
    assert (measured["width_mm"] <= measured["length_mm"]).all()
    radiographs = trial.radiography
    assert (radiographs["width_mm"] <= radiographs["length_mm"]).all()


def test_patient_2_is_seen_twice_and_gone_by_the_last_visit(trial):
    lesion = trial.measurements[trial.measurements["lesion_id"] == "P2-L1"].dropna()
    assert lesion["visit"].tolist() == [1, 16]
    assert lesion.iloc[-1][["length_mm", "width_mm"]].tolist() == [0.0, 0.0]
    assert lesion.iloc[0][["length_mm", "width_mm"]].tolist() == [45.0, 45.0]


def test_lesions_gone_clinically_are_gone_on_the_final_radiograph(trial):
    last = trial.measurements[trial.measurements["visit"] == 16].set_index("lesion_id")
    final = trial.radiography[trial.radiography["timepoint"] == "final"].set_index("lesion_id")
    gone = last.index[last["length_mm"] == 0]
    assert len(gone) >= 1
    assert (final.loc[gone, ["length_mm", "width_mm"]] == 0).all().all()


def _courses(trial) -> pd.DataFrame:
    return trial.measurements.pivot(index="lesion_id", columns="visit", values="length_mm")


def test_patient_1_is_flat_to_visit_4_then_declines_steadily(trial):
    courses = _courses(trial).loc[lambda c: c.index.str.startswith("P1-")]
    assert (courses[[1, 2, 3, 4]].nunique(axis=1) == 1).all()
    later = courses.loc[:, 4:].diff(axis=1).iloc[:, 1:]
    assert (later <= 0).all().all()
    assert (courses[16] < courses[4]).all()


def test_patients_1_and_2_respond_faster_than_3_to_5(trial):
    courses = _courses(trial)
    change = (courses[16] - courses[1]) / courses[1]
    by_patient = change.groupby(change.index.str.split("-").str[0]).mean()
    assert by_patient[["P1", "P2"]].max() < by_patient[["P3", "P4", "P5"]].min()


@pytest.mark.parametrize("patient", ["P4", "P5"])
def test_patients_4_and_5_have_runs_of_unchanged_visits(trial, patient):
    courses = _courses(trial).loc[lambda c: c.index.str.startswith(f"{patient}-")]
    for _, course in courses.iterrows():
        runs = (course.diff() != 0).cumsum().value_counts()
        assert runs.max() >= 4


def test_published_claims_carry_every_printed_radiographic_number(facts):
    claims = yaml.safe_load((paths.DATA_DIR / "published.yml").read_text())["claims"]
    names = {c["name"]: c for c in claims}
    radiography = facts["results"]["radiography_mm"]
    for timepoint, when in (("baseline", "baseline"), ("week16", "final")):
        for outcome, stats in radiography[timepoint].items():
            for stat, value in stats.items():
                assert names[f"rad_{when}_{outcome}_{stat}"]["value"] == value
    gee = facts["results"]["gee_percent_change_per_visit"]
    assert names["gee_length_pct_per_visit"]["value"] == gee["length"]
    assert names["gee_width_pct_per_visit"]["value"] == gee["width"]


@pytest.mark.integration
def test_reconstruct_refuses_a_folder_holding_a_dataset_unless_told(tmp_path):
    (tmp_path / "measurements.csv").write_text("edited by hand\n", encoding="utf-8")
    refused = CliRunner().invoke(main, ["reconstruct", "--out", str(tmp_path)])
    assert refused.exit_code == 2 and "--replace" in refused.output
    assert (tmp_path / "measurements.csv").read_text(encoding="utf-8") == "edited by hand\n"
    replaced = CliRunner().invoke(main, ["reconstruct", "--out", str(tmp_path), "--replace"])
    assert replaced.exit_code == 0, replaced.output
    assert (tmp_path / "measurements.csv").read_bytes() == (
        paths.DATA_DIR / "measurements.csv"
    ).read_bytes()
