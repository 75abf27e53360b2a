"""The ensemble: members counted, kept only when they pass validation and the audit, the same
table on a local cluster and through separately started scheduler and workers."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from click.testing import CliRunner

from calcinosis.cli import main
from calcinosis.data import trial as data
from calcinosis.simulate import audit, ensemble, reconstruct

N = 4  # member 4 does not calibrate on its 1 mm grid: a dropped member in a small run


def test_a_seed_is_a_member_and_its_key_names_seed_and_assumptions():
    one, again, other = (ensemble.member_assumptions(s) for s in (1, 1, 2))
    assert one == again and one != other
    assert ensemble.member_key(1, one).startswith("m00001-")
    assert ensemble.member_key(1, one) != ensemble.member_key(1, other)
    for a in ensemble.ASSUMPTIONS:
        assert hasattr(one, a.name), a.name
    assert [t.key for t in ensemble.tasks(2)] == [t.key for t in ensemble.tasks(3)][:2]


@pytest.fixture(scope="module")
def local_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("local")
    result = CliRunner().invoke(
        main, ["ensemble", "--n", str(N), "--out", str(out), "--workers", "2"]
    )
    assert result.exit_code == 0, result.output
    return out


@pytest.mark.integration
def test_local_and_external_cluster_give_identical_tables(local_run, tmp_path, dask_scheduler):
    ensemble.run(N, tmp_path, scheduler=dask_scheduler, progress=False)
    local = pd.read_parquet(local_run / ensemble.TABLE_FILE)
    external = pd.read_parquet(tmp_path / ensemble.TABLE_FILE)
    pd.testing.assert_frame_equal(local, external)
    assert (local_run / ensemble.CSV_FILE).read_bytes() == (
        tmp_path / ensemble.CSV_FILE
    ).read_bytes()


@pytest.mark.integration
def test_every_member_is_counted_and_every_kept_one_passes_the_audit(local_run, tmp_path):
    table = pd.read_parquet(local_run / ensemble.TABLE_FILE)
    manifest = json.loads((local_run / ensemble.MANIFEST_FILE).read_text())
    members = table.drop_duplicates("key")
    assert len(members) == manifest["n_members"] == N
    assert manifest["n_kept"] + manifest["n_dropped"] == N
    assert manifest["n_dropped"] >= 1 and all(manifest["dropped"].values())
    assert manifest["code_hash"] == ensemble.code_hash()
    for seed in members.loc[members["kept"], "seed"]:
        folder = tmp_path / f"m{seed}"
        reconstruct.write_dataset(folder, int(seed), ensemble.member_assumptions(int(seed)))
        trial = data.load_trial(folder)
        claims = audit.claims_audit(trial, ensemble.audit_values(trial))
        assert (claims["verdict"] == "match").all(), claims
    kept = table[table["kept"]]
    assert kept.groupby("key")["quantity"].nunique().nunique() == 1  # same quantities each


@pytest.mark.integration
def test_a_larger_run_reuses_the_smaller_one(local_run):
    manifest = ensemble.run(N + 1, local_run, workers=1, progress=False)
    assert manifest["timings"]["this_run_computed"] == 1
    assert manifest["timings"]["this_run_reused"] == N


@pytest.mark.integration
def test_kept_trials_are_the_kept_members_datasets(local_run):
    from calcinosis.simulate import article
    from calcinosis.stats import models

    table = pd.read_parquet(local_run / ensemble.TABLE_FILE)
    recorded = table[table["quantity"] == "gee_length_pct_per_visit"].set_index("key")["value"]
    trials = dict(ensemble.kept_trials(table))
    assert sorted(trials) == sorted(recorded.index) and len(trials) >= 1
    for key, trial in trials.items():
        assert article.match(trial).is_article
        assert models.primary(trial, "length").pct_per_visit == pytest.approx(recorded[key])
