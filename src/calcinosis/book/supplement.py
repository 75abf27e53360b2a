"""The supplement a journal asks for, made from the results folder, in the "Additional file"
convention: one workbook of every table of the book (a sheet per table, named by its number in
the book, with a units row under the column names, and an About sheet indexing them), the same
tables as CSV at full precision, every figure (SVG, PNG), `results.json` and the
parameters, the dataset's own files as read (those the data package declares, never a symlink)
beside a copy safe to open in a spreadsheet, and a README that says what the data are, maps
each file to the book and names the code that made it. Results that do not describe these
data are left out or marked stale, with a line in the README. One zip of it all is
byte-identical across builds."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from calcinosis import __version__, markup, paths
from calcinosis.book.numbers import Item, numbered_items
from calcinosis.book.results_folder import normalise_xlsx, write_zip

WORKBOOK = "tables.xlsx"
ABOUT_SHEET = "About"
ZIP_NAME = "supplement.zip"  # inside the folder `calcinosis supplement` writes
SAFE_DATA = "data-for-spreadsheets"  # the data's CSV files with formula-like text neutralised
MAX_WIDTH = 60  # characters: a wider column wraps its text
# A header's trailing "(unit)" is a unit only when it is one of these (not "(GRIM)", "(B)").
_UNITS = ("mm", "cm²", "mg", "%", "% per visit", "years", "months")
_UNIT = re.compile(r"\s\(([^()]*)\)\s*$")
# Units of numeric columns whose header names none.
UNITS = {
    "p": "probability",
    "n": "count",
    "df": "count",
    "Bytes": "bytes",
    "B": "natural log: ln(mm) for the intercept, ln(ratio) per unit of another term",
    "Exp(B)": "mm for the intercept, ratio per unit of another term",
    "Wald χ²": "none (test statistic)",
    "Signed-rank W": "none (test statistic)",
    "Rank-biserial r": "none (effect size, −1 to 1)",
    "QIC": "none (information criterion)",
    "Patients per arm": "patients",
}
_COUNT = re.compile(
    r"^(Visits|Lesions.*|Patients|Injections|Members|Kept|Observations|Data rows|Total|"
    r"mild|moderate|severe|Related to treatment)$"
)
_VISIT = re.compile(r"(^| )visit$|^Visit$", re.I)
# Columns in the unit of the estimate before them (an interval's ends, a standard error).
_LIKE_ESTIMATE = re.compile(r"(CI (low|high)|^SE)$")
# Sections made from a shipped run rather than from the data: the ensemble and the power run.
ENSEMBLE_SECTION, POWER_SECTION = "pinned", "power"


def make(
    results_dir: Path,
    data_dir: Path,
    dest: Path,
    chapters: dict[str, Path] | None = None,
    toc_path: Path = paths.BOOK_DIR / "_toc.yml",
) -> None:
    """Write `dest/` (the supplement's folder) and `dest.zip` beside it; `chapters` (each
    page's Jupytext file by name, default those of chapters/) and `toc_path` number the
    tables and figures as the book does."""
    from calcinosis.data.trial import dataset_files

    sections = json.loads((results_dir / "sections.json").read_text(encoding="utf-8"))
    values = json.loads((results_dir / "results.json").read_text(encoding="utf-8"))
    patients = [e["scope"] for e in sections.values() if e.get("scope")]
    if chapters is None:
        chapters = {p.stem: p for p in paths.CHAPTERS_DIR.glob("*.md")}
    items = {i.name: i for i in numbered_items(chapters, toc_path, patients, values)}
    about = data_notes(data_dir, values)
    (dest / "tables").mkdir(parents=True)
    (dest / "figures").mkdir()
    (dest / "data").mkdir()
    (dest / SAFE_DATA).mkdir()
    for name in ("results.json", "parameters.json"):
        shutil.copyfile(results_dir / name, dest / name)
    tables, figures = [], []
    for section, entry in sections.items():
        for name in entry["tables"]:
            shutil.copyfile(results_dir / "tables" / f"{name}.csv", dest / "tables" / f"{name}.csv")
            tables.append((name, section))
        for name in entry["figures"]:
            for suffix in (".svg", ".png"):  # the same with or without the book's PDF
                shutil.copyfile(
                    results_dir / "figures" / f"{name}{suffix}",
                    dest / "figures" / f"{name}{suffix}",
                )
            figures.append((name, section))
    order = list(items)
    tables.sort(key=lambda t: (order.index(t[0]) if t[0] in items else len(order), t[0]))
    figures.sort(key=lambda f: (order.index(f[0]) if f[0] in items else len(order), f[0]))
    write_workbook(results_dir / "tables", tables, items, about, dest / WORKBOOK)
    data = []
    for path in dataset_files(data_dir).values():
        if path.is_symlink():
            continue  # only the dataset's own files are published
        shutil.copyfile(path, dest / "data" / path.name)
        if path.suffix == ".csv":
            (dest / SAFE_DATA / path.name).write_text(spreadsheet_safe(path), encoding="utf-8")
        data.append(path.name)
    shipped = [paths.ENSEMBLE_DIR / n for n in ("ensemble.csv", "manifest.json")]
    if about.ensemble_describes_data and all(p.is_file() for p in shipped):
        (dest / "ensemble").mkdir()
        for path in shipped:
            shutil.copyfile(path, dest / "ensemble" / path.name)
    readme = _readme(tables, figures, items, data, about, (dest / "ensemble").is_dir())
    (dest / "README.md").write_text(readme, encoding="utf-8")
    write_zip(dest, dest.with_suffix(".zip"))


@dataclass(frozen=True)
class DataNotes:
    """What the supplement says about the data and about the shipped results beside them."""

    statement: str  # what the data are, in one sentence
    ensemble_describes_data: bool
    stale: dict[str, str]  # section -> why its result does not describe these data


def data_notes(data_dir: Path, values: dict) -> DataNotes:
    """The data's provenance in a sentence, and which shipped results are stale for them."""
    from calcinosis.data import provenance

    declared = provenance.of(data_dir)
    # the ensemble reconstructs the article's trial: it says nothing of data derived from
    # the reconstruction and then changed, nor of a synthetic example
    describes = declared.kind not in (provenance.MODIFIED, provenance.SYNTHETIC)
    stale = {
        ENSEMBLE_SECTION: str(values.get("ens_warning") or "")
        or (
            ""
            if describes
            else "the shipped ensemble reconstructs the article's trial, and these data are "
            "neither that trial's data nor its reconstruction"
        ),
        POWER_SECTION: str(values.get("power_stale_warning") or ""),
    }
    return DataNotes(declared.sentence(), describes, {k: v for k, v in stale.items() if v})


def spreadsheet_safe(path: Path) -> str:
    """A CSV file with every text cell that a spreadsheet would run as a formula given a
    leading apostrophe (`calcinosis.markup.cell`); numbers, however signed, as they are."""
    with path.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.reader(handle))
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerows([[c if _is_number(c) else markup.cell(c) for c in row] for row in rows])
    return out.getvalue()


def _is_number(text: str) -> bool:
    return bool(markup.NUMBER.fullmatch(text.strip()))


# A number printed as text by a table that mixes kinds in one column ("12", "more than 24"):
# stored as a number, unless the column holds identifiers.
_PRINTED_NUMBER = re.compile(r"[−-]?(0|[1-9]\d*)(\.\d+)?")
_IDENTIFIERS = ("Patient", "Lesion")


def stored(value: object, header: str) -> object:
    """A cell's value as the workbook stores it: a number printed as text becomes a number."""
    if isinstance(value, str) and header not in _IDENTIFIERS:
        if _PRINTED_NUMBER.fullmatch(value.strip()):
            number = float(value.strip().replace("−", "-"))
            return int(number) if number.is_integer() and "." not in value else number
    return value


def unit_of(header: str, numeric: bool, before: str = "") -> str:
    """A column's unit: its header's "(unit)", a known unit for its name, the unit of the
    estimate `before` it for an interval's end or a standard error; "" for text."""
    found = _UNIT.search(header)
    if found and found.group(1) in _UNITS:
        return found.group(1)
    if not numeric:
        return ""
    if _LIKE_ESTIMATE.search(header) and before:
        return before
    if header in UNITS:
        return UNITS[header]
    if _COUNT.match(header):
        return "count"
    if _VISIT.search(header):
        return "visit number"
    if header.startswith(("Power", "MC SE")):
        return "probability"
    if header.startswith("Patients per arm"):
        return "patients"
    return "as the row's number"


def write_workbook(
    tables_dir: Path,
    tables: list[tuple[str, str]],
    items: dict[str, Item],
    about: DataNotes,
    path: Path,
) -> None:
    """One workbook: an About sheet indexing the tables, then a sheet per table (values and
    number formats from the results folder's per-table workbook) with a units row."""
    from openpyxl import Workbook, load_workbook
    from openpyxl.styles import Alignment, Font

    book = Workbook()
    index = book.active
    index.title = ABOUT_SHEET
    index.append(["Supplementary tables"])
    index.append([about.statement])
    index.append(["Each sheet is a table of the book; its second row gives the units."])
    index.append([])
    index.append(["Sheet", "In the book", "Caption", "CSV file", "Note"])
    for row in (1, 5):
        for cell in index[row]:
            cell.font = Font(bold=True)
    for name, section in tables:
        item = items.get(name)
        title = item.label if item else name[:31]
        source = load_workbook(tables_dir / f"{name}.xlsx").worksheets[0]
        sheet = book.create_sheet(title)
        _copy_table(source, sheet)
        index.append(
            [
                title,
                item.label if item else "not numbered in the book",
                item.caption if item else "",
                f"tables/{name}.csv",
                f"Stale: {about.stale[section]}" if section in about.stale else "",
            ]
        )
    _size_columns(index, skip_rows=4)
    for row in index.iter_rows(min_row=6):
        for cell in row:
            cell.alignment = Alignment(wrap_text=True, vertical="top")
    book.save(path)
    normalise_xlsx(path)


def _copy_table(source, sheet) -> None:
    """The table's cells and number formats, a units row under its column names."""
    from openpyxl.styles import Font

    rows = [r for r in source.iter_rows() if any(c.value is not None for c in r)]
    headers = [str(c.value) for c in rows[0]] if rows else []
    body = [[stored(c.value, h) for c, h in zip(r, headers, strict=True)] for r in rows[1:]]
    units, last = [], ""
    for j, header in enumerate(headers):
        numeric = any(_is_numeric(r[j]) for r in body)
        unit = unit_of(header, numeric, last)
        units.append(unit)
        if unit and not _LIKE_ESTIMATE.search(header):
            last = unit
    sheet.append(headers)
    sheet.append(["unit: " + u if u else "" for u in units])
    for values, row in zip(body, rows[1:], strict=True):
        sheet.append(values)
        for target, cell in zip(sheet[sheet.max_row], row, strict=True):
            target.number_format = cell.number_format
    for cell in sheet[1]:
        cell.font = Font(bold=True)
    for cell in sheet[2]:
        cell.font = Font(italic=True)
    sheet.freeze_panes = "A3"
    _size_columns(sheet)


def _is_numeric(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _size_columns(sheet, skip_rows: int = 0) -> None:
    """Each column as wide as its longest text (up to `MAX_WIDTH`, then wrapped)."""
    from openpyxl.styles import Alignment
    from openpyxl.utils import get_column_letter

    widths: dict[int, int] = {}
    for row in sheet.iter_rows(min_row=skip_rows + 1):
        for cell in row:
            text = _shown(cell)
            widths[cell.column] = max(widths.get(cell.column, 8), len(text) + 2)
            if len(text) > MAX_WIDTH:
                cell.alignment = Alignment(wrap_text=True, vertical="top")
    for column, width in widths.items():
        sheet.column_dimensions[get_column_letter(column)].width = min(width, MAX_WIDTH)


def _shown(cell) -> str:
    """About as many characters as the cell shows."""
    value = cell.value
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4f}" if abs(value) < 1e6 else f"{value:.3e}"
    return str(value)


def _readme(
    tables: list[tuple[str, str]],
    figures: list[tuple[str, str]],
    items: dict[str, Item],
    data: list[str],
    about: DataNotes,
    ensemble: bool,
) -> str:
    lines = [
        "# Supplementary material",
        "",
        about.statement,
        "",
        f"Made by `calcinosis` {__version__} from the validated dataset. Every number of the "
        "book is in `results.json` under its stable name, with the analysis parameters in "
        "`parameters.json`; every table and figure of the book is here, per-patient ones "
        "included (their names end in the patient's id).",
        "",
        "## Additional files",
        "",
        f"- **Additional file 1** (`{WORKBOOK}`): every table of the book, one sheet each, "
        "named by its number in the book, with the units of its columns in its second row; "
        "the sheet 'About' lists them with their captions. The same tables are in `tables/` "
        "as CSV files at full precision.",
        "- **Additional file 2** (`figures/`): every figure of the book as SVG and PNG.",
        "- **Additional file 3** (`data/`): the dataset's files exactly as the book read them "
        "(their hashes match `datapackage.json`); `calcinosis build --data data` computes the "
        f"book again from them. `{SAFE_DATA}/` holds the same CSV files for spreadsheets: a "
        "text cell that a spreadsheet would run as a formula (starting with `=`, `+`, `-` or "
        "`@`) begins there with an apostrophe; numbers are unchanged.",
    ]
    if ensemble:
        lines.append(
            "- `ensemble/`: the shipped ensemble of reconstructions (chapter 'What the "
            "summaries pin down'): `ensemble.csv`, one row per member and number; "
            "`manifest.json`, code hash, assumptions, seeds, versions, timings."
        )
    stale = [f"- {_SECTION_NAMES[s]}: {why}" for s, why in sorted(about.stale.items())]
    if stale:
        lines += ["", "## Results that do not describe these data", "", *stale]
        if not ensemble:
            lines.append("- The shipped ensemble (`ensemble/`) is therefore left out.")
    lines += [
        "",
        "## Index",
        "",
        "Each file, its number in the book, the code that made it, and its caption.",
        "",
    ]
    files = [(f"tables/{n}.csv", n) for n, _ in tables]
    files += [(f"figures/{n}.svg, .png", n) for n, _ in figures]
    for path, name in files:
        item = items.get(name)
        where = item.label if item else "not numbered in the book"
        made_by = f", made by `{item.source}`" if item and item.source else ""
        lines.append(f"- `{path}`: {where}{made_by}.")
        if item:  # the book's own caption, in words (README.md is the book's text too)
            lines.append(f"  {item.caption}")
    lines += ["", "## Data (`data/`, as validated)", ""]
    lines += [f"- {markup.code(name)}" for name in data] or ["- (none)"]
    lines.append("")
    return "\n".join(lines)


_SECTION_NAMES = {
    ENSEMBLE_SECTION: "The ensemble (chapter 'What the summaries pin down')",
    POWER_SECTION: "The power simulation (chapter 'Planning a definitive trial')",
}


def make_alone(
    data_dir: Path,
    out_dir: Path,
    params: dict[str, str] | None = None,
    cache_dir: Path | None = None,
    echo=print,
) -> Path:
    """The supplement without the book: validate the data, run the results stage (its cache
    shared with `calcinosis build`), and write `out_dir/` with its zip inside
    (`out_dir/supplement.zip`: a zip beside it could overwrite a file of the same name).
    Replaces only a folder an earlier run made (`calcinosis.book.output.check_out`), whole
    and at once; nothing is written beside `out_dir` but a temporary folder."""
    import tempfile

    from calcinosis.book import cache
    from calcinosis.book.output import check_out, exclusive, mark, swap
    from calcinosis.book.plan import load_valid
    from calcinosis.book.process import stop_if_asked
    from calcinosis.book.results_folder import write as write_results
    from calcinosis.book.results_stage import run_stage
    from calcinosis.data import limits
    from calcinosis.errors import UsageError
    from calcinosis.params import Parameters

    data_dir = Path(data_dir).resolve()
    cache_dir = Path(cache_dir).resolve() if cache_dir else cache.default_dir(Path(out_dir))
    out_dir = check_out(
        out_dir, [data_dir, cache_dir, paths.PACKAGE_DIR, paths.CHAPTERS_DIR, paths.BOOK_DIR]
    )
    if out_dir == data_dir or data_dir in out_dir.parents:
        raise UsageError(f"--out {out_dir} is inside the data folder {data_dir}")
    try:
        chosen = Parameters.of(params or {})
    except ValueError as err:
        raise UsageError(str(err)) from None
    limits.check(load_valid(data_dir), large=False)  # above the size limits: one line
    with exclusive(out_dir):
        stage = run_stage(data_dir, chosen, cache.Store(cache_dir), echo)
        with tempfile.TemporaryDirectory(dir=out_dir.parent, prefix=f".{out_dir.name}.tmp-") as t:
            tmp = Path(t)
            write_results(stage.sections, chosen, tmp / "results")
            make(tmp / "results", data_dir, tmp / "supplement")
            os.rename(tmp / "supplement.zip", tmp / "supplement" / ZIP_NAME)
            mark(tmp / "supplement", "supplement")
            stop_if_asked()
            swap(tmp / "supplement", out_dir)
    echo(f"wrote {out_dir} (zipped in {out_dir / ZIP_NAME})")
    return out_dir
