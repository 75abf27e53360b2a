"""Data is never code: the real book built from a copy of the bundled data whose text fields
carry markup, math, links, paths and spreadsheet formulas. Every one must arrive as text."""

from __future__ import annotations

import csv
import shutil
import subprocess
from pathlib import Path

import pytest

from calcinosis import paths
from calcinosis.book import build
from calcinosis.book.staging import pdf_missing
from conftest import seeded_cache

pytestmark = pytest.mark.system

HOSTILE_SITES = {
    "P1-L1": "<script>alert(1)</script>",
    "P1-L2": "![x](../../../../../../../etc/hostname)",
    "P3-L1": "=cmd|' /C calc'!A0",
    "P4-L1": "$\\input{/etc/hostname}$",
    "P5-L1": "{ref}`gee` [link](https://example.org) **bold**",
}
HOSTILE_EVENT = ["P1", "2", "<img src=x onerror=alert(1)> $\\input{/etc/hostname}$", "mild", "no"]


def _rewrite(path: Path, change) -> None:
    with path.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.reader(handle))
    rows = change(rows)
    with path.open("w", encoding="utf-8", newline="") as handle:
        csv.writer(handle, lineterminator="\n").writerows(rows)


@pytest.fixture(scope="module")
def hostile_book(tmp_path_factory, built_book: Path) -> Path:
    root = tmp_path_factory.mktemp("hostile")
    data_dir = root / "data"
    shutil.copytree(paths.DATA_DIR, data_dir, ignore=shutil.ignore_patterns("examples"))

    def sites(rows):
        header = rows[0]
        for row in rows[1:]:
            row[header.index("site")] = HOSTILE_SITES.get(row[0], row[header.index("site")])
        return rows

    _rewrite(data_dir / "lesions.csv", sites)
    _rewrite(data_dir / "adverse_events.csv", lambda rows: [*rows, HOSTILE_EVENT])
    (data_dir / "secret_names.csv").write_text("name\nAlice Example\n", encoding="utf-8")
    (data_dir / "passwd.csv").symlink_to("/etc/passwd")
    build.build(
        data_dir,
        root / "out",
        {},
        None,
        not pdf_missing(),
        cache_dir=seeded_cache(built_book, root / "cache"),
        echo=lambda _: None,
    )
    return root / "out"


def test_markup_in_data_is_text_in_every_page(hostile_book: Path) -> None:
    pages = {p.name: p.read_text(encoding="utf-8") for p in (hostile_book / "html").glob("*.html")}
    for name, html in pages.items():
        assert "<script>alert(1)</script>" not in html, name
        assert "<img src=x" not in html, name
        assert 'href="https://example.org"' not in html, name
    lesions = pages["cohort.html"]
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in lesions
    assert "![x](../../../../../../../etc/hostname)" in lesions


def test_no_file_from_outside_is_published(hostile_book: Path) -> None:
    names = [p.name for p in hostile_book.rglob("*")]
    assert not any("hostname" in n or "passwd" in n or "secret" in n for n in names), names
    hostname = Path("/etc/hostname").read_text(encoding="utf-8").strip()
    pdfs = sorted(hostile_book.glob("pdf/*.pdf"))
    assert pdfs or pdf_missing()  # the PDF is checked wherever it can be built (CI)
    for pdf in pdfs:
        text = subprocess.run(
            ["pdftotext", str(pdf), "-"], capture_output=True, text=True, check=True
        ).stdout
        assert "/etc/hostname" in text  # printed as the text it is
        assert not hostname or hostname not in text


def test_spreadsheet_cells_never_start_a_formula(hostile_book: Path) -> None:
    import openpyxl

    tables = hostile_book / "supplement" / "tables"
    csv_text = (tables / "tab_baseline_lesions.csv").read_text(encoding="utf-8")
    assert "'=cmd|" in csv_text and ",=cmd|" not in csv_text
    for sheet in openpyxl.load_workbook(hostile_book / "supplement" / "tables.xlsx"):
        formulas = [c.coordinate for row in sheet.iter_rows() for c in row if c.data_type == "f"]
        assert not formulas, (sheet.title, formulas)
    safe = (hostile_book / "supplement" / "data-for-spreadsheets" / "lesions.csv").read_text()
    assert "'=cmd|" in safe and ",=cmd|" not in safe
