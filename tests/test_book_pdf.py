"""The PDF holds every chapter and the glued headline numbers (read with pdftotext)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.book

CHAPTER_TITLES = (
    "Methods",
    "Cohort",
    "Results per patient",
    "GEE analysis",
    "Radiography",
    "Safety",
    "Discussion figures",
    "Sensitivity",
    "Reproducibility",
    "References",
    "Appendix: data dictionary",
    "Patient P1",
    "Patient P5",
)


@pytest.fixture(scope="module")
def pdf_text(built_book: Path) -> str:
    if not shutil.which("pdftotext"):
        pytest.skip("no pdftotext (poppler-utils; .ci/install-system-deps installs it)")
    pdfs = sorted((built_book / "pdf").glob("*.pdf"))
    if not pdfs and not (shutil.which("xelatex") and shutil.which("latexmk")):
        pytest.skip("no TeX Live: the PDF was not built")
    assert len(pdfs) == 1, pdfs
    text = subprocess.run(
        ["pdftotext", "-layout", str(pdfs[0]), "-"], check=True, capture_output=True, text=True
    ).stdout
    return re.sub(r"[ \t]+", " ", text)


def test_pdf_has_every_chapter(pdf_text: str) -> None:
    flat = re.sub(r"\s+", " ", pdf_text)
    missing = [t for t in CHAPTER_TITLES if t not in flat]
    assert not missing


def test_pdf_has_the_gee_percentages(built_book: Path, pdf_text: str) -> None:
    results = json.loads((built_book / "results.json").read_text("utf-8"))
    results = results.get("results", results)
    for key in ("gee_length_pct_per_visit", "gee_width_pct_per_visit"):
        assert f"{results[key]:.2f}" in pdf_text, key


def test_pdf_has_figures(built_book: Path) -> None:
    if not shutil.which("pdfimages"):
        pytest.skip("no pdfimages")
    pdf = next((built_book / "pdf").glob("*.pdf"))
    listing = subprocess.run(
        ["pdfimages", "-list", str(pdf)], check=True, capture_output=True, text=True
    ).stdout.splitlines()[2:]
    assert len(listing) >= 12, "fewer images than the book's figures"
