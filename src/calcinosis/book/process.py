"""How the build's child processes run: the kernel name, the environment they get, and the
initialiser of worker processes (kept apart so every part of the build can use them)."""

from __future__ import annotations

import os
from collections.abc import Callable

KERNEL = "python3"
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
    import logging

    logging.getLogger("papermill").setLevel(logging.WARNING)
    if log:
        fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.dup2(fd, 2)
        os.close(fd)
    if warm_kernel:
        from calcinosis.book.execute import keep_warm_kernel

        keep_warm_kernel()
