"""The Dask runner: the same table on a local cluster and on separately started scheduler and
worker processes, results stored as they finish, resumed runs that redo nothing done, and
Ctrl-C that keeps finished results and leaves no process behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pandas as pd
import psutil
import pytest

from calcinosis.simulate import runner


def draws(seed: int, fail: bool = False) -> list[dict]:
    """A tiny seeded task: a few random draws and their mean, as rows."""
    if fail:
        raise ValueError(f"task {seed} told to fail")
    rng = np.random.default_rng(seed)
    values = rng.normal(size=5)
    return [{"seed": seed, "i": i, "value": float(v)} for i, v in enumerate(values)] + [
        {"seed": seed, "i": -1, "value": float(values.mean())}
    ]


def tasks(seeds, fail=()) -> list[runner.Task]:
    return [runner.Task(f"s{seed:04d}", draws, (seed, seed in fail)) for seed in seeds]


@pytest.mark.integration
def test_local_and_external_cluster_give_identical_tables(tmp_path, dask_scheduler):
    local, external = runner.Store(tmp_path / "local"), runner.Store(tmp_path / "external")
    todo = tasks(range(8))
    one = runner.run(todo, local, workers=2, progress=False)
    two = runner.run(todo, external, scheduler=dask_scheduler, progress=False)
    assert sorted(one.computed) == sorted(two.computed) == [t.key for t in todo]
    assert two.workers == 2
    keys = [t.key for t in todo]
    table = local.table(keys)
    pd.testing.assert_frame_equal(table, external.table(keys))
    assert table["seed"].tolist() == sorted(table["seed"].tolist())  # ordered by key
    workers = {external.get(k)["worker"] for k in keys}
    assert len(workers) == 2, "both external workers took tasks"


@pytest.mark.integration
def test_resumed_and_larger_runs_recompute_nothing_finished(tmp_path):
    store = runner.Store(tmp_path)
    with pytest.raises(runner.TaskError, match="s0002"):
        runner.run(tasks(range(4), fail={2}), store, workers=1, progress=False)
    assert [store.has(f"s{i:04d}") for i in range(4)] == [True, True, False, True]
    stamps = {p.name: p.stat().st_mtime_ns for p in tmp_path.glob("*.json")}

    report = runner.run(tasks(range(6)), store, workers=2, progress=False)
    assert sorted(report.computed) == ["s0002", "s0004", "s0005"]
    assert sorted(report.reused) == ["s0000", "s0001", "s0003"]
    assert {n: (tmp_path / n).stat().st_mtime_ns for n in stamps} == stamps
    again = runner.run(tasks(range(6)), store, workers=2, progress=False)
    assert again.computed == [] and len(again.reused) == 6
    assert not list(tmp_path.glob(".*.tmp"))


def test_keys_must_be_file_names_and_unique(tmp_path):
    with pytest.raises(ValueError, match="task key"):
        runner.Task("../x", draws, (1,))
    with pytest.raises(ValueError, match="unique"):
        runner.run(tasks([1, 1]), runner.Store(tmp_path), progress=False)


SLOW_RUN = """
import sys, time
sys.path[:0] = [{src!r}]
from calcinosis.simulate import runner

def slow(i):
    time.sleep(5)  # 30 s in all: a loaded machine cannot finish them before the Ctrl-C
    return [{{"i": i}}]

if __name__ == "__main__":  # the local cluster's processes import this file again
    tasks = [runner.Task(f"t{{i}}", slow, (i,)) for i in range(12)]
    runner.run(tasks, runner.Store({store!r}), workers=2, progress=False)
"""


@pytest.mark.integration
def test_ctrl_c_keeps_finished_results_and_leaves_no_process(tmp_path):
    store = tmp_path / "store"
    script = tmp_path / "slow.py"
    src = str(Path(__file__).resolve().parents[1] / "src")
    script.write_text(textwrap.dedent(SLOW_RUN.format(src=src, store=str(store))))
    # as a shell starts it: SIGINT at its default, which Python turns into KeyboardInterrupt
    # (a pytest-xdist worker ignores SIGINT, and a child would inherit that)
    proc = subprocess.Popen(
        [sys.executable, str(script)],
        stderr=subprocess.PIPE,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.monotonic() + 120
    while not list(store.glob("t*.json")) and proc.poll() is None:
        assert time.monotonic() < deadline, "no task finished in 2 minutes"
        time.sleep(0.2)
    assert proc.poll() is None, proc.communicate()[1].decode()
    children = psutil.Process(proc.pid).children(recursive=True)
    assert children, "the local cluster's worker processes"
    os.kill(proc.pid, signal.SIGINT)
    proc.wait(timeout=60)
    assert proc.returncode != 0
    finished = list(store.glob("t*.json"))
    assert 1 <= len(finished) < 12
    assert not list(store.glob(".*.tmp"))
    gone, alive = psutil.wait_procs(children, timeout=20)
    assert not alive, [p.pid for p in alive]
