"""The audit: claims against recomputed values, and the published summaries' consistency."""

from __future__ import annotations

import pandas as pd
import pytest

from calcinosis.data import trial as data
from calcinosis.params import Parameters
from calcinosis.report import results
from calcinosis.simulate import audit, reconstruct
from stats_fixtures import data_trial


@pytest.fixture(scope="module")
def trial():
    return data_trial()


@pytest.fixture(scope="module")
def values(trial) -> dict:
    """The values the claims are about, from the producers that make them."""
    needed = {"design", "gee", "radiography", "safety", "data_package"}
    sections = [
        section
        for producer in results.PRODUCERS
        if producer.name in needed
        for section in results.run(producer, trial, Parameters())
    ]
    return results.all_values(sections)


@pytest.mark.integration
def test_every_claim_matches_on_the_reconstruction(trial, values):
    table = audit.claims_audit(trial, values)
    assert tuple(table.columns) == audit.CLAIMS_COLUMNS
    assert len(table) == len(audit.load_claims(trial.data_dir)) > 0
    assert (table["verdict"] == "match").all(), table[table["verdict"] != "match"]
    assert table["recomputed"].tolist() == [values[n] for n in table["name"]]


@pytest.mark.integration
def test_the_audit_section_counts_the_verdicts(trial, values):
    (producer,) = [p for p in results.PRODUCERS if p.name == "audit"]
    assert producer.derived
    (section,) = results.run(producer, trial, Parameters(), values)
    n = len(audit.load_claims(trial.data_dir))
    assert (
        section.values["audit_n_claims"],
        section.values["audit_n_match"],
        section.values["audit_n_differ"],
    ) == (n, n, 0)
    wrong = {**values, "gee_width_pct_per_visit": values["gee_width_pct_per_visit"] + 0.01}
    wrong.pop("n_lesions")
    (section,) = results.run(producer, trial, Parameters(), wrong)
    assert (section.values["audit_n_match"], section.values["audit_n_differ"]) == (n - 2, 2)
    verdicts = section.tables["tab_claims_audit"].frame.set_index("Claim")["Verdict"]
    assert verdicts["gee_width_pct_per_visit"] == "differs"
    assert verdicts["n_lesions"] == "not computed"


@pytest.mark.integration
def test_a_wrong_claim_differs(trial, values, tmp_path):
    path = tmp_path / "published.yml"
    path.write_text(
        "claims:\n"
        "- {name: gee_length_pct_per_visit, value: -2.67, decimals: 2, relation: '=', source: x}\n"
        "- {name: gee_length_p, value: 1.0e-9, decimals: 2, relation: '<', source: x}\n"
        "- {name: no_such_number, value: 1, decimals: 0, relation: '=', source: x}\n",
        encoding="utf-8",
    )
    table = audit.claims_audit(trial, values, claims_path=path)
    assert table["verdict"].tolist() == ["differs", "differs", "not computed"]
    assert table.loc[0, "recomputed_rounded"] == -2.66


def test_claims_come_from_the_datasets_own_published_yml(tiny_dataset, tmp_path):
    trial = data.load_trial(tiny_dataset)  # no published.yml: the article's own claims
    defaults = audit.claims_audit(trial, {"n_patients": 2}).set_index("name")
    assert len(defaults) == len(reconstruct.published_claims(reconstruct.load_facts()))
    assert defaults.loc["n_patients", "verdict"] == "differs"  # 2 here, 5 in the article
    (tiny_dataset / "published.yml").write_text(
        "claims:\n- {name: n_patients, value: 2, decimals: 0, relation: '=', source: x}\n",
        encoding="utf-8",
    )
    table = audit.claims_audit(data.load_trial(tiny_dataset), {"n_patients": 2})
    assert table[["name", "verdict"]].values.tolist() == [["n_patients", "match"]]


def _grim(table: pd.DataFrame, n: int, grid: float) -> pd.Series:
    return table[(table["n"] == n) & (table["grid"] == grid)].set_index("quantity")["consistent"]


def test_grim_findings():
    """At the 0.5 mm grid of the ranges' limits no mean fits n = 18, every mean fits n = 17;
    at 0.1 mm every mean fits n = 18."""
    table = audit.grim_table()
    summaries = audit.published_summaries()
    limits = summaries[["min", "max"]].to_numpy()
    assert len(summaries) == 4 and ((limits * 2) % 1 == 0).all()  # the ranges are in 0.5 mm
    assert not _grim(table, 18, 0.5).any()
    assert _grim(table, 17, 0.5).all()
    assert _grim(table, 18, 0.1).all()
    assert set(table["grid"]) == {0.1, 0.25, 0.5, 1.0} and 18 in set(table["n"])


def test_grimmer_is_at_least_as_strict_as_grim():
    table = audit.grimmer_table()
    assert not (table["grimmer_consistent"] & ~table["grim_consistent"]).any()
    assert table[(table["n"] == 17) & (table["grid"] == 0.5)]["grimmer_consistent"].all()


def test_grimmer_catches_an_impossible_sd():
    claims = pd.DataFrame(
        [
            {"name": "rad_baseline_length_mean", "value": 2.0, "decimals": 2},
            {"name": "rad_baseline_length_sd", "value": 0.01, "decimals": 2},
            {"name": "rad_baseline_length_min", "value": 1.0, "decimals": 2},
            {"name": "rad_baseline_length_max", "value": 3.0, "decimals": 2},
        ]
    )
    table = audit.grimmer_table(claims, ns=(4,), grids=(1.0,))
    assert table["grim_consistent"].item() and not table["grimmer_consistent"].item()


def test_sd_feasibility():
    table = audit.sd_feasibility().set_index("quantity")
    assert table["feasible"].all()
    width = table.loc["baseline width"]
    assert width["sd_min_possible"] == pytest.approx(2.587, abs=1e-3)
    assert width["sd_min_possible"] < width["sd"] < width["sd_max_possible"]


def test_sd_feasibility_flags_an_impossible_sd():
    claims = pd.DataFrame(
        [
            {"name": "rad_final_width_mean", "value": 5.0, "decimals": 2},
            {"name": "rad_final_width_sd", "value": 9.0, "decimals": 2},
            {"name": "rad_final_width_min", "value": 0.0, "decimals": 2},
            {"name": "rad_final_width_max", "value": 10.0, "decimals": 2},
        ]
    )
    assert not audit.sd_feasibility(claims, ns=(10,))["feasible"].item()
