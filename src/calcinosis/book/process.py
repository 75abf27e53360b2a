"""How the build's child processes run and end: the kernel name, the environment they get, the
initialiser of worker processes, and the ending of every child when the build is stopped
(kept apart so every part of the build can use them).

Stopping: Ctrl-C or SIGTERM ends the build within seconds. Workers ignore SIGINT (the build
ends them), every descendant (workers, kernels, jupyter-book, LaTeX) is killed before a pool
would wait for queued pages, and a worker or jupyter-book dies with the build even when the
build is killed outright (Linux parent-death signal; kernels watch their parent themselves).
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import ctypes
import os
import signal
from collections.abc import Callable, Iterator

KERNEL = "python3"
# Kernels keep no command history: a warm kernel's execution count starts at 1 for each page,
# and IPython's history database would print "Session/line number was not unique" into it.
KERNEL_ARGUMENTS = ["--HistoryManager.enabled=False"]
# Kernels plot with Agg, and use one BLAS thread: pages already run side by side, and the
# same thread count on every run keeps floating-point sums in the same order (same bytes).
WORKER_ENV = {
    "MPLBACKEND": "Agg",
    "PYDEVD_DISABLE_FILE_VALIDATION": "1",
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
}
Echo = Callable[[str], None]


def init_worker(log: str | None = None, warm_kernel: bool = False) -> None:
    """Agg plots; kernels' own chatter (their stderr, inherited) to a log, not the terminal;
    with `warm_kernel`, one kernel kept for every page this worker runs."""
    os.environ.update(WORKER_ENV)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the build ends its workers itself
    signal.signal(signal.SIGTERM, _end_worker)  # not the build's handler, inherited by fork
    die_with_parent()
    import logging

    logging.getLogger("papermill").setLevel(logging.WARNING)
    if log:
        fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.dup2(fd, 2)
        os.close(fd)
    if warm_kernel:
        from calcinosis.book.execute import keep_warm_kernel

        keep_warm_kernel()


def _end_worker(signum, frame) -> None:
    """A worker told to end (by the build, or because the build died) ends its kernel too."""
    end_children()
    os._exit(128 + signum)


def die_with_parent() -> None:
    """Ask Linux to send this process SIGTERM when its parent dies (no-op elsewhere)."""
    with contextlib.suppress(OSError, AttributeError):
        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


def descendants() -> set[int]:
    import psutil

    return {p.pid for p in psutil.Process().children(recursive=True)}


def end_children(keep: set[int] | frozenset[int] = frozenset()) -> None:
    """Kill every descendant of this process (workers, kernels, jupyter-book, LaTeX) but the
    ones in `keep` (those that were there before, and not the build's)."""
    import psutil

    me = os.getpid()
    children = [p for p in psutil.Process().children(recursive=True) if p.pid not in keep]
    for child in children:
        with contextlib.suppress(psutil.Error):
            child.kill()
    # Wait for the grandchildren only: waiting for a direct child reaps it, and then
    # multiprocessing or subprocess, which reap their own, would wait for it forever.
    grandchildren = []
    for child in children:
        with contextlib.suppress(psutil.Error):
            if child.ppid() != me:
                grandchildren.append(child)
    psutil.wait_procs(grandchildren, timeout=5)


@contextlib.contextmanager
def worker_pool(**options) -> Iterator[cf.ProcessPoolExecutor]:
    """A process pool that, stopped by Ctrl-C, SIGTERM or an error, kills its workers and
    their children and does not wait for them (a pool's own exit waits for queued work)."""
    before = descendants()
    pool = cf.ProcessPoolExecutor(**options)
    try:
        yield pool
    except BaseException:
        end_children(keep=before)
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown(wait=True)


@contextlib.contextmanager
def children_end_when_stopped() -> Iterator[None]:
    """On Ctrl-C or SIGTERM inside the block, kill every child before anything waits on them."""
    try:
        yield
    except (KeyboardInterrupt, SystemExit):
        end_children()
        raise


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM stops the build as Ctrl-C does (main thread only; elsewhere a no-op)."""

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, interrupt)
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
