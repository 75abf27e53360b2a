"""Benchmark of the planning simulation on Dask (run by `make bench`), in one run here:

1. each replicate's analysis cost, in this process: the three analyses of a trial of 16 and
   32 children (the two GEEs and the summary slope), and the summary slope alone;
2. simulated trials per second of a small grid on a local cluster of 1 and of 2 workers,
   each into an empty store of its own on a warm cluster, with the ratio the issue sets
   (≥ 1.7× from 1 to 2 workers).

    python benchmarks/bench_power.py [--replicates R]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

import numpy as np

from calcinosis import paths, power, runner, simulation
from calcinosis.data import load_trial


def _warm() -> None:
    import calcinosis.simulation  # noqa: F401  (the imports a task needs, paid once)


def analysis_cost(model: simulation.Model, children: int) -> tuple[float, float]:
    """Median seconds of (all three analyses, the summary slope alone) of one trial."""
    design = simulation.Design()
    every, summary = [], []
    for r in range(5):
        trial = simulation.simulate_trial(model, design, children, -0.02, np.random.default_rng(r))
        start = time.perf_counter()
        simulation.analyse(trial, "length_mm", "parallel")
        every.append(time.perf_counter() - start)
        start = time.perf_counter()
        simulation.analyse(trial, "length_mm", "parallel", ("summary",))
        summary.append(time.perf_counter() - start)
    return statistics.median(every), statistics.median(summary)


def rate(trial, grid: power.Grid, workers: int) -> tuple[float, float, float]:
    """(trials per second, seconds, busy workers) of the grid's tasks on a warm cluster."""
    model, pilot = simulation.fit_model(trial), power.pilot_effects(trial)
    todo = power.grid_tasks(model, grid, pilot)
    with runner.client(workers=workers) as c:
        c.run(_warm)
        with tempfile.TemporaryDirectory() as folder:
            store = runner.Store(folder)
            start = time.perf_counter()
            runner.run(todo, store, progress=False, on=c)
            seconds = time.perf_counter() - start
            busy = sum(store.seconds([t.key for t in todo]).values()) / seconds
            trials = len(store.table([t.key for t in todo]))
    return trials / seconds, seconds, busy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replicates", type=int, default=200, help="trials per cell")
    args = parser.parse_args()
    trial = load_trial(paths.DATA_DIR)
    model = simulation.fit_model(trial)
    print("## Each replicate's analysis cost (median of 5, one process)\n")
    print("| children | three analyses (s) | summary slope alone (s) |\n| ---: | ---: | ---: |")
    for children in (16, 32):
        every, summary = analysis_cost(model, children)
        print(f"| {children} | {every:.3f} | {summary:.4f} |")
    grid = power.Grid(
        children=(8, 16, 24, 40),
        scenarios=("quarter",),
        replicates=args.replicates,
        gee_replicates=10,
        gee_children_max=16,
        block=25,
        assurance_members=0,
    )
    one, t1, b1 = rate(trial, grid, 1)
    two, t2, b2 = rate(trial, grid, 2)
    cells = len(power.cells(grid, power.pilot_effects(trial)))
    print(f"\n## Simulated trials per second ({cells} cells × {args.replicates} trials, warm)\n")
    print("| configuration | seconds | trials/s | workers busy |\n| --- | ---: | ---: | ---: |")
    for name, r, t, b in (("1 worker", one, t1, b1), ("2 workers", two, t2, b2)):
        print(f"| {name} | {t:.1f} | {r:.1f} | {b:.2f} |")
    print(f"\n2 workers / 1 worker: {two / one:.2f}× (target ≥ 1.7×)")
    print(f"load average during the run (1, 5, 15 min): {os.getloadavg()}")


if __name__ == "__main__":
    main()
