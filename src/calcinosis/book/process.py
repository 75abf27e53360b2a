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
import threading
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


def init_worker(log: str | None = None, runs_kernel: bool = False) -> None:
    """Agg plots; kernels' own chatter (their stderr, inherited) to a log, not the terminal;
    `runs_kernel` for a page worker (whose kernel `calcinosis.book.execute` keeps)."""
    os.environ.update(WORKER_ENV)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the build ends its workers itself
    signal.signal(signal.SIGTERM, _end_worker)  # not the build's handler, inherited by fork
    # A page worker ends its kernel when the build dies; a results worker has no kernel, and
    # a Python handler would wait for a long computation in C: it is killed outright.
    die_with_parent(signal.SIGTERM if runs_kernel else signal.SIGKILL)
    forks_die_with_this_process()  # the figures' processes of a registry's results
    import logging

    logging.getLogger("papermill").setLevel(logging.WARNING)
    if log:
        fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.dup2(fd, 2)
        os.close(fd)


def _end_worker(signum, frame) -> None:
    """A worker told to end (by the build, or because the build died) ends its kernel too."""
    end_children()
    os._exit(128 + signum)


def die_with_parent(signum: int = signal.SIGTERM) -> None:
    """Ask Linux to send this process `signum` when its parent dies (no-op elsewhere)."""
    with contextlib.suppress(OSError, AttributeError):
        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signum)


def forks_die_with_this_process() -> None:
    """Every process this one forks from now on (Sphinx's parallel readers and writers, say)
    is killed when this process dies: a parent-death signal is not inherited by a fork."""
    os.register_at_fork(after_in_child=lambda: die_with_parent(signal.SIGKILL))


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
    except BaseException as err:
        if isinstance(err, KeyboardInterrupt):
            stopping_now()
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
        stopping_now()
        end_children()
        raise


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM stops the build as Ctrl-C does (main thread only; elsewhere a no-op)."""
    try:
        previous = signal.signal(signal.SIGTERM, _stop)
    except ValueError:  # not the main thread
        yield
        return
    try:
        arm()
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


# --- Stopping at any moment ------------------------------------------------------------------
# Python raises KeyboardInterrupt wherever the main thread is, and where that is a callback
# (a weakref's, as the import system's module locks at fork) the exception is printed as
# "Exception ignored" and dropped: a Ctrl-C in the first second of a build went unheard. So a
# signal is also recorded, raised again each second until the command says it is stopping
# (`stopping_now`), and checked before anything is replaced (`stop_if_asked`).
_received: list[int] = []
_armed = threading.Event()  # the command runs: a stop is raised, not only recorded
_heard = threading.Event()
_insisting = threading.Event()


def stop_on_signals(received: list[int] | None = None) -> None:
    """Ctrl-C and SIGTERM stop the command from now on (call it first: before any fork);
    `received`, signals recorded before. Until `arm`, a signal is only recorded: the command
    line is still being read, where a KeyboardInterrupt would end in click's "Aborted!" or
    a traceback."""
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, _stop)
    _received.extend(received or [])  # after: one that came in between is not lost


def arm() -> None:
    """The command starts: a stop raises KeyboardInterrupt, at once if one came already."""
    _armed.set()
    stop_if_asked()


def _stop(signum, frame) -> None:
    _received.append(signum)
    if not _armed.is_set() or _heard.is_set():
        return  # not started, or stopping already: its clean-up is not interrupted again
    if not _insisting.is_set():
        _insisting.set()
        threading.Thread(target=_insist, args=(signum,), daemon=True).start()
    raise KeyboardInterrupt


def _insist(signum: int) -> None:
    """Raise the stop again in the main thread until the command has heard it."""
    import _thread

    while not _heard.wait(1.0):
        _thread.interrupt_main(signal.Signals(signum))


def stopping_now() -> None:
    """The command heard a stop and ends now: further signals are only recorded."""
    if _received:
        _heard.set()


def stop_if_asked() -> None:
    """KeyboardInterrupt if a stop was received, even one that some callback swallowed."""
    if _received:
        raise KeyboardInterrupt
