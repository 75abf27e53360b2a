"""The supplement a journal asks for, made from the results folder: every table of the book
(CSV, XLSX), every figure (SVG, PNG), `results.json` and the parameters, the dataset's own files
(those the data package declares, never a symlink), a README, and one zip of it all that is
byte-identical across builds."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from calcinosis import __version__, paths
from calcinosis.book.results_folder import write_zip


def make(results_dir: Path, data_dir: Path, dest: Path) -> None:
    """Write `dest/` (the supplement's folder) and `dest.zip` beside it."""
    from calcinosis.data import dataset_files

    sections = json.loads((results_dir / "sections.json").read_text(encoding="utf-8"))
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
        for name in entry["figures"]:
            for suffix in (".svg", ".png"):
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
    (dest / "README.md").write_text(_readme(sections, data), encoding="utf-8")
    write_zip(dest, dest.with_suffix(".zip"))


def _readme(sections: dict, data: list[str]) -> str:
    lines = [
        "# Supplementary material",
        "",
        f"Made by `calcinosis build` (calcinosis {__version__}) from the validated dataset. "
        "Every number of the book is in `results.json` under its stable name, with the "
        "analysis parameters in `parameters.json`; every table and figure of the book is "
        "here, named as in the book's captions (per-patient ones end in the patient's id).",
        "",
        "| section of the book | tables (`tables/`, CSV and XLSX) | "
        "figures (`figures/`, SVG and PNG) |",
        "| --- | --- | --- |",
    ]
    for name, entry in sections.items():
        if entry["tables"] or entry["figures"]:
            lines.append(
                f"| {name} | {', '.join(entry['tables']) or '–'} | "
                f"{', '.join(entry['figures']) or '–'} |"
            )
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
