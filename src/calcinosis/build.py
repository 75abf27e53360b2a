"""The book's build: validate the data, execute every chapter (cached, side by side), build the
Jupyter Book from the executed notebooks, and write results, manifest and supplement beside it.

Why not Jupyter Book's own execution: its cache keys on code cells only (a changed data file
leaves old numbers on the page), it cannot inject parameters (jupyter-book#424) and runs one
notebook at a time (jupyter-book#1735). So papermill executes each page here, keyed by
`calcinosis.cache`, and Sphinx only renders the executed notebooks (`execute_notebooks: 'off'`).

Safety: everything is written into `<out>.tmp-<pid>` and swapped in only when complete, so
`<out>` keeps the last good book until a new one is whole. A failed build leaves `<out>`
untouched and keeps what helps to see why in `<out>.failed/`.
"""

from __future__ import annotations

import ast
import concurrent.futures as cf
import contextlib
import ctypes
import json
import os
import shutil
import subprocess
import sys
import time
import zipfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import yaml

from calcinosis import cache, manifest, paths

TEMPLATE = "patient"  # chapters/patient.md is run once per patient ...
PATIENTS_PAGE = "patients"  # ... and its pages become sections of this page in the toc
CHANGES_PAGE = "changes"  # the comparison with an earlier build, when asked for
KERNEL = "python3"
# Kernels plot with Agg, and use one BLAS thread: pages already run side by side, and the
# same thread count on every run keeps floating-point sums in the same order (same bytes).
WORKER_ENV = {"MPLBACKEND": "Agg", "PYDEVD_DISABLE_FILE_VALIDATION": "1",
              "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
Echo = Callable[[str], None]


class BuildError(Exception):
    """An expected failure with a message for a person; `exit_code` for the CLI."""

    exit_code = 1


class UsageError(BuildError):
    exit_code = 2


class InvalidData(BuildError):
    """The data failed validation; nothing was written."""

    exit_code = 2

    def __init__(self, data_dir: Path, problems: list) -> None:
        self.problems = list(problems)
        lines = [str(p) for p in self.problems]
        lines.append(f"{len(self.problems)} problem(s) found in {data_dir} "
                     "(file:line: column: message; line 1 is the header)")
        super().__init__("\n".join(lines))


# --------------------------------------------------------------------------------------------
# Chapters and pages
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Chapter:
    """A Jupytext chapter: its bytes (hashed and executed: the same ones) and parameter names."""

    name: str
    path: Path
    source: bytes
    parameters: tuple[str, ...]
    static: bool = False  # no code cells: copied into the book as it is, never executed

    @classmethod
    def read(cls, path: Path) -> Chapter:
        import jupytext

        source = path.read_bytes()
        nb = jupytext.reads(source.decode("utf-8"), fmt=path.suffix.lstrip("."))
        code = [c for c in nb.cells if c.cell_type == "code"]
        if not code:
            return cls(path.stem, path, source, (), static=True)
        cell = next((c for c in code
                     if "parameters" in c.get("metadata", {}).get("tags", [])), None)
        if cell is None:
            raise BuildError(f"chapter '{path.stem}' ({path}) has code but no code cell "
                             "tagged 'parameters'")
        return cls(path.stem, path, source, tuple(_assigned_names(cell.source)))


def _assigned_names(code: str) -> list[str]:
    """Names assigned at top level of a parameters cell, in order."""
    names = []
    for node in ast.parse(code).body:
        targets = node.targets if isinstance(node, ast.Assign) else (
            [node.target] if isinstance(node, ast.AnnAssign) else [])
        names += [t.id for t in targets if isinstance(t, ast.Name) and t.id not in names]
    return names


@dataclass(frozen=True)
class Page:
    """One executed notebook: a chapter with its parameters, and its cache key."""

    name: str
    chapter: Chapter
    parameters: dict
    key: str


def read_chapters(chapters_dir: Path) -> list[Chapter]:
    chapters = [Chapter.read(p) for p in sorted(Path(chapters_dir).glob("*.md"))]
    if not chapters:
        raise BuildError(f"no chapters (*.md) in {chapters_dir}")
    return chapters


def parse_parameters(pairs: list[str] | tuple[str, ...]) -> dict[str, object]:
    """`NAME=VALUE` pairs -> values typed as papermill's `-p NAME VALUE` types them."""
    from papermill.cli import _resolve_type

    params = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip().isidentifier():
            raise UsageError(f"parameter {pair!r} is not NAME=VALUE")
        params[name.strip()] = _resolve_type(value)
    return params


def plan_pages(chapters: list[Chapter], patient_ids: list[str], data_dir: Path,
               overrides: dict, inputs: cache.Inputs) -> list[Page]:
    """Every page to execute: each chapter once, the patient template once per patient.

    Each chapter gets `data_dir` (absolute) and only those overrides its parameters cell names.
    """
    if "data_dir" in overrides:
        raise UsageError("give the data folder with --data, not -p data_dir=...")
    known = {n for c in chapters for n in c.parameters}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise UsageError(f"no chapter has a parameter named {', '.join(unknown)} "
                         f"(parameters: {', '.join(sorted(known))})")
    pages = []
    for chapter in (c for c in chapters if not c.static):
        params = {"data_dir": str(data_dir)}
        params.update({k: v for k, v in overrides.items() if k in chapter.parameters})
        if chapter.name == TEMPLATE:
            pages += [_page(f"{TEMPLATE}-{pid}", chapter, {**params, "patient_id": pid}, inputs)
                      for pid in patient_ids]
        else:
            pages.append(_page(chapter.name, chapter, params, inputs))
    return pages


def _page(name: str, chapter: Chapter, params: dict, inputs: cache.Inputs) -> Page:
    return Page(name, chapter, params, cache.page_key(inputs, chapter.source, params))


# --------------------------------------------------------------------------------------------
# Work done in worker processes (module level, so it pickles)
# --------------------------------------------------------------------------------------------


def _init_worker(log: str | None = None) -> None:
    """Agg plots; kernels' own chatter (their stderr, inherited) to a log, not the terminal."""
    os.environ.update(WORKER_ENV)
    import logging

    logging.getLogger("papermill").setLevel(logging.WARNING)
    if log:
        fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.dup2(fd, 2)
        os.close(fd)


def execute_page(source: bytes, fmt: str, parameters: dict, output: str, cwd: str) -> dict:
    """Execute one chapter with papermill into `output`; report success or where it failed."""
    import jupytext
    import papermill
    from papermill.exceptions import PapermillExecutionError

    start = time.perf_counter()
    nb = jupytext.reads(source.decode("utf-8"), fmt=fmt)
    nb.metadata["kernelspec"] = {"name": KERNEL, "display_name": "Python 3",
                                 "language": "python"}
    Path(cwd).mkdir(parents=True, exist_ok=True)
    try:
        papermill.execute_notebook(nb, output, parameters=parameters, kernel_name=KERNEL,
                                   cwd=cwd, progress_bar=False, log_output=False)
    except PapermillExecutionError as err:
        first = next((line for line in (err.source or "").splitlines() if line.strip()), "")
        return {"ok": False, "seconds": time.perf_counter() - start, "cell": err.exec_count,
                "index": err.cell_index, "ename": err.ename, "evalue": err.evalue,
                "line": first}
    except Exception as err:  # the kernel died or would not start: still a message
        return {"ok": False, "seconds": time.perf_counter() - start, "cell": None,
                "index": None, "ename": type(err).__name__, "evalue": str(err), "line": ""}
    return {"ok": True, "seconds": time.perf_counter() - start}


@dataclass(frozen=True)
class Sources:
    """Where the supplement's tables, figures and results.json come from ("module:name")."""

    tables: str = "calcinosis.tables:TABLES"
    figures: str = "calcinosis.figures:FIGURES"
    results: str = "calcinosis.results:collect"


def make_supplement(data_dir: str, dest_zip: str, sources: Sources) -> dict:
    """Tables, figures, data package and (when the results module exists) results.json."""
    import tempfile

    from calcinosis import data, supplement

    start = time.perf_counter()
    trial = data.load_trial(data_dir)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        supplement.export(trial, Path(data_dir), root,
                          tables=supplement.resolve(sources.tables) or {},
                          figures=supplement.resolve(sources.figures) or {})
        collect = supplement.resolve(sources.results)
        if collect is not None:
            (root / "results.json").write_text(results_json(collect(trial)), encoding="utf-8")
        supplement.write_zip(root, Path(dest_zip))
    return {"ok": True, "seconds": time.perf_counter() - start}


def results_json(results: dict) -> str:
    return json.dumps(results, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


# --------------------------------------------------------------------------------------------
# The build
# --------------------------------------------------------------------------------------------


@dataclass
class PageRun:
    page: str
    chapter: str
    parameters: dict
    key: str
    cached: bool
    seconds: float

    def record(self) -> dict:
        return {"page": self.page, "chapter": self.chapter, "parameters": self.parameters,
                "key": self.key, "cached": self.cached, "seconds": round(self.seconds, 3)}


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
    _remove_stale_temps(out_dir)
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / "notebooks").mkdir(parents=True)
    try:
        report.runs, supplement_run = _execute(pages, (supplement_key, sources), data_dir,
                                               tmp, store, jobs, _previous_times(previous),
                                               echo)
        notebooks = {p.name: tmp / "notebooks" / f"{p.name}.ipynb" for p in pages}
        results = _write_supplement(store, supplement_key, tmp, notebooks)
        comparison = None
        if compare_to is not None:
            from calcinosis import compare

            comparison = compare.compare(compare_to, tmp)
            comparison.new_dir = out_dir  # name the book, not its temporary folder
            (tmp / "compare.md").write_text(comparison.markdown(), encoding="utf-8")
        book_seconds = _build_book(book_dir, {**static, **notebooks}, tmp, pdf, comparison,
                                   report.warnings, echo)
        _write_manifest(tmp, started, t0, build_key, data_dir, inputs, pages, report,
                        supplement_run, book_files, params or {}, jobs, pdf, compare_to,
                        book_seconds, len(results))
        _swap(tmp, out_dir)
    except BaseException as err:
        _keep_failure(tmp, failed, err)
        raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    shutil.rmtree(failed, ignore_errors=True)  # an old failure no longer describes <out>
    report.seconds = time.perf_counter() - t0
    n_exec, n_cached = len(report.executed), len(report.cached)
    echo(f"built {out_dir} in {report.seconds:.1f} s "
         f"({n_exec} pages executed, {n_cached} from cache)")
    return report


def load_valid(data_dir: Path):
    """The validated Trial, or InvalidData with the same problems `calcinosis validate` lists."""
    from calcinosis import data

    try:
        return data.load_trial(data_dir)
    except data.DataValidationError as err:
        raise InvalidData(data_dir, err.problems) from None
    except Exception as err:  # unreadable in a way the validator did not foresee
        raise InvalidData(data_dir, [f"error: could not read the dataset: {err}"]) from None


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


def _execute(pages: list[Page], supplement: tuple[str, Sources], data_dir: Path, tmp: Path,
             store: cache.Store, jobs: int, times: dict[str, float],
             echo: Echo) -> tuple[list[PageRun], dict]:
    """Copy cached pages, execute the others `jobs` at a time; stop at the first failure."""
    supplement_key, sources = supplement
    runs: dict[str, PageRun] = {}
    todo = []
    for page in pages:
        hit = store.get("notebooks", page.key, ".ipynb")
        if hit:
            shutil.copyfile(hit, tmp / "notebooks" / f"{page.name}.ipynb")
            seconds = store.meta("notebooks", page.key, ".ipynb").get("seconds", 0.0)
            runs[page.name] = PageRun(page.name, page.chapter.name, page.parameters, page.key,
                                      True, seconds)
        else:
            todo.append(page)
    supplement_hit = store.get("supplement", supplement_key, ".zip") is not None
    supplement_run = {"key": supplement_key, "cached": supplement_hit, "seconds": 0.0}
    # Longest first finishes soonest: by the last build's times, else by the chapter's size
    # (about a second per kilobyte of source here).
    todo.sort(key=lambda p: -times.get(p.name, len(p.chapter.source) / 1000))
    total = len(pages)
    echo(f"executing {len(todo)} of {total} pages ({total - len(todo)} cached), "
         f"{min(jobs, max(1, len(todo)))} at a time")
    for number, name in enumerate(runs, 1):
        echo(f"  [{number:>2}/{total}] {name:<28} cached")
    if not todo and supplement_hit:
        return [runs[p.name] for p in pages], supplement_run

    failure: BuildError | None = None
    work = tmp / "work"
    (tmp / "logs").mkdir(exist_ok=True)
    # Chapters run `jobs` at a time; the supplement (not a chapter) in a process of its own.
    with contextlib.ExitStack() as stack:
        def pool(workers: int) -> cf.ProcessPoolExecutor:
            return stack.enter_context(cf.ProcessPoolExecutor(
                max_workers=workers, initializer=_init_worker,
                initargs=(str(tmp / "logs" / "kernels.log"),)))

        futures: dict[cf.Future, Page | None] = {}
        if not supplement_hit:
            futures[pool(1).submit(make_supplement, str(data_dir),
                                   str(tmp / "supplement-parts.zip"), sources)] = None
        pages_pool = pool(jobs) if todo else None
        for page in todo:
            output = tmp / "notebooks" / f"{page.name}.ipynb"
            futures[pages_pool.submit(execute_page, page.chapter.source,
                                page.chapter.path.suffix.lstrip("."), page.parameters,
                                str(output), str(work / page.name))] = page
        for future in cf.as_completed(futures):
            if future.cancelled():
                continue
            page = futures[future]
            try:
                outcome = future.result()
            except Exception as err:  # a bug outside any notebook (e.g. in a figure function)
                outcome = {"ok": False, "error": f"{type(err).__name__}: {err}"}
            if not outcome["ok"] and failure is None:
                failure = (SupplementFailed(outcome["error"]) if page is None else
                           ChapterFailed(page, outcome, tmp / "notebooks" / f"{page.name}.ipynb"))
                for other in futures:
                    other.cancel()
            if not outcome["ok"] or failure is not None:
                continue
            if page is None:
                store.put("supplement", supplement_key, ".zip", tmp / "supplement-parts.zip",
                          {"seconds": outcome["seconds"], "created": manifest.now()})
                supplement_run["seconds"] = round(outcome["seconds"], 3)
                echo(f"  {'supplement (tables, figures, data)':<33} made     "
                     f"{outcome['seconds']:6.1f} s")
                continue
            output = tmp / "notebooks" / f"{page.name}.ipynb"
            store.put("notebooks", page.key, ".ipynb", output,
                      {"page": page.name, "chapter": page.chapter.name,
                       "parameters": page.parameters, "seconds": outcome["seconds"],
                       "created": manifest.now()})
            runs[page.name] = PageRun(page.name, page.chapter.name, page.parameters, page.key,
                                      False, outcome["seconds"])
            echo(f"  [{len(runs):>2}/{total}] {page.name:<28} executed {outcome['seconds']:6.1f} s")
    shutil.rmtree(work, ignore_errors=True)
    if failure is not None:
        raise failure
    return [runs[p.name] for p in pages], supplement_run


class ChapterFailed(BuildError):
    """A cell raised: names the chapter (and page), the cell and the error."""

    def __init__(self, page: Page, outcome: dict, notebook: Path) -> None:
        self.page, self.outcome, self.notebook = page, outcome, notebook
        where = f"chapter '{page.chapter.name}'"
        if page.name != page.chapter.name:
            where += f" (page {page.name})"
        cell = outcome.get("cell")
        at = f" in cell [{cell}]" if cell is not None else ""
        line = f" `{outcome['line'].strip()[:80]}`" if outcome.get("line") else ""
        evalue = str(outcome.get("evalue", "")).strip().splitlines()
        super().__init__(f"{where} failed{at}{line}: {outcome.get('ename')}: "
                         f"{evalue[0] if evalue else ''}".rstrip(": "))


class SupplementFailed(BuildError):
    def __init__(self, error: str) -> None:
        super().__init__(f"making the supplement (tables, figures, data) failed: {error}")


def _write_supplement(store: cache.Store, key: str, tmp: Path,
                      notebooks: dict[str, Path]) -> dict:
    """Unpack the supplement, write results.json beside the book and in it, zip it."""
    from calcinosis import supplement

    parts = store.get("supplement", key, ".zip")
    dest = tmp / "supplement"
    with zipfile.ZipFile(parts) as archive:
        archive.extractall(dest)
    (tmp / "supplement-parts.zip").unlink(missing_ok=True)
    if (dest / "results.json").is_file():
        text = (dest / "results.json").read_text(encoding="utf-8")
    else:  # no calcinosis.results yet: the numbers the pages glued
        text = results_json(harvest_glue(notebooks))
        (dest / "results.json").write_text(text, encoding="utf-8")
    (tmp / "results.json").write_text(text, encoding="utf-8")
    supplement.write_zip(dest, tmp / "supplement.zip")
    return json.loads(text)


def harvest_glue(notebooks: dict[str, Path]) -> dict:
    """Every number or string glued in the pages; a template page's names get `page::`."""
    import nbformat

    found: dict[str, object] = {}
    for page, path in notebooks.items():
        nb = nbformat.read(path, as_version=4)
        for cell in nb.cells:
            for output in cell.get("outputs", []):
                name = output.get("metadata", {}).get("scrapbook", {}).get("name")
                if not name:
                    continue
                data = output.get("data", {})
                text = next((v for k, v in data.items() if k.endswith("text/plain")), None)
                try:
                    value = ast.literal_eval(text) if text is not None else None
                except (ValueError, SyntaxError):
                    continue
                if isinstance(value, int | float | str) and not isinstance(value, bool):
                    found[f"{page}::{name}" if page.startswith(f"{TEMPLATE}-") else name] = value
    return found


# --------------------------------------------------------------------------------------------
# The Jupyter Book from the executed notebooks
# --------------------------------------------------------------------------------------------


def stage_book(book_dir: Path, sources: dict[str, Path], stage: Path,
               extra_pages: dict[str, str] | None = None,
               warnings: list[str] | None = None) -> list[str]:
    """A flat source folder: book/* + the pages the toc names (`sources`: page name -> executed
    notebook or static .md), the patient pages as sections of `patients`, and
    `execute_notebooks: 'off'`. Returns the staged page names."""
    warnings = warnings if warnings is not None else []
    if not (book_dir / "_toc.yml").is_file() or not (book_dir / "_config.yml").is_file():
        raise BuildError(f"{book_dir} needs _toc.yml and _config.yml to build a book")
    shutil.copytree(book_dir, stage, ignore=shutil.ignore_patterns(
        "_build", ".*", "*.ipynb", "__pycache__"))
    toc = yaml.safe_load((stage / "_toc.yml").read_text(encoding="utf-8"))
    patient_pages = [p for p in sources if p.startswith(f"{TEMPLATE}-")]
    if patient_pages and not _add_sections(toc, PATIENTS_PAGE, patient_pages):
        warnings.append(f"book/_toc.yml has no '- file: {PATIENTS_PAGE}' entry: the patient "
                        "pages are executed but not in the book")
    for name, text in (extra_pages or {}).items():
        (stage / f"{name}.md").write_text(text, encoding="utf-8")
        _append_page(toc, name)
    staged = []
    for ref in _toc_files(toc):
        if ref in sources:
            for stale in stage.glob(f"{ref}.*"):  # one file per page, or Sphinx picks one
                stale.unlink()
            shutil.copyfile(sources[ref], stage / f"{ref}{sources[ref].suffix}")
            staged.append(ref)
        elif not any(stage.glob(f"{ref}.*")):
            raise BuildError(f"book/_toc.yml lists '{ref}' but there is no chapters/{ref}.md "
                             "(nor a file of that name in book/)")
    for name in sources:
        if (name not in staged and sources[name].suffix == ".ipynb"
                and not name.startswith(f"{TEMPLATE}-")):
            warnings.append(f"chapter '{name}' is not in book/_toc.yml, so not in the book")
    (stage / "_toc.yml").write_text(yaml.safe_dump(toc, sort_keys=False), encoding="utf-8")
    config = yaml.safe_load((stage / "_config.yml").read_text(encoding="utf-8")) or {}
    config.setdefault("execute", {})["execute_notebooks"] = "off"
    config["only_build_toc_files"] = True
    (stage / "_config.yml").write_text(yaml.safe_dump(config, sort_keys=False),
                                       encoding="utf-8")
    return staged


def _toc_files(node: object) -> list[str]:
    """Every `root`/`file` the toc names, in order."""
    found: list[str] = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("root", "file") and isinstance(value, str):
                found.append(str(Path(value).with_suffix("")) if Path(value).suffix in
                             (".md", ".ipynb") else value)
            else:
                found += _toc_files(value)
    elif isinstance(node, list):
        for item in node:
            found += _toc_files(item)
    return found


def _add_sections(node: object, parent: str, pages: list[str]) -> bool:
    if isinstance(node, dict):
        if node.get("file") in (parent, f"{parent}.md", f"{parent}.ipynb"):
            node.setdefault("sections", []).extend({"file": p} for p in pages)
            return True
        return any(_add_sections(v, parent, pages) for v in node.values())
    if isinstance(node, list):
        return any(_add_sections(v, parent, pages) for v in node)
    return False


def _append_page(toc: dict, name: str) -> None:
    if "parts" in toc:
        toc["parts"].append({"caption": "Changes", "chapters": [{"file": name}]})
    else:
        toc.setdefault("chapters", []).append({"file": name})


# LaTeX packages the PDF needs beyond a basic TeX Live, with the Debian package holding each:
# Sphinx's xelatex setup always; jupyterBook.cls (sphinx-jupyterbook-latex) only when the
# book's config leaves `latex.use_jupyterbook_latex` on (the default).
PDF_LATEX_PACKAGES = {"fontspec.sty": "texlive-latex-recommended"}
JB_LATEX_PACKAGES = {"bbm.sty": "texlive-fonts-extra", "pgfplots.sty": "texlive-pictures",
                     "changepage.sty": "texlive-latex-extra"}


def pdf_missing(book_dir: Path = paths.BOOK_DIR) -> list[str]:
    """What the PDF build of the book in `book_dir` lacks on this machine (empty: it can run)."""
    missing = [f"{tool} (not on PATH)" for tool in ("latexmk", "xelatex", "kpsewhich")
               if shutil.which(tool) is None]
    if missing:
        return missing
    needed = dict(PDF_LATEX_PACKAGES)
    config_path = Path(book_dir) / "_config.yml"
    config = (yaml.safe_load(config_path.read_text(encoding="utf-8")) or {}
              if config_path.is_file() else {})
    if (config.get("latex") or {}).get("use_jupyterbook_latex", True):
        needed.update(JB_LATEX_PACKAGES)
    done = subprocess.run(["kpsewhich", *needed], capture_output=True, text=True, check=False)
    found = {Path(line).name for line in done.stdout.splitlines()}
    return [f"{sty} (Debian: {deb})" for sty, deb in needed.items() if sty not in found]


def jupyter_book_command() -> list[str]:
    script = Path(sys.executable).with_name("jupyter-book")
    if script.is_file():
        return [str(script)]
    return [sys.executable, "-c", "from jupyter_book.cli.main import main; main()"]


def _build_book(book_dir: Path, sources: dict[str, Path], tmp: Path, pdf: bool, comparison,
                warnings: list[str], echo: Echo) -> dict:
    """Run jupyter-book (HTML, and PDF side by side when asked) on the staged sources."""
    extra = {}
    if comparison is not None and not comparison.empty:
        extra[CHANGES_PAGE] = "# Changes from the previous build\n\n" + comparison.markdown()
    stage = tmp / "_source"
    stage_book(book_dir, sources, stage, extra, warnings)
    for warning in warnings:
        echo(f"warning: {warning}")
    builders = ["html"] + (["pdflatex"] if pdf else [])
    echo(f"building the book ({', '.join(builders)}) with jupyter-book")
    logs = tmp / "logs"
    logs.mkdir(exist_ok=True)
    env = {**os.environ, **WORKER_ENV}
    procs, started = {}, time.perf_counter()
    for builder in builders:
        log = (logs / f"jupyter-book-{builder}.log").open("w", encoding="utf-8")
        cmd = [*jupyter_book_command(), "build", str(stage), "--path-output",
               str(tmp / f"_jb-{builder}"), "-W", "--keep-going", "--builder", builder]
        procs[builder] = (subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env,
                                           cwd=tmp), log)
    seconds = {}
    for builder, (proc, log) in procs.items():
        proc.wait()
        log.close()
        seconds[builder] = round(time.perf_counter() - started, 3)
        if proc.returncode != 0:
            for other, _ in procs.values():
                other.kill()
            raise BookFailed(builder, logs / f"jupyter-book-{builder}.log")
        echo(f"  {builder:<28} built    {seconds[builder]:6.1f} s")
    shutil.move(tmp / "_jb-html" / "_build" / "html", tmp / "html")
    if pdf:
        found = sorted((tmp / "_jb-pdflatex" / "_build" / "latex").glob("*.pdf"))
        if not found:
            raise BookFailed("pdflatex", logs / "jupyter-book-pdflatex.log")
        (tmp / "pdf").mkdir()
        for path in found:
            shutil.move(path, tmp / "pdf" / path.name)
    for builder in builders:
        shutil.rmtree(tmp / f"_jb-{builder}", ignore_errors=True)
    shutil.rmtree(stage, ignore_errors=True)
    return seconds


class BookFailed(BuildError):
    """jupyter-book (Sphinx) failed: the warnings that made it fail, and the log."""

    def __init__(self, builder: str, log: Path) -> None:
        self.log = log
        text = log.read_text(encoding="utf-8", errors="replace") if log.is_file() else ""
        lines = [line for line in text.splitlines()
                 if "WARNING" in line or "ERROR" in line or "Error" in line]
        shown = "\n".join(f"  {line}" for line in lines[:20]) or text[-2000:]
        super().__init__(f"jupyter-book ({builder}) failed:\n{shown}")


# --------------------------------------------------------------------------------------------
# Manifest, swap, failure
# --------------------------------------------------------------------------------------------


def _write_manifest(tmp: Path, started: str, t0: float, build_key: str, data_dir: Path,
                    inputs: cache.Inputs, pages: list[Page], report: Report,
                    supplement_run: dict, book_files: dict, params: dict, jobs: int, pdf: bool,
                    compare_to: Path | None, book_seconds: dict, n_results: int) -> None:
    chapters = {p.chapter.name: cache.sha256_bytes(p.chapter.source) for p in pages}
    manifest.write(tmp / "manifest.json", {
        "build_key": build_key,
        "started": started,
        "finished": manifest.now(),
        "seconds": round(time.perf_counter() - t0, 3),
        "command": sys.argv,
        "data_dir": str(data_dir),
        "data_files": inputs.data,
        "parameters": params,
        "chapters": chapters,
        "book_files": book_files,
        "package_files": inputs.package,
        "environment": inputs.environment,
        "packages": manifest.package_versions(),
        "git": manifest.git_state(),
        "jobs": jobs,
        "pdf": pdf,
        "compare_to": str(compare_to) if compare_to else None,
        "pages": [r.record() for r in report.runs],
        "supplement": supplement_run,
        "book_seconds": book_seconds,
        "n_results": n_results,
    })


def _swap(new: Path, out: Path) -> None:
    """Put `new` in place of `out`: one atomic exchange where the OS has it, else two renames."""
    if not out.exists():
        os.rename(new, out)
        return
    if _exchange(new, out):
        shutil.rmtree(new)  # it now holds the old book
        return
    old = out.with_name(f"{out.name}.old-{os.getpid()}")
    os.rename(out, old)
    os.rename(new, out)
    shutil.rmtree(old, ignore_errors=True)


def _exchange(a: Path, b: Path) -> bool:
    """Linux renameat2(RENAME_EXCHANGE); False where it is not available."""
    try:
        fn = ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    return fn(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0


def _keep_failure(tmp: Path, failed: Path, err: BaseException) -> None:
    """Keep the failed notebook and the logs in `<out>.failed/` and point the message there."""
    if not isinstance(err, BuildError) or not tmp.exists():
        return
    shutil.rmtree(failed, ignore_errors=True)
    failed.mkdir(parents=True)
    kept = []
    if isinstance(err, ChapterFailed) and err.notebook.is_file():
        (failed / "notebooks").mkdir()
        target = failed / "notebooks" / err.notebook.name
        shutil.copyfile(err.notebook, target)
        kept.append(target)
    if (tmp / "logs").is_dir():
        shutil.copytree(tmp / "logs", failed / "logs")
        if isinstance(err, BookFailed):
            kept.append(failed / "logs" / err.log.name)
    if kept:
        err.args = (f"{err.args[0]}\n  kept for inspection: "
                    + ", ".join(str(k) for k in kept),)


def _remove_stale_temps(out_dir: Path) -> None:
    """Temporary folders of builds whose process is gone."""
    for path in out_dir.parent.glob(f"{out_dir.name}.tmp-*"):
        pid = path.name.rsplit("-", 1)[-1]
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            shutil.rmtree(path, ignore_errors=True)
        except PermissionError:
            pass


# --------------------------------------------------------------------------------------------
# One chapter, for reviewers
# --------------------------------------------------------------------------------------------


REVIEW_DIR = paths.ROOT / "_review"


def run_chapter(name: str, params: dict, data_dir: Path = paths.DATA_DIR,
                out_dir: Path = REVIEW_DIR, *, chapters_dir: Path = paths.CHAPTERS_DIR,
                book_dir: Path = paths.BOOK_DIR, cache_dir: Path | None = None,
                html: bool = True, echo: Echo = print) -> dict[str, Path]:
    """Execute one chapter with `params` into `<out>/<page>.ipynb` (+ `<out>/html/`).

    Same parameters, cache and checks as `build`; the patient template takes `patient_id`
    (default: the first patient).
    """
    data_dir, out_dir = Path(data_dir).resolve(), Path(out_dir).resolve()
    chapters_dir = Path(chapters_dir).resolve()
    path = chapters_dir / f"{name}.md"
    if not path.is_file():
        names = ", ".join(sorted(p.stem for p in chapters_dir.glob("*.md"))) or "none"
        raise UsageError(f"no chapter '{name}' in {chapters_dir} (chapters: {names})")
    chapter = Chapter.read(path)
    unknown = sorted(set(params) - set(chapter.parameters))
    if "data_dir" in params:
        raise UsageError("give the data folder with --data, not -p data_dir=...")
    if unknown:
        raise UsageError(f"chapter '{name}' has no parameter {', '.join(unknown)} "
                         f"(its parameters: {', '.join(chapter.parameters)})")
    trial = load_valid(data_dir)
    parameters = {"data_dir": str(data_dir), **params}
    page_name = name
    if name == TEMPLATE:
        ids = [str(p) for p in trial.patients["patient_id"]]
        pid = str(params.get("patient_id", ids[0]))
        if pid not in ids:
            raise UsageError(f"patient_id {pid!r} is not in the data ({', '.join(ids)})")
        parameters["patient_id"] = pid
        page_name = f"{TEMPLATE}-{pid}"
    inputs = cache.Inputs.of(data_dir)
    page = Page(page_name, chapter, parameters,
                cache.page_key(inputs, chapter.source, parameters))
    store = cache.Store(Path(cache_dir).resolve() if cache_dir else cache.default_dir(out_dir))
    out_dir.mkdir(parents=True, exist_ok=True)
    notebook = out_dir / f"{page_name}.ipynb"
    hit = store.get("notebooks", page.key, ".ipynb")
    if hit:
        shutil.copyfile(hit, notebook)
        echo(f"{page_name}: cached (same chapter, parameters, data and code as before)")
    else:
        log = out_dir / f"{page_name}.kernel.log"
        with cf.ProcessPoolExecutor(max_workers=1, initializer=_init_worker,
                                    initargs=(str(log),)) as pool:
            outcome = pool.submit(execute_page, chapter.source, path.suffix.lstrip("."),
                                  parameters, str(notebook),
                                  str(out_dir / f".work-{page_name}")).result()
        shutil.rmtree(out_dir / f".work-{page_name}", ignore_errors=True)
        if not outcome["ok"]:
            err = ChapterFailed(page, outcome, notebook)
            raise BuildError(f"{err}\n  executed notebook kept at {notebook}")
        store.put("notebooks", page.key, ".ipynb", notebook,
                  {"page": page_name, "chapter": name, "parameters": parameters,
                   "seconds": outcome["seconds"], "created": manifest.now()})
        echo(f"{page_name}: executed in {outcome['seconds']:.1f} s")
    written = {"notebook": notebook}
    if html:
        written["html"] = _page_html(book_dir, page_name, notebook, out_dir)
    return written


def _page_html(book_dir: Path, page_name: str, notebook: Path, out_dir: Path) -> Path:
    """A one-page book of the executed notebook (glue and theme as in the book)."""
    stage = out_dir / f".stage-{page_name}"
    shutil.rmtree(stage, ignore_errors=True)
    if Path(book_dir).is_dir():
        shutil.copytree(book_dir, stage, ignore=shutil.ignore_patterns(
            "_build", ".*", "*.ipynb", "*.md", "_toc.yml", "__pycache__"))
    stage.mkdir(parents=True, exist_ok=True)
    config_path = stage / "_config.yml"
    config = (yaml.safe_load(config_path.read_text(encoding="utf-8")) or {}
              if config_path.is_file() else {"title": page_name})
    config.setdefault("execute", {})["execute_notebooks"] = "off"
    config["only_build_toc_files"] = True
    config_path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    (stage / "_toc.yml").write_text(yaml.safe_dump({"format": "jb-book", "root": page_name}),
                                    encoding="utf-8")
    shutil.copyfile(notebook, stage / f"{page_name}.ipynb")
    log = out_dir / f"{page_name}.jupyter-book.log"
    with log.open("w", encoding="utf-8") as handle:
        done = subprocess.run([*jupyter_book_command(), "build", str(stage), "--path-output",
                               str(stage / "_out")], stdout=handle, stderr=subprocess.STDOUT,
                              env={**os.environ, **WORKER_ENV}, check=False)
    if done.returncode != 0:
        raise BuildError(f"jupyter-book could not render {page_name}; see {log}")
    target = out_dir / "html"
    shutil.rmtree(target, ignore_errors=True)
    shutil.move(stage / "_out" / "_build" / "html", target)
    shutil.rmtree(stage, ignore_errors=True)
    return target / f"{page_name}.html"


def papermill_command(name: str, page: str, data_dir: Path, params: dict,
                      chapters_dir: Path = paths.CHAPTERS_DIR, cwd: Path | None = None) -> str:
    """The same run as a plain shell pipeline (jupytext converts, papermill executes), to be
    run in `cwd` (default: the current folder)."""
    import shlex

    args = [f"-p data_dir {shlex.quote(str(data_dir))}"]
    args += [f"-p {k} {shlex.quote(str(v))}" for k, v in params.items()]
    source = Path(chapters_dir).resolve() / f"{name}.md"
    try:
        source = source.relative_to((cwd or Path.cwd()).resolve())
    except ValueError:
        pass
    return (f"jupytext --to ipynb --output - {shlex.quote(str(source))} | "
            f"MPLBACKEND=Agg papermill - {shlex.quote(page)}.ipynb -k {KERNEL} "
            + " ".join(args))
