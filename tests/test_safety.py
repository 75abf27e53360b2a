"""Adverse events and exposure: honest tables when nothing happened, counts when it did."""

from __future__ import annotations

import pytest

from calcinosis import data, safety
from stats_fixtures import data_trial, write_table


@pytest.fixture(scope="module")
def trial():
    return data_trial()


def test_no_events_gives_a_zero_table_with_every_patient(trial):
    table = safety.adverse_events(trial)
    assert table["patient_id"].tolist() == ["P1", "P2", "P3", "P4", "P5"]
    assert {"mild", "moderate", "severe", "total", "related"} <= set(table.columns)
    assert (table.drop(columns="patient_id") == 0).all().all()


def test_exposure(trial):
    table = safety.exposure(trial).set_index("patient_id")
    assert table.loc["P1", "lesions"] == 9 and table.loc["P1", "injections"] == 9 * 16
    assert table["injections"].sum() == 18 * 16
    assert table.loc["P2", "total_dose_mg"] == 40 * 16


def test_events_are_counted_by_severity(tiny_dataset):
    write_table(
        tiny_dataset / "adverse_events.csv",
        [
            ["patient_id", "visit", "event", "severity", "related_to_treatment"],
            ["P1", 2, "injection-site pain", "mild", "yes"],
            ["P1", 3, "fever", "Moderate", "no"],
        ],
    )
    table = safety.adverse_events(data.load_trial(tiny_dataset)).set_index("patient_id")
    assert table.loc["P1", ["mild", "moderate", "total", "related"]].tolist() == [1, 1, 2, 1]
    assert table.loc["P2", "total"] == 0


def test_safety_sentences_follow_the_events() -> None:
    import pandas as pd

    def table(totals, related):
        return pd.DataFrame(
            {
                "patient_id": [f"P{i}" for i in range(len(totals))],
                "total": totals,
                "related": related,
            }
        )

    none = safety.sentences(table([0] * 5, [0] * 5))
    assert none["adverse_events_sentence"] == "No adverse event was recorded."
    assert "60 %" in none["safety_bound_sentence"]
    some = safety.sentences(table([2, 0, 1, 1, 0, 0], [1, 0, 1, 0, 0, 0]))
    assert some["adverse_events_sentence"] == (
        "4 adverse events were recorded, 2 of them judged related to treatment."
    )
    assert some["safety_bound_sentence"].startswith("3 of the 6 children had at least one event")
    assert "No adverse event" not in " ".join(some.values())
