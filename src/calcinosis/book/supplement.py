"""The supplement a journal asks for, made from the results folder: every table of the book
(CSV, and XLSX with a second sheet giving its caption, its number in the book and the units of
its columns), every figure (SVG, PNG), `results.json` and the parameters, the dataset's own
files (those the data package declares, never a symlink), a README whose index maps each file
to its table or figure in the book, and one zip of it all that is byte-identical across
builds."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

from calcinosis import __version__, paths
from calcinosis.book.numbers import Item, numbered_items
from calcinosis.book.results_folder import normalise_xlsx, write_zip

ABOUT_SHEET = "About"
ZIP_NAME = "supplement.zip"  # inside the folder `calcinosis supplement` writes
_UNIT = re.compile(r"\(([^()]*)\)\s*$")


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
    from calcinosis.data import dataset_files

    sections = json.loads((results_dir / "sections.json").read_text(encoding="utf-8"))
    values = json.loads((results_dir / "results.json").read_text(encoding="utf-8"))
    patients = [e["scope"] for e in sections.values() if e.get("scope")]
    if chapters is None:
        chapters = {p.stem: p for p in paths.CHAPTERS_DIR.glob("*.md")}
    items = {i.name: i for i in numbered_items(chapters, toc_path, patients, values)}
    (dest / "tables").mkdir(parents=True)
    (dest / "figures").mkdir()
    (dest / "data").mkdir()
    for name in ("results.json", "parameters.json"):
        shutil.copyfile(results_dir / name, dest / name)
    for entry in sections.values():
        for name in entry["tables"]:
            for suffix in (".csv", ".xlsx"):
                shutil.copyfile(
                    results_dir / "tables" / f"{name}{suffix}", dest / "tables" / f"{name}{suffix}"
                )
            add_about_sheet(dest / "tables" / f"{name}.xlsx", items.get(name))
        for name in entry["figures"]:
            for suffix in (".svg", ".pdf", ".png"):
                shutil.copyfile(
                    results_dir / "figures" / f"{name}{suffix}",
                    dest / "figures" / f"{name}{suffix}",
                )
    data = []
    for path in dataset_files(data_dir).values():
        if path.is_symlink():
            continue  # only the dataset's own files are published
        shutil.copyfile(path, dest / "data" / path.name)
        data.append(path.name)
    shipped = [paths.ENSEMBLE_DIR / n for n in ("ensemble.csv", "manifest.json")]
    if all(p.is_file() for p in shipped):
        (dest / "ensemble").mkdir()
        for path in shipped:
            shutil.copyfile(path, dest / "ensemble" / path.name)
    (dest / "README.md").write_text(_readme(sections, items, data), encoding="utf-8")
    write_zip(dest, dest.with_suffix(".zip"))


def add_about_sheet(xlsx: Path, item: Item | None) -> None:
    """A second sheet: the table's number and caption in the book, and each column's unit."""
    from openpyxl import load_workbook
    from openpyxl.styles import Font

    book = load_workbook(xlsx)
    data = book.worksheets[0]
    about = book.create_sheet(ABOUT_SHEET)
    about.append(["Table", item.label if item else "not numbered in the book"])
    about.append(["Caption", item.caption if item else xlsx.stem])
    about.append(["Sheet", f"'{data.title}': full precision; shown with the book's decimals"])
    about.append([])
    about.append(["Column", "Unit"])
    for (cell,) in data.iter_cols(min_row=1, max_row=1):
        header = str(cell.value)
        unit = _UNIT.search(header)
        about.append([header, unit.group(1) if unit else "–"])
    for row in (1, 2, 3, 5):
        about.cell(row=row, column=1).font = Font(bold=True)
    about.column_dimensions["A"].width = 30
    about.column_dimensions["B"].width = 100
    book.save(xlsx)
    normalise_xlsx(xlsx)


def _readme(sections: dict, items: dict[str, Item], data: list[str]) -> str:
    lines = [
        "# Supplementary material",
        "",
        f"Made by `calcinosis` {__version__} from the validated dataset. Every number of the "
        "book is in `results.json` under its stable name, with the analysis parameters in "
        "`parameters.json`; every table and figure of the book is here, per-patient ones "
        "included (their names end in the patient's id). Each table is a CSV file at full "
        "precision and an XLSX workbook whose second sheet gives its caption and the units "
        "of its columns.",
        "",
        "## Index",
        "",
        "| file | in the book | caption |",
        "| --- | --- | --- |",
    ]
    files = [
        (f"tables/{name}.csv, .xlsx", name)
        for entry in sections.values()
        for name in entry["tables"]
    ] + [
        (f"figures/{name}.svg, .pdf, .png", name)
        for entry in sections.values()
        for name in entry["figures"]
    ]
    order = list(items)
    files.sort(key=lambda f: (order.index(f[1]) if f[1] in items else len(order), f[1]))
    for path, name in files:
        item = items.get(name)
        where = item.label if item else "not numbered in the book"
        caption = item.caption.replace("|", "\\|") if item else "–"
        lines.append(f"| `{path}` | {where} | {caption} |")
    lines += ["", "## Data (`data/`, as validated)", ""]
    lines += [f"- {name}" for name in data] or ["- (none)"]
    lines += [
        "",
        "## The ensemble of reconstructions (`ensemble/`, when the book ships one)",
        "",
        "`ensemble.csv`: one row per member and number (chapter 'What the summaries pin "
        "down'); `manifest.json`: code hash, assumptions, seeds, versions, timings.",
    ]
    lines.append("")
    return "\n".join(lines)


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

    from calcinosis import limits
    from calcinosis.book import cache
    from calcinosis.book.output import check_out, exclusive, mark, swap
    from calcinosis.book.plan import load_valid
    from calcinosis.book.process import stop_if_asked
    from calcinosis.book.results_folder import write as write_results
    from calcinosis.book.results_stage import run_stage
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
