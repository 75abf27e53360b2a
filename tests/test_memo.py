"""Analyses remembered per loaded trial: computed once, handed out as independent copies."""

from __future__ import annotations

import pandas as pd

from calcinosis.data import load_trial
from calcinosis.memo import per_trial


def test_computed_once_per_trial_and_copies_are_independent(tiny_dataset):
    calls = []

    @per_trial
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
