"""Benchmark of `calcinosis build` (run by `make bench`): one run, on this machine, of

1. a clean build (empty cache, new output folder),
2. a rebuild with nothing changed,
3. a rebuild after one data value changed (one caliper measurement),
4. the same pages executed serially, one by one, with plain papermill (jupytext | papermill),

printed as a Markdown table with the targets of the issue; with `--scale 20 100`, clean
builds of the dataset copied 20 and 100 times beside the 1 × one (seconds, where the time
went, the largest process's memory, the load average), and the results stage's curve at 1, 5,
20 and 100 × with its largest parts: the README's performance tables. Works on a snapshot of the
repository (src/, chapters/, book/, data/, requirements.lock) in a temporary folder, run with
PYTHONPATH pointing at it, so edits made meanwhile do not disturb it and the repository's
`_build/` and cache are not touched.

    python benchmarks/bench_build.py [--pdf] [--jobs N] [--keep] [--scale 20 100 [--scale-only]]
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from calcinosis import paths
from calcinosis.book import plan as pages
from calcinosis.data import trial as data

BIN = Path(sys.executable).parent


def run(cmd: list[str] | str, **kw) -> float:
    """Seconds the command took; stop the benchmark if it fails."""
    return measured(cmd, **kw)[0]


def measured(cmd: list[str] | str, **kw) -> tuple[float, float, str]:
    """Seconds the command took, the peak memory (GB, resident) of the largest process it
    ran, itself or any of its children, and its output; stop the benchmark if it fails."""
    start = time.perf_counter()
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        child = subprocess.Popen(cmd, stdout=out, stderr=err, text=True, **kw)
        # wait4's usage covers the child and the descendants it waited for: the maximum
        # resident set of any one process of the command
        _, status, usage = os.wait4(child.pid, 0)
        child.returncode = os.waitstatus_to_exitcode(status)
        seconds = time.perf_counter() - start
        if child.returncode != 0:
            out.seek(0)
            err.seek(0)
            sys.exit(f"benchmark step failed: {cmd}\n{out.read()[-3000:]}\n{err.read()[-3000:]}")
        out.seek(0)
        return seconds, usage.ru_maxrss / 1e6, out.read()  # ru_maxrss: KB on Linux


def load() -> str:
    """The machine's 1-minute load average, to read beside a time (the machine is shared)."""
    return f"{os.getloadavg()[0]:.1f}"


def add_adverse_event(data_dir: Path) -> str:
    """Record one adverse event: only what shows safety results should be made again."""
    with (data_dir / "adverse_events.csv").open("a", encoding="utf-8") as handle:
        handle.write("P1,3,injection-site pain,mild,yes\n")
    return "one adverse event added"


def papermill_command(chapter: Path, page: str, data_dir: Path, extra: dict) -> str:
    """The plain pipeline a reviewer would type: jupytext converts, papermill executes."""
    args = " ".join(
        f"-p {k} {shlex.quote(str(v))}" for k, v in {"data_dir": data_dir, **extra}.items()
    )
    return (
        f"jupytext --to ipynb --output - {shlex.quote(str(chapter))} | "
        f"papermill - {shlex.quote(page)}.ipynb -k python3 {args}"
    )


def snapshot(root: Path) -> Path:
    """Copy what a build reads into `root/repo`; its package is the one the runs import."""
    repo = root / "repo"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "_build", "examples", ".*")
    for name in ["src", "chapters", "book", "data"]:
        shutil.copytree(paths.ROOT / name, repo / name, ignore=ignore)
    shutil.copyfile(paths.ROOT / "requirements.lock", repo / "requirements.lock")
    return repo


def serial_papermill(repo: Path, work: Path, env: dict) -> tuple[float, int]:
    """Every page executed one after the other with the plain shell pipeline."""
    data_dir = repo / "data"
    trial = data.load_trial(data_dir)
    work.mkdir()
    total, n = 0.0, 0
    for chapter in pages.read_chapters(repo / "chapters"):
        if chapter.static:
            continue
        runs = (
            [{"patient_id": str(p)} for p in trial.patients["patient_id"]]
            if chapter.name == pages.TEMPLATE
            else [{}]
        )
        for extra in runs:
            page = chapter.name + (f"-{extra['patient_id']}" if extra else "")
            command = papermill_command(chapter.path, page, data_dir, extra)
            total += run(command, shell=True, cwd=work, env=env, executable="/bin/bash")
            n += 1
    return total, n


def replicate(data_dir: Path, dest: Path, copies: int) -> Path:
    """`copies` copies of the dataset with new ids (P1..P5, P6..P10, ...): a registry-sized
    dataset with the bundled one's properties."""
    import pandas as pd

    dest.mkdir(parents=True)
    tables = {
        name: pd.read_csv(data_dir / f"{name}.csv", dtype=str, keep_default_na=False)
        for name in ("patients", "lesions", "measurements", "radiography", "adverse_events")
    }
    n = len(tables["patients"])
    number = {pid: i for i, pid in enumerate(tables["patients"]["patient_id"])}
    out = {name: [] for name in tables}
    for copy in range(copies):

        def pid(old: str, copy: int = copy) -> str:
            return f"P{copy * n + number[old] + 1}"

        def lid(old: str, copy: int = copy) -> str:
            patient, _, lesion = old.partition("-")
            return f"{pid(patient)}-{lesion}"

        for name, frame in tables.items():
            frame = frame.copy()
            if "patient_id" in frame:
                frame["patient_id"] = frame["patient_id"].map(pid)
            if "lesion_id" in frame:
                frame["lesion_id"] = frame["lesion_id"].map(lid)
            out[name].append(frame)
    for name, frames in out.items():
        pd.concat(frames).to_csv(dest / f"{name}.csv", index=False, lineterminator="\n")
    return dest


STAGE_ONLY = """
import json, sys, time
from pathlib import Path
from calcinosis.book import cache
from calcinosis.book.results_stage import run_stage
from calcinosis.params import Parameters
run = run_stage(Path(sys.argv[1]), Parameters(), cache.Store(Path(sys.argv[2])), lambda line: None,
                workers=int(sys.argv[3]))
print(json.dumps({"producers": run.producers, "seconds": run.seconds}))
"""


def stage_alone(data_dir: Path, cache_dir: Path, jobs: int, env: dict) -> tuple[dict, float, float]:
    """The results stage as a build runs it (empty cache, `jobs` processes, HTML only),
    without the pages: {producer: record}, its wall seconds and the largest process's memory
    (GB)."""
    _, peak, out = measured(
        [sys.executable, "-c", STAGE_ONLY, str(data_dir), str(cache_dir), str(jobs)], env=env
    )
    made = json.loads(out.strip().splitlines()[-1])
    return made["producers"], made["seconds"], peak


def stage_seconds(made: dict) -> float:
    """A build's results stage, wall time (its producers run side by side: their seconds
    overlap), or their sum from a manifest older than the wall time's record."""
    return made.get("results_stage_seconds") or sum(
        p["seconds"] for p in made["results_stage"].values()
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pdf", action="store_true", help="include the PDF in the builds")
    parser.add_argument("--jobs", type=int, default=None, help="passed to calcinosis build")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    parser.add_argument(
        "--scale",
        type=int,
        nargs="*",
        default=[],
        help="also a clean build on the dataset copied this many times",
    )
    parser.add_argument(
        "--scale-only", action="store_true", help="only the --scale builds and the curve"
    )
    parser.add_argument(
        "--curve",
        type=int,
        nargs="*",
        default=[1, 5, 20, 100],
        help="with --scale: the results stage at these scales (from the builds where made)",
    )
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="calcinosis-bench-"))
    repo = snapshot(root)
    env = {
        **os.environ,
        "PYTHONPATH": str(repo / "src"),
        "MPLBACKEND": "Agg",
        "PYDEVD_DISABLE_FILE_VALIDATION": "1",
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    data_dir, out, cache_dir = repo / "data", repo / "_build", root / "cache"
    command = [
        str(BIN / "calcinosis"),
        "build",
        "--data",
        str(data_dir),
        "--out",
        str(out),
        "--cache",
        str(cache_dir),
        "--pdf" if args.pdf else "--no-pdf",
    ]
    if args.jobs:
        command += ["--jobs", str(args.jobs)]
    print(f"benchmark in {root} ({os.cpu_count()} cores)", file=sys.stderr)

    if not args.scale_only:
        load_before = load()
        clean, clean_peak, _ = measured(command, env=env)
        one = (
            clean,
            clean_peak,
            json.loads((out / "manifest.json").read_text()),
            load_before,
            load(),
        )
        print(f"clean build: {clean:.1f} s", file=sys.stderr)
        pages = json.loads((out / "manifest.json").read_text())["pages"]
        before = (out / "results.json").read_text()
        no_change = run(command, env=env)
        print(f"no-change rebuild: {no_change:.1f} s", file=sys.stderr)
        changed = add_adverse_event(data_dir)
        one_value = run(command, env=env)
        print(f"one adverse event added: {one_value:.1f} s", file=sys.stderr)
        after = json.loads((out / "manifest.json").read_text())
        reexecuted = sum(not p["cached"] for p in after["pages"])
        results_moved = before != (out / "results.json").read_text()
        serial, n_serial = serial_papermill(repo, root / "serial", env)

        def row(step: str, seconds: float, note: str) -> str:
            return f"| {step} | {seconds:.1f} | {seconds / serial:.2f} | {note} |"

        print(
            f"Measured {time.strftime('%Y-%m-%d')} on {os.cpu_count()} cores, "
            f"{len(pages)} pages{' + PDF' if args.pdf else ''} "
            f"(seconds; ratio to the serial papermill sum).\n"
        )
        print("| Step | Seconds | × serial | Note |")
        print("|---|---:|---:|---|")
        print(
            row(
                "clean build (empty cache)",
                clean,
                f"target ≤ 0.35 × serial: {'met' if clean <= 0.35 * serial else 'NOT met'}",
            )
        )
        ok = no_change <= 0.03 * clean
        print(
            row(
                "no-change rebuild",
                no_change,
                f"{no_change / clean:.1%} of clean; target ≤ 3 %: {'met' if ok else 'NOT met'}",
            )
        )
        print(
            row(
                "one adverse event added",
                one_value,
                f"{changed}: {one_value / clean:.2f} × clean (target ≤ 0.3: "
                f"{'met' if one_value <= 0.3 * clean else 'NOT met'}); {reexecuted} of "
                f"{len(pages)} pages re-executed, results.json "
                f"{'changed' if results_moved else 'UNCHANGED'}",
            )
        )
        print(
            row(
                f"serial papermill, {n_serial} pages one by one",
                serial,
                "jupytext, then papermill, per page; no book build",
            )
        )
    if args.scale:
        # the clean build above is the 1 × one, unless it made the PDF
        first = None if args.scale_only or args.pdf else one
        scale_builds(args, command, data_dir, root, env, first)
    if not args.keep:
        shutil.rmtree(root, ignore_errors=True)


def scale_builds(args, command: list[str], data_dir: Path, root: Path, env: dict, one) -> None:
    """Clean builds at 1 × (the one above, if made) and at each `--scale`, HTML only, then the
    results stage's curve (`--curve`: 1, 5, 20 and 100 ×) read from those builds, or, at a
    scale not built, the stage alone, run as a build runs it; printed as the README's tables."""
    jobs = args.jobs or os.cpu_count() or 1
    builds = {}  # scale: (seconds, peak GB, manifest, load before, load after)
    alone = {}  # scale: (producers' records, wall seconds, peak GB): the curve's points not built
    if one is not None:
        builds[1] = one
    built = {1, *args.scale}
    for scale in sorted(built | set(args.curve)):  # smallest first: a stopped run says most
        big = data_dir if scale == 1 else replicate(data_dir, root / f"data-x{scale}", scale)
        before = load()
        if scale in builds:
            made = builds[scale][2]
            producers, seconds, peak = made["results_stage"], builds[scale][0], None
            stage = stage_seconds(made)
        elif scale in built:
            out = root / f"_build-x{scale}"
            seconds, peak, _ = measured(
                [
                    *command[:3],
                    str(big),
                    "--out",
                    str(out),
                    "--cache",
                    str(root / f"cache-x{scale}"),
                ]
                # --large: 100 x holds 1 800 lesions, above the default limit
                # (calcinosis.data.limits)
                + ["--no-pdf", "--jobs", str(jobs), "--large"],
                env=env,
            )
            made = json.loads((out / "manifest.json").read_text())
            builds[scale] = (seconds, peak, made, before, load())
            producers, stage = made["results_stage"], stage_seconds(made)
        else:
            producers, stage, peak = stage_alone(big, root / f"stage-x{scale}", jobs, env)
            alone[scale] = (producers, stage, peak)
            seconds = stage
        times = {name: p["seconds"] for name, p in producers.items()}
        top = ", ".join(f"{n} {times[n]:.1f}" for n in sorted(times, key=times.get)[::-1][:4])
        print(
            f"{scale} ×: {'clean build' if scale in builds else 'results stage'} {seconds:.1f} s"
            f"{'' if peak is None else f', {peak:.2f} GB'}, load {before} → {load()}; "
            f"results stage {stage:.1f} s: {top}",
            file=sys.stderr,
        )
    base = builds[1][0]
    print(
        f"\nMeasured {time.strftime('%Y-%m-%d %H:%M')} UTC, one run, {os.cpu_count()} cores, "
        f"HTML only, `--jobs {jobs}`; load average (1 min) before and after each build.\n"
    )
    print(
        "| Clean build | Patients | Measurements | Seconds | × 1 × | Results stage (s) | "
        "Pages, sum (s) | HTML (s) | Largest process (GB) | Load |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    stages = {}
    for scale, (seconds, peak, made, before, after) in sorted(builds.items()):
        trial = data.load_trial(data_dir if scale == 1 else root / f"data-x{scale}")
        stage = stage_seconds(made)
        stages[scale] = (len(trial.measurements), made["results_stage"], stage, peak)
        executed = sum(p.get("seconds", 0.0) for p in made["pages"])
        print(
            f"| {scale} × | {len(trial.patients)} | {len(trial.measurements)} | {seconds:.1f} | "
            f"{seconds / base:.2f} | {stage:.1f} | {executed:.1f} | "
            f"{made['book_seconds']['html']:.1f} | {peak:.2f} | {before} → {after} |"
        )
    print()
    for scale, limit, what in ((20, 2.5 * base, "≤ 2.5 × the 1 × build"), (100, 300.0, "≤ 300 s")):
        if scale in builds:
            ok = builds[scale][0] <= limit
            print(f"- {scale} × clean build {what}: {'met' if ok else 'NOT met'}")
    heaviest = max(peak for _, peak, *_ in builds.values())
    print(f"- largest process ≤ 2 GB: {'met' if heaviest <= 2.0 else 'NOT met'} ({heaviest:.2f})")

    for scale, (producers, stage, peak) in alone.items():
        n = len(data.load_trial(root / f"data-x{scale}").measurements)
        stages[scale] = (n, producers, stage, peak)
    print(
        "\n| Results stage | Measurements | Seconds (wall) | s per 1 000 measurements | "
        "Largest parts (s, each its own: the patients' beside the rest) | Largest process (GB) |"
    )
    print("|---|---:|---:|---:|---|---:|")
    per_1000 = {}
    for scale, (n, producers, total, peak) in sorted(stages.items()):
        if scale not in args.curve:
            continue
        times = {name: p["seconds"] for name, p in producers.items()}
        per_1000[scale] = 1000 * total / n
        top = sorted(times, key=times.get, reverse=True)[:3]
        parts = ", ".join(f"{name} {times[name]:.1f}" for name in top)
        print(f"| {scale} × | {n} | {total:.1f} | {per_1000[scale]:.2f} | {parts} | {peak:.2f} |")
    if 5 in per_1000 and 100 in per_1000:
        ok = per_1000[100] <= per_1000[5]
        print(
            f"\n- seconds per 1 000 measurements not rising from 5 × to 100 ×: "
            f"{'met' if ok else 'NOT met'} ({per_1000[5]:.2f} → {per_1000[100]:.2f})"
        )


if __name__ == "__main__":
    main()
