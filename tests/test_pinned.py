"""What the summaries pin down: verdicts computed from the ensemble's table, the staleness
warning, and the chapter's section."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest

from calcinosis import ensemble, paths, pinned
from calcinosis.book.build import stage_warnings
from calcinosis.sections import Section

DATA = {"gee_length_pct": -2.66, "gee_length_p": 0.001, "decline_start_P1": 5.0}


def members(n: int, **columns) -> pd.DataFrame:
    frame = pd.DataFrame({"gee_length_pct": np.full(n, -2.66)}, index=[f"m{i}" for i in range(n)])
    for name, values in columns.items():
        frame[name] = values
    return frame


def verdict(table: pd.DataFrame, name: str) -> pd.Series:
    return table.set_index("conclusion").loc[name]


def test_a_conclusion_every_member_shares_is_fixed_and_one_they_split_on_is_open():
    n = 40
    wide = members(
        n,
        gee_length_p=np.full(n, 0.001),
        decline_start_P1=np.r_[np.full(n // 2, 5.0), np.full(n // 2, 7.0)],
    )
    table = pinned.verdicts(wide, DATA)
    gee, start = verdict(table, "gee_length"), verdict(table, "decline_start")
    assert gee["verdict"] == pinned.FIXED and gee["share_holding"] == 1.0
    assert start["verdict"] == pinned.OPEN and start["agreement"] == 0.5
    assert start["value_in_data"] == 5.0 and start["ensemble_median"] == 6.0


def test_the_verdict_turns_at_the_agreement_threshold():
    n = 100
    below = round(n * (1 - pinned.AGREEMENT))  # members that disagree, at the threshold
    for disagree, expected in ((below, pinned.FIXED), (below + 1, pinned.OPEN)):
        p = np.r_[np.full(disagree, 0.5), np.full(n - disagree, 0.001)]
        table = pinned.verdicts(members(n, gee_length_p=p), DATA)
        assert verdict(table, "gee_length")["verdict"] == expected, disagree


def test_agreement_counts_failing_in_both_as_agreeing():
    table = pinned.verdicts(
        members(10, gee_length_p=np.full(10, 0.3)), {**DATA, "gee_length_p": 0.2}
    )
    row = verdict(table, "gee_length")
    assert not row["holds_in_data"] and row["share_holding"] == 0 and row["verdict"] == pinned.FIXED


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
    from calcinosis import data, results
    from calcinosis.params import Parameters

    shipped = pinned.load()
    if shipped is None:
        pytest.skip("no ensemble shipped in book/ensemble")
    trial = data.load_trial(paths.DATA_DIR)
    producer = next(p for p in results.PRODUCERS if p.name == "pinned")
    [section] = results.run(producer, trial, Parameters())
    expected = pinned.verdicts(shipped.wide(), ensemble.conclusion_values(trial))
    shown = section.tables["tab_pinned"].frame
    assert shown["Verdict"].tolist() == expected["verdict"].tolist()
    assert section.values["ens_n_fixed"] == (expected["verdict"] == pinned.FIXED).sum()
    assert section.values["ens_n_kept"] == shipped.wide().shape[0]
    assert section.values["ens_warning"] == pinned.stale_message()
    by_grid = section.tables["tab_ensemble_kept_by_grid"].frame
    assert by_grid["Members"].sum() == section.values["ens_n_members"]
    assert by_grid["Kept"].sum() == section.values["ens_n_kept"]
    dropped = section.tables["tab_ensemble_dropped"].frame
    assert dropped["Members"].sum() == section.values["ens_n_dropped"]
