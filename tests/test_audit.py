"""The audit: claims against recomputed values, and the published summaries' consistency."""

from __future__ import annotations

import pandas as pd
import pytest

from calcinosis import audit
from stats_fixtures import data_trial


@pytest.fixture(scope="module")
def trial():
    return data_trial()


def test_every_claim_matches_on_the_reconstruction(trial):
    table = audit.claims_audit(trial)
    assert list(table.columns[:6]) == ["name", "relation", "published", "recomputed",
                                       "recomputed_rounded", "verdict"]
    assert len(table) == len(audit.load_claims(trial.data_dir))
    assert (table["verdict"] == "match").all(), table[table["verdict"] != "match"]
    assert audit.is_reconstruction(trial)


def test_a_wrong_claim_differs(trial, tmp_path):
    path = tmp_path / "published.yml"
    path.write_text(
        "claims:\n"
        "- {name: gee_length_pct_per_visit, value: -2.67, decimals: 2, relation: '=', source: x}\n"
        "- {name: gee_length_p, value: 1.0e-9, decimals: 2, relation: '<', source: x}\n"
        "- {name: no_such_number, value: 1, decimals: 0, relation: '=', source: x}\n",
        encoding="utf-8")
    table = audit.claims_audit(trial, claims_path=path)
    assert table["verdict"].tolist() == ["differs", "differs", "not computed"]
    assert table.loc[0, "recomputed_rounded"] == -2.66


def _grim(table: pd.DataFrame, n: int, grid: float) -> pd.Series:
    return table[(table["n"] == n) & (table["grid"] == grid)].set_index("quantity")["consistent"]


def test_grim_findings():
    """At the 0.5 mm grid of the ranges' limits no mean fits n = 18, every mean fits n = 17;
    at 0.1 mm every mean fits n = 18."""
    table = audit.grim_table()
    assert audit.limit_grid() == 0.5
    assert not _grim(table, 18, 0.5).any()
    assert _grim(table, 17, 0.5).all()
    assert _grim(table, 18, 0.1).all()
    assert set(table["grid"]) == {0.1, 0.25, 0.5, 1.0} and 18 in set(table["n"])


def test_grimmer_is_at_least_as_strict_as_grim():
    table = audit.grimmer_table()
    assert not (table["grimmer_consistent"] & ~table["grim_consistent"]).any()
    assert table[(table["n"] == 17) & (table["grid"] == 0.5)]["grimmer_consistent"].all()


def test_grimmer_catches_an_impossible_sd():
    claims = pd.DataFrame([
        {"name": "rad_baseline_length_mean", "value": 2.0, "decimals": 2},
        {"name": "rad_baseline_length_sd", "value": 0.01, "decimals": 2},
        {"name": "rad_baseline_length_min", "value": 1.0, "decimals": 2},
        {"name": "rad_baseline_length_max", "value": 3.0, "decimals": 2},
    ])
    table = audit.grimmer_table(claims, ns=(4,), grids=(1.0,))
    assert table["grim_consistent"].item() and not table["grimmer_consistent"].item()


def test_sd_feasibility():
    table = audit.sd_feasibility().set_index("quantity")
    assert table["feasible"].all()
    width = table.loc["baseline width"]
    assert width["sd_min_possible"] == pytest.approx(2.587, abs=1e-3)
    assert width["sd_min_possible"] < width["sd"] < width["sd_max_possible"]


def test_sd_feasibility_flags_an_impossible_sd():
    claims = pd.DataFrame([
        {"name": "rad_final_width_mean", "value": 5.0, "decimals": 2},
        {"name": "rad_final_width_sd", "value": 9.0, "decimals": 2},
        {"name": "rad_final_width_min", "value": 0.0, "decimals": 2},
        {"name": "rad_final_width_max", "value": 10.0, "decimals": 2},
    ])
    assert not audit.sd_feasibility(claims, ns=(10,))["feasible"].item()
