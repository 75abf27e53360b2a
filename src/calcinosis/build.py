"""The book's build: validate the data, execute every chapter (cached, side by side), build the
Jupyter Book from the executed notebooks, and write results, manifest and supplement beside it.

Why not Jupyter Book's own execution: its cache keys on code cells only (a changed data file
leaves old numbers on the page), it cannot inject parameters (jupyter-book#424) and runs one
notebook at a time (jupyter-book#1735). So papermill executes each page (`calcinosis.execute`),
keyed by `calcinosis.cache`, and Sphinx only renders the executed notebooks
(`execute_notebooks: 'off'`).

Safety: everything is written into `<out>.tmp-<pid>` and swapped in only when complete, so
`<out>` keeps the last good book until a new one is whole. A failed build leaves `<out>`
untouched and keeps what helps to see why in `<out>.failed/`.
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from calcinosis import cache, manifest, paths
from calcinosis.errors import UsageError
from calcinosis.execute import Echo, PageRun, Sources, execute_pages
from calcinosis.output import (
    keep_failure,
    remove_stale_temps,
    swap,
    write_manifest,
    write_supplement,
)
from calcinosis.pages import load_valid, plan_pages, read_chapters
from calcinosis.staging import build_book, pdf_missing


@dataclass
class Report:
    """What a build did."""

    out_dir: Path
    up_to_date: bool = False
    runs: list[PageRun] = field(default_factory=list)
    seconds: float = 0.0
    warnings: list[str] = field(default_factory=list)

    @property
    def executed(self) -> list[str]:
        return [r.page for r in self.runs if not r.cached]

    @property
    def cached(self) -> list[str]:
        return [r.page for r in self.runs if r.cached]


def build(data_dir: Path = paths.DATA_DIR, out_dir: Path = paths.BUILD_DIR,
          params: dict | None = None, jobs: int | None = None, pdf: bool = False, *,
          chapters_dir: Path = paths.CHAPTERS_DIR, book_dir: Path = paths.BOOK_DIR,
          cache_dir: Path | None = None, compare_to: Path | None = None,
          sources: Sources = Sources(), echo: Echo = print) -> Report:
    """Build the book from `data_dir` into `out_dir`; see the module docstring.

    Raises InvalidData (nothing written), UsageError or BuildError (`out_dir` untouched).
    """
    started, t0 = manifest.now(), time.perf_counter()
    data_dir, out_dir = Path(data_dir).resolve(), Path(out_dir).resolve()
    chapters_dir, book_dir = Path(chapters_dir).resolve(), Path(book_dir).resolve()
    cache_dir = Path(cache_dir).resolve() if cache_dir else cache.default_dir(out_dir)
    compare_to = Path(compare_to).resolve() if compare_to else None
    jobs = max(1, jobs or os.cpu_count() or 1)
    _check_out(out_dir, [data_dir, chapters_dir, book_dir, cache_dir, paths.PACKAGE_DIR,
                         Path.cwd()])
    trial = load_valid(data_dir)
    patient_ids = [str(p) for p in trial.patients["patient_id"]]
    if pdf and (missing := pdf_missing(book_dir)):
        raise UsageError("--pdf needs " + "; ".join(missing) + " (or build with --no-pdf)")

    inputs = cache.Inputs.of(data_dir)
    chapters = read_chapters(chapters_dir)
    pages = plan_pages(chapters, patient_ids, data_dir, params or {}, inputs)
    static = {c.name: c.path for c in chapters if c.static}
    supplement_key = inputs.key("supplement", sources=asdict(sources))
    book_files = cache.hash_tree(_book_files(book_dir), book_dir)
    build_key = cache.sha256_json({
        "pages": [[p.name, p.key] for p in pages], "supplement": supplement_key,
        "static": {c.name: cache.sha256_bytes(c.source) for c in chapters if c.static},
        "book": book_files, "pdf": pdf, "compare_to": _compare_input(compare_to)})
    report = Report(out_dir)
    previous = manifest.read(out_dir / "manifest.json")
    if previous.get("build_key") == build_key and _complete(out_dir, pdf):
        report.up_to_date = True
        report.seconds = time.perf_counter() - t0
        echo(f"nothing changed: {out_dir} is up to date ({len(pages)} pages, all cached)")
        return report

    store = cache.Store(cache_dir)
    tmp = out_dir.with_name(f"{out_dir.name}.tmp-{os.getpid()}")
    failed = out_dir.with_name(f"{out_dir.name}.failed")
    remove_stale_temps(out_dir)
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / "notebooks").mkdir(parents=True)
    try:
        report.runs, supplement_run = execute_pages(pages, (supplement_key, sources),
                                                    data_dir, tmp, store, jobs,
                                                    _previous_times(previous), echo)
        notebooks = {p.name: tmp / "notebooks" / f"{p.name}.ipynb" for p in pages}
        results = write_supplement(store, supplement_key, tmp)
        comparison = None
        if compare_to is not None:
            from calcinosis import compare

            comparison = compare.compare(compare_to, tmp)
            comparison.new_dir = out_dir  # name the book, not its temporary folder
            (tmp / "compare.md").write_text(comparison.markdown(), encoding="utf-8")
        book_seconds = build_book(book_dir, {**static, **notebooks}, tmp, pdf, comparison,
                                  report.warnings, echo)
        write_manifest(tmp, started, t0, build_key, data_dir, inputs, pages, report.runs,
                       supplement_run, book_files, params or {}, jobs, pdf, compare_to,
                       book_seconds, len(results))
        swap(tmp, out_dir)
    except BaseException as err:
        keep_failure(tmp, failed, err)
        raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    shutil.rmtree(failed, ignore_errors=True)  # an old failure no longer describes <out>
    report.seconds = time.perf_counter() - t0
    n_exec, n_cached = len(report.executed), len(report.cached)
    echo(f"built {out_dir} in {report.seconds:.1f} s "
         f"({n_exec} pages executed, {n_cached} from cache)")
    return report


def _check_out(out_dir: Path, protected: list[Path]) -> None:
    """Refuse an --out whose swap would remove something that is not a build."""
    for path in [paths.ROOT, *protected]:
        if path == out_dir or out_dir in path.parents:
            raise UsageError(f"--out {out_dir} would replace {path}; choose a folder of its own")
    if out_dir.exists():
        if not out_dir.is_dir():
            raise UsageError(f"--out {out_dir} exists and is not a folder")
        if any(out_dir.iterdir()) and not (out_dir / "manifest.json").is_file():
            raise UsageError(f"--out {out_dir} holds files that are not a calcinosis build; "
                             "choose a new or empty folder")


def _book_files(book_dir: Path) -> list[Path]:
    if not book_dir.is_dir():
        return []
    return sorted(p for p in book_dir.rglob("*") if p.is_file()
                  and not any(part.startswith(("_build", ".")) for part in
                              p.relative_to(book_dir).parts))


def _compare_input(compare_to: Path | None) -> str | None:
    if compare_to is None:
        return None
    files = [compare_to / "results.json", compare_to / "supplement" / "data" / "published.yml"]
    return cache.sha256_json({f.name: cache.sha256_file(f) for f in files if f.is_file()})


def _complete(out_dir: Path, pdf: bool) -> bool:
    needed = [out_dir / "html" / "index.html", out_dir / "results.json",
              out_dir / "supplement.zip"]
    return all(p.is_file() for p in needed) and (not pdf or any((out_dir / "pdf").glob("*.pdf")))


def _previous_times(previous: dict) -> dict[str, float]:
    return {r["page"]: r.get("seconds", 0.0) for r in previous.get("pages", [])
            if not r.get("cached")}
