"""The results stage's output folder: what every page shows and the supplement publishes.

    results.json        every value (number or sentence) under its stable name
    sections.json       per section: digest, and the names of its values, tables, figures
    parameters.json     the parameters the results were computed with
    tables/<name>.md    the table as the book prints it (MyST, every cell escaped)
    tables/<name>.csv   the table at full precision, and as .xlsx
    figures/<name>.png  the figure for the web page, .svg, and .pdf for the book's PDF (a
                        patient's figures only in a build that makes it)

Everything is written from the sections alone, in sorted order: same sections, same bytes.
"""

from __future__ import annotations

import io
import json
import math
import re
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING

from calcinosis import markup
from calcinosis.params import Parameters
from calcinosis.report.sections import Section

if TYPE_CHECKING:
    from calcinosis.formatting import Decimals

FLOAT_FORMAT = "%.10g"  # CSV numbers: enough digits for any result, same text every build
ZIP_DATE = (1980, 1, 1, 0, 0, 0)  # the earliest date a zip can hold: no build time leaks in


def dumps(value: object) -> str:
    """Strict JSON (no NaN or Infinity, which strict parsers refuse): a non-finite number
    that reaches here is a bug, so it raises rather than being written."""
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False, allow_nan=False) + "\n"


NULL_REASON = "_null_reason"  # beside a value written as null: "<name>_null_reason": why


def strict_values(values: dict) -> dict:
    """`values` for results.json: a number that is not finite (NaN, ±inf) becomes null, with
    `<name>_null_reason` beside it saying what the computation gave, so a reader learns the
    value is missing and why instead of a parser failing on the file."""
    out: dict = {}
    for name, value in values.items():
        clean, bad = _finite(value)
        out[name] = clean
        if bad:
            out[name + NULL_REASON] = (
                f"not a finite number: the computation gave {', '.join(sorted(set(bad)))}"
            )
    return out


def _finite(value: object) -> tuple[object, list[str]]:
    """`value` with non-finite floats (also inside lists and mappings) as None, and what they
    were."""
    if isinstance(value, float) and not math.isfinite(value):
        return None, [repr(float(value))]
    if isinstance(value, dict):
        pairs = {k: _finite(v) for k, v in value.items()}
        return {k: v for k, (v, _) in pairs.items()}, [b for _, bad in pairs.values() for b in bad]
    if isinstance(value, list | tuple):
        items = [_finite(v) for v in value]
        return [v for v, _ in items], [b for _, bad in items for b in bad]
    return value, []


def write(sections: list[Section], params: Parameters, dest: Path) -> None:
    """Write the results folder for `sections` into `dest` (created)."""
    from calcinosis.report.results import all_values, describe

    (dest / "tables").mkdir(parents=True, exist_ok=True)
    (dest / "figures").mkdir(parents=True, exist_ok=True)
    results = strict_values(all_values(sections))
    (dest / "results.json").write_text(dumps(results), encoding="utf-8")
    (dest / "sections.json").write_text(dumps(describe(sections)), encoding="utf-8")
    (dest / "parameters.json").write_text(dumps(params.as_dict()), encoding="utf-8")
    for section in sections:
        for name, table in section.tables.items():
            write_table(table.frame, section.item_name(name), dest / "tables", table.decimals)
            (dest / "tables" / f"{section.item_name(name)}.md").write_text(
                table.markdown(), encoding="utf-8"
            )
        for name, figure in section.figures.items():
            (dest / "figures" / f"{section.item_name(name)}.png").write_bytes(figure.png)
            (dest / "figures" / f"{section.item_name(name)}.svg").write_bytes(figure.svg)
            if figure.pdf:  # drawn only for a build of the book's PDF
                (dest / "figures" / f"{section.item_name(name)}.pdf").write_bytes(figure.pdf)


def write_table(frame, name: str, dest: Path, decimals: Decimals = 2) -> None:
    """`<name>.csv` (fixed float format, LF) and `<name>.xlsx`, formulas neutralised; the
    spreadsheet keeps full precision and shows the book's decimals (a number format)."""
    import pandas as pd

    safe = frame.copy()
    for column in safe.columns:
        if safe[column].dtype == object or pd.api.types.is_string_dtype(safe[column]):
            safe[column] = safe[column].map(markup.cell)
    safe.columns = [markup.cell(c) for c in safe.columns]
    index = not isinstance(safe.index, pd.RangeIndex)
    safe.to_csv(
        dest / f"{name}.csv",
        index=index,
        float_format=FLOAT_FORMAT,
        lineterminator="\n",
        encoding="utf-8",
    )
    with pd.ExcelWriter(dest / f"{name}.xlsx", engine="openpyxl") as writer:
        safe.to_excel(writer, index=index, sheet_name=name[:31], freeze_panes=(1, 0))
        _number_formats(writer.sheets[name[:31]], safe, decimals, int(index))
    normalise_xlsx(dest / f"{name}.xlsx")


def _number_formats(sheet, frame, decimals: Decimals, offset: int) -> None:
    """Each float column shown with the decimals the book prints (p-values: 4); each column
    as wide as its header."""
    import pandas as pd
    from openpyxl.utils import get_column_letter

    for j, column in enumerate(frame.columns, start=1 + offset):
        letter = get_column_letter(j)
        sheet.column_dimensions[letter].width = max(10, min(40, len(str(column)) + 2))
        if not pd.api.types.is_float_dtype(frame[column]):
            continue
        d = decimals if isinstance(decimals, int) else decimals.get(column, 2)
        for (cell,) in sheet.iter_rows(min_row=2, min_col=j, max_col=j):
            if column == "p":  # as the book prints it: 4 decimals, a tiny p in powers of 10
                small = isinstance(cell.value, float) and cell.value < 0.0001
                cell.number_format = "0.00E+00" if small else "0.0000"
            else:
                cell.number_format = "0." + "0" * d if d else "0"


class Folder:
    """A results folder opened for reading (by a page, the supplement or `compare`)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.values = json.loads((self.path / "results.json").read_text(encoding="utf-8"))
        self.sections = json.loads((self.path / "sections.json").read_text(encoding="utf-8"))
        self.params = json.loads((self.path / "parameters.json").read_text(encoding="utf-8"))

    def table_markdown(self, name: str) -> str:
        return (self.path / "tables" / f"{name}.md").read_text(encoding="utf-8")

    def figure_png(self, name: str) -> bytes:
        return (self.path / "figures" / f"{name}.png").read_bytes()

    def figure_pdf(self, name: str) -> bytes:
        """The figure's PDF, or b"" when the build drew none (HTML only)."""
        path = self.path / "figures" / f"{name}.pdf"
        return path.read_bytes() if path.is_file() else b""


def write_zip(src_dir: Path, zip_path: Path) -> None:
    """Zip `src_dir` with sorted entries, fixed dates and permissions: same files, same bytes."""
    files = sorted(p for p in src_dir.rglob("*") if p.is_file() and not p.is_symlink())
    with zipfile.ZipFile(zip_path, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in files:
            _write_entry(archive, path.relative_to(src_dir).as_posix(), path.read_bytes())


def _write_entry(archive: zipfile.ZipFile, name: str, data: bytes) -> None:
    info = zipfile.ZipInfo(name, date_time=ZIP_DATE)
    info.compress_type = zipfile.ZIP_DEFLATED
    info.external_attr = 0o644 << 16
    info.create_system = 3  # Unix, whatever system builds it
    archive.writestr(info, data)


_XLSX_TIMES = re.compile(rb"(<dcterms:(created|modified)[^>]*>)[^<]*(</dcterms:\2>)")


def normalise_xlsx(path: Path) -> None:
    """Rewrite an XLSX (a zip) with fixed entry dates and document times."""
    with zipfile.ZipFile(path) as source:
        entries = [(info.filename, source.read(info)) for info in source.infolist()]
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries:  # keep order: [Content_Types].xml must stay first
            if name == "docProps/core.xml":
                data = _XLSX_TIMES.sub(rb"\g<1>2000-01-01T00:00:00Z\g<3>", data)
            _write_entry(archive, name, data)
    path.write_bytes(buffer.getvalue())
