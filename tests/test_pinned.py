"""What the summaries pin down: verdicts computed from the ensemble's table, the staleness
warning, and the chapter's section."""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from calcinosis import paths
from calcinosis.book.build import stage_warnings
from calcinosis.report import tables
from calcinosis.report.sections import Section
from calcinosis.simulate import ensemble, pinned, reconstruct
from test_article import copy_of_bundled

RAD = {"rad_length_median_change_mm": -6.0, "rad_length_p": 0.001}
DATA = {"gee_length_pct_per_visit": -2.66, "gee_length_p": 0.001, **RAD}
DATA["decline_start_article1"] = 5.0


def members(n: int, **columns) -> pd.DataFrame:
    frame = pd.DataFrame(
        {"gee_length_pct_per_visit": np.full(n, -2.66)}, index=[f"m{i}" for i in range(n)]
    )
    for name, values in columns.items():
        frame[name] = values
    return frame


def verdict(table: pd.DataFrame, name: str) -> pd.Series:
    return table.set_index("conclusion").loc[name]


def test_the_verdict_table_carries_the_three_kinds_from_the_audit_and_the_generator():
    table = pinned.verdicts(members(10, gee_length_p=np.full(10, 0.001)), DATA)
    assert set(table["basis"]) == {pinned.IMPOSED, pinned.BUILT_IN, pinned.OPEN}
    gee = verdict(table, "gee_length")
    assert gee["basis"] == pinned.IMPOSED and gee["verdict"] == pinned.NO_VERDICT[pinned.IMPOSED]
    audited = {c["name"] for c in reconstruct.published_claims(reconstruct.load_facts())}
    assert {"gee_length_pct_per_visit", "gee_length_p"} <= audited
    assert "gee_length_p < 0.05" in gee["why"]
    duration = verdict(table, "duration_length")
    [speeds] = ensemble.constructions()
    assert duration["basis"] == pinned.BUILT_IN and duration["why"] == speeds.meaning
    assert "slow_speed_factor" in speeds.meaning and duration["verdict"] == "none"
    open_ = table[table["basis"] == pinned.OPEN]
    assert set(open_["verdict"]) <= {pinned.HOLDS, pinned.FAILS, pinned.LEFT_OPEN}


def test_the_kind_follows_the_generators_declarations_not_a_typed_list(monkeypatch):
    monkeypatch.setattr(ensemble, "constructions", lambda: ())
    table = pinned.verdicts(members(10), DATA)
    assert verdict(table, "duration_length")["basis"] == pinned.OPEN
    assert pinned.BUILT_IN not in set(table["basis"])


def test_a_conclusion_every_member_shares_is_pinned_and_one_they_split_on_is_left_open():
    n = 40
    wide = members(
        n,
        **{k: np.full(n, v) for k, v in RAD.items()},
        decline_start_article1=np.r_[np.full(n // 2, 5.0), np.full(n // 2, 7.0)],
    )
    table = pinned.verdicts(wide, DATA)
    rad, start = verdict(table, "radiography_length"), verdict(table, "decline_start")
    assert rad["verdict"] == pinned.HOLDS and rad["share_holding"] == 1.0
    assert rad["holds_in_data"] and rad["data_agree"] == "yes"
    assert start["verdict"] == pinned.LEFT_OPEN and start["share_holding"] == 0.5
    assert start["value_in_data"] == 5.0 and start["ensemble_median"] == 6.0
    assert start["claim"].startswith("Patient 1's decline starts at visit 5 ")


def test_the_verdict_turns_at_the_agreement_threshold():
    n = 100
    below = round(n * (1 - pinned.AGREEMENT))  # members that disagree, at the threshold
    for disagree, expected in ((below, pinned.HOLDS), (below + 1, pinned.LEFT_OPEN)):
        p = np.r_[np.full(disagree, 0.5), np.full(n - disagree, 0.001)]
        wide = members(n, rad_length_median_change_mm=np.full(n, -6.0), rad_length_p=p)
        table = pinned.verdicts(wide, DATA)
        assert verdict(table, "radiography_length")["verdict"] == expected, disagree


def test_a_significant_rise_is_no_decline():
    n = 10
    wide = members(n, rad_length_median_change_mm=np.full(n, 4.0), rad_length_p=np.full(n, 1e-4))
    rising = {**DATA, "gee_length_pct_per_visit": 2.0, "rad_length_median_change_mm": 4.0}
    table = pinned.verdicts(wide, rising)
    rad, gee = verdict(table, "radiography_length"), verdict(table, "gee_length")
    assert rad["share_holding"] == 0 and rad["verdict"] == pinned.FAILS
    assert not rad["holds_in_data"] and not gee["holds_in_data"]


def test_without_data_nothing_is_said_of_them_and_references_are_the_members():
    n = 4
    wide = members(n, rad_n_resolved=np.array([6.0, 7.0, 7.0, 7.0]))
    table = pinned.verdicts(wide, None)
    assert table["holds_in_data"].isna().all() and table["value_in_data"].isna().all()
    resolved = verdict(table, "n_resolved")
    assert resolved["claim"].startswith("7 lesions") and resolved["share_holding"] == 0.75
    assert "In these data" not in tables.tab_pinned(table).columns


@pytest.mark.integration
def test_sub_ensembles_are_chosen_by_the_members_recorded_parameters():
    keys = [f"m{i}" for i in range(8)]
    tidy = pd.DataFrame(
        {
            "key": keys,
            "seed": range(8),
            "kept": True,
            "clinical_grid_mm": [0.5] * 4 + [1.0] * 4,
            "noise_steps": [0.1, 0.2, 0.6, 0.9] * 2,
            "slow_speed_factor": [0.7, 0.9, 1.1, 1.3] * 2,
        }
    )
    subs = {s.label: set(s.keys) for s in pinned.sub_ensembles(tidy)}
    assert subs["clinical_grid_mm 1"] == set(keys[4:])
    assert subs["noise_steps below 0.5"] == {"m0", "m1", "m4", "m5"}
    assert subs["slow_speed_factor 0.8 to 1.2"] == {"m1", "m2", "m5", "m6"}
    wide = members(8, **RAD).assign(rad_length_p=[0.001] * 4 + [0.5] * 4)
    shares = pinned.sub_ensemble_shares(wide, tidy, None)
    rad = shares[shares["conclusion"] == "radiography_length"].set_index("sub_ensemble")
    assert rad.loc["clinical_grid_mm 0.5", "share_holding"] == 1.0
    assert rad.loc["clinical_grid_mm 1", "share_holding"] == 0.0
    assert rad.loc["all kept members", "verdict"] == pinned.LEFT_OPEN
    assert pinned.IMPOSED not in set(shares["basis"])
    numbers = pinned.sub_ensemble_numbers(shares)
    assert numbers["sub_max_move_pct"] == 50.0 and numbers["sub_n_verdicts_moved"] >= 1


def test_the_type_one_error_is_read_from_the_planning_run():
    from calcinosis.simulate import power

    numbers = pinned.design_numbers()
    run = power.read()
    grid = run.grid()
    reps = run.replicates
    zero = reps[
        (reps["design"] == grid.designs[0])
        & (reps["scenario"] == grid.main_scenarios[0])
        & (reps["effect"] == "zero")
        & reps[f"{pinned.LESION_ANALYSIS}_ran"].fillna(False).astype(bool)
    ]
    p = zero[f"{pinned.LESION_ANALYSIS}_p"].dropna()
    expected = (p < numbers["type1_alpha"]).mean()
    assert numbers["type1_lesion_pct"] == pytest.approx(100 * expected)
    assert numbers["type1_lesion_replicates"] == len(p)
    assert numbers["type1_lesion_failed"] == len(zero) - len(p)
    assert "uncontrolled" in numbers["design_sentence"] and "efficacy" in numbers["design_sentence"]
    assert f"{100 * expected:.0f} %" in numbers["type1_sentence"]


@pytest.mark.integration
def test_stale_ensemble_is_named_and_reaches_the_build_as_a_warning(tmp_path):
    shipped = pinned.load()
    if shipped is None:
        pytest.skip("no ensemble shipped in book/ensemble")
    for name in (ensemble.TABLE_FILE, ensemble.MANIFEST_FILE):
        shutil.copyfile(paths.ENSEMBLE_DIR / name, tmp_path / name)
    manifest = json.loads((tmp_path / ensemble.MANIFEST_FILE).read_text())
    manifest["code_hash"] = ensemble.code_hash()
    (tmp_path / ensemble.MANIFEST_FILE).write_text(json.dumps(manifest))
    assert pinned.stale_message(tmp_path) == ""
    manifest["code_hash"] = "0" * 64
    (tmp_path / ensemble.MANIFEST_FILE).write_text(json.dumps(manifest))
    message = pinned.stale_message(tmp_path)
    assert "calcinosis ensemble --n" in message and "000000000000" in message
    section = Section("pinned", values={"ens_warning": message, "other_warning": ""})
    assert stage_warnings([section]) == [message]


@pytest.mark.integration
def test_the_chapter_section_reads_its_verdicts_from_the_shipped_table():
    from calcinosis.data import trial as data
    from calcinosis.params import Parameters
    from calcinosis.report import results

    shipped = pinned.load()
    if shipped is None:
        pytest.skip("no ensemble shipped in book/ensemble")
    trial = data.load_trial(paths.DATA_DIR)
    producer = next(p for p in results.PRODUCERS if p.name == "pinned")
    [section] = results.run(producer, trial, Parameters())
    expected = pinned.verdicts(shipped.wide(), ensemble.conclusion_values(trial))
    shown = section.tables["tab_pinned"].frame
    assert shown["Verdict"].tolist() == expected["verdict"].tolist()
    assert shown["Kind"].tolist() == expected["basis"].tolist()
    assert section.values["ens_n_imposed"] == (expected["basis"] == pinned.IMPOSED).sum()
    assert section.values["ens_n_open"] == (expected["basis"] == pinned.OPEN).sum()
    assert "Holds in these data" in shown.columns  # the bundled data are the article's trial
    assert section.values["ens_n_kept"] == shipped.wide().shape[0]
    assert section.values["ens_warning"] == pinned.stale_message()
    by_grid = section.tables["tab_ensemble_kept_by_grid"].frame
    assert by_grid["Members"].sum() == section.values["ens_n_members"]
    assert by_grid["Kept"].sum() == section.values["ens_n_kept"]
    dropped = section.tables["tab_ensemble_dropped"].frame
    assert dropped["Members"].sum() == section.values["ens_n_dropped"]


def growing(name: str, frame: pd.DataFrame) -> pd.DataFrame:
    """Every lesion grows 3 % a visit from its first size, and is larger on the final
    radiograph than on the first (the article's children, lesions that grow)."""
    frame = frame.copy()
    if name == "measurements":
        for column in ("length_mm", "width_mm"):
            size = pd.to_numeric(frame[column], errors="coerce")
            first = size.groupby(frame["lesion_id"]).transform("first")
            grown = (first * 1.03 ** (frame["visit"].astype(int) - 1)).round(1)
            frame[column] = grown.where(size.notna()).map(
                lambda v: "" if pd.isna(v) else f"{v:.1f}"
            )
    if name == "radiography":
        for column in ("length_mm", "width_mm"):
            size = pd.to_numeric(frame[column])
            baseline = size.groupby(frame["lesion_id"]).transform("first")
            final = frame["timepoint"] == "final"
            frame.loc[final, column] = (baseline[final] * 1.3).round(1).map("{:.1f}".format)
    return frame


@pytest.mark.integration
def test_on_growing_lesions_of_the_articles_children_no_decline_is_said_to_hold(tmp_path):
    from calcinosis.data import trial as data
    from calcinosis.simulate import article

    trial = data.load_trial(copy_of_bundled(tmp_path / "grow", growing))
    assert article.match(trial).is_article
    values = ensemble.conclusion_values(trial)
    assert values["gee_length_pct_per_visit"] > 0 and values["gee_length_p"] < 0.05
    shipped = pinned.load()
    table = pinned.verdicts(shipped.wide() if shipped else pd.DataFrame(), values)
    said = table.set_index("conclusion")["holds_in_data"]
    decline = [c for c in said.index if c not in ("n_resolved",)]
    assert not said[decline].any(), said[said].index.tolist()
    shown = tables.pinned_as_printed(table).set_index("Conclusion")["Holds in these data"]
    assert (shown.drop(table.set_index("conclusion").loc["n_resolved", "claim"]) == "no").all()


@pytest.mark.integration
def test_other_patients_get_the_chapter_without_a_comparison():
    import synthetic
    from calcinosis.data import trial as data
    from calcinosis.params import Parameters
    from calcinosis.report import results

    with tempfile.TemporaryDirectory() as folder:
        trial = data.load_trial(synthetic.larger_trial(Path(folder) / "d"))
        producer = next(p for p in results.PRODUCERS if p.name == "pinned")
        [section] = results.run(producer, trial, Parameters())
    said = section.values["ens_data_sentence"]
    assert said.startswith("These data are not the article's trial") and "compare" in said
    shown = section.tables["tab_pinned"].frame
    assert "In these data" not in shown.columns and "Holds in these data" not in shown.columns
    assert not any("P1" in str(v) for v in section.values.values())
