"""Every registered table builds from the bundled data; helpers that print them."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from calcinosis import glue, paths, tables
from calcinosis.data import load_trial
from calcinosis.dose import rule_dose


@pytest.fixture(scope="module")
def trial():
    return load_trial(paths.DATA_DIR)


@pytest.mark.parametrize("name", sorted(tables.TABLES))
def test_registered_table_builds(trial, name: str) -> None:
    frame = tables.TABLES[name](trial)
    assert isinstance(frame, pd.DataFrame)
    assert frame.columns.is_unique
    if name != "tab_adverse_events":
        assert len(frame) > 0
    assert glue.markdown_table(frame).count("\n") == len(frame) + 1


def test_registry_names_are_the_function_names() -> None:
    for name, func in tables.TABLES.items():
        assert name == func.__name__ and name.startswith("tab_")


@pytest.mark.parametrize(("area", "dose"), [(0.1, 20), (1.5, 20), (1.51, 40), (5.0, 40),
                                            (5.01, None)])
def test_rule_dose(area: float, dose) -> None:
    assert rule_dose(area) == dose


def test_dose_rule_flags_the_axillary_lesion(trial) -> None:
    table = tables.tab_dose_rule(trial).set_index("Lesion")
    assert table.loc["P2-L1", "Check"].startswith("outside the rule")
    assert tables.dose_rule_counts(trial)["n_dose_over_limit"] == 1


def test_markdown_table_aligns_and_formats() -> None:
    frame = pd.DataFrame({"Name": ["a|b", "c"], "x": [1.23456, np.nan], "n": [1, 2],
                          "p": [0.5, 1e-9]})
    text = glue.markdown_table(frame, {"x": 1})
    lines = text.splitlines()
    assert lines[1] == "|:--|--:|--:|--:|"
    assert "a\\|b" in lines[2] and "1.2" in lines[2] and "0.5000" in lines[2]
    assert "–" in lines[3] and "< 0.0001" in lines[3]


def test_numbers_are_glued_as_plain_python(monkeypatch) -> None:
    glued = {}
    monkeypatch.setattr(glue, "_glue", lambda name, value: glued.__setitem__(name, value))
    out = glue.numbers({"a": np.float64(1.5), "b": np.int64(3), "c": float("nan"),
                        "d": None, "gee_p": 0.00001}, prefix="x_")
    assert type(glued["x_a"]) is float and type(glued["x_b"]) is int
    assert "x_c" not in glued and "x_d" not in glued
    assert glued["x_gee_p_text"] == "p < 0.0001"
    assert out == {"x_a": 1.5, "x_b": 3, "x_gee_p": 0.00001}
    assert not any(isinstance(v, float) and math.isnan(v) for v in glued.values())


def test_commit_is_robust_without_git(monkeypatch) -> None:
    glue.commit.cache_clear()
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.delenv("CALCINOSIS_COMMIT", raising=False)
    try:
        assert glue.commit() == "unknown"
    finally:
        glue.commit.cache_clear()
