"""Benchmark of the planning simulation on Dask (run by `make bench`), in one run here:

1. each replicate's analysis cost, in this process, per analysis, at 16, 64 and 120
   children, beside the patient-clustered GEE by the book's own statsmodels route (what a
   replicate cost before `calcinosis.stats.arraygee`) and the mixed model by the book's
   `calcinosis.stats.mixed` route (a general optimiser, the time-only model it fits);
2. simulated trials per second of a small grid on a local cluster of 1 and of 2 workers,
   with the ratio the issue sets (≥ 1.7× from 1 to 2 workers).

Why the ratio used to swing (3.24× one run, 0.93× the next): the grid's tasks were uneven
(the statsmodels GEEs ran on the first replicates of the small cells only, so a few tasks
held most of the work and the last one left a worker idle), and the two configurations ran
once each, minutes apart, on a machine that others load. Here every task holds the same
analyses of the same number of trials (blocks of `--block`, many per worker), each
configuration runs twice, interleaved (1, 2, 2, 1 workers) on a warm cluster, and the ratio
is of the better rate of each; the load average is printed beside it.

    OPENBLAS_NUM_THREADS=1 python benchmarks/bench_power.py [--replicates R] [--block B]

One BLAS thread, as the run's Dask workers have it (distributed's pre-spawn-environ): with
BLAS's threads the mixed model's small products cost up to 10× more on a loaded machine.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

import numpy as np
import pandas as pd

from calcinosis import paths
from calcinosis.data.trial import load_trial
from calcinosis.simulate import power, runner, simulation
from calcinosis.stats import mixed, models

SIZES = (16, 64, 120)


def _warm() -> None:
    import calcinosis.simulate.simulation  # noqa: F401  (the imports a task needs, paid once)


def _statsmodels_gee(trial: pd.DataFrame) -> models.TermTest:
    """The patient-clustered GEE by `models` (statsmodels and the book's CR2)."""
    frame = trial.sort_values(["patient_id", "visit"], kind="mergesort").reset_index(drop=True)
    time_ = frame["visit"] - 1.0
    covariates = pd.DataFrame(
        {"arm": frame["arm"], "time": time_, "arm × time": frame["arm"] * time_}
    )
    result, _ = models.fit_design(
        frame,
        "length_mm",
        covariates,
        "patient_id",
        cov_struct="exchangeable",
        family="gaussian_log",
    )
    return models.term_test(result, "arm × time", "bias_reduced")


def _book_mixed(trial: pd.DataFrame) -> None:
    """The random-slope model by `mixed.fit_random_slopes` (time only: it has no arm term,
    so this is a lower bound of what the arm model would cost it)."""
    mixed.fit_random_slopes(
        pd.DataFrame(
            {
                "patient_id": trial["patient_id"],
                "lesion_id": trial["lesion_id"],
                "time": trial["visit"] - 1.0,
                "y": np.log1p(trial["length_mm"]),
            }
        )
    )


def analysis_costs(trial_data, children: int) -> dict[str, float]:
    """Median seconds per trial of each analysis, and of the statsmodels route."""
    model = simulation.fit_model(trial_data)
    pilot = power.pilot_effects(trial_data)
    control, effect = power.slopes(pilot, "quarter", "pilot")
    width = power.slopes(pilot, "quarter", "pilot", simulation.SECOND)
    design = power.Grid().design("parallel")
    names = (*simulation.ANALYSES, "statsmodels", "mixed.py")
    times: dict[str, list[float]] = {name: [] for name in names}
    for r in range(5):
        rng = np.random.default_rng(r)
        trial = simulation.simulate_trial(model, design, children, effect, rng, control, width)
        for name in simulation.ANALYSES:
            start = time.perf_counter()
            simulation.analyse(trial, "length_mm", "parallel", (name,))
            times[name].append(time.perf_counter() - start)
        start = time.perf_counter()
        try:
            _statsmodels_gee(trial)
        except (models.NotEstimableError, np.linalg.LinAlgError):
            pass  # a failed fit (the analysis counts it apart) costs its time all the same
        times["statsmodels"].append(time.perf_counter() - start)
        start = time.perf_counter()
        try:
            _book_mixed(trial)
        except models.NotEstimableError:
            pass
        times["mixed.py"].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def rate(todo: list[runner.Task], client) -> tuple[float, float, float]:
    """(trials per second, seconds, busy workers) of the tasks, into an empty store."""
    with tempfile.TemporaryDirectory() as folder:
        store = runner.Store(folder)
        start = time.perf_counter()
        runner.run(todo, store, progress=False, on=client)
        seconds = time.perf_counter() - start
        busy = sum(store.seconds([t.key for t in todo]).values()) / seconds
        trials = len(store.table([t.key for t in todo]))
    return trials / seconds, seconds, busy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replicates", type=int, default=100, help="trials per cell")
    parser.add_argument("--block", type=int, default=25, help="trials per task")
    args = parser.parse_args()
    trial = load_trial(paths.DATA_DIR)
    print("## Each replicate's analysis cost (ms, median of 5 trials, one process)\n")
    names = (*simulation.ANALYSES, "statsmodels", "mixed.py")
    others = [n for n in simulation.ANALYSES if n != simulation.MIXED]
    ratios = "statsmodels / gee_patient | mixed.py / mixed | mixed / the others"
    print("| children | " + " | ".join(names) + f" | {ratios} |")
    print("| ---: " * (len(names) + 4) + "|")
    for children in SIZES:
        cost = analysis_costs(trial, children)
        cells = " | ".join(f"{1000 * cost[n]:.1f}" for n in names)
        rest = sum(cost[n] for n in others)
        print(
            f"| {children} | {cells} | {cost['statsmodels'] / cost['gee_patient']:.1f} | "
            f"{cost['mixed.py'] / cost['mixed']:.1f} | {cost['mixed'] / rest:.2f} |"
        )
    print(f"\nload average (1, 5, 15 min): {os.getloadavg()}")
    grid = power.Grid(
        children=(8, 16, 24, 40),
        scenarios=("quarter",),
        effects=("zero", "pilot"),
        replicates=args.replicates,
        gee_replicates=args.replicates,
        lesion_gee_replicates=args.replicates,
        block=args.block,
        assurance_members=0,
    )
    model, pilot = simulation.fit_model(trial), power.pilot_effects(trial)
    todo = power.grid_tasks(model, grid, pilot)
    measured: dict[int, list[tuple[float, float, float]]] = {1: [], 2: []}
    for workers in (1, 2, 2, 1):
        with runner.client(workers=workers) as c:
            c.run(_warm)
            measured[workers].append(rate(todo, c))
    cells = len(power.cells(grid, pilot))
    print(
        f"\n## Simulated trials per second ({cells} cells × {args.replicates} trials, "
        f"{len(todo)} tasks of {args.block}, every analysis, warm, 1-2-2-1 workers)\n"
    )
    print("| configuration | seconds | trials/s | workers busy |\n| --- | ---: | ---: | ---: |")
    for workers, runs in measured.items():
        for r, t, b in runs:
            print(f"| {workers} worker{'s' if workers > 1 else ''} | {t:.1f} | {r:.1f} | {b:.2f} |")
    best = {w: max(r for r, _, _ in runs) for w, runs in measured.items()}
    print(f"\n2 workers / 1 worker (better of two each): {best[2] / best[1]:.2f}× (target ≥ 1.7×)")
    print(f"load average at the end (1, 5, 15 min): {os.getloadavg()}")


if __name__ == "__main__":
    main()
