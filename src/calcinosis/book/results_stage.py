"""Running the results stage for a build: each producer's sections are taken from the cache
when the data files it reads (and the parameters, if it uses them) are unchanged, and computed
otherwise, in a worker process of their own; then the results folder is written.

The producers that are computed run in one process, one after another, so a model that several
of them show is fitted once (`calcinosis.stats.models` keeps fits by content); one marked
`apart` (the patients', whose work grows with the registry) runs beside them in a second
process when the build has two or more.
"""

from __future__ import annotations

import concurrent.futures as cf
import time
from dataclasses import dataclass, field
from pathlib import Path

from calcinosis import software
from calcinosis.book import cache, manifest, stored_sections
from calcinosis.book.process import Echo, init_worker, worker_pool
from calcinosis.errors import BuildError
from calcinosis.params import Parameters
from calcinosis.report.sections import Section


@dataclass
class StageRun:
    """What the results stage did: per producer, computed or cached, and the seconds."""

    sections: list[Section]
    producers: dict[str, dict] = field(default_factory=dict)
    seconds: float = 0.0  # the stage's wall time: producers computed side by side overlap

    @property
    def digests(self) -> dict[str, str]:
        return {s.name: s.digest() for s in self.sections}


def producer_key(
    producer,
    file_hashes: dict[str, str],
    params: Parameters,
    values: dict | None,
    pdf: bool = False,
) -> str:
    return cache.sha256_json(
        {
            "kind": "sections",
            "version": cache.CACHE_VERSION,
            "producer": producer.name,
            "reads": {name: file_hashes.get(name) for name in producer.reads},
            "files": {
                path.name: cache.sha256_file(path) if path.is_file() else None
                for path in producer.files
            },
            "parameters": params.as_dict() if producer.uses_parameters else None,
            "values": cache.sha256_json(values) if producer.derived else None,
            "pdf": pdf if producer.pdf_per_patient else None,
            "commit": software.short_commit() if producer.records_commit else None,
            "package": cache.package_hash(),
            "environment": cache.environment(),
        }
    )


def run_stage(
    data_dir: Path,
    params: Parameters,
    store: cache.Store,
    echo: Echo,
    producers=None,
    workers: int = 1,
    pdf: bool = False,
) -> StageRun:
    """Every section for `data_dir` and `params`, cached per producer; a producer with many
    figures renders them in `workers` processes, in PDF too only when `pdf` (a build of the
    book's PDF): the supplement needs SVG and PNG alone."""
    from calcinosis.data.trial import dataset_files
    from calcinosis.report import results

    producers = results.PRODUCERS if producers is None else producers
    start = time.perf_counter()
    file_hashes = {name: cache.sha256_file(path) for name, path in dataset_files(data_dir).items()}
    run = StageRun([])
    made_by: dict[str, list[Section]] = {}
    # a producer marked `apart` (a registry's patients: as much work as all the others
    # together) runs in a process of its own beside the others when the build has two
    with worker_pool(max_workers=2 if workers > 1 else 1, initializer=init_worker) as pool:
        for derived in (False, True):
            values = (
                results.all_values(s for part in made_by.values() for s in part)
                if derived
                else None
            )
            todo = []
            for producer in (p for p in producers if p.derived == derived):
                key = producer_key(producer, file_hashes, params, values, pdf)
                found = _stored(store, key, producer.name)
                if found is not None:
                    made_by[producer.name] = found
                    run.producers[producer.name] = {"key": key, "cached": True, "seconds": 0.0}
                else:
                    todo.append((producer, key))
            beside = [p.name for p, _ in todo if p.apart and workers > 1]
            groups = [beside, [p.name for p, _ in todo if p.name not in beside]]
            futures = [
                pool.submit(
                    compute_producers, str(data_dir), params.as_dict(), names, values, workers, pdf
                )
                for names in groups
                if names
            ]
            made = {name: done for future in futures for name, done in _result(future).items()}
            for producer, key in todo:
                sections, seconds = made[producer.name]
                _store(store, key, sections, producer.name, seconds)
                made_by[producer.name] = sections
                run.producers[producer.name] = {
                    "key": key,
                    "cached": False,
                    "seconds": round(seconds, 3),
                }
                echo(f"  results: {producer.name:<27} computed {seconds:6.1f} s")
    run.sections = [s for p in producers for s in made_by[p.name]]
    run.seconds = round(time.perf_counter() - start, 3)
    return run


SUFFIX = ".json"  # a producer's sections in the cache (`calcinosis.book.stored_sections`)


class ResultsFailed(BuildError):
    """A producer raised: the results stage cannot give the book its numbers."""


def _result(future: cf.Future) -> dict:
    from concurrent.futures.process import BrokenProcessPool

    from calcinosis.data.limits import OutOfMemory

    try:
        return future.result()
    except OutOfMemory as err:
        raise ResultsFailed(f"results stage failed: {err}") from None
    except BrokenProcessPool:
        raise ResultsFailed(
            "results stage failed: its worker was ended from outside (the system's "
            "out-of-memory killer, or a signal) before it could say why"
        ) from None
    except Exception as err:  # a person gets the reason, never a traceback
        raise ResultsFailed(f"results stage failed: {type(err).__name__}: {err}") from None


def compute_producers(
    data_dir: str,
    params: dict,
    names: list[str],
    values: dict | None,
    workers: int = 1,
    pdf: bool = False,
) -> dict[str, tuple[list[Section], float]]:
    """In the worker: the named producers' sections, with their seconds."""
    from calcinosis.data import limits
    from calcinosis.data.trial import load_trial
    from calcinosis.report import results

    trial = load_trial(data_dir)
    ceiling = limits.cap_memory(trial)  # the worker's own limit, inherited by its children
    chosen = Parameters.of(params)
    by_name = {p.name: p for p in results.PRODUCERS}
    out = {}
    for name in names:
        start = time.perf_counter()
        try:
            sections = results.run(by_name[name], trial, chosen, values, workers, pdf)
        except MemoryError:
            raise limits.out_of_memory(trial, ceiling) from None
        out[name] = (sections, time.perf_counter() - start)
    return out


def _stored(store: cache.Store, key: str, name: str) -> list[Section] | None:
    """The sections producer `name` stored under `key`, if the entry is intact and theirs."""
    path = store.get("sections", key, SUFFIX, {"producer": name})
    if path is None:
        return None
    try:
        return stored_sections.loads(path.read_text(encoding="utf-8"), key, name)
    except (ValueError, KeyError, TypeError) as err:  # Mismatch, or not a document of ours
        store.reject(path, f"is not producer {name}'s sections ({err})")
        return None


def _store(
    store: cache.Store, key: str, sections: list[Section], name: str, seconds: float
) -> None:
    try:
        text = stored_sections.dumps(sections, key, name)
    except stored_sections.NotStorable:
        return  # computed again next time: only data is cached
    store.put_text(
        "sections",
        key,
        SUFFIX,
        text,
        {"producer": name, "seconds": seconds, "created": manifest.now()},
    )
