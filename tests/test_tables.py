"""Every table function builds from the bundled data; tables print as MyST whose cells are
always literal text; the helpers that write numbers for readers."""

from __future__ import annotations

import inspect
import string

import numpy as np
import pandas as pd
import pytest

from calcinosis import formatting, paths, software
from calcinosis.data.dose import rule_dose
from calcinosis.data.trial import load_trial
from calcinosis.formatting import NOT_ESTIMABLE, markdown_table, plain
from calcinosis.params import Parameters
from calcinosis.report import tables
from calcinosis.report.sections import Section, Table

PUNCTUATION = set(string.punctuation)  # ASCII punctuation: what CommonMark lets one escape
_ALL_TABLES = {
    name: func
    for name, func in inspect.getmembers(tables, inspect.isfunction)
    if name.startswith("tab_") and func.__module__ == tables.__name__
}
# tables of the trial; the others are made from a shipped run (the ensemble, the power
# simulation) by the producers `pinned` and `power`, and are tested through them
TABLE_FUNCTIONS = sorted(
    name
    for name, func in _ALL_TABLES.items()
    if list(inspect.signature(func).parameters)[:1] == ["trial"]
)
SHIPPED_PRODUCERS = ("pinned", "power")


@pytest.fixture(scope="module")
def trial():
    return load_trial(paths.DATA_DIR)


def _arguments(func, trial) -> list[dict]:
    """Each call a table function needs: per outcome, per patient, with parameters/values."""
    calls = [{}]
    names = list(inspect.signature(func).parameters)[1:]
    for name in names:
        if name == "outcome":
            calls = [{**c, "outcome": o} for c in calls for o in ("length", "width")]
        elif name == "patient_id":
            calls = [{**c, "patient_id": p} for c in calls for p in ("P1", "P2")]
        elif name == "params":
            calls = [{**c, "params": Parameters()} for c in calls]
        elif name == "values":
            calls = [{**c, "values": {}} for c in calls]
        else:
            raise AssertionError(f"{func.__name__}: no test argument for {name!r}")
    return calls


@pytest.mark.integration
@pytest.mark.parametrize("name", TABLE_FUNCTIONS)
def test_table_builds_and_prints_one_line_per_row(trial, name: str) -> None:
    func = getattr(tables, name)
    for kwargs in _arguments(func, trial):
        frame = func(trial, **kwargs)
        assert isinstance(frame, pd.DataFrame)
        assert frame.columns.is_unique
        if name != "tab_adverse_events":  # no event was recorded
            assert len(frame) > 0, (name, kwargs)
        text = markdown_table(frame)
        assert text.count("\n") == len(frame) + 2  # header, rule, one line per row
        for line in text.splitlines()[2:]:
            assert len(cells(line)) == frame.shape[1]


@pytest.mark.integration
def test_tables_of_shipped_runs_print_one_line_per_row(trial) -> None:
    from calcinosis.report import results

    made = {}
    for producer in results.PRODUCERS:
        if producer.name in SHIPPED_PRODUCERS:
            for section in results.run(producer, trial, Parameters()):
                made.update(section.tables)
    for name, table in made.items():
        assert len(table.frame) > 0, name
        text = table.markdown()
        assert text.count("\n") == len(table.frame) + 2, name
    others = set(_ALL_TABLES) - set(TABLE_FUNCTIONS)
    assert others and others <= set(made), others - set(made)


def test_there_are_table_functions() -> None:
    assert {
        "tab_gee",
        "tab_gee_summary",
        "tab_interaction",
        "tab_claims_audit",
        "tab_dose_rule",
        "tab_patient_rate",
    } <= set(TABLE_FUNCTIONS)


# --------------------------------------------------------------------------------------------
# Dose rule
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("area", "dose"), [(0.1, 20), (1.5, 20), (1.51, 40), (5.0, 40), (5.01, None)]
)
def test_rule_dose(area: float, dose) -> None:
    assert rule_dose(area) == dose


def test_dose_rule_flags_the_axillary_lesion(trial) -> None:
    table = tables.tab_dose_rule(trial).set_index("Lesion")
    assert table.loc["P2-L1", "Check"].startswith("outside the rule")
    counts = tables.dose_rule_counts(trial)
    assert counts["n_dose_over_limit"] == 1
    assert sum(counts.values()) == len(trial.lesions)


# --------------------------------------------------------------------------------------------
# MyST tables: cells are text, never markup
# --------------------------------------------------------------------------------------------


def cells(line: str) -> list[str]:
    """The cells of one pipe-table row: split at the pipes no backslash escapes."""
    out, cell, i = [], "", 0
    assert line.startswith("|") and line.endswith("|"), line
    body = line[1:]
    while i < len(body):
        char = body[i]
        if char == "\\" and i + 1 < len(body):
            cell += body[i : i + 2]
            i += 2
            continue
        if char == "|":
            out.append(cell.strip())
            cell = ""
        else:
            cell += char
        i += 1
    assert cell.strip() == "", f"text after the last pipe: {line!r}"
    return out


def literal(cell: str) -> str:
    """The text a reader sees in `cell`; fails on any ASCII punctuation left unescaped."""
    out, i = "", 0
    while i < len(cell):
        char = cell[i]
        if char == "\\":
            assert i + 1 < len(cell) and cell[i + 1] in PUNCTUATION, f"stray backslash: {cell!r}"
            out += cell[i + 1]
            i += 2
            continue
        assert char not in PUNCTUATION, f"unescaped {char!r} in cell {cell!r}"
        out += char
        i += 1
    return out


HOSTILE = [
    "<script>alert(1)</script>",
    "$x$",
    "![x](y)",
    "a|b",
    "{math}`x`",
    "*bold* _it_",
    "[link](http://e.org)",
    "back\\slash",
    "line\none",
    "#1 & <b>",
    "`code`",
    "~~s~~",
]


def test_cells_of_any_text_are_escaped_literal_text() -> None:
    frame = pd.DataFrame({"Text": HOSTILE, "<col|$>": ["ok"] * len(HOSTILE)})
    lines = markdown_table(frame).splitlines()
    header, rule, body = lines[0], lines[1], lines[2:]
    assert rule == "|:--|:--|"
    assert [literal(c) for c in cells(header)] == ["Text", "<col|$>"]
    assert len(body) == len(HOSTILE)
    for text, line in zip(HOSTILE, body, strict=True):
        first, second = cells(line)
        assert literal(first) == " ".join(text.splitlines())
        assert literal(second) == "ok"
    assert "<script>" not in "".join(lines) and "$x$" not in "".join(lines)


def test_markdown_table_aligns_and_formats() -> None:
    frame = pd.DataFrame(
        {"Name": ["a|b", "c"], "x": [1.23456, np.nan], "n": [1, 2], "p": [0.5, 1e-9]}
    )
    lines = markdown_table(frame, {"x": 1}).splitlines()
    assert lines[1] == "|:--|--:|--:|--:|"
    assert [literal(c) for c in cells(lines[2])] == ["a|b", "1.2", "1", "0.5000"]
    assert [literal(c) for c in cells(lines[3])] == ["c", "–", "2", "< 0.0001"]


def test_a_table_without_rows_says_so() -> None:
    """Sphinx's LaTeX writer fails on a table without a body; readers see why it is empty."""
    lines = markdown_table(pd.DataFrame({"Event": [], "Visit": []})).splitlines()
    assert len(lines) == 3 and [literal(c) for c in cells(lines[2])] == ["none recorded", ""]


def test_table_prints_its_decimals() -> None:
    table = Table(pd.DataFrame({"a": [1.23456], "b": [1.23456], "ok": [True]}), {"a": 3})
    assert [literal(c) for c in cells(table.markdown().splitlines()[2])] == ["1.235", "1.23", "yes"]
    assert table.frame["a"].item() == 1.23456  # the table keeps full precision


def test_every_table_of_the_book_prints_as_literal_text(trial) -> None:
    """A real table with punctuation in its cells (sites, notes, ranges) round-trips."""
    frame = tables.tab_dose_rule(trial)
    lines = markdown_table(frame).splitlines()
    for line in [lines[0], *lines[2:]]:
        for cell in cells(line):
            literal(cell)
    assert [literal(c) for c in cells(lines[0])] == list(frame.columns)


# --------------------------------------------------------------------------------------------
# Numbers for readers
# --------------------------------------------------------------------------------------------


def test_plain_values() -> None:
    assert type(plain(np.float64(1.5))) is float and plain(np.float64(1.5)) == 1.5
    assert type(plain(np.int64(3))) is int and plain(np.int64(3)) == 3
    assert plain(np.bool_(True)) == 1 and type(plain(np.bool_(True))) is int
    assert plain(True) == 1 and type(plain(True)) is int
    for missing in (float("nan"), np.nan, None, pd.NA):
        assert plain(missing) == NOT_ESTIMABLE
    assert plain("text") == "text"


def test_section_adds_plain_values_and_p_phrases() -> None:
    section = Section("s")
    section.add(
        {
            "a": np.float64(1.5),
            "b": np.int64(3),
            "c": float("nan"),
            "p": 0.00001,
            "length_p": 0.0123,
            "nan_p": float("nan"),
        },
        prefix="x_",
    )
    assert section.values == {
        "x_a": 1.5,
        "x_b": 3,
        "x_c": NOT_ESTIMABLE,
        "x_p": 0.00001,
        "x_p_text": "p < 0.0001",
        "x_length_p": 0.0123,
        "x_length_p_text": "p = 0.0123",
        "x_nan_p": NOT_ESTIMABLE,
    }
    assert type(section.values["x_b"]) is int


@pytest.mark.parametrize(
    ("p", "text", "phrase"),
    [
        (0.5, "0.5000", "p = 0.5000"),
        (0.00005, "< 0.0001", "p < 0.0001"),
        (0.0001, "0.0001", "p = 0.0001"),
    ],
)
def test_p_values(p, text, phrase) -> None:
    assert formatting.p_text(p) == text
    assert formatting.p_phrase(p) == phrase
    assert formatting.p_text(np.nan) == "–"


def test_signed_pct() -> None:
    assert formatting.signed_pct(-2.661) == "−2.66 %"
    assert formatting.signed_pct(1.2) == "+1.20 %"


@pytest.mark.parametrize("zero", [-0.0, -0.004, 0.004, 0.0])
def test_a_number_that_rounds_to_zero_has_no_sign(zero) -> None:
    """A CI end of −0.004 % was printed "−0.00 %" on a generated trial (issue 22)."""
    assert formatting.signed_pct(zero) == "0.00 %"
    assert formatting.number_text(zero, 2) == "0.00"
    assert formatting.fixed(zero, 2, sign=True) == "0.00"
    assert formatting.number_text(-0.006, 2) == "−0.01"
    assert formatting.signed_pct(-0.4, 0) == "0 %" and formatting.signed_pct(-0.6, 0) == "−1 %"


def test_short_commit_is_robust_without_git(monkeypatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.delenv("CALCINOSIS_COMMIT", raising=False)
    assert software.git_state() == {"commit": None, "dirty": None}
    assert software.short_commit() == "unknown"


def test_commit_from_the_environment(monkeypatch) -> None:
    monkeypatch.setenv("CALCINOSIS_COMMIT", "0123456789abcdef")
    assert software.git_state() == {"commit": "0123456789abcdef", "dirty": None}
    assert software.short_commit() == "0123456789"


def test_short_commit_of_this_repository(monkeypatch) -> None:
    monkeypatch.delenv("CALCINOSIS_COMMIT", raising=False)
    state = software.git_state(paths.ROOT)
    if state["commit"] is None:
        pytest.skip("not a git checkout")
    assert len(state["commit"]) == 40 and isinstance(state["dirty"], bool)
    assert software.short_commit().startswith(state["commit"][:10])
