"""Analyses remembered per loaded trial: computed once, handed out as independent copies."""

from __future__ import annotations

import pandas as pd
import pytest

from calcinosis.data.memo import per_trial
from calcinosis.data.trial import UndeclaredRead, load_trial


def test_computed_once_per_trial_and_copies_are_independent(tiny_dataset):
    calls = []

    @per_trial("measurements")
    def sizes(trial):
        calls.append(trial)
        return trial.measurements[["length_mm"]].copy()

    first, second = load_trial(tiny_dataset), load_trial(tiny_dataset)
    table = sizes(first)
    table.loc[:, "length_mm"] = -1.0  # a caller altering its copy ...
    again = sizes(first)
    assert len(calls) == 1
    assert (again["length_mm"].dropna() >= 0).all()  # ... does not alter the remembered one
    pd.testing.assert_frame_equal(sizes(second), again)
    assert len(calls) == 2  # another loaded trial is another computation


def test_views_of_one_trial_share_it_and_declared_reads_hold(tiny_dataset):
    """Two producers' views compute once; the analysis sees only what it declares; a view
    without a declared table is refused even when the answer is already known."""
    calls = []

    @per_trial("lesions", "measurements")
    def lesion_count(trial):
        calls.append(trial)
        assert not trial.holds("patients")
        return trial.measurements["lesion_id"].nunique()

    trial = load_trial(tiny_dataset)
    sensitivity_view = trial.only(("patients", "lesions", "measurements"))
    pinned_view = trial.only(("patients", "lesions", "measurements", "radiography"))
    assert lesion_count(sensitivity_view) == lesion_count(pinned_view) == len(trial.lesions)
    assert len(calls) == 1
    with pytest.raises(UndeclaredRead, match="lesions"):
        lesion_count(trial.only(("patients", "measurements")))


def test_a_value_computed_elsewhere_is_remembered(tiny_dataset):
    """A value computed in a worker process from a trial's rows (`remember`) is what the
    trial's callers then get, as a copy, without computing it here."""
    calls = []

    @per_trial("lesions")
    def lesion_ids(trial, patient_id):
        calls.append(patient_id)
        return list(trial.lesions.loc[trial.lesions["patient_id"] == patient_id, "lesion_id"])

    trial = load_trial(tiny_dataset)
    view = trial.only(("patients", "lesions"))
    made_elsewhere = ["made", "elsewhere"]
    lesion_ids.remember(view, made_elsewhere, "P1")
    got = lesion_ids(trial.only(("lesions",)), "P1")
    assert got == made_elsewhere and got is not made_elsewhere
    assert calls == []
    lesion_ids(trial, "P2")  # not remembered: computed
    assert calls == ["P2"]
