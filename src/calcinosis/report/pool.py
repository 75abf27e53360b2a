"""Independent jobs of one producer run side by side: a registry's patients (a page's fits,
tables and figure each) or many figures, in worker processes when there are enough of them to
pay for starting the processes."""

from __future__ import annotations

import concurrent.futures as cf
from collections.abc import Callable
from typing import Any


def side_by_side(jobs: list[tuple[Callable[..., Any], tuple]], workers: int = 1) -> list:
    """`func(*args)` for each (func, args) job, in order: in `workers` processes when there
    are at least four jobs per process, else here, one after another."""
    if workers < 2 or len(jobs) < 4 * workers:
        return [_call(job) for job in jobs]
    with cf.ProcessPoolExecutor(workers) as pool:
        # one job at a time: a large job (Supplementary Fig. 1) holds up only its own process
        return list(pool.map(_call, jobs))


def _call(job: tuple[Callable[..., Any], tuple]) -> Any:
    func, args = job
    return func(*args)
