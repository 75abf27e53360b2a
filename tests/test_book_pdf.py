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
        assert f"{results[key]:.2f}".replace("-", "\u2212") in pdf_text, key  # a true minus


def test_pdf_has_vector_figures(built_book: Path, latex) -> None:
    """Every figure is included as a PDF (vector), none as a raster image."""
    _, tex = latex
    included = re.findall(
        r"\\sphinxincludegraphics(?:\[[^]]*\])?\{\{[^}]*\}(\.\w+)\}", "\n".join(tex)
    )
    assert len(included) >= 12, "fewer figures than the book's"
    assert set(included) == {".pdf"}, included
    if shutil.which("pdfimages"):
        pdf = next((built_book / "pdf").glob("*.pdf"))
        listing = subprocess.run(
            ["pdfimages", "-list", str(pdf)], check=True, capture_output=True, text=True
        ).stdout.splitlines()[2:]
        assert not listing, "raster images in the PDF"


# --------------------------------------------------------------------------------------------
# Layout: every table whole, nothing over the margins, pages kept as images
# --------------------------------------------------------------------------------------------

OVERFULL = re.compile(r"^Overfull \\([hv])box \(([\d.]+)pt too (?:wide|high)\)(.*)$", re.M)
LINES = re.compile(r"lines? (\d+)(?:--(\d+))?")
TABLE_ENV = re.compile(r"\\(begin|end)\{(longtable|tabulary|tabular)\*?\}")


@pytest.fixture(scope="module")
def latex(built_book: Path) -> tuple[str, list[str]]:
    """The LaTeX log and source lines of the PDF (kept in logs/ by the build)."""
    logs = sorted((built_book / "logs").glob("latex-*.log"))
    if not logs:
        pytest.skip("no PDF was built")
    log = logs[0].read_text(encoding="utf-8", errors="replace")
    tex = logs[0].with_suffix(".tex").read_text(encoding="utf-8").splitlines()
    return log, tex


def table_lines(tex: list[str]) -> set[int]:
    """The (1-based) line numbers of the .tex that lie inside a table environment."""
    inside, depth = set(), 0
    for number, line in enumerate(tex, start=1):
        for match in TABLE_ENV.finditer(line):
            depth += 1 if match.group(1) == "begin" else -1
        if depth > 0 or TABLE_ENV.search(line):
            inside.add(number)
    return inside


def test_no_overfull_vbox(latex) -> None:
    """Nothing runs off the bottom of a page (a table that cannot break did, losing rows)."""
    log, _ = latex
    found = [m.group(0) for m in OVERFULL.finditer(log) if m.group(1) == "v"]
    assert not found, found


def test_no_overfull_hbox_in_a_table(latex) -> None:
    """No table cell or row is wider than its column or the page (1 pt of slack)."""
    log, tex = latex
    inside = table_lines(tex)
    assert inside, "the PDF has no table"
    found = []
    for match in OVERFULL.finditer(log):
        where = LINES.search(match.group(3))
        if match.group(1) != "h" or float(match.group(2)) <= 1 or where is None:
            continue
        first, last = int(where.group(1)), int(where.group(2) or where.group(1))
        if any(n in inside for n in range(first, last + 1)):
            found.append(f"{match.group(0)}: {tex[first - 1][:80]}")
    assert not found, "\n".join(found)


def row_identifiers(csv: Path) -> list[str]:
    """A table's row identifiers: the values of its first column whose values are distinct
    text (the lesion, patient, claim, term ...)."""
    import pandas as pd

    frame = pd.read_csv(csv, dtype=str, keep_default_na=False)
    for column in frame.columns:
        values = frame[column]
        if values.is_unique and not values.str.fullmatch(r"[\d.eE+\-]+").any():
            return [v.removeprefix("'") for v in values]
    return []


def test_every_row_of_every_table_is_in_the_pdf(built_book: Path, pdf_text: str) -> None:
    """Each table of the book (the supplement holds them all) shows every row: the row's
    identifier is in the text of the PDF (an identifier with spaces: each of its words)."""
    flat = re.sub(r"\s+", " ", pdf_text.replace("\u2212", "-"))
    words = set(flat.split())
    missing, checked = [], 0
    for csv in sorted((built_book / "supplement" / "tables").glob("*.csv")):
        for ident in row_identifiers(csv):
            checked += 1
            ident = ident.replace("\u2212", "-")
            parts = ident.split()
            if not (ident in flat or (len(parts) > 1 and all(p in words for p in parts))):
                missing.append(f"{csv.stem}: {ident}")
    assert checked > 100, checked
    assert not missing, missing


def artefact_dir() -> Path:
    """Where page images of the test run are kept: $CALCINOSIS_TEST_ARTEFACTS, else
    _build/test-artefacts/ in the repository."""
    import os

    from calcinosis import paths

    root = os.environ.get("CALCINOSIS_TEST_ARTEFACTS")
    return Path(root) if root else paths.ROOT / "_build" / "test-artefacts"


def page_of(pages: list[str], pattern: str) -> int:
    """The 1-based number of the first page whose text matches `pattern`."""
    for number, text in enumerate(pages, start=1):
        if re.search(pattern, text):
            return number
    raise AssertionError(f"no page matches {pattern!r}")


def test_pages_are_kept_as_images(built_book: Path, pdf_text: str) -> None:
    """The title page, a page where a long table continues, and the main GEE table, rendered
    as PNG images for a reader of the test run to look at."""
    if not shutil.which("pdftoppm"):
        pytest.skip("no pdftoppm (poppler-utils)")
    pdf = next((built_book / "pdf").glob("*.pdf"))
    pages = pdf_text.split("\f")
    wanted = {
        "title": 1,
        "long-table-continued": page_of(pages, r"continued from previous page"),
        "gee-main-table": page_of(pages, r"Table 4\.1: Parameter estimates"),
    }
    assert wanted["long-table-continued"] > 1
    dest = artefact_dir() / "pdf-pages"
    dest.mkdir(parents=True, exist_ok=True)
    for name, number in wanted.items():
        subprocess.run(
            [
                "pdftoppm",
                "-f",
                str(number),
                "-l",
                str(number),
                "-r",
                "80",
                "-png",
                "-singlefile",
                str(pdf),
                str(dest / name),
            ],
            check=True,
        )
        image = dest / f"{name}.png"
        assert image.stat().st_size > 10_000, image
        print(f"PDF page {number} ({name}): {image}")


def test_the_supplement_numbers_tables_and_figures_as_the_pdf(
    built_book: Path, pdf_text: str
) -> None:
    """The supplement's index (numbered from the sources) names each table and figure by the
    number and caption the PDF prints."""
    from calcinosis import paths
    from calcinosis.book.numbers import numbered_items

    values = json.loads((built_book / "results.json").read_text("utf-8"))
    patients = sorted(k.split("_")[1] for k in values if re.fullmatch(r"patient_\w+_patient_id", k))
    chapters = {p.stem: p for p in paths.CHAPTERS_DIR.glob("*.md")}
    items = numbered_items(chapters, paths.BOOK_DIR / "_toc.yml", patients, values)
    assert len(items) > 30
    flat = re.sub(r"\s+", " ", pdf_text)
    wrong = [
        i.label
        for i in items
        if f"{i.label}: {' '.join(i.caption.split()[:2])}" not in flat.replace("’", "'")
    ]
    assert not wrong, wrong


def test_the_pdf_holds_no_path_of_the_build_machine(built_book: Path, pdf_text: str) -> None:
    from calcinosis import paths

    unwrapped = pdf_text.replace("\n", "")  # a long path can break across lines
    for own in (str(paths.ROOT), str(built_book.parent)):
        assert own not in unwrapped, own


def test_title_page_cites_the_article_and_says_what_the_data_are(pdf_text: str) -> None:
    from calcinosis import paths
    from calcinosis.data import provenance

    title_page = " ".join(pdf_text.split("\f")[0].split())
    assert "Pediatric Rheumatology" in title_page and "10.1186/s12969-023-00941-5" in title_page
    assert provenance.of(paths.DATA_DIR).sentence() in title_page.replace("’", "'")


# --------------------------------------------------------------------------------------------
# Page layout: landscape only for a table that needs it, no heading alone at a page's foot
# --------------------------------------------------------------------------------------------

PORTRAIT_LINE_PT = 450  # the A4 page's text width at 11 pt (Sphinx's geometry)
SMALLEST_TABLE_PT = 8  # \scriptsize, the smallest font a table is set in
COLUMN_PADDING_PT = 7  # 2 \tabcolsep at its tightest (3 pt), 1 pt to spare


def _latex_text(cell: str) -> str:
    """A cell's text: escaped characters as themselves, Sphinx's hyphen as "-", other
    commands as spaces, braces dropped."""
    text = re.sub(r"\\([%&_#$])", r"\1", cell).replace(r"\sphinxhyphen{}", "-")
    return re.sub(r"[{}]", "", re.sub(r"\\[A-Za-z@]+\*?", " ", text))


def _latex_rows(block: str) -> list[list[str]]:
    """The cells' text of a longtable's first header and body (LaTeX commands removed)."""
    head, _, rest = block.partition(r"\endfirsthead")
    body = rest.partition(r"\endlastfoot")[2].partition(r"\end{longtable}")[0]
    head = head.split(r"\sphinxtoprule", 1)[-1]
    rows = []
    for part in (head, body):
        for row in re.split(r"\\\\(?:\*|\[[^]]*\])?", part):
            cells = re.split(r"(?<!\\)&", row)
            clean = [" ".join(_latex_text(cell).split()) for cell in cells]
            if any(clean):
                rows.append(clean)
    return rows


def test_landscape_only_for_a_table_wider_than_the_portrait_line(built_book: Path, latex) -> None:
    """Each table set on a landscape page cannot fit the portrait text width even at the
    smallest table font with every column as narrow as its widest word (issue 22: tables
    that fitted went landscape, and a landscape page carried a table's last two rows); and
    every landscape page of the PDF carries a table."""
    import sys

    from calcinosis import paths

    sys.path.insert(0, str(paths.BOOK_DIR / "_ext"))
    from calcinosis_latex import BODY_FONT, HEADER_FONT, _em

    _, tex = latex
    blocks = re.findall(r"\\begin\{landscape\}(.*?)\\end\{landscape\}", "\n".join(tex), re.S)
    narrow = []
    for block in blocks:
        rows = _latex_rows(block)
        columns = max(len(r) for r in rows)
        widest = [0.0] * columns
        for i, row in enumerate(rows):  # the header in the sans, the body in the serif
            for j, cell in enumerate(row):
                words = [_em(w, HEADER_FONT if i == 0 else BODY_FONT) for w in cell.split()]
                words = words or [0.0]
                widest[j] = max(widest[j], *words)
        need = sum(widest) * SMALLEST_TABLE_PT + COLUMN_PADDING_PT * columns
        if need <= PORTRAIT_LINE_PT:
            narrow.append(f"{rows[0][:3]}: {need:.0f} pt")
    assert not narrow, narrow
    if shutil.which("pdfinfo"):
        pdf = next((built_book / "pdf").glob("*.pdf"))
        command = ["pdfinfo", "-f", "1", "-l", "9999", str(pdf)]
        info = subprocess.run(command, check=True, capture_output=True, text=True).stdout
        rotated = [int(n) for n, r in re.findall(r"Page\s+(\d+) rot:\s+(\d+)", info) if r != "0"]
        pages = _pages_text(pdf)
        bare = [n for n in rotated if not re.search(r"Table \d+\.\d+", pages[n - 1])]
        assert not bare, f"landscape pages without a table: {bare}"
        assert len(rotated) <= 2 * len(blocks) + 2, rotated


def _pages_text(pdf: Path) -> list[str]:
    text = subprocess.run(
        ["pdftotext", "-layout", str(pdf), "-"], check=True, capture_output=True, text=True
    ).stdout
    return text.split("\f")


WORD = re.compile(
    r'<word xMin="([\d.]+)" yMin="([\d.]+)" xMax="[\d.]+" yMax="([\d.]+)">([^<]*)</word>'
)
HEADING = re.compile(r"\d+(?:\.\d+)+\.?\s+\S")
RUNNING_MARGIN_PT = 60  # the running head and foot lie within this of the page's edges
BODY_TEXT_PT = 11.5  # a line set larger than the body's 11 pt (10.9 pt high) is a heading


def test_no_numbered_heading_alone_at_a_page_foot(built_book: Path) -> None:
    """The last line of text of every page (above the running foot) is not a numbered section
    heading (issue 22: section 10.4 stood alone at a page's foot)."""
    import html

    if not shutil.which("pdftotext"):
        pytest.skip("no pdftotext (poppler-utils)")
    pdf = next((built_book / "pdf").glob("*.pdf"))
    out = subprocess.run(
        ["pdftotext", "-bbox", str(pdf), "-"], check=True, capture_output=True, text=True
    ).stdout
    headings, alone = 0, []
    for number, page in enumerate(out.split("<page ")[1:], start=1):
        height = float(re.search(r'height="([\d.]+)"', page).group(1))
        lines: dict[int, list[tuple[float, str, float]]] = {}
        for x, top, bottom, word in WORD.findall(page):
            if RUNNING_MARGIN_PT < float(top) < height - RUNNING_MARGIN_PT:
                size = float(bottom) - float(top)
                line = lines.setdefault(round(float(top)), [])
                line.append((float(x), html.unescape(word), size))
        body = [
            (" ".join(w for _, w, _ in sorted(lines[y])), max(s for *_, s in lines[y]))
            for y in sorted(lines)
        ]
        for i, (text, size) in enumerate(body):
            if size > BODY_TEXT_PT and HEADING.match(text):
                headings += 1
                if i == len(body) - 1:
                    alone.append(f"page {number}: {text}")
    assert headings > 30, headings  # the check sees the book's headings
    assert not alone, alone
