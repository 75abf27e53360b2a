"""`calcinosis supplement` makes the supplement alone: every table and figure of the book with
its number, caption and units, number formats in the spreadsheets, and an index."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from calcinosis import paths
from calcinosis.book.numbers import numbered_items
from calcinosis.cli import main

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def supplement(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("supplement") / "report.v1"
    (out.parent / "report.zip").write_text("an unrelated zip\n")  # must stay as it is
    cache = out.parent / "cache"
    result = CliRunner().invoke(
        main,
        ["supplement", "--data", str(paths.DATA_DIR), "--out", str(out), "--cache", str(cache)],
    )
    assert result.exit_code == 0, result.output
    return out


def book_items(supplement: Path):
    values = json.loads((supplement / "results.json").read_text(encoding="utf-8"))
    patients = sorted(
        {m.group(1) for m in map(re.compile(r"patient_(\w+?)_patient_id").match, values) if m}
    )
    chapters = {p.stem: p for p in paths.CHAPTERS_DIR.glob("*.md")}
    return numbered_items(chapters, paths.BOOK_DIR / "_toc.yml", patients, values)


def test_every_table_and_figure_of_the_book_is_there(supplement: Path) -> None:
    items = book_items(supplement)
    assert any(i.name == "tab_patient_lesions_P5" for i in items)  # per-patient ones too
    for item in items:
        folder, suffixes = (
            ("tables", (".csv", ".xlsx"))
            if item.kind == "Table"
            else ("figures", (".svg", ".pdf", ".png"))
        )
        for suffix in suffixes:
            assert (supplement / folder / f"{item.name}{suffix}").is_file(), item
    assert (supplement / "supplement.zip").is_file()


def test_nothing_is_written_beside_the_folder_and_a_rerun_replaces_it(supplement: Path) -> None:
    beside = supplement.parent
    assert (beside / "report.zip").read_text() == "an unrelated zip\n"
    assert sorted(p.name for p in beside.iterdir()) == [
        ".report.v1.lock",  # the one-command-per-folder lock
        "cache",
        "report.v1",
        "report.zip",
    ]
    zipped = (supplement / "supplement.zip").read_bytes()
    (supplement / "left-by-hand.txt").write_text("x")  # a folder the tool made is its own
    result = CliRunner().invoke(
        main,
        ["supplement", "--out", str(supplement), "--cache", str(beside / "cache")],
    )
    assert result.exit_code == 0, result.output
    assert not (supplement / "left-by-hand.txt").exists()
    assert (supplement / "supplement.zip").read_bytes() == zipped
    assert (beside / "report.zip").read_text() == "an unrelated zip\n"


def test_the_readme_maps_each_file_to_the_book(supplement: Path) -> None:
    readme = (supplement / "README.md").read_text(encoding="utf-8")
    for item in book_items(supplement):
        kind = "tables" if item.kind == "Table" else "figures"
        assert re.search(rf"`{kind}/{item.name}\.[\w ,.]+` \| {item.label} \|", readme), item
    assert "| Table 2.2 | The lesions before treatment" in readme
    for csv in (supplement / "tables").glob("*.csv"):
        assert f"`tables/{csv.stem}.csv" in readme, csv.name


def test_each_workbook_has_a_caption_units_and_number_formats(supplement: Path) -> None:
    from openpyxl import load_workbook

    items = {i.name: i for i in book_items(supplement)}
    book = load_workbook(supplement / "tables" / "tab_baseline_lesions.xlsx")
    about = {row[0]: row[1] for row in book["About"].iter_rows(values_only=True) if row}
    assert about["Table"] == "Table 2.2"
    assert about["Caption"] == items["tab_baseline_lesions"].caption
    assert about["Clinical length (mm)"] == "mm" and about["Area (cm²)"] == "cm²"
    data = book.worksheets[0]
    headers = [c.value for c in data[1]]
    column = headers.index("Clinical length (mm)") + 1
    assert data.cell(row=2, column=column).number_format == "0.0"  # the book's one decimal
    for xlsx in (supplement / "tables").glob("*.xlsx"):
        sheets = load_workbook(xlsx).sheetnames
        assert sheets[1:] == ["About"], xlsx.name
        names = [c.value for c in load_workbook(xlsx).worksheets[0][1]]
        assert not [n for n in names if re.fullmatch(r"[a-z]+(_[a-z0-9]+)+", str(n))], xlsx.name


def test_a_wrong_parameter_is_a_message(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main, ["supplement", "--out", str(tmp_path / "s"), "-p", "correlation=banana"]
    )
    assert result.exit_code != 0
    assert "Traceback" not in result.output and "banana" in result.output
