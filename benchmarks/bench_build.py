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
import csv
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from calcinosis import data, pages, paths, review

BIN = Path(sys.executable).parent


def run(cmd: list[str] | str, **kw) -> float:
    """Seconds the command took; stop the benchmark if it fails."""
    start = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, check=False, **kw)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"benchmark step failed: {cmd}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return seconds


def change_one_value(data_dir: Path) -> str:
    """Add 0.5 mm to the length at the last visit of the first lesion; say what changed."""
    path = data_dir / "measurements.csv"
    rows = list(csv.reader(io.StringIO(path.read_text(encoding="utf-8"))))
    header, body = rows[0], rows[1:]
    lesion, col = body[0][0], header.index("length_mm")
    last = max(i for i, r in enumerate(body) if r[0] == lesion and r[col])
    old = body[last][col]
    body[last][col] = f"{float(old) + 0.5:g}"
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows([header, *body])
    path.write_text(out.getvalue(), encoding="utf-8")
    return f"{lesion} visit {body[last][1]}: length {old} -> {body[last][col]} mm"


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
        runs = ([{"patient_id": str(p)} for p in trial.patients["patient_id"]]
                if chapter.name == pages.TEMPLATE else [{}])
        for extra in runs:
            page = chapter.name + (f"-{extra['patient_id']}" if extra else "")
            command = review.papermill_command(chapter.name, page, data_dir, extra,
                                               repo / "chapters", cwd=work)
            total += run(command, shell=True, cwd=work, env=env, executable="/bin/bash")
            n += 1
    return total, n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pdf", action="store_true", help="include the PDF in the builds")
    parser.add_argument("--jobs", type=int, default=None, help="passed to calcinosis build")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="calcinosis-bench-"))
    repo = snapshot(root)
    env = {**os.environ, "PYTHONPATH": str(repo / "src"), "MPLBACKEND": "Agg",
           "PYDEVD_DISABLE_FILE_VALIDATION": "1",
           "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    data_dir, out, cache_dir = repo / "data", repo / "_build", root / "cache"
    command = [str(BIN / "calcinosis"), "build", "--data", str(data_dir), "--out", str(out),
               "--cache", str(cache_dir), "--pdf" if args.pdf else "--no-pdf"]
    if args.jobs:
        command += ["--jobs", str(args.jobs)]
    print(f"benchmark in {root} ({os.cpu_count()} cores)", file=sys.stderr)

    clean = run(command, env=env)
    print(f"clean build: {clean:.1f} s", file=sys.stderr)
    pages = json.loads((out / "manifest.json").read_text())["pages"]
    before = (out / "results.json").read_text()
    no_change = run(command, env=env)
    print(f"no-change rebuild: {no_change:.1f} s", file=sys.stderr)
    changed = change_one_value(data_dir)
    one_value = run(command, env=env)
    print(f"one value changed: {one_value:.1f} s", file=sys.stderr)
    after = json.loads((out / "manifest.json").read_text())
    reexecuted = sum(not p["cached"] for p in after["pages"])
    results_moved = before != (out / "results.json").read_text()
    serial, n_serial = serial_papermill(repo, root / "serial", env)

    def row(step: str, seconds: float, note: str) -> str:
        return f"| {step} | {seconds:.1f} | {seconds / serial:.2f} | {note} |"

    print(f"Measured {time.strftime('%Y-%m-%d')} on {os.cpu_count()} cores, "
          f"{len(pages)} pages{' + PDF' if args.pdf else ''} "
          f"(seconds; ratio to the serial papermill sum).\n")
    print("| Step | Seconds | × serial | Note |")
    print("|---|---:|---:|---|")
    print(row("clean build (empty cache)", clean,
              f"target ≤ 0.60 × serial: {'met' if clean <= 0.6 * serial else 'NOT met'}"))
    ok = no_change <= 2 or no_change <= 0.05 * clean
    print(row("no-change rebuild", no_change,
              f"{no_change / clean:.1%} of clean; target ≤ 2 s or ≤ 5 %: "
              f"{'met' if ok else 'NOT met'}"))
    print(row("one data value changed", one_value,
              f"{changed}; {reexecuted} of {len(pages)} pages re-executed, results.json "
              f"{'changed' if results_moved else 'UNCHANGED'}"))
    print(row(f"serial papermill, {n_serial} pages one by one", serial,
              "jupytext, then papermill, per page; no book build"))
    if not args.keep:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
