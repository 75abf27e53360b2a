"""Benchmark of `calcinosis build` (run by `make bench`): one run, on this machine, of

1. a clean build (empty cache, new output folder),
2. a rebuild with nothing changed,
3. a rebuild after one data value changed (one caliper measurement),
4. the same pages executed serially, one by one, with plain papermill (jupytext | papermill),

printed as a Markdown table with the targets of the issue. Works on a snapshot of the
repository (src/, chapters/, book/, data/, requirements.lock) in a temporary folder, run with
PYTHONPATH pointing at it, so edits made meanwhile do not disturb it and the repository's
`_build/` and cache are not touched.

    python benchmarks/bench_build.py [--pdf] [--jobs N] [--keep]
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

from calcinosis import data, paths
from calcinosis.book import plan as pages

BIN = Path(sys.executable).parent


def run(cmd: list[str] | str, **kw) -> float:
    """Seconds the command took; stop the benchmark if it fails."""
    start = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, check=False, **kw)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"benchmark step failed: {cmd}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return seconds


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


def analysis_curve(data_dir: Path, root: Path, scales: tuple[int, ...]) -> list[tuple]:
    """Seconds of the results stage per producer at each scale, in this process."""
    from calcinosis import results
    from calcinosis.params import Parameters

    rows = []
    for scale in scales:
        trial = data.load_trial(replicate(data_dir, root / f"x{scale}", scale))
        times = {}
        for producer in results.PRODUCERS:
            if producer.derived:
                continue
            start = time.perf_counter()
            results.run(producer, trial, Parameters())
            times[producer.name] = time.perf_counter() - start
        rows.append((scale, len(trial.measurements), times))
    return rows


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
        clean = run(command, env=env)
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
        print(
            "\n| Dataset | Measurements | Clean build (s) | Results stage, serial sum (s) | "
            "Pages, sum (s) | HTML (s) | Largest process (GB) |"
        )
        print("|---|---:|---:|---:|---:|---:|---:|")
        for scale in args.scale:
            big = replicate(data_dir, root / f"data-x{scale}", scale)
            seconds = run(
                [
                    *command[:3],
                    str(big),
                    "--out",
                    str(root / f"_build-x{scale}"),
                    "--cache",
                    str(root / f"cache-x{scale}"),
                    "--no-pdf",
                ],
                env=env,
            )
            import resource

            peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1e6
            made = json.loads((root / f"_build-x{scale}" / "manifest.json").read_text())
            stage = sum(p["seconds"] for p in made["results_stage"].values())
            executed = sum(p["seconds"] for p in made["pages"])
            print(
                f"| {scale} × | {len(data.load_trial(big).measurements)} | {seconds:.1f} | "
                f"{stage:.1f} | {executed:.1f} | {made['book_seconds']['html']:.1f} | "
                f"{peak:.2f} |"
            )
        print(
            "\n| Scale | Measurements | Results stage, one process (s) | "
            "s per 1 000 measurements | Largest parts |"
        )
        print("|---|---:|---:|---:|---|")
        for scale, n, times in analysis_curve(data_dir, root / "curve", (1, 5, 20)):
            total = sum(times.values())
            top = sorted(times, key=times.get, reverse=True)[:3]
            parts = ", ".join(f"{name} {times[name]:.1f}" for name in top)
            print(f"| {scale} × | {n} | {total:.1f} | {1000 * total / n:.2f} | {parts} |")
    if not args.keep:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
