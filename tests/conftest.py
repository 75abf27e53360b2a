"""Shared fixtures: a tiny valid dataset written with the csv module, so tests never depend
on the real data being present."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

TINY_DATASET: dict[str, list[list[object]]] = {
    "patients": [
        ["patient_id", "sex", "age_years", "disease_duration_months"],
        ["P1", "F", 9, 40],
        ["P2", "M", 12.5, 70],
    ],
    "lesions": [
        ["lesion_id", "patient_id", "site", "baseline_area_cm2", "dose_mg"],
        ["P1-L1", "P1", "elbow", 2.5, 10],
        ["P1-L2", "P1", "knee", 1.2, 10],
        ["P2-L1", "P2", "thigh", 4.0, 20],
    ],
    "measurements": [
        ["lesion_id", "visit", "length_mm", "width_mm", "dose_mg"],
        ["P1-L1", 1, 20, 15, 10],
        ["P1-L1", 2, 18, 14, 10],
        ["P1-L1", 3, 15, 12, 10],
        ["P1-L2", 1, 12, 10, 10],
        ["P1-L2", 2, "", "", 10],
        ["P1-L2", 3, 0, 0, 10],
        ["P2-L1", 1, 25, 18, 20],
        ["P2-L1", 2, 24, 19, 20],
        ["P2-L1", 3, 22, 17, 20],
    ],
    "radiography": [
        ["lesion_id", "timepoint", "length_mm", "width_mm"],
        ["P1-L1", "baseline", 21, 16],
        ["P1-L1", "final", 14, 11],
        ["P1-L2", "baseline", 13, 10],
        ["P1-L2", "final", 0, 0],
        ["P2-L1", "baseline", 26, 19],
        ["P2-L1", "final", 21, 16],
    ],
    "adverse_events": [
        ["patient_id", "visit", "event", "severity", "related_to_treatment"],
    ],
}


def write_csv(path: Path, rows: list[list[object]]) -> None:
    """Write rows as a UTF-8 CSV file."""
    with path.open("w", encoding="utf-8", newline="") as handle:
        csv.writer(handle, lineterminator="\n").writerows(rows)


def write_tiny_dataset(data_dir: Path) -> Path:
    data_dir.mkdir(parents=True)
    for name, rows in TINY_DATASET.items():
        write_csv(data_dir / f"{name}.csv", rows)
    return data_dir


@pytest.fixture
def tiny_dataset(tmp_path: Path) -> Path:
    """A small valid dataset: 2 patients, 3 lesions, 3 visits, header-only adverse events."""
    return write_tiny_dataset(tmp_path / "data")


@pytest.fixture(scope="module")
def tiny_dataset_module(tmp_path_factory) -> Path:
    """The tiny dataset, once per test module (copy it before changing it)."""
    return write_tiny_dataset(tmp_path_factory.mktemp("tiny-data") / "data")


@pytest.fixture(scope="session")
def built_book(tmp_path_factory) -> Path:
    """The real book, built once per session from the bundled data into a temporary folder
    (never the repository's _build/), with the PDF when its toolchain exists."""
    from calcinosis import paths
    from calcinosis.book import build
    from calcinosis.book.staging import pdf_missing
    from calcinosis.errors import BuildError

    root = tmp_path_factory.mktemp("book")
    pdf = not pdf_missing()
    try:
        build.build(
            paths.DATA_DIR,
            root / "_build",
            {},
            None,
            pdf,
            cache_dir=root / "cache",
            echo=lambda _: None,
        )
    except BuildError as err:
        pytest.fail(f"the book does not build:\n{err}", pytrace=False)
    return root / "_build"


@pytest.fixture(scope="session")
def dask_scheduler():
    """A real `dask scheduler` and `dask worker` (two single-threaded processes) on 127.0.0.1,
    started from the venv's `dask` command with this checkout's code; ended after the tests."""
    import os
    import socket
    import subprocess
    import sys

    from distributed import Client

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root / "src"), str(root / "tests")])}
    dask = str(Path(sys.executable).parent / "dask")
    address = f"tcp://127.0.0.1:{port}"
    commands = [
        [dask, "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"],
        [
            dask,
            "worker",
            address,
            "--nworkers",
            "2",
            "--nthreads",
            "1",
            "--host",
            "127.0.0.1",
            "--no-dashboard",
        ],
    ]
    procs = [
        subprocess.Popen(
            c, env=env, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        for c in commands
    ]
    try:
        with Client(address, timeout="60s") as client:
            client.wait_for_workers(2, timeout=120)
        yield address
    finally:
        for proc in reversed(procs):
            os.killpg(proc.pid, 15)
        for proc in procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, 9)
                proc.wait()
