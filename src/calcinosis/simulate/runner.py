"""Run many independent, keyed tasks on Dask, keeping each result as soon as it is done.

A task is a stable key, a function and its arguments; the function returns table rows (a
list of dicts) and must depend on nothing but its arguments (seed included), so its result
does not depend on which worker ran it or when. Each finished result is written at once to
`<store>/<key>.json` (write to a temporary file, then rename: a reader never sees half a
result), so a stopped run resumes where it stopped and a larger run reuses a smaller one.
The table is read back from the store in key order, so it is the same whatever the number
of workers. Timings go beside the rows, never into them.

By default the tasks run on a local cluster of one single-threaded process per core; given a
scheduler's address they run on that cluster instead (`dask scheduler` / `dask worker`),
with the same code. The workers must be able to import the task functions.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

Rows = list[dict[str, Any]]
_KEY = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


@dataclass(frozen=True)
class Task:
    """One unit of work: `func(*args)` returns rows; `key` names its result file."""

    key: str
    func: Callable[..., Rows]
    args: tuple = ()

    def __post_init__(self) -> None:
        if not _KEY.fullmatch(self.key):
            raise ValueError(f"task key {self.key!r}: use letters, digits, '.', '_' and '-'")


class TaskError(RuntimeError):
    """Some tasks raised; the others' results are stored. `failures` maps key to message."""

    def __init__(self, failures: dict[str, str]) -> None:
        self.failures = failures
        first = next(iter(failures.items()))
        super().__init__(f"{len(failures)} task(s) failed; {first[0]}: {first[1]}")


@dataclass
class Report:
    """What a run did: tasks computed now, tasks found done, wall time, workers used."""

    computed: list[str] = field(default_factory=list)
    reused: list[str] = field(default_factory=list)
    seconds: float = 0.0
    workers: int = 0


class Store:
    """One JSON file per task key in `folder`: {"key", "rows", "seconds", "worker"}."""

    def __init__(self, folder: Path | str) -> None:
        self.folder = Path(folder)

    def path(self, key: str) -> Path:
        return self.folder / f"{key}.json"

    def has(self, key: str) -> bool:
        return self.path(key).is_file()

    def put(self, key: str, rows: Rows, seconds: float, worker: str) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        record = {"key": key, "rows": rows, "seconds": seconds, "worker": worker}
        tmp = self.folder / f".{key}.{os.getpid()}.tmp"
        text = json.dumps(record, sort_keys=True, default=_plain)
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, self.path(key))

    def get(self, key: str) -> dict:
        return json.loads(self.path(key).read_text(encoding="utf-8"))

    def table(self, keys: Sequence[str]) -> pd.DataFrame:
        """The rows of `keys`, in key order (the same whatever ran them)."""
        rows = [row for key in sorted(keys) for row in self.get(key)["rows"]]
        return pd.DataFrame(rows)

    def seconds(self, keys: Sequence[str]) -> dict[str, float]:
        """Each task's compute time, as measured on its worker."""
        return {key: float(self.get(key)["seconds"]) for key in sorted(keys)}


def _plain(value: Any) -> Any:
    """numpy scalars as Python numbers (JSON keeps every float's digits)."""
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"a task returned {type(value).__name__}, which a result file cannot hold")


def _timed(func: Callable[..., Rows], args: tuple) -> tuple[Rows, float, str]:
    """Run on a worker: the rows, the seconds they took and the worker's address."""
    from distributed import get_worker

    start = time.perf_counter()
    rows = func(*args)
    seconds = time.perf_counter() - start
    try:
        worker = get_worker().address
    except ValueError:
        worker = ""
    return rows, seconds, worker


@contextmanager
def client(scheduler: str | None = None, workers: int | None = None) -> Iterator[Any]:
    """A Dask client: on the cluster at `scheduler`, or on a local cluster of `workers`
    single-threaded processes (default: one per core). Leaving it ends a local cluster's
    processes."""
    from distributed import Client, LocalCluster

    if scheduler:
        with Client(scheduler, timeout="30s") as c:
            yield c
        return
    n = workers or os.cpu_count() or 1
    with (
        LocalCluster(
            n_workers=n,
            threads_per_worker=1,
            processes=True,
            # the scheduler's web routes on a free local port (None would still take 8787,
            # which another cluster on the machine may hold)
            dashboard_address="127.0.0.1:0",
            silence_logs=logging.ERROR,
        ) as cluster,
        Client(cluster) as c,
    ):
        yield c


@contextmanager
def separate_cluster(n_workers: int = 2, pythonpath: Sequence[Path] = ()) -> Iterator[str]:
    """A `dask scheduler` and a `dask worker` with `n_workers` single-threaded processes,
    started as commands of this environment on 127.0.0.1 (free ports, no dashboard), as an
    operator would start them; yields the scheduler's address and ends both after. For tests
    and benchmarks of `--scheduler`; `pythonpath` is prepended to the workers' PYTHONPATH."""
    import signal
    import socket
    import subprocess
    import sys

    from distributed import Client

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    path = os.pathsep.join([*map(str, pythonpath), os.environ.get("PYTHONPATH", "")])
    env = {**os.environ, "PYTHONPATH": path.rstrip(os.pathsep)}
    dask = str(Path(sys.executable).parent / "dask")
    address = f"tcp://127.0.0.1:{port}"
    common = ["--host", "127.0.0.1", "--no-dashboard"]
    commands = [
        [dask, "scheduler", "--port", str(port), "--dashboard-address", "127.0.0.1:0", *common],
        [dask, "worker", address, "--nworkers", str(n_workers), "--nthreads", "1", *common],
    ]
    procs = [
        subprocess.Popen(
            c, env=env, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        for c in commands
    ]
    try:
        with Client(address, timeout="60s") as c:
            c.wait_for_workers(n_workers, timeout=120)
        yield address
    finally:
        for proc in reversed(procs):  # each started its own session: end it and its children
            os.killpg(proc.pid, signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def run(
    tasks: Sequence[Task],
    store: Store,
    *,
    scheduler: str | None = None,
    workers: int | None = None,
    progress: bool = True,
    description: str = "tasks",
    on: Any = None,
) -> Report:
    """Compute every task not yet in `store` and store each result when it arrives.

    `on` is a Dask client to use (several runs on one cluster, or a cluster already warm);
    without it, `client(scheduler, workers)` is made for the run and closed after it.
    Ctrl-C cancels what is left and ends the local cluster; what finished stays stored.
    Raises TaskError after the run if some tasks raised (their keys are not stored).
    """
    from distributed import as_completed
    from tqdm import tqdm

    keys = [t.key for t in tasks]
    if len(set(keys)) != len(keys):
        raise ValueError("task keys must be unique")
    report = Report(reused=[k for k in keys if store.has(k)])
    pending = [t for t in tasks if not store.has(t.key)]
    start = time.perf_counter()
    failures: dict[str, str] = {}
    if pending:
        with nullcontext(on) if on is not None else client(scheduler, workers) as c:
            report.workers = len(c.scheduler_info()["workers"])
            futures = {
                c.submit(_timed, t.func, t.args, key=f"{description}-{t.key}", pure=False): t.key
                for t in pending
            }
            bar = tqdm(
                total=len(tasks), initial=len(report.reused), desc=description, disable=not progress
            )
            try:
                for future in as_completed(futures):
                    key = futures[future]
                    if future.status == "error":
                        failures[key] = repr(future.exception())
                    else:
                        rows, seconds, worker = future.result()
                        store.put(key, rows, seconds, worker)
                        report.computed.append(key)
                    bar.update()
            except BaseException:
                c.cancel(list(futures))
                raise
            finally:
                bar.close()
    report.seconds = time.perf_counter() - start
    if failures:
        raise TaskError(failures)
    return report
