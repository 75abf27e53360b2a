"""The supplement's parts on small inputs: the data's copy for spreadsheets, the units of
columns, numbers stored as numbers, what it says about the data and stale results."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from calcinosis import paths
from calcinosis.book import supplement


def test_spreadsheet_copy_neutralises_formulas_and_keeps_numbers(tmp_path: Path) -> None:
    path = tmp_path / "lesions.csv"
    rows = [
        ["lesion_id", "site", "dose_mg"],
        ["P1-L1", "=cmd|' /C calc'!A0", "-2.5"],
        ["P1-L2", "+1+2", "+3"],
        ["P1-L3", "@SUM(A1)", "1e-3"],
        ["P1-L4", '=HYPERLINK("http://x")', "0"],
        ["P1-L5", "left forearm", ""],
    ]
    with path.open("w", encoding="utf-8", newline="") as handle:
        csv.writer(handle, lineterminator="\n").writerows(rows)
    safe = list(csv.reader(supplement.spreadsheet_safe(path).splitlines()))
    assert [r[1] for r in safe[1:]] == [
        "'=cmd|' /C calc'!A0",
        "'+1+2",
        "'@SUM(A1)",
        '\'=HYPERLINK("http://x")',
        "left forearm",
    ]
    assert [r[2] for r in safe[1:]] == ["-2.5", "+3", "1e-3", "0", ""]
    assert safe[0] == rows[0] and [r[0] for r in safe] == [r[0] for r in rows]


@pytest.mark.parametrize(
    ("header", "numeric", "before", "unit"),
    [
        ("Area (cm²)", True, "", "cm²"),
        ("Site", False, "", ""),
        ("Mean possible (GRIM)", False, "", ""),
        ("Exp(B)", True, "", supplement.UNITS["Exp(B)"]),
        ("p", True, "", "probability"),
        ("95 % CI low", True, "%", "%"),
        ("SE", True, supplement.UNITS["B"], supplement.UNITS["B"]),
        ("Lesions", True, "", "count"),
        ("First visit", True, "", "visit number"),
        ("Patients per arm for 80 % power", True, "", "patients"),
    ],
)
def test_units_are_true(header: str, numeric: bool, before: str, unit: str) -> None:
    assert supplement.unit_of(header, numeric, before) == unit
    assert unit not in ("–", "B", "GRIM")


def test_numbers_printed_as_text_are_stored_as_numbers() -> None:
    assert supplement.stored("12", "Patients per arm for 80 % power") == 12
    assert supplement.stored("−2.66", "In the data") == -2.66
    assert supplement.stored("1.0", "Bundled reconstruction") == 1.0
    assert supplement.stored("more than 24", "Patients per arm") == "more than 24"
    assert supplement.stored("0.6 to 1.4", "Range") == "0.6 to 1.4"
    assert supplement.stored("007", "Site") == "007"  # not a number as printed
    assert supplement.stored("12", "Patient") == "12"  # identifiers stay text


def test_what_the_supplement_says_of_the_data() -> None:
    bundled = supplement.data_notes(paths.DATA_DIR, {})
    assert bundled.statement.startswith("These data are a reconstruction")
    assert bundled.ensemble_describes_data and bundled.stale == {}
    updated = supplement.data_notes(paths.DATA_DIR / "examples" / "updated", {})
    assert "synthetic example" in updated.statement
    assert not updated.ensemble_describes_data
    assert "neither that trial's data" in updated.stale[supplement.ENSEMBLE_SECTION]
    stale = supplement.data_notes(paths.DATA_DIR, {"power_stale_warning": "model differs"})
    assert stale.stale == {supplement.POWER_SECTION: "model differs"}
