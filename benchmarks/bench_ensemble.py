"""Benchmark of the ensemble on Dask (run by `make bench`), in one run on this machine:

1. the cost of one member, step by step, in this process (reconstruct, validate, audit,
   analyse, and within the analysis the sensitivity grid);
2. members per second on a local cluster of 1 and of 2 worker processes, and through a
   separately started `dask scheduler` with a `dask worker` of 2 processes;

printed as Markdown with the ratios the issue sets (≥ 1.7× from 1 to 2 workers; the separate
scheduler within 10 % of the local cluster). Every configuration computes the same members
into an empty store of its own, on a cluster already started and warmed (imports done), so
the rates count members, not start-up.

    python benchmarks/bench_ensemble.py [--members M]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

from calcinosis import paths
from calcinosis.data import trial as data
from calcinosis.simulate import audit, ensemble, reconstruct, runner
from calcinosis.stats import sensitivity


def _warm() -> None:
    import calcinosis.simulate.ensemble  # noqa: F401  (the imports a member needs, paid once)


def member_cost(seeds: list[int]) -> dict[str, float]:
    """Median seconds of each step of a kept member, in this process."""
    steps: dict[str, list[float]] = {}
    for seed in seeds:
        assumptions = ensemble.member_assumptions(seed)
        with tempfile.TemporaryDirectory() as folder:
            times = {}
            start = time.perf_counter()
            try:
                reconstruct.write_dataset(Path(folder), seed, assumptions)
            except (RuntimeError, ValueError):
                continue  # a dropped member: not the cost of a kept one
            times["reconstruct"] = time.perf_counter() - start
            start = time.perf_counter()
            trial = data.load_trial(folder)
            times["validate"] = time.perf_counter() - start
            start = time.perf_counter()
            audit.claims_audit(trial, ensemble.audit_values(trial))
            times["audit"] = time.perf_counter() - start
            start = time.perf_counter()
            sensitivity.grid(trial)  # remembered per trial: the analysis below reuses it
            times["analyse: sensitivity grid"] = time.perf_counter() - start
            start = time.perf_counter()
            ensemble.conclusion_values(trial)
            times["analyse: the rest"] = time.perf_counter() - start
        for step, seconds in times.items():
            steps.setdefault(step, []).append(seconds)
    return {step: statistics.median(values) for step, values in steps.items()}


def rate(n: int, **where) -> tuple[float, float, float]:
    """(members per second, seconds, busy workers) for members 1..n on a warm cluster; busy
    is the members' own compute seconds over the wall time: how many workers were kept
    working, whatever else slows the machine down."""
    with runner.client(**where) as c:
        c.run(_warm)
        with tempfile.TemporaryDirectory() as folder:
            store, todo = runner.Store(folder), ensemble.tasks(n)
            start = time.perf_counter()
            runner.run(todo, store, progress=False, on=c)
            seconds = time.perf_counter() - start
            busy = sum(store.seconds([t.key for t in todo]).values()) / seconds
    return n / seconds, seconds, busy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=12, help="members per configuration")
    args = parser.parse_args()

    cost = member_cost([1, 2, 3])
    total = sum(cost.values())
    print("## Cost of one kept member (median of seeds 1-3, one process)\n")
    print("| step | seconds | share |\n| --- | ---: | ---: |")
    for step, seconds in cost.items():
        print(f"| {step} | {seconds:.2f} | {100 * seconds / total:.0f} % |")
    print(f"| total | {total:.2f} | |\n")

    src = paths.PACKAGE_DIR.parent  # the workers import the package from these sources
    one, t1, b1 = rate(args.members, workers=1)
    two, t2, b2 = rate(args.members, workers=2)
    with runner.separate_cluster(2, pythonpath=[src]) as address:
        ext, te, be = rate(args.members, scheduler=address)
    print(f"## Members per second ({args.members} members each, warm clusters)\n")
    print("| configuration | seconds | members/s | workers busy |\n| --- | ---: | ---: | ---: |")
    for name, r, t, b in (
        ("local cluster, 1 worker", one, t1, b1),
        ("local cluster, 2 workers", two, t2, b2),
        ("dask scheduler + dask worker (2 processes)", ext, te, be),
    ):
        print(f"| {name} | {t:.1f} | {r:.3f} | {b:.2f} |")
    print(
        f"\n2 workers / 1 worker: {two / one:.2f}× (target ≥ 1.7×); "
        f"separate scheduler / local cluster (2 workers): {ext / two:.2f} (target 0.90 or more)"
    )
    print(f"load average during the run (1, 5, 15 min): {os.getloadavg()}")


if __name__ == "__main__":
    main()
