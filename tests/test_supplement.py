"""`calcinosis supplement` makes the supplement alone: every table and figure of the book with
its number, caption and units, one workbook of the tables with numbers stored as numbers, the
data as read beside a copy safe for spreadsheets, and a README that says what the data are."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from calcinosis import paths
from calcinosis.book.numbers import numbered_items
from calcinosis.cli import main
from conftest import seeded_cache

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def supplement(tmp_path_factory, built_book: Path) -> Path:
    out = tmp_path_factory.mktemp("supplement") / "report.v1"
    (out.parent / "report.zip").write_text("an unrelated zip\n")  # must stay as it is
    cache = seeded_cache(built_book, out.parent / "cache")
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
            ("tables", (".csv",)) if item.kind == "Table" else ("figures", (".svg", ".png"))
        )
        for suffix in suffixes:
            assert (supplement / folder / f"{item.name}{suffix}").is_file(), item
    assert not list((supplement / "tables").glob("*.xlsx")), "one workbook, not one per table"
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
        entry = rf"- `{kind}/{item.name}\.[\w ,.]+`: {item.label}, made by `{item.source}`\."
        assert re.search(entry + "\n  " + re.escape(item.caption), readme), item
    assert "Table 2.2, made by `calcinosis.report.tables.tab_baseline_lesions`" in readme
    for csv in (supplement / "tables").glob("*.csv"):
        assert f"`tables/{csv.stem}.csv" in readme, csv.name
    assert "These data are a reconstruction of the trial's data" in readme


def test_captions_are_words(supplement: Path) -> None:
    """No internal label, role or module name in a caption: the code is named apart."""
    for item in book_items(supplement):
        assert "Made by" not in item.caption and "calcinosis." not in item.caption, item
        assert not re.search(r"\([a-z]+(-[a-z]+)+\)|`|\{", item.caption), item
        assert item.source.startswith("calcinosis."), item
    table = {i.name: i for i in book_items(supplement)}["tab_patient_rates"]
    assert "(see “Scale and small samples”)" in table.caption


# A number written as text: what a spreadsheet cannot sum ('-2.66, "12", "0.5").
NUMBER_AS_TEXT = re.compile(r"'?[−+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


def test_the_workbook_stores_numbers_with_units_and_no_formula(supplement: Path) -> None:
    from openpyxl import load_workbook

    items = {i.name: i for i in book_items(supplement)}
    book = load_workbook(supplement / "tables.xlsx")
    about = book["About"]
    assert book.sheetnames[0] == "About"
    index = {row[0]: row for row in about.iter_rows(min_row=6, values_only=True)}
    assert index["Table 2.2"][2] == items["tab_baseline_lesions"].caption
    assert index["Table 2.2"][3] == "tables/tab_baseline_lesions.csv"
    numbered = [s for s in book.sheetnames if s.startswith("Table ")]
    assert numbered == [i.label for i in items.values() if i.kind == "Table"], "book order"
    for sheet in book.worksheets[1:]:
        rows = list(sheet.iter_rows())
        headers, units = [c.value for c in rows[0]], [c.value for c in rows[1]]
        assert not [n for n in headers if re.fullmatch(r"[a-z]+(_[a-z0-9]+)+", str(n))]
        for column, header in enumerate(headers):
            values = [r[column].value for r in rows[2:]]
            numbers = [v for v in values if isinstance(v, int | float) and not isinstance(v, bool)]
            if numbers:  # a numeric column has a true unit in the units row
                assert units[column] and units[column] != "unit: –", (sheet.title, header)
        for row in rows[2:]:
            for cell in row:
                assert cell.data_type != "f", (sheet.title, cell.coordinate)
                text = cell.value if isinstance(cell.value, str) else ""
                assert not NUMBER_AS_TEXT.fullmatch(text.strip()), (sheet.title, cell.coordinate)
                assert not text.startswith(("=", "+", "@")), (sheet.title, cell.coordinate)
    gee = book[items["tab_gee_length"].label]
    headers = [c.value for c in gee[1]]
    assert gee.cell(row=2, column=headers.index("Exp(B)") + 1).value != "unit: B"
    lesions = book["Table 2.2"]
    headers = [c.value for c in lesions[1]]
    column = headers.index("Clinical length (mm)") + 1
    assert lesions.cell(row=2, column=column).value == "unit: mm"
    assert lesions.cell(row=3, column=column).number_format == "0.0"  # the book's one decimal
    site = lesions.column_dimensions[chr(ord("A") + headers.index("Site"))].width
    assert site >= max(len(str(c.value)) for c in lesions[chr(ord("A") + headers.index("Site"))])


def test_pinned_stores_numbers_and_splits_its_range(supplement: Path) -> None:
    from openpyxl import load_workbook

    items = {i.name: i for i in book_items(supplement)}
    if "tab_pinned" not in items:
        pytest.skip("no ensemble shipped")
    sheet = load_workbook(supplement / "tables.xlsx")[items["tab_pinned"].label]
    headers = [c.value for c in sheet[1]]
    assert {"Ensemble 5 %", "Ensemble 95 %"} <= set(headers)
    for name in ("In these data", "Ensemble median", "Ensemble 5 %", "Ensemble 95 %"):
        column = headers.index(name)
        values = [row[column] for row in sheet.iter_rows(min_row=3, values_only=True)]
        numbers = [v for v in values if v is not None]  # None: not computable there
        assert numbers and all(type(v) in (int, float) for v in numbers), (name, values)


def test_the_data_ship_as_read_and_safe_for_spreadsheets(supplement: Path) -> None:
    for path in (paths.DATA_DIR).glob("*.csv"):
        assert (supplement / "data" / path.name).read_bytes() == path.read_bytes()
        assert (supplement / "data-for-spreadsheets" / path.name).is_file()


def test_a_wrong_parameter_is_a_message(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main, ["supplement", "--out", str(tmp_path / "s"), "-p", "correlation=banana"]
    )
    assert result.exit_code != 0
    assert "Traceback" not in result.output and "banana" in result.output
