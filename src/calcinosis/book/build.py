"""The book's build, planned once and fanned out from the plan: validate the data, compute the
results stage (cached per producer), execute the pages that show something that changed
(side by side), build the Jupyter Book from the executed notebooks, and write results.json,
the supplement and the manifest beside it.

Why not Jupyter Book's own execution: its cache keys on code cells only (a changed data file
leaves old numbers on the page), it cannot inject parameters (jupyter-book#424) and runs one
notebook at a time (jupyter-book#1735). So papermill executes each page
(`calcinosis.book.execute`) and Sphinx only renders the executed notebooks
(`execute_notebooks: 'off'`).

Safety: everything is written into a temporary folder in the cache (`builds/<out>-<hash>.tmp-<pid>`)
and swapped in only when complete, so `<out>` keeps the last good book until a new one is
whole. A failed build leaves `<out>` untouched and keeps what helps to see why in
`builds/<out>-<hash>.failed/`, whose path the error names.
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from calcinosis import paths
from calcinosis.book import cache, manifest, supplement
from calcinosis.book.execute import PageRun, execute_pages, page_workers
from calcinosis.book.output import (
    check_out,
    exclusive,
    keep_failure,
    mark,
    remove_stale_temps,
    swap,
    write_manifest,
)
from calcinosis.book.page import NOTICE, PROVENANCE
from calcinosis.book.plan import RESULTS_DIR, Chapter, Page, load_valid, plan_pages, read_chapters
from calcinosis.book.portable import make_portable
from calcinosis.book.process import (
    Echo,
    end_children,
    sigterm_as_interrupt,
    stop_if_asked,
    stopping_now,
)
from calcinosis.book.results_folder import write as write_results
from calcinosis.book.results_stage import StageRun, run_stage
from calcinosis.book.staging import DOWNLOADS_DIR, build_book, pdf_missing
from calcinosis.data import provenance
from calcinosis.errors import BuildError, UsageError, could_not_write
from calcinosis.params import Parameters


@dataclass(frozen=True)
class Plan:
    """Everything a build will do, decided before anything runs."""

    data_dir: Path
    out_dir: Path
    params: Parameters
    chapters: list[Chapter]
    pages: list[Page]
    book_dir: Path
    cache_dir: Path
    jobs: int
    pdf: bool
    compare_to: Path | None
    inputs_key: str = ""
    up_to_date: bool = False  # the last build in out_dir had these very inputs
    size_note: str = ""  # a trial above the size limits, built with --large: its memory estimate

    @property
    def static(self) -> dict[str, Path]:
        return {c.name: c.path for c in self.chapters if c.static}


@dataclass
class Report:
    """What a build did."""

    out_dir: Path
    up_to_date: bool = False
    stage: StageRun | None = None
    runs: list[PageRun] = field(default_factory=list)
    seconds: float = 0.0
    warnings: list[str] = field(default_factory=list)

    @property
    def executed(self) -> list[str]:
        return [r.page for r in self.runs if not r.cached]

    @property
    def cached(self) -> list[str]:
        return [r.page for r in self.runs if r.cached]

    @property
    def computed(self) -> list[str]:
        """The producers of the results stage that were computed (not cached)."""
        return [
            n for n, r in (self.stage.producers.items() if self.stage else ()) if not r["cached"]
        ]


def plan(
    data_dir: Path = paths.DATA_DIR,
    out_dir: Path = paths.BUILD_DIR,
    params: dict | None = None,
    jobs: int | None = None,
    pdf: bool = False,
    *,
    chapters_dir: Path = paths.CHAPTERS_DIR,
    book_dir: Path = paths.BOOK_DIR,
    cache_dir: Path | None = None,
    compare_to: Path | None = None,
    chapter_params: dict[str, dict] | None = None,
    large: bool = False,
) -> Plan:
    """Check the request and the data, and lay out every page (with `chapter_params`, a
    chapter's own parameters: chapter name -> NAME -> value). Raises InvalidData or
    UsageError (also for a trial above the size limits without `large`); writes nothing."""
    data_dir, chapters_dir = Path(data_dir).resolve(), Path(chapters_dir).resolve()
    book_dir = Path(book_dir).resolve()
    cache_dir = Path(cache_dir).resolve() if cache_dir else cache.default_dir(out_dir)
    try:
        chosen = Parameters.of(params)
    except ValueError as err:
        raise UsageError(str(err)) from None
    out_dir = check_out(out_dir, [data_dir, chapters_dir, book_dir, cache_dir, paths.PACKAGE_DIR])
    _check_apart(data_dir, out_dir, cache_dir)
    compare_to = Path(compare_to).resolve() if compare_to else None
    jobs = max(1, jobs or os.cpu_count() or 1)
    chapter_params = chapter_params or {}
    key = inputs_key(data_dir, chapters_dir, book_dir, chosen, pdf, compare_to, chapter_params)
    previous = manifest.read(out_dir / "manifest.json")
    if previous.get("inputs_key") == key and _complete(out_dir, pdf):
        # the same bytes were validated, computed and built last time: nothing to do
        return Plan(
            data_dir,
            out_dir,
            chosen,
            [],
            [],
            book_dir,
            cache_dir,
            jobs,
            pdf,
            compare_to,
            key,
            up_to_date=True,
        )
    from calcinosis.data import limits  # pandas: not imported before the build needs it

    trial = load_valid(data_dir)
    size_note = limits.check(trial, large)
    if pdf and (missing := pdf_missing(book_dir)):
        raise UsageError("--pdf needs " + "; ".join(missing) + " (or build with --no-pdf)")
    chapters = read_chapters(chapters_dir)
    page_code = cache.sha256_file(Path(__file__).with_name("page.py"))
    ids = [str(p) for p in trial.patients["patient_id"]]
    pages = plan_pages(chapters, ids, chosen.as_dict(), page_code, chapter_params)
    laid_out = Plan(
        data_dir, out_dir, chosen, chapters, pages, book_dir, cache_dir, jobs, pdf, compare_to, key
    )
    return replace(laid_out, size_note=size_note)


def inputs_key(
    data_dir: Path,
    chapters_dir: Path,
    book_dir: Path,
    params: Parameters,
    pdf: bool,
    compare_to: Path | None,
    chapter_params: dict[str, dict] | None = None,
) -> str:
    """Hash of every byte a build reads (a superset of the dataset's files, the chapters, the
    book's configuration, the package, the environment) and of what was asked: equal keys,
    equal books. Cheap: no data is loaded to compute it."""
    data = sorted(
        p
        for p in data_dir.iterdir()
        if p.is_file() and (p.suffix == ".csv" or p.name in ("published.yml", "datapackage.json"))
    )
    return cache.sha256_json(
        {
            "version": cache.CACHE_VERSION,
            "data": cache.hash_tree(data, data_dir),
            "chapters": cache.hash_tree(sorted(chapters_dir.glob("*.md")), chapters_dir),
            "book": cache.hash_tree(_book_files(book_dir), book_dir),
            "package": cache.package_hash(),
            "environment": cache.environment(),
            "parameters": params.as_dict(),
            "chapter_parameters": chapter_params or {},
            "pdf": pdf,
            "compare_to": _compare_input(compare_to),
        }
    )


class Interrupted(BuildError):
    """Ctrl-C or SIGTERM: the build stopped, its children ended, `--out` untouched."""

    exit_code = 130


def build(*args, echo: Echo = print, **kwargs) -> Report:
    """Plan (arguments as for `plan`) and run a build of the book; see the module docstring.

    Raises InvalidData (nothing written), UsageError or BuildError (`out_dir` untouched); an
    operating-system error (read-only folder, full disk, no permission) becomes one BuildError
    that names the file.
    """
    the_plan = None
    try:
        with sigterm_as_interrupt():
            the_plan = plan(*args, **kwargs)
            if the_plan.size_note:
                echo(the_plan.size_note)
            with exclusive(the_plan.out_dir):
                return run(the_plan, echo)
    except KeyboardInterrupt:
        stopping_now()
        end_children()
        where = the_plan.out_dir if the_plan else "the output folder"
        raise Interrupted(f"stopped: {where} is as it was before this build") from None
    except OSError as err:
        raise could_not_write(err) from None


def stage_warnings(sections) -> list[str]:
    """What the results want a person to see at once: values named `*_warning` that are set
    (the shipped ensemble made with other code, for one)."""
    return [
        str(value)
        for section in sections
        for name, value in section.values.items()
        if name.endswith("_warning") and value
    ]


def run(plan: Plan, echo: Echo = print) -> Report:
    started, t0 = manifest.now(), time.perf_counter()
    report = Report(plan.out_dir)
    if plan.up_to_date:
        report.up_to_date = True
        echo(f"nothing changed: {plan.out_dir} is up to date")
        return report
    store = cache.Store(plan.cache_dir)
    tmp, failed = _work_dirs(plan)
    remove_stale_temps(tmp)
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / "notebooks").mkdir(parents=True)
    book_files = cache.hash_tree(_book_files(plan.book_dir), plan.book_dir)
    try:
        # the page workers start their kernels while the results are computed
        with page_workers(plan.jobs, tmp, tmp / "logs" / "kernels.log") as pool:
            params = ", ".join(f"{k}={v}" for k, v in plan.params.as_dict().items())
            echo(f"results stage ({params})")
            report.stage = run_stage(
                plan.data_dir, plan.params, store, echo, workers=plan.jobs, pdf=plan.pdf
            )
            for warning in stage_warnings(report.stage.sections):
                echo(f"WARNING: {warning}")
            digests = report.stage.digests
            data_files = _data_hashes(plan.data_dir)
            build_key = _build_key(plan, digests, data_files, book_files)
            previous = manifest.read(plan.out_dir / "manifest.json")
            if previous.get("build_key") == build_key and _complete(plan.out_dir, plan.pdf):
                report.up_to_date = True
                echo(f"nothing changed: {plan.out_dir} is up to date")
                return report
            if _provenance(report.stage.sections)["data_provenance"] == provenance.MODIFIED:
                report.warnings.append(
                    f"{plan.data_dir} declares itself a reconstruction, but its files no longer "
                    "match the hashes its datapackage.json records: the book labels the data "
                    "as derived from the reconstruction, not as the reconstruction"
                )
            report.warnings += _stale_results(report.stage.sections)
            write_results(report.stage.sections, plan.params, tmp / RESULTS_DIR)
            report.runs = execute_pages(
                plan.pages, digests, tmp, store, pool, _previous_times(previous), echo
            )
        supplement.make(
            tmp / RESULTS_DIR,
            plan.data_dir,
            tmp / "supplement",
            {c.name: c.path for c in plan.chapters},
            plan.book_dir / "_toc.yml",
        )
        shutil.copyfile(tmp / RESULTS_DIR / "results.json", tmp / "results.json")
        comparison = None
        if plan.compare_to is not None:
            from calcinosis.book import compare

            comparison = compare.compare(plan.compare_to, tmp)
            comparison.new_dir = plan.out_dir  # name the book, not its temporary folder
            (tmp / "compare.md").write_text(comparison.markdown(), encoding="utf-8")
        notebooks = {p.name: tmp / "notebooks" / f"{p.name}.ipynb" for p in plan.pages}
        notice = _provenance(report.stage.sections)[NOTICE]
        for notebook in notebooks.values():  # as the site shows them and offers them
            make_portable(notebook, plan.data_dir, notice=notice)
        # by the output folder's name: only speed depends on it (the workspace is synced
        # exactly), and a copied tree with its cache keeps it
        workspace = plan.cache_dir / "sphinx" / plan.out_dir.name
        book_seconds = build_book(
            plan.book_dir,
            {**plan.static, **notebooks},
            tmp,
            plan.pdf,
            comparison,
            report.warnings,
            echo,
            workspace,
            _provenance(report.stage.sections)["data_footer"],
            plan.jobs,
            provenance=_provenance(report.stage.sections)["data_sentence"],
        )
        shutil.rmtree(tmp / RESULTS_DIR)  # its tables and figures are in supplement/
        record = _record(plan, report, started, t0, build_key, data_files, book_files, book_seconds)
        write_manifest(tmp, record)
        mark(tmp, "build")
        stop_if_asked()  # a stop some callback swallowed still leaves --out as it was
        swap(tmp, plan.out_dir)
    except BaseException as err:
        if isinstance(err, KeyboardInterrupt):
            stopping_now()
        keep_failure(tmp, failed, err)
        raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    shutil.rmtree(failed, ignore_errors=True)  # an old failure no longer describes <out>
    for warning in store.warnings:
        echo(f"warning: {warning}")
    report.seconds = time.perf_counter() - t0
    echo(
        f"built {plan.out_dir} in {report.seconds:.1f} s ({len(report.executed)} pages "
        f"executed, {len(report.cached)} unchanged)"
    )
    echo(f"  site: {plan.out_dir / 'html' / 'index.html'}")
    if plan.pdf:
        echo(f"  PDF:  {next((plan.out_dir / 'pdf').glob('*.pdf'), plan.out_dir / 'pdf')}")
    return report


def _work_dirs(plan: Plan) -> tuple[Path, Path]:
    """Where the new book is assembled, and a failed one kept: in the cache (`builds/`) when it
    is on the filesystem of --out (the swap is a rename), else beside --out."""
    builds = plan.cache_dir / "builds"
    builds.mkdir(parents=True, exist_ok=True)
    plan.out_dir.parent.mkdir(parents=True, exist_ok=True)
    if os.stat(builds).st_dev == os.stat(plan.out_dir.parent).st_dev:
        name = f"{plan.out_dir.name}-{cache.sha256_bytes(os.fsencode(plan.out_dir))[:8]}"
    else:
        builds, name = plan.out_dir.parent, plan.out_dir.name
    return builds / f"{name}.tmp-{os.getpid()}", builds / f"{name}.failed"


def _build_key(
    plan: Plan, digests: dict[str, str], data_files: dict[str, str], book_files: dict[str, str]
) -> str:
    """What the book shows: equal keys, equal books (even when some input bytes differ)."""
    return cache.sha256_json(
        {
            "digests": digests,
            "pages": [p.recipe for p in plan.pages],
            "static": {c.name: cache.sha256_bytes(c.source) for c in plan.chapters if c.static},
            "data": data_files,
            "book": book_files,
            "pdf": plan.pdf,
            "compare_to": _compare_input(plan.compare_to),
        }
    )


def _record(
    plan: Plan,
    report: Report,
    started: str,
    t0: float,
    build_key: str,
    data_files: dict,
    book_files: dict,
    book_seconds: dict,
) -> dict:
    return {
        "build_key": build_key,
        "inputs_key": plan.inputs_key,
        "started": started,
        "finished": manifest.now(),
        "seconds": round(time.perf_counter() - t0, 3),
        "data_dir": str(plan.data_dir),
        "data_files": data_files,
        "parameters": plan.params.as_dict(),
        "changed_parameters": plan.params.changed(),
        "chapters": {c.name: cache.sha256_bytes(c.source) for c in plan.chapters},
        "book_files": book_files,
        "package": cache.package_hash(),
        "environment": cache.environment(),
        "jobs": plan.jobs,
        "pdf": plan.pdf,
        "compare_to": str(plan.compare_to) if plan.compare_to else None,
        "results_stage": report.stage.producers if report.stage else {},
        "results_stage_seconds": report.stage.seconds if report.stage else 0.0,
        "sections": report.stage.digests if report.stage else {},
        "pages": [r.record() for r in report.runs],
        "book_seconds": book_seconds,
    }


def _provenance(sections) -> dict:
    """The values on the data's provenance (calcinosis.data.provenance): the notice, the footer."""
    return next(s.values for s in sections if s.name == PROVENANCE)


def _stale_results(sections) -> list[str]:
    """What producers say about shipped results that no longer match the code or the data
    (`calcinosis.book.page.STALE_SUFFIX`): the simulation behind the planning chapter is
    too slow to run in a build, so it is shipped."""
    from calcinosis.book.page import STALE_SUFFIX

    return [
        str(value)
        for section in sections
        for name, value in section.values.items()
        if name.endswith(STALE_SUFFIX) and value
    ]


def _data_hashes(data_dir: Path) -> dict[str, str]:
    from calcinosis.data.trial import dataset_files

    return {p.name: cache.sha256_file(p) for p in dataset_files(data_dir).values()}


def _check_apart(data_dir: Path, out_dir: Path, cache_dir: Path) -> None:
    """Refuse an output or cache folder inside the data folder (a build would publish or
    read its own output as data), or the data inside them."""
    for flag, path in (("--out", out_dir), ("--cache", cache_dir)):
        if data_dir == path or data_dir in path.parents or path in data_dir.parents:
            raise UsageError(
                f"{flag} {path} and the data folder {data_dir} must not contain "
                "each other; choose a folder outside the data"
            )


def _book_files(book_dir: Path) -> list[Path]:
    if not book_dir.is_dir():
        return []
    return sorted(
        p
        for p in book_dir.rglob("*")
        if p.is_file()
        and not any(part.startswith(("_build", ".")) for part in p.relative_to(book_dir).parts)
    )


def _compare_input(compare_to: Path | None) -> str | None:
    if compare_to is None:
        return None
    files = [
        compare_to / "results.json",
        compare_to / "manifest.json",
        compare_to / "supplement" / "data" / "published.yml",
    ]
    return cache.sha256_json({f.name: cache.sha256_file(f) for f in files if f.is_file()})


def _complete(out_dir: Path, pdf: bool) -> bool:
    needed = [
        out_dir / "html" / "index.html",
        out_dir / "html" / DOWNLOADS_DIR / "supplement.zip",
        out_dir / "results.json",
        out_dir / "supplement.zip",
    ]
    return all(p.is_file() for p in needed) and (not pdf or any((out_dir / "pdf").glob("*.pdf")))


def _previous_times(previous: dict) -> dict[str, float]:
    return {
        r["page"]: r.get("seconds", 0.0) for r in previous.get("pages", []) if not r.get("cached")
    }
