"""Shared fixtures: a tiny valid dataset written with the csv module, so tests never depend
on the real data being present."""

from __future__ import annotations

import csv
import fcntl
import os
import shutil
from collections.abc import Callable, Generator
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


@pytest.hookimpl(wrapper=True)
def pytest_collection_modifyitems(
    config: pytest.Config, items: list[pytest.Item]
) -> Generator[None]:
    """A test that calls R is an integration test (pyproject's markers say so), so the quick
    loop (`make check`: not integration, system or book) never waits for Rscript.

    Under pytest-xdist (`make test`: `-n 2 --dist loadgroup`) a test module runs on one
    worker, so its module-scoped fixtures (a built book, a fitted trial) are made once; a test
    that names its own `xdist_group` (each generated trial, the reviewer's book) runs apart
    from its module. The groups are marked before xdist reads them (its hook runs inside
    this wrapper), and its group suffix is then made to count (`_group_ids_count`)."""
    for item in items:
        if item.get_closest_marker("r") and not item.get_closest_marker("integration"):
            item.add_marker(pytest.mark.integration)
        if not item.get_closest_marker("xdist_group"):
            item.add_marker(pytest.mark.xdist_group(item.nodeid.split("::")[0]))
    if config.getoption("loadgroup", default=False):  # a worker of `make test`
        _longest_first(items)
    yield
    _group_ids_count(items)


# the markers of tests that build a book, or run a results stage or R: long groups
_RANK = {"book": 0, "system": 0, "integration": 1}


def _longest_first(items: list[pytest.Item]) -> None:
    """With `--no-loadscope-reorder` (`make test`) the workers are handed the groups in the
    order collected: groups that build a book first, then those that run a results stage or
    R, the unit tests last, so the last groups to start are short ones and one worker does
    not finish a book alone while the other idles (xdist's own order, by number of tests,
    left single-test book builds for last). Only under xdist: a run in one process keeps
    each module's tests together (its module fixtures are made once)."""

    def group(item: pytest.Item) -> str:
        mark = item.get_closest_marker("xdist_group")  # every test has one by now
        return str(mark.args[0]) if mark else ""

    rank: dict[str, int] = {}
    for item in items:
        own = min((_RANK.get(mark.name, 2) for mark in item.iter_markers()), default=2)
        rank[group(item)] = min(rank.get(group(item), 2), own)
    items.sort(key=lambda item: rank[group(item)])


def _group_ids_count(items: list[pytest.Item]) -> None:
    """pytest-xdist (3.8) puts a test in its group by writing `<id>@<group>` to the test's
    `_nodeid`, but pytest 9.2 reads a test's id from a structured `_id` instead, so the suffix
    was lost and `--dist loadgroup` sent every test apart: one module's tests ran on both
    workers and in turns with other modules', and a module-scoped book was built again each
    time (a 28-minute suite). Copy the suffixed id to where pytest reads it."""
    for item in items:
        suffixed = getattr(item, "_nodeid", None)
        if isinstance(suffixed, str) and suffixed != item.nodeid and hasattr(item, "_id"):
            from _pytest.nodeid import NodeId  # pytest ≥ 9.2 only, which is when this is needed

            item._id = NodeId.parse(suffixed)


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


def once_per_run(tmp_path_factory, name: str, make: Callable[[Path], None]) -> Path:
    """The folder `name`, made by `make` once for the whole test run: under pytest-xdist the
    first worker to ask makes it while the others wait on a lock, then every worker reads the
    same folder (the workers' own temporary folders lie inside the run's). A failure is kept
    beside it, so the other workers report it instead of making it again."""
    base = tmp_path_factory.getbasetemp()
    shared = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    folder, made, failed = (shared / f"{name}{suffix}" for suffix in ("", ".made", ".failed"))
    with (shared / f"{name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        if failed.exists():
            pytest.fail(failed.read_text(encoding="utf-8"), pytrace=False)
        if not made.exists():
            folder.mkdir()
            try:
                make(folder)
            except BaseException as err:
                failed.write_text(f"{name} failed in another worker: {err}", encoding="utf-8")
                raise
            made.touch()
    return folder


@pytest.fixture(scope="session")
def built_book(tmp_path_factory) -> Path:
    """The real book, built once per test run (whatever the number of xdist workers) from the
    bundled data into a temporary folder (never the repository's _build/), with the PDF when
    its toolchain exists. Read-only: a test that builds on it copies its cache first
    (`seeded_cache`)."""
    from calcinosis import paths
    from calcinosis.book import build
    from calcinosis.book.staging import pdf_missing
    from calcinosis.errors import BuildError

    def make(root: Path) -> None:
        try:
            build.build(
                paths.DATA_DIR,
                root / "_build",
                {},
                None,
                not pdf_missing(),
                cache_dir=root / "cache",
                echo=lambda _: None,
            )
        except BuildError as err:
            pytest.fail(f"the book does not build:\n{err}", pytrace=False)

    return once_per_run(tmp_path_factory, "book", make) / "_build"


def seeded_cache(built_book: Path, cache_dir: Path) -> Path:
    """A new build cache holding the session book's results sections and executed pages (not
    its Sphinx workspace), so that a build or supplement on the bundled data, or on data that
    differ in a few tables, recomputes only what those tables change. Every entry is keyed by
    the bytes it depends on, so what it reuses is what a clean run would make."""
    source = built_book.parent / "cache"
    for part in ("sections", "notebooks", "page-reads"):
        if (source / part).is_dir():
            shutil.copytree(source / part, cache_dir / part)
    return cache_dir


@pytest.fixture(scope="session")
def dask_scheduler():
    """A real `dask scheduler` and `dask worker` (two processes) on 127.0.0.1 running this
    checkout's code (and the test modules' tasks); ended after the tests."""
    from calcinosis.simulate.runner import separate_cluster

    root = Path(__file__).resolve().parents[1]
    with separate_cluster(2, pythonpath=[root / "src", root / "tests"]) as address:
        yield address


# Debian's Chromium, started as the project's browser tests need it on this closed network
CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(scope="module")
def browser():
    """Headless Chromium driven by Playwright (the site's and the changes page's tests)."""
    if not CHROMIUM.exists():
        pytest.skip("no /usr/bin/chromium (.ci/install-system-deps installs it)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield chromium
        chromium.close()
