"""An ensemble of reconstructions: which of the book's conclusions the article's summaries pin
down, and which belong to one reconstruction.

Member i is the reconstruction (`calcinosis.reconstruct`) with seed i and with the
assumptions the article leaves open drawn from that seed within the ranges of ASSUMPTIONS.
A member is kept only if its dataset passes validation and reproduces every claim the
article prints (the audit); otherwise it is stored as dropped, with the reason, and counted.
Each kept member is analysed with the book's own functions (`conclusion_values`). The
members run on the Dask runner (`calcinosis.runner`), keyed by seed and assumptions.
"""

from __future__ import annotations

import hashlib
import json
import platform
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from calcinosis import paths, reconstruct, runner
from calcinosis.data import Trial
from calcinosis.sections import slug

# --------------------------------------------------------------------------------------------
# What varies
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Assumption:
    """One open choice: the reconstruction's field, its range in words, how a member draws it."""

    name: str
    meaning: str
    range: str
    draw: Callable[[np.random.Generator], Any]


P1_LESIONS = tuple(f"P1-L{i}" for i in range(1, 10))


def _resolved(rng: np.random.Generator) -> tuple[str, ...]:
    count = int(rng.integers(3, 9))
    return tuple(sorted(rng.choice(P1_LESIONS, size=count, replace=False).tolist()))


ASSUMPTIONS: tuple[Assumption, ...] = (
    Assumption(
        "clinical_grid_mm",
        "ruler grid the clinical sizes are rounded to",
        "0.5 or 1 mm",
        lambda rng: float(rng.choice([0.5, 1.0])),
    ),
    Assumption(
        "decline_onset",
        "visits patient 1 stays flat before the decline ('around the 4th injection')",
        "2 to 5",
        lambda rng: int(rng.integers(2, 6)),
    ),
    Assumption(
        "slow_speed_factor",
        "speed of patients 3-5 relative to the bundled reconstruction",
        "0.6 to 1.4",
        lambda rng: round(float(rng.uniform(0.6, 1.4)), 3),
    ),
    Assumption(
        "step_visits_p4",
        "visits per step of patient 4's course (runs of unchanged visits)",
        "3 to 6",
        lambda rng: int(rng.integers(3, 7)),
    ),
    Assumption(
        "step_visits_p5",
        "visits per step of patient 5's course",
        "3 to 6",
        lambda rng: int(rng.integers(3, 7)),
    ),
    Assumption(
        "lesion_spread",
        "lesions' speeds spread uniformly over 1 ± this share around their patient's",
        "0.05 to 0.4",
        lambda rng: round(float(rng.uniform(0.05, 0.4)), 3),
    ),
    Assumption(
        "noise_steps",
        "rater noise (SD in grid steps) before rounding; sizes never rise, so a high reading "
        "persists (noise correlated within a lesion)",
        "0 to 1",
        lambda rng: round(float(rng.uniform(0.0, 1.0)), 3),
    ),
    Assumption(
        "resolved",
        "patient 1's lesions gone on the final radiograph",
        "3 to 8 of its 9 lesions, chosen at random",
        _resolved,
    ),
)
ENSEMBLE_SALT = 11  # seeds of the assumptions' draws, apart from the reconstruction's own


def member_assumptions(seed: int) -> reconstruct.Assumptions:
    """The assumptions of the member with `seed`: drawn from it, so a seed is a member."""
    rng = np.random.default_rng([ENSEMBLE_SALT, seed])
    return reconstruct.Assumptions(**{a.name: a.draw(rng) for a in ASSUMPTIONS})


def member_key(seed: int, assumptions: reconstruct.Assumptions) -> str:
    """The member's stable key: its seed and a digest of its assumptions."""
    text = json.dumps(assumptions.as_dict(), sort_keys=True)
    return f"m{seed:05d}-{hashlib.sha256(text.encode()).hexdigest()[:10]}"


# --------------------------------------------------------------------------------------------
# One member
# --------------------------------------------------------------------------------------------


def conclusion_values(trial: Trial) -> dict[str, float]:
    """The numbers behind the book's conclusions, computed with the book's own analyses: the
    primary GEE, the sensitivity grid, the per-patient rates, the time × duration interaction,
    the radiographic tests and lesions resolved, the start of patient 1's decline."""
    from calcinosis import discussion, models, patients, radiography, sensitivity

    values: dict[str, float] = {}
    for outcome in ("length", "width"):
        fit = models.primary(trial, outcome)
        values[f"gee_{outcome}_pct"] = fit.pct_per_visit
        values[f"gee_{outcome}_p"] = fit.p
        row = discussion.interaction_model(trial, outcome).iloc[-1]
        values[f"interaction_{outcome}_pct"] = float(row["pct_per_visit_effect"])
        values[f"interaction_{outcome}_p"] = float(row["p"])
    grid = sensitivity.grid(trial)
    for row in grid.itertuples(index=False):
        name = f"sens_{row.outcome}_{slug(row.factor)}_{slug(row.choice)}".lower()
        values[f"{name}_pct"], values[f"{name}_p"] = float(row.pct_per_visit), float(row.p)
    significant, estimated = sensitivity.significant_share(grid)
    values["sens_share_significant"] = significant / estimated if estimated else np.nan
    for rate in patients.patient_rates(trial).itertuples(index=False):
        values[f"rate_{rate.patient_id}_{rate.outcome}_pct"] = float(rate.pct_per_visit)
        values[f"rate_{rate.patient_id}_{rate.outcome}_p"] = float(rate.p)
    for test in radiography.paired_tests(trial).itertuples(index=False):
        values[f"rad_{test.outcome}_p"] = float(test.p)
    values["rad_n_resolved"] = float(radiography.n_resolved(trial))
    values["decline_start_P1"] = np.nan
    if "P1" in set(trial.patients["patient_id"]):  # the article's patient 1 (stop-gap)
        courses = patients.lesion_courses(trial, "P1")["decline_start_visit"].dropna()
        values["decline_start_P1"] = float(courses.median()) if len(courses) else np.nan
    return values


def audit_values(trial: Trial) -> dict[str, object]:
    """The recomputed values the audit checks the article's claims against, under the names
    of `results.json`."""
    from calcinosis import models, radiography, safety

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
    from calcinosis import audit, data

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
# The code a member's result depends on; its hash in the manifest tells a build whether the
# shipped ensemble is stale.
CODE_FILES = (
    "ensemble.py",
    "reconstruct.py",
    "sprite.py",
    "dose.py",
    "schema.py",
    "data.py",
    "audit.py",
    "models.py",
    "covstruct.py",
    "sensitivity.py",
    "patients.py",
    "radiography.py",
    "discussion.py",
    "safety.py",
    "published_facts.yml",
)
VERSIONED = ("calcinosis", "numpy", "pandas", "scipy", "statsmodels", "dask", "distributed")


def code_hash() -> str:
    """SHA-256 over the source files the members' results depend on."""
    h = hashlib.sha256()
    for name in CODE_FILES:
        h.update(name.encode() + b"\0" + (paths.PACKAGE_DIR / name).read_bytes())
    return h.hexdigest()


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
        "code_files": list(CODE_FILES),
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
