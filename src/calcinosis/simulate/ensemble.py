"""An ensemble of reconstructions: which of the book's conclusions the article's summaries pin
down, and which belong to one reconstruction.

Member i is the reconstruction (`calcinosis.simulate.reconstruct`) with seed i and with the
assumptions the article leaves open drawn from that seed within the ranges of ASSUMPTIONS.
A member is kept only if its dataset passes validation and reproduces every claim the
article prints (the audit); otherwise it is stored as dropped, with the reason, and counted.
Each kept member is analysed with the book's own functions (`conclusion_values`). The
members run on the Dask runner (`calcinosis.simulate.runner`), keyed by seed and assumptions.
"""

from __future__ import annotations

import hashlib
import json
import platform
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pandas as pd

from calcinosis import paths
from calcinosis.codehash import content_hash
from calcinosis.data.trial import Trial
from calcinosis.names import slug
from calcinosis.simulate import reconstruct, runner

# --------------------------------------------------------------------------------------------
# What varies
# --------------------------------------------------------------------------------------------


ALPHA = 0.05  # the level the book's conclusions of significance are read at


@dataclass(frozen=True)
class Assumption:
    """One open choice: the reconstruction's field, the bounds a member draws it between
    (`low`, `high`; for a set of lesions, their count), and how it draws it."""

    name: str
    meaning: str
    low: float
    high: float
    draw: Callable[[np.random.Generator, float, float], Any]
    unit: str = ""
    between: str = "to"  # "or" when only the two bounds are drawn

    @property
    def range(self) -> str:
        """The bounds in words, as the chapter's table prints them."""
        return f"{self.low:g} {self.between} {self.high:g}{self.unit}"


P1_LESIONS = tuple(f"P1-L{i}" for i in range(1, 10))


def _integer(rng: np.random.Generator, low: float, high: float) -> int:
    return int(rng.integers(int(low), int(high) + 1))


def _uniform(rng: np.random.Generator, low: float, high: float) -> float:
    return round(float(rng.uniform(low, high)), 3)


def _either(rng: np.random.Generator, low: float, high: float) -> float:
    return float(rng.choice([low, high]))


def _resolved(rng: np.random.Generator, low: float, high: float) -> tuple[str, ...]:
    count = _integer(rng, low, high)
    return tuple(sorted(rng.choice(P1_LESIONS, size=count, replace=False).tolist()))


ASSUMPTIONS: tuple[Assumption, ...] = (
    Assumption(
        "clinical_grid_mm",
        "ruler grid the clinical sizes are rounded to",
        0.5,
        1.0,
        _either,
        " mm",
        "or",
    ),
    Assumption(
        "decline_onset",
        "visits patient 1 stays flat before the decline ('around the 4th injection')",
        2,
        5,
        _integer,
    ),
    Assumption(
        "slow_speed_factor",
        "speed of patients 3-5 relative to the bundled reconstruction",
        0.6,
        1.4,
        _uniform,
    ),
    Assumption(
        "step_visits_p4",
        "visits per step of patient 4's course (runs of unchanged visits)",
        3,
        6,
        _integer,
    ),
    Assumption("step_visits_p5", "visits per step of patient 5's course", 3, 6, _integer),
    Assumption(
        "lesion_spread",
        "lesions' speeds spread uniformly over 1 ± this share around their patient's",
        0.05,
        0.4,
        _uniform,
    ),
    Assumption(
        "noise_steps",
        "rater noise (SD in grid steps) before rounding; sizes never rise, so a high reading "
        "persists (noise correlated within a lesion)",
        0,
        1,
        _uniform,
    ),
    Assumption(
        "resolved",
        "patient 1's lesions gone on the final radiograph (how many; which, at random)",
        3,
        8,
        _resolved,
        f" of its {len(P1_LESIONS)} lesions",
    ),
)


@dataclass(frozen=True)
class Construction:
    """What every member shares because of how the generator makes it, not because the
    article prints it: the fixed choice in words, and the quantities of `conclusion_values`
    it decides. A conclusion resting on one of them is built into the generator."""

    name: str
    meaning: str
    decides: tuple[str, ...]


def constructions() -> tuple[Construction, ...]:
    """The generator's fixed choices that decide conclusions, worded from its own constants
    (`reconstruct.SPEED`, the speed factor's bounds)."""
    factor = next(a for a in ASSUMPTIONS if a.name == "slow_speed_factor")
    slow = {p: s for p, s in reconstruct.SPEED.items() if p != 1}
    fastest_slow = max(slow.values()) * factor.high
    listed = ", ".join(f"patient {p} {s:g}" for p, s in slow.items())
    speeds = (
        f"patient 1 falls at speed {reconstruct.SPEED[1]:g} ({listed} of it, times "
        f"{factor.name} {factor.range}: at most {fastest_slow:.2f}); patient 2's one lesion is "
        "gone by the last visit. The shortest disease durations are fast and the longest slow "
        "by construction, where the article calls that link not statistically verifiable"
    )
    decided = tuple(
        f"{what}_{outcome}_{stat}"
        for what in (*(f"rate_article{p}" for p in reconstruct.SPEED), "interaction")
        for outcome in ("length", "width")
        for stat in ("pct", "p")
    )
    return (Construction("patient_speeds", speeds, decided),)


ENSEMBLE_SALT = 11  # seeds of the assumptions' draws, apart from the reconstruction's own


def member_assumptions(seed: int) -> reconstruct.Assumptions:
    """The assumptions of the member with `seed`: drawn from it, so a seed is a member."""
    rng = np.random.default_rng([ENSEMBLE_SALT, seed])
    return reconstruct.Assumptions(**{a.name: a.draw(rng, a.low, a.high) for a in ASSUMPTIONS})


def member_key(seed: int, assumptions: reconstruct.Assumptions) -> str:
    """The member's stable key: its seed and a digest of its assumptions."""
    text = json.dumps(assumptions.as_dict(), sort_keys=True)
    return f"m{seed:05d}-{hashlib.sha256(text.encode()).hexdigest()[:10]}"


# --------------------------------------------------------------------------------------------
# One member
# --------------------------------------------------------------------------------------------


def conclusion_values(trial: Trial) -> dict[str, float]:
    """The numbers behind the book's conclusions, computed with the book's own analyses: the
    primary GEE, the sensitivity grid, the radiographic tests and lesions resolved, the time ×
    duration interaction; and, when the data are the article's trial (`article.match`), the
    rates of the article's patients and the start of patient 1's decline, named by the
    article's patient numbers (`rate_article1_length_pct`), never by the data's IDs."""
    from calcinosis.simulate import article
    from calcinosis.stats import discussion, models, patients, radiography, sensitivity

    values: dict[str, float] = {}
    for outcome in ("length", "width"):
        fit = models.primary(trial, outcome)
        values[f"gee_{outcome}_pct_per_visit"] = fit.pct_per_visit
        values[f"gee_{outcome}_p"] = fit.p
        row = discussion.interaction_model(trial, outcome).iloc[-1]
        values[f"interaction_{outcome}_pct"] = float(row["pct_per_visit_effect"])
        values[f"interaction_{outcome}_p"] = float(row["p"])
    grid = sensitivity.grid(trial)
    for row in grid.itertuples(index=False):
        name = f"sens_{row.outcome}_{slug(row.factor)}_{slug(row.choice)}".lower()
        values[f"{name}_pct"], values[f"{name}_p"] = float(row.pct_per_visit), float(row.p)
    fitted = sensitivity.estimable(sensitivity.distinct(grid))
    declining = (fitted["pct_per_visit"] < 0) & (fitted["p"] < ALPHA)
    values["sens_share_declining"] = float(declining.mean()) if len(fitted) else np.nan
    for test in radiography.paired_tests(trial).itertuples(index=False):
        values[f"rad_{test.outcome}_p"] = float(test.p)
        values[f"rad_{test.outcome}_median_change_mm"] = float(test.median_change_mm)
    values["rad_n_resolved"] = float(radiography.n_resolved(trial))
    found = article.match(trial)
    if found.is_article:
        rates = patients.patient_rates(trial)
        for number, patient_id in found.patients.items():
            for rate in rates[rates["patient_id"] == patient_id].itertuples(index=False):
                values[f"rate_article{number}_{rate.outcome}_pct"] = float(rate.pct_per_visit)
                values[f"rate_article{number}_{rate.outcome}_p"] = float(rate.p)
        starts = patients.lesion_courses(trial, found.patients[1])["decline_start_visit"]
        starts = starts.dropna()
        values["decline_start_article1"] = float(starts.median()) if len(starts) else np.nan
    return values


def audit_values(trial: Trial) -> dict[str, object]:
    """The recomputed values the audit checks the article's claims against, under the names
    of `results.json`."""
    from calcinosis.stats import models, radiography, safety

    values: dict[str, object] = {
        "n_patients": len(trial.patients),
        "n_lesions": len(trial.lesions),
        "n_visits": int(trial.measurements["visit"].max()),
        "n_adverse_events_related": int(safety.adverse_events(trial)["related"].sum()),
    }
    for outcome in ("length", "width"):
        fit = models.primary(trial, outcome)
        values[f"gee_{outcome}_pct_per_visit"], values[f"gee_{outcome}_p"] = (
            fit.pct_per_visit,
            fit.p,
        )
    for row in radiography.summary(trial).itertuples(index=False):
        for stat in ("mean", "sd", "min", "max"):
            values[f"rad_{row.timepoint}_{row.outcome}_{stat}"] = float(getattr(row, stat))
    return values


def member(seed: int) -> runner.Rows:
    """Reconstruct, validate, audit and analyse one member; rows of the tidy table."""
    assumptions = member_assumptions(seed)
    head = {"seed": seed, "key": member_key(seed, assumptions), **assumptions.as_dict()}
    with tempfile.TemporaryDirectory(prefix="calcinosis-member-") as folder:
        trial = checked_trial(seed, assumptions, Path(folder))
        if isinstance(trial, str):
            return [_dropped(head, trial)]
        values = conclusion_values(trial)
    return [
        {**head, "kept": True, "reason": "", "quantity": q, "value": v} for q, v in values.items()
    ]


def checked_trial(seed: int, assumptions: reconstruct.Assumptions, folder: Path) -> Trial | str:
    """The member's dataset written to `folder` and loaded, if it reconstructs, validates and
    reproduces every claim the article prints; else why not."""
    from calcinosis.data import trial as data
    from calcinosis.simulate import audit

    try:
        reconstruct.write_dataset(folder, seed, assumptions)
    except (RuntimeError, ValueError) as err:
        return f"reconstruction failed: {err}"
    try:
        trial = data.load_trial(folder)
    except data.DataValidationError as err:
        return f"validation: {err.problems[0]}"
    claims = audit.claims_audit(trial, audit_values(trial))
    missed = claims.loc[claims["verdict"] != "match", "name"]
    return f"audit: {', '.join(missed)} not reproduced" if len(missed) else trial


def member_trial(seed: int) -> Trial:
    """The dataset of member `seed`, made again from its seed (a member is a function of its
    seed). Its tables are in memory; its `data_dir`, a temporary folder, is gone."""
    from calcinosis.data import trial as data

    with tempfile.TemporaryDirectory(prefix="calcinosis-member-") as folder:
        reconstruct.write_dataset(Path(folder), seed, member_assumptions(seed))
        return data.load_trial(folder)


def kept_trials(table: pd.DataFrame) -> Iterator[tuple[str, Trial]]:
    """(key, dataset) of every member the tidy `table` (a run's, or `pinned.load().table`)
    kept, in seed order: what the planning chapter fits its model to, member by member."""
    members = table.loc[table["kept"]].drop_duplicates("key").sort_values("seed")
    for key, seed in zip(members["key"], members["seed"], strict=True):
        yield str(key), member_trial(int(seed))


def _dropped(head: dict, reason: str) -> dict:
    return {**head, "kept": False, "reason": reason, "quantity": "", "value": np.nan}


def tasks(n: int) -> list[runner.Task]:
    """Members 1..n; a larger n keeps the smaller one's members (same seeds, same keys)."""
    return [
        runner.Task(member_key(s, member_assumptions(s)), member, (s,)) for s in range(1, n + 1)
    ]


# --------------------------------------------------------------------------------------------
# A run and what it leaves
# --------------------------------------------------------------------------------------------

TABLE_FILE, CSV_FILE, MANIFEST_FILE, MEMBERS_DIR = (
    "ensemble.parquet",
    "ensemble.csv",
    "manifest.json",
    ".members",  # hidden: the book's staging and input hashes skip dot folders
)
# The code a member's result depends on is listed in `code_hash`; the hash in the manifest
# tells a build whether the shipped ensemble is stale.
VERSIONED = ("calcinosis", "numpy", "pandas", "scipy", "statsmodels", "dask", "distributed")


def code_hash() -> str:
    """The content hash (`calcinosis.codehash`) of the modules a member's result depends on,
    and of the published facts it is audited against."""
    return content_hash(code_modules(), [paths.FACTS_FILE])


def code_modules() -> tuple[ModuleType, ...]:
    """The modules a member's result depends on (imported here, not at the top, because
    several of them import this one)."""
    from calcinosis.data import dose, schema
    from calcinosis.data import trial as data
    from calcinosis.simulate import article, audit, reconstruct, sprite
    from calcinosis.stats import (
        arraymixed,
        covstruct,
        discussion,
        influence,
        mixed,
        models,
        patients,
        radiography,
        safety,
        sensitivity,
    )

    modules = (sys.modules[__name__], article, reconstruct, sprite, dose, schema, data, audit)
    stats = (models, covstruct, sensitivity, mixed, arraymixed, influence, patients, radiography)
    return modules + stats + (discussion, safety)


def member_store(out: Path) -> runner.Store:
    """Where the members of `out` are kept, by the hash of the code they depend on: after a
    change to that code every member is computed again, never taken from the old code."""
    return runner.Store(Path(out) / MEMBERS_DIR / code_hash()[:16])


def run(
    n: int,
    out: Path,
    *,
    scheduler: str | None = None,
    workers: int | None = None,
    progress: bool = True,
) -> dict:
    """Compute the members not yet in `out`, then write the table (Parquet and CSV) and the
    manifest for members 1..n. Returns the manifest."""
    out = Path(out)
    todo = tasks(n)
    store = member_store(out)
    report = runner.run(
        todo, store, scheduler=scheduler, workers=workers, progress=progress, description="members"
    )
    keys = [t.key for t in todo]
    table = store.table(keys)
    write_table(table, out)
    manifest = _manifest(table, store.seconds(keys), report, n)
    text = json.dumps(manifest, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    (out / MANIFEST_FILE).write_text(text, encoding="utf-8")
    return manifest


def write_table(table: pd.DataFrame, out: Path) -> None:
    """The tidy table as Parquet (read back by the book) and CSV (for the supplement)."""
    table.to_parquet(out / TABLE_FILE, index=False)
    table.to_csv(out / CSV_FILE, index=False, lineterminator="\n")


def _manifest(table: pd.DataFrame, seconds: dict[str, float], report, n: int) -> dict:
    members = table.drop_duplicates("key")
    dropped = members[~members["kept"]]
    return {
        "n_members": n,
        "n_kept": int(members["kept"].sum()),
        "n_dropped": int(len(dropped)),
        "dropped": dict(zip(dropped["key"], dropped["reason"], strict=True)),
        "seeds": [int(s) for s in members["seed"]],
        "code_hash": code_hash(),
        "code_files": [m.__name__ for m in code_modules()] + [paths.FACTS_FILE.name],
        "assumptions": {a.name: {"meaning": a.meaning, "range": a.range} for a in ASSUMPTIONS},
        "bundled_assumptions": reconstruct.Assumptions().as_dict(),
        "bundled_seed": reconstruct.DEFAULT_SEED,
        "versions": {"python": platform.python_version()} | _versions(),
        "timings": {
            "this_run_wall_seconds": round(report.seconds, 2),
            "this_run_computed": len(report.computed),
            "this_run_reused": len(report.reused),
            "this_run_workers": report.workers,
            "member_seconds_mean": round(float(np.mean(list(seconds.values()))), 3),
            "member_seconds_median": round(float(np.median(list(seconds.values()))), 3),
            "member_seconds_total": round(float(np.sum(list(seconds.values()))), 1),
        },
    }


def _versions() -> dict[str, str]:
    out = {}
    for name in VERSIONED:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out
