"""Executing pages with papermill in worker processes, side by side, and the supplement in a
process of its own; cached pages are copied from the store instead.

Worker entry points stay at module level: ProcessPoolExecutor pickles them by reference.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import json
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from calcinosis import cache, manifest
from calcinosis.errors import BuildError
from calcinosis.pages import Page

KERNEL = "python3"
# Kernels plot with Agg, and use one BLAS thread: pages already run side by side, and the
# same thread count on every run keeps floating-point sums in the same order (same bytes).
WORKER_ENV = {"MPLBACKEND": "Agg", "PYDEVD_DISABLE_FILE_VALIDATION": "1",
              "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
Echo = Callable[[str], None]


# A build's worker keeps one kernel for all the pages it runs: starting a kernel and importing
# pandas, statsmodels and matplotlib costs about 2.5 s a page, more than many pages compute.
# Between pages the kernel's namespace is emptied and its execution count set back to 1, so a
# page sees what a fresh kernel shows it and its notebook reads the same.
_FRESH_NAMESPACE = ("import matplotlib.pyplot as _plt\n_plt.close('all')\n%reset -f\n"
                    "get_ipython().execution_count = 1\n")
_warm: dict = {}


def init_worker(log: str | None = None, warm_kernel: bool = False) -> None:
    """Agg plots; kernels' own chatter (their stderr, inherited) to a log, not the terminal;
    with `warm_kernel`, one kernel kept for every page this worker runs."""
    os.environ.update(WORKER_ENV)
    import logging

    logging.getLogger("papermill").setLevel(logging.WARNING)
    if log:
        fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.dup2(fd, 2)
        os.close(fd)
    if warm_kernel:
        from multiprocessing import util

        from jupyter_client.manager import AsyncKernelManager

        # papermill starts it with the first page; the worker shuts it down when it exits
        _warm["km"] = AsyncKernelManager(kernel_name=KERNEL)
        util.Finalize(None, _shutdown_warm_kernel, exitpriority=10)


def _shutdown_warm_kernel() -> None:
    from jupyter_core.utils import run_sync

    km = _warm.pop("km", None)
    if km is not None and km.has_kernel:
        run_sync(km.shutdown_kernel)(now=True)


def _replace_warm_kernel() -> None:
    """Drop this worker's kernel (if it keeps one) for a new one, started by the next page."""
    if "km" in _warm:
        from jupyter_client.manager import AsyncKernelManager

        with contextlib.suppress(Exception):  # it may be dead already
            _shutdown_warm_kernel()
        _warm["km"] = AsyncKernelManager(kernel_name=KERNEL)


def _warm_kernel():
    """This worker's kernel, emptied for the next page; None outside a build's workers."""
    from jupyter_core.utils import run_sync

    km = _warm.get("km")
    if km is None or not km.has_kernel:
        return km
    if not run_sync(km.is_alive)():  # a page killed it: papermill starts a new one
        run_sync(km.shutdown_kernel)(now=True)
        return km
    run_sync(_empty_namespace)(km)
    return km


async def _empty_namespace(km) -> None:
    kc = km.client()
    kc.start_channels()
    try:
        await kc.wait_for_ready(timeout=60)
        reply = await kc.execute_interactive(_FRESH_NAMESPACE, store_history=False,
                                             timeout=60, output_hook=lambda msg: None)
        if reply["content"]["status"] != "ok":
            raise RuntimeError(f"could not empty the kernel: {reply['content']}")
    finally:
        kc.stop_channels()


def execute_page(source: bytes, fmt: str, parameters: dict, output: str, cwd: str) -> dict:
    """Execute one chapter with papermill into `output`; report success or where it failed.

    A kernel that dies or will not start (ports taken by a kernel starting beside it, say) gets
    one more try with a new kernel; an error raised by the chapter's own code does not.
    """
    start = time.perf_counter()
    Path(cwd).mkdir(parents=True, exist_ok=True)
    failure = _run_page(source, fmt, parameters, output, cwd)
    if failure is not None and failure["cell"] is None:
        _replace_warm_kernel()
        failure = _run_page(source, fmt, parameters, output, cwd)
    return {"ok": failure is None, "seconds": time.perf_counter() - start, **(failure or {})}


def _run_page(source: bytes, fmt: str, parameters: dict, output: str, cwd: str) -> dict | None:
    """One papermill run of a page: None when it succeeds, else where and why it failed
    (`cell` None when the kernel, not the chapter, failed)."""
    import jupytext
    import papermill
    from papermill.exceptions import PapermillExecutionError

    nb = jupytext.reads(source.decode("utf-8"), fmt=fmt)
    nb.metadata["kernelspec"] = {"name": KERNEL, "display_name": "Python 3",
                                 "language": "python"}
    try:
        km = _warm_kernel()
        papermill.execute_notebook(nb, output, parameters=parameters, kernel_name=KERNEL,
                                   cwd=cwd, progress_bar=False, log_output=False,
                                   **({"km": km} if km is not None else {}))
    except PapermillExecutionError as err:
        first = next((line for line in (err.source or "").splitlines() if line.strip()), "")
        return {"cell": err.exec_count, "index": err.cell_index, "ename": err.ename,
                "evalue": err.evalue, "line": first}
    except Exception as err:  # the kernel died or would not start: still a message
        return {"cell": None, "index": None, "ename": type(err).__name__, "evalue": str(err),
                "line": ""}
    return None


@dataclass(frozen=True)
class Sources:
    """Where the supplement's tables, figures and results.json come from ("module:name")."""

    tables: str = "calcinosis.tables:TABLES"
    figures: str = "calcinosis.figures:FIGURES"
    results: str = "calcinosis.results:collect"


def make_supplement(data_dir: str, dest_zip: str, sources: Sources) -> dict:
    """Tables, figures, data package and results.json."""
    import tempfile

    from calcinosis import data, supplement

    start = time.perf_counter()
    trial = data.load_trial(data_dir)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        supplement.export(trial, Path(data_dir), root,
                          tables=supplement.resolve(sources.tables),
                          figures=supplement.resolve(sources.figures))
        collect = supplement.resolve(sources.results)
        (root / "results.json").write_text(results_json(collect(trial)), encoding="utf-8")
        supplement.write_zip(root, Path(dest_zip))
    return {"ok": True, "seconds": time.perf_counter() - start}


def results_json(results: dict) -> str:
    return json.dumps(results, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


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


def execute_pages(pages: list[Page], supplement: tuple[str, Sources], data_dir: Path,
                  tmp: Path, store: cache.Store, jobs: int, times: dict[str, float],
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
        def pool(workers: int, warm_kernel: bool) -> cf.ProcessPoolExecutor:
            return stack.enter_context(cf.ProcessPoolExecutor(
                max_workers=workers, initializer=init_worker,
                initargs=(str(tmp / "logs" / "kernels.log"), warm_kernel)))

        futures: dict[cf.Future, Page | None] = {}
        if not supplement_hit:
            futures[pool(1, False).submit(make_supplement, str(data_dir),
                                   str(tmp / "supplement-parts.zip"), sources)] = None
        pages_pool = pool(jobs, True) if todo else None
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
