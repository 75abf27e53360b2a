"""Adverse events and exposure: honest tables when nothing happened, counts when it did."""

from __future__ import annotations

import pytest

from calcinosis.data import trial as data
from calcinosis.stats import safety
from stats_fixtures import data_trial, write_table


@pytest.fixture(scope="module")
def trial():
    return data_trial()


def test_no_events_gives_a_zero_table_with_every_patient(trial):
    table = safety.adverse_events(trial)
    assert table["patient_id"].tolist() == ["P1", "P2", "P3", "P4", "P5"]
    assert {"mild", "moderate", "severe", "total", "related"} <= set(table.columns)
    assert (table.drop(columns="patient_id") == 0).all().all()


def test_exposure_comes_from_the_recorded_doses(trial):
    table = safety.exposure(trial).set_index("patient_id")
    assert table.loc["P1", "lesions"] == 9 and table.loc["P1", "injections"] == 9 * 16
    assert table["injections"].sum() == 18 * 16
    assert table.loc["P2", "total_dose_mg"] == 40 * 16


def test_follow_up_visits_are_not_injections(tiny_dataset):
    trial = data.load_trial(tiny_dataset)
    before = safety.exposure(trial).set_index("patient_id")
    rows = (tiny_dataset / "measurements.csv").read_text().splitlines()
    header, body = rows[0].split(","), [r.split(",") for r in rows[1:]]
    dose = header.index("dose_mg")
    last = max(int(r[1]) for r in body)
    follow_up = [[r[0], str(last + 1), r[2], r[3]] + ["0"] for r in body if int(r[1]) == last]
    write_table(tiny_dataset / "measurements.csv", [header, *body, *follow_up])
    after = safety.exposure(data.load_trial(tiny_dataset)).set_index("patient_id")
    assert dose == 4
    assert after[["injections", "total_dose_mg"]].equals(before[["injections", "total_dose_mg"]])


def test_without_recorded_doses_each_measured_visit_is_an_injection(tiny_dataset):
    rows = [r.split(",") for r in (tiny_dataset / "measurements.csv").read_text().splitlines()]
    write_table(tiny_dataset / "measurements.csv", [r[:4] for r in rows])
    trial = data.load_trial(tiny_dataset)
    assert safety.injections(trial).shape[0] == len(rows) - 1
    assert "does not record" in safety.exposure_sentence(trial)


def test_events_are_counted_by_severity_and_listed(tiny_dataset):
    write_table(
        tiny_dataset / "adverse_events.csv",
        [
            ["patient_id", "visit", "event", "severity", "related_to_treatment"],
            ["P1", 3, "fever", "moderate", "no"],
            ["P1", 2, "injection-site pain", "mild", "yes"],
        ],
    )
    trial = data.load_trial(tiny_dataset)
    table = safety.adverse_events(trial).set_index("patient_id")
    assert table.loc["P1", ["mild", "moderate", "total", "related"]].tolist() == [1, 1, 2, 1]
    assert table.loc["P2", "total"] == 0
    listing = safety.event_list(trial)
    assert listing["Event"].tolist() == ["injection-site pain", "fever"]


def test_severity_outside_the_vocabulary_is_refused(tiny_dataset):
    write_table(
        tiny_dataset / "adverse_events.csv",
        [
            ["patient_id", "visit", "event", "severity", "related_to_treatment"],
            ["P1", 2, "rash", "moderately", "probably"],  # 'Moderate' would be normalised
        ],
    )
    problems = [str(p) for p in data.validate(tiny_dataset)]
    assert any("adverse_events.csv:2: severity" in p and "mild" in p for p in problems), problems
    assert any("related_to_treatment" in p and "unknown" in p for p in problems), problems


def _by_patient(totals, related):
    import pandas as pd

    return pd.DataFrame(
        {"patient_id": [f"P{i}" for i in range(len(totals))], "total": totals, "related": related}
    )


def _listing(severities, related):
    import pandas as pd

    return pd.DataFrame({"Severity": severities, "Related to treatment": related})


def test_safety_sentences_follow_the_events() -> None:
    none = safety.sentences(_by_patient([0] * 5, [0] * 5), _listing([], []))
    assert none["adverse_events_sentence"] == "No adverse event was recorded."
    assert "is 45 %" in none["safety_bound_sentence"]
    some = safety.sentences(
        _by_patient([2, 0, 1, 1, 0, 0], [1, 0, 1, 0, 0, 0]),
        _listing(["severe", "mild", "mild", "moderate"], ["yes", "yes", "no", "not assessed"]),
    )
    assert some["adverse_events_sentence"] == (
        "4 adverse events were recorded in 3 of the 6 children (2 mild, 1 moderate, 1 severe), "
        "2 judged related to treatment (1 event not assessed or of unknown relation)."
    )
    assert "from 12 % to 88 %" in some["safety_bound_sentence"]
    assert "No adverse event" not in " ".join(some.values())


@pytest.mark.integration
@pytest.mark.r
def test_exact_bounds_agree_with_r_binom_test() -> None:
    """R's binom.test (Clopper–Pearson) as the independent reference."""
    import subprocess

    script = (
        'cat(sprintf("%.17g", c(binom.test(0, 5, alternative="less")$conf.int[2], '
        "binom.test(3, 6)$conf.int, binom.test(1, 18)$conf.int)))"
    )
    r = [float(x) for x in subprocess.check_output(["Rscript", "-e", script], text=True).split()]
    ours = [safety.upper_bound_no_events(5), *safety.proportion_interval(3, 6)]
    ours += safety.proportion_interval(1, 18)
    assert ours == pytest.approx(r, rel=1e-9)
