"""Executing pages with papermill in worker processes, side by side; pages whose recipe and
shown sections are unchanged are copied from the store instead.

A page's cache key is its recipe plus the digests of the sections it showed the last time it
ran (recorded by the page itself, `calcinosis.book.page.READS`): a page re-executes only when
something it shows changed, and never shows a stale value, since a changed section changes
the key.

Worker entry points stay at module level: ProcessPoolExecutor pickles them by reference.
"""

from __future__ import annotations

import ast
import concurrent.futures as cf
import contextlib
import json
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from calcinosis.book import cache, manifest
from calcinosis.book.page import is_reads
from calcinosis.book.plan import Page
from calcinosis.book.process import (
    KERNEL,
    KERNEL_ARGUMENTS,
    Echo,
    init_worker,
    worker_pool,
)
from calcinosis.errors import BuildError

EXECUTION_TIMEOUT = 600  # seconds a cell may run before papermill stops the page

# A build's worker keeps one kernel for all the pages it runs: starting a kernel costs about a
# second a page, more than a page computes. Between pages the kernel's namespace is emptied
# (`%reset -f`) and its execution count set back to 1, so the page's own names start empty and
# its notebook reads the same; modules already imported stay imported (pages import only
# `calcinosis.book.page`, which keeps no state).
_FRESH_NAMESPACE = "%reset -f\nget_ipython().execution_count = 1\n"
_warm: dict = {}


def keep_warm_kernel() -> None:
    """Keep one kernel for every page this worker runs (`warm_up` or the first page starts
    it; the worker shuts it down when it exits)."""
    from multiprocessing import util

    _warm["km"] = _kernel_manager()
    util.Finalize(None, _shutdown_warm_kernel, exitpriority=10)


def _kernel_manager():
    """A kernel manager that remembers the clients made from it, so that each page's can be
    closed (`_close_clients`): nbclient leaves open the client it makes from a manager it was
    given (its channels: a heartbeat thread and zmq sockets, 5 MB a page at 5 ×, which took a
    page worker to 1.9 GB over 250 pages of a 500-patient book)."""
    from jupyter_client.manager import AsyncKernelManager

    class _Remembering(AsyncKernelManager):
        def client(self, **kwargs):
            made = super().client(**kwargs)
            _warm.setdefault("clients", []).append(made)
            return made

    return _Remembering(kernel_name=KERNEL)


def _close_clients() -> None:
    """Stop the channels of every client made from this worker's kernel manager since the
    last call (the kernel itself stays warm)."""
    for client in _warm.pop("clients", []):
        with contextlib.suppress(Exception):  # a dead kernel's channels may be closed already
            client.stop_channels()


def _init_page_worker(log: str) -> None:
    """A page worker: `init_worker`'s settings, and one kernel kept for every page it runs
    (set here, not in `calcinosis.book.process`, which every part of the build imports)."""
    init_worker(log, runs_kernel=True)
    keep_warm_kernel()


def _shutdown_warm_kernel() -> None:
    from jupyter_core.utils import run_sync

    km = _warm.pop("km", None)
    if km is not None and km.has_kernel:
        run_sync(km.shutdown_kernel)(now=True)


def _replace_warm_kernel() -> None:
    """Drop this worker's kernel (if it keeps one) for a new one, started by the next page."""
    if "km" in _warm:
        with contextlib.suppress(Exception):  # it may be dead already
            _shutdown_warm_kernel()
        _warm["km"] = _kernel_manager()


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
        reply = await kc.execute_interactive(
            _FRESH_NAMESPACE, store_history=False, timeout=60, output_hook=lambda msg: None
        )
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
    nb.metadata["kernelspec"] = {"name": KERNEL, "display_name": "Python 3", "language": "python"}
    try:
        km = _warm_kernel()
        papermill.execute_notebook(
            nb,
            output,
            parameters=parameters,
            kernel_name=KERNEL,
            cwd=cwd,
            progress_bar=False,
            log_output=False,
            # written once, at the end (or at the failing cell), not again at every cell
            request_save_on_cell_execute=False,
            execution_timeout=EXECUTION_TIMEOUT,
            extra_arguments=KERNEL_ARGUMENTS,
            **({"km": km} if km is not None else {}),
        )
    except PapermillExecutionError as err:
        return {
            "cell": err.exec_count,
            "index": err.cell_index,
            "ename": err.ename,
            "evalue": err.evalue,
            "line": _calling_line(err.source or ""),
        }
    except Exception as err:  # the kernel died or would not start: still a message
        return {
            "cell": None,
            "index": None,
            "ename": type(err).__name__,
            "evalue": str(err),
            "line": "",
        }
    finally:
        _close_clients()
    return None


def _calling_line(source: str) -> str:
    """The cell's first line that is not an import or a comment: where a chapter calls the
    package (quoting the import line read as an import failure)."""
    lines = [
        line
        for line in source.splitlines()
        if line.strip() and not line.lstrip().startswith(("#", "from ", "import "))
    ]
    return lines[0] if lines else ""


def reads_of(notebook: Path) -> dict[str, str] | None:
    """The sections a executed page showed, with their digests (its READS glue)."""
    nb = json.loads(notebook.read_text(encoding="utf-8"))
    for cell in nb.get("cells", []):
        for output in cell.get("outputs", []):
            if is_reads(output):
                prefix = output["metadata"]["scrapbook"].get("mime_prefix", "")
                text = output["data"][prefix + "text/plain"]
                return json.loads(
                    ast.literal_eval(text if isinstance(text, str) else "".join(text))
                )
    return None


@dataclass
class PageRun:
    page: str
    chapter: str
    parameters: dict
    key: str
    cached: bool
    seconds: float
    reads: dict

    def record(self) -> dict:
        return {
            "page": self.page,
            "chapter": self.chapter,
            "parameters": self.parameters,
            "key": self.key,
            "cached": self.cached,
            "seconds": round(self.seconds, 3),
            "shows": sorted(self.reads),
        }


def page_key(page: Page, reads: dict[str, str]) -> str:
    return cache.sha256_json({"recipe": page.recipe, "reads": reads})


def _cached(page: Page, store: cache.Store, digests: dict[str, str]) -> tuple[str, Path] | None:
    """The stored notebook of `page` for the current section digests, if there is one."""
    shown = store.get_text("page-reads", page.recipe, ".json", {"page": page.name})
    if shown is None:
        return None
    names = json.loads(shown)
    if not all(n in digests for n in names):
        return None
    key = page_key(page, {n: digests[n] for n in names})
    hit = store.get("notebooks", key, ".ipynb", {"page": page.name})
    return (key, hit) if hit else None


def warm_up(cwd: str) -> None:
    """Start this worker's kernel now, in the folder pages run in (the build does it while the
    results are computed)."""
    from jupyter_core.utils import run_sync

    km = _warm.get("km")
    if km is not None and not km.has_kernel:
        run_sync(km.start_kernel)(cwd=cwd, extra_arguments=KERNEL_ARGUMENTS)


@contextlib.contextmanager
def page_workers(jobs: int, cwd: Path, log: Path) -> Iterator[cf.ProcessPoolExecutor]:
    """`jobs` workers, each starting its kernel at once in `cwd`; on Ctrl-C or SIGTERM every
    one of them, and their kernels, is ended before anything waits for them."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with worker_pool(max_workers=jobs, initializer=_init_page_worker, initargs=(str(log),)) as pool:
        for _ in range(jobs):
            pool.submit(warm_up, str(cwd))
        yield pool


def execute_pages(
    pages: list[Page],
    digests: dict[str, str],
    tmp: Path,
    store: cache.Store,
    pool: cf.ProcessPoolExecutor,
    times: dict[str, float],
    echo: Echo,
) -> list[PageRun]:
    """Copy cached pages, execute the others in `pool`; stop at the first failure."""
    runs: dict[str, PageRun] = {}
    todo = []
    for page in pages:
        found = _cached(page, store, digests)
        if found:
            key, hit = found
            shutil.copyfile(hit, tmp / "notebooks" / f"{page.name}.ipynb")
            meta = store.meta("notebooks", key, ".ipynb")
            runs[page.name] = PageRun(
                page.name,
                page.chapter.name,
                page.parameters,
                key,
                True,
                meta.get("seconds", 0.0),
                meta.get("reads", {}),
            )
        else:
            todo.append(page)
    # Longest first finishes soonest: by the last build's times, else all alike.
    todo.sort(key=lambda p: -times.get(p.name, 1.0))
    total = len(pages)
    echo(f"executing {len(todo)} of {total} pages ({total - len(todo)} unchanged)")
    if not todo:
        return [runs[p.name] for p in pages]
    failure: BuildError | None = None
    futures = {
        pool.submit(
            execute_page,
            page.chapter.source,
            page.chapter.path.suffix.lstrip("."),
            page.parameters,
            str(tmp / "notebooks" / f"{page.name}.ipynb"),
            str(tmp),
        ): page
        for page in todo
    }
    for future in cf.as_completed(futures):
        if future.cancelled():
            continue
        page = futures[future]
        output = tmp / "notebooks" / f"{page.name}.ipynb"
        try:
            outcome = future.result()
        except Exception as err:  # a bug outside any notebook
            outcome = {"ok": False, "ename": type(err).__name__, "evalue": str(err)}
        if not outcome["ok"] and failure is None:
            failure = ChapterFailed(page, outcome, output)
            for other in futures:
                other.cancel()
        if failure is not None:
            continue
        reads = reads_of(output) or {}
        key = page_key(page, reads)
        store.put(
            "notebooks",
            key,
            ".ipynb",
            output,
            {
                "page": page.name,
                "chapter": page.chapter.name,
                "reads": reads,
                "parameters": page.parameters,
                "seconds": outcome["seconds"],
                "created": manifest.now(),
            },
        )
        store.put_text(
            "page-reads", page.recipe, ".json", json.dumps(sorted(reads)), {"page": page.name}
        )
        runs[page.name] = PageRun(
            page.name, page.chapter.name, page.parameters, key, False, outcome["seconds"], reads
        )
        echo(f"  [{len(runs):>2}/{total}] {page.name:<28} executed {outcome['seconds']:6.1f} s")
    if failure is not None:
        raise failure
    return [runs[p.name] for p in pages]


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
        super().__init__(
            f"{where} failed{at}{line}: {outcome.get('ename')}: "
            f"{evalue[-1] if evalue else ''}".rstrip(": ")
        )
