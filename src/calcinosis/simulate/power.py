"""Planning a definitive trial: a simulation study of randomised trials, run on the Dask
runner, reported as Morris, White & Crowther (2019) ask (aims, data-generating mechanisms,
estimands, methods, performance measures).

Data-generating mechanisms (`simulation`): the pilot's fitted model; the injection arm
changes at the pilot's rate and the control arm by a stated share of it (`SCENARIOS`: the
pilot had no control arm, so any spontaneous regression is inside its estimate); the effect
is the difference (zero: none); children are randomised (parallel) or their lesions are
(within-patient); lesions per child come from the pilot with a cap; children drop out and
miss visits at stated rates.

Estimand: the difference between arms in the change of log size per visit (equivalently, the
per cent difference in size at the last visit, `simulation.pct_at_end`).

Methods (`simulation.analyse`): the pilot's GEE with patients as clusters and the book's
small-sample correction (`gee_patient`), the same with lesions as clusters and the robust
sandwich as the pilot's main analysis (`gee_lesion`), the patient-level summary slope
(`summary`), co-primary length and width (`coprimary`: both summary slopes significant) and
responders (`responder`). The GEEs (fitted on arrays, `calcinosis.stats.arraygee`) still cost
several times the others, so each runs on the first replicates of a cell (`Grid`).

Performance: power and Type I error per cell with the Monte-Carlo SE of the observed rate;
failed fits counted per cell and left out of the rate (never counted as not rejecting);
bias and coverage of the estimate; the children needed, read from a probit curve of power
in √n fitted to every size of the grid (`smooth_fit`); assurance, the power averaged over
the kept members of the shipped ensemble of reconstructions, each with its own fitted model.

A task is one cell and one block of replicates; replicate r has its own seed from the run's
seed, the design, the number of children and r alone, so results do not depend on blocks,
workers or order, and cells that differ only in scenario or effect (and the ensemble's
members) share their simulated children: common random numbers.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import io
import json
import platform
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import optimize, special, stats

from calcinosis import paths, software
from calcinosis.codehash import content_hash
from calcinosis.data.trial import Trial
from calcinosis.simulate import runner, simulation
from calcinosis.stats import models

ANALYSES = simulation.ANALYSES
ANALYSIS_LABELS = {
    "gee_patient": "GEE, patients as clusters, small-sample corrected",
    "gee_lesion": "GEE, lesions as clusters, robust (the pilot's)",
    "mixed": "random-slope mixed model (REML, Satterthwaite df)",
    "summary": "summary slope per child (t-test / ANCOVA)",
    "coprimary": "co-primary: summary slopes of length and width, both significant",
    "responder": "responders (length down ≥ 30 % at the last visit; Fisher / McNemar)",
}
# analyses whose estimate is the effect per visit on length (bias and coverage apply)
SLOPE_ANALYSES = (*simulation.GEE, simulation.MIXED, "summary")
DESIGN_LABELS = {
    "parallel": "parallel groups (children randomised)",
    "within": "within-patient (each child's lesions randomised)",
}
# the control arm's change per visit as a share of the pilot's (uncontrolled) rate
SCENARIOS = {"none": 0.0, "quarter": 0.25, "half": 0.5}
SCENARIO_LABELS = {
    "none": "control arm unchanged",
    "quarter": "control arm regresses at a quarter of the pilot's rate",
    "half": "control arm regresses at half the pilot's rate",
}
# effect: the injection arm's change (zero: the control arm's; pilot: the pilot's estimate;
# bound: the bound of its 95 % CI nearest no change)
EFFECTS = ("zero", "pilot", "bound")
MIN_ANSWER_REPLICATES = 1000  # a cell the answer reads has at least these
MAX_MCSE = 0.016  # and its rates' Monte-Carlo SE is at most this (failed fits left out)
# The files whose code decides a replicate's numbers: a shipped result made with other bytes
# is stale.
SHIPPED_DIR = paths.PACKAGE_DIR / "shipped" / "power"
REPLICATES_FILE = "replicates.csv.gz"
ASSURANCE_FILE = "assurance.csv.gz"
MANIFEST_FILE = "manifest.json"
# the columns of the measurements the simulation model and the pilot effects are computed from
FINGERPRINTED = ("patient_id", "lesion_id", "visit", "length_mm", "width_mm")
DEFAULT_SEED = 20261126
# The article's introduction: JDM's annual incidence (2–4 per million children, its refs 2,
# 3) and the share of children with JDM who develop calcinosis (about 40 %, its ref 8).
INCIDENCE_PER_MILLION = (2.0, 4.0)
CALCINOSIS_SHARE = 0.4


@dataclass(frozen=True)
class Grid:
    """What a power run covers. `children` counts the whole trial (parallel: half per arm)."""

    children: tuple[int, ...] = (8, 12, 16, 24, 40, 64, 120)
    # sizes below `children` for the within-patient design alone: each child is its own
    # control there, and its answer lay at the common grid's floor
    within_small: tuple[int, ...] = (6,)
    designs: tuple[str, ...] = simulation.DESIGNS
    scenarios: tuple[str, ...] = tuple(SCENARIOS)
    effects: tuple[str, ...] = EFFECTS
    analyses: tuple[str, ...] = ANALYSES
    visits: int = 16
    lesion_cap: int | None = 4
    dropout: float = 0.1
    missed: float = 0.05
    # trials per cell in the main scenarios (the answer reads them) and in the others
    replicates: int = MIN_ANSWER_REPLICATES
    main_scenarios: tuple[str, ...] = ("quarter",)
    other_replicates: int = 500
    # the patient-clustered GEE runs on replicates 0 .. gee_replicates − 1 of the cells of
    # these scenarios up to this many children, on other_gee_replicates elsewhere; the
    # lesion-clustered GEE (the pilot's, shown for its Type I error) on lesion_gee_replicates
    gee_replicates: int = MIN_ANSWER_REPLICATES
    gee_scenarios: tuple[str, ...] = ("quarter",)
    gee_children_max: int = 120
    # the GEEs and the mixed model from this many children (the within-patient design's
    # smaller trials: the others alone), since below it too many of their fits fail for the
    # answer's Monte-Carlo rule
    model_children_min: int = 8
    other_gee_replicates: int = 200
    lesion_gee_replicates: int = 200
    # the random-slope mixed model (a REML fit per trial) on replicates 0 .. mixed_replicates
    # − 1 of the cells of the main scenarios, on other_mixed_replicates elsewhere
    mixed_replicates: int = MIN_ANSWER_REPLICATES
    other_mixed_replicates: int = 200
    block: int = 100
    seed: int = DEFAULT_SEED
    alphas: tuple[float, ...] = (0.05, 0.01)
    targets: tuple[float, ...] = (0.8, 0.9)
    assurance_members: int = 24  # the first kept members of the shipped ensemble, by seed
    assurance_replicates: int = 50
    assurance_scenario: str = "quarter"

    def __post_init__(self) -> None:
        _known("design", self.designs, simulation.DESIGNS)
        chosen = (
            *self.scenarios,
            *self.main_scenarios,
            *self.gee_scenarios,
            self.assurance_scenario,
        )
        _known("scenario", chosen, tuple(SCENARIOS))
        _known("effect", self.effects, EFFECTS)
        _known("analysis", self.analyses, ANALYSES)
        for sizes in (self.children, self.within_small):
            if sizes and (min(sizes) < 4 or any(c % 2 for c in sizes)):
                raise ValueError(f"children {list(sizes)}: use even numbers of at least 4")

    def as_dict(self) -> dict:
        return asdict(self)

    def sizes(self, design: str) -> tuple[int, ...]:
        """The trial sizes simulated for `design`."""
        extra = self.within_small if design == "within" else ()
        return tuple(sorted({*extra, *self.children}))

    def replicates_of(self, scenario: str) -> int:
        return self.replicates if scenario in self.main_scenarios else self.other_replicates

    def design(self, allocation: str) -> simulation.Design:
        return simulation.Design(
            allocation, self.visits, self.lesion_cap, self.dropout, self.missed
        )


def _known(what: str, given, allowed) -> None:
    unknown = [g for g in given if g not in allowed]
    if unknown:
        raise ValueError(f"unknown {what} {unknown[0]!r}: use {', '.join(map(str, allowed))}")


@dataclass(frozen=True)
class PilotEffects:
    """The pilot's change per visit (%) and the bound of its 95 % CI nearest no change, in
    length and in the co-primary width (NaN: not estimable there)."""

    estimate_pct: float
    bound_pct: float
    width_estimate_pct: float = float("nan")
    width_bound_pct: float = float("nan")


def pilot_effects(trial: Trial, outcome: str = simulation.OUTCOME) -> PilotEffects:
    """From the pilot's main GEE (the GEE chapter's model), in length and width."""
    fit = models.primary(trial, outcome)
    bound = fit.pct_ci_high if fit.pct_per_visit < 0 else fit.pct_ci_low
    try:
        width = models.primary(trial, simulation.SECOND)
        second = (
            width.pct_per_visit,
            width.pct_ci_high if width.pct_per_visit < 0 else width.pct_ci_low,
        )
    except models.NotEstimableError:
        second = (float("nan"), float("nan"))
    return PilotEffects(fit.pct_per_visit, bound, *second)


def slopes(
    pilot: PilotEffects, scenario: str, effect: str, outcome: str = simulation.OUTCOME
) -> tuple[float, float]:
    """(control arm's change, effect), log size per visit, of a scenario and effect, in
    length or (`outcome` width) the co-primary outcome, each from its own pilot estimate."""
    estimate, bound = (
        (pilot.estimate_pct, pilot.bound_pct)
        if outcome == simulation.OUTCOME
        else (pilot.width_estimate_pct, pilot.width_bound_pct)
    )
    control = SCENARIOS[scenario] * simulation.log_slope(estimate)
    injected = {
        "zero": control,
        "pilot": simulation.log_slope(estimate),
        "bound": simulation.log_slope(bound),
    }[effect]
    return control, injected - control


def assumptions(model: simulation.Model, grid: Grid) -> list[tuple[str, str, str]]:
    """(assumption, value, where the value comes from), for the chapter's table."""
    n = model.n_lesions_fitted
    fits = f"per-lesion least-squares lines of log({model.outcome}) on visit, {n} lesions"
    return [
        ("mean log size at baseline (μ)", f"{model.log_mean_baseline:.3f}", fits),
        ("SD of patient level (a)", f"{model.sd_patient_level:.3f}", fits + ", ANOVA"),
        ("SD of lesion level within patient (b)", f"{model.sd_lesion_level:.3f}", fits),
        ("SD of patient slope per visit (c)", f"{model.sd_patient_slope:.4f}", model.slope_source),
        (
            "SD of lesion slope within patient (d)",
            f"{model.sd_lesion_slope:.4f}",
            model.slope_source,
        ),
        ("SD of the within-lesion error (e)", f"{model.sd_residual:.4f}", model.slope_source),
        ("AR(1) correlation of e between visits", f"{model.ar1:.3f}", fits + " residuals"),
        (
            "share of lesions that resolve (size 0)",
            f"{model.resolution:.3f}",
            "lesions whose last measurement is 0, in both arms alike",
        ),
        (
            "recording step (mm)",
            f"{model.resolution_mm:g}",
            "the coarsest step all measurements are multiples of",
        ),
        (
            "lesions per child",
            ", ".join(map(str, model.lesions_per_patient))
            + (f", capped at {grid.lesion_cap}" if grid.lesion_cap else ""),
            "as observed, drawn with replacement; the cap is a design choice",
        ),
        (
            "deviations in level and slope",
            "independent, normal",
            f"assumed ({len(model.lesions_per_patient)} patients cannot estimate a correlation)",
        ),
        ("children lost after a random visit", f"{grid.dropout:g}", "assumed (design choice)"),
        ("visits missed by the others", f"{grid.missed:g}", "assumed (design choice)"),
        ("visits", str(grid.visits), "as the pilot's weekly injections"),
        *_width_assumptions(model),
    ]


def _width_assumptions(model: simulation.Model) -> list[tuple[str, str, str]]:
    """The co-primary outcome's rows: its own slope SDs and the slopes' correlation."""
    width = model.width
    if width is None:
        return []
    name = width.outcome
    return [
        (f"{name}: SD of patient slope (c)", f"{width.sd_patient_slope:.4f}", width.slope_source),
        (f"{name}: SD of lesion slope (d)", f"{width.sd_lesion_slope:.4f}", width.slope_source),
        (
            f"{name}: SD of the within-lesion error (e)",
            f"{width.sd_residual:.4f}",
            width.slope_source,
        ),
        (
            f"correlation of {model.outcome} and {name} slopes",
            f"{model.slope_correlation:.2f}",
            "lesions' least-squares slopes (estimation error pulls it towards 0; bounded at ±0.99)",
        ),
    ]


# --------------------------------------------------------------------------------------------
# Tasks
# --------------------------------------------------------------------------------------------


def cells(grid: Grid, pilot: PilotEffects) -> list[dict]:
    """Every cell of the grid: names, the control arm's change and the effect."""
    out = []
    scenarios = sorted(grid.scenarios, key=lambda s: s not in grid.main_scenarios)
    for scenario in scenarios:
        for design in grid.designs:
            for effect in grid.effects:
                control, diff = slopes(pilot, scenario, effect)
                control_w, diff_w = slopes(pilot, scenario, effect, simulation.SECOND)
                for n in grid.sizes(design):
                    out.append(
                        {
                            "design": design,
                            "scenario": scenario,
                            "effect": effect,
                            "children": n,
                            "control_slope": control,
                            "true_effect": diff,
                            "control_slope_width": control_w,
                            "true_effect_width": diff_w,
                        }
                    )
    return out


def _blocks(grid: Grid, replicates: int, limits: dict[str, int]):
    """(first, last, analyses) of each block: an analysis in `limits` only on replicates
    0 .. limit − 1, the others on all; blocks start at multiples of `block` and at the
    limits (so a run with other counts reuses what it shares)."""
    ends = {min(v, replicates) for v in limits.values()}
    edges = sorted({0, replicates, *range(0, replicates, grid.block), *ends})
    for first, end in zip(edges, edges[1:], strict=False):
        chosen = tuple(a for a in grid.analyses if a not in limits or limits[a] >= end)
        if chosen:
            yield first, end - 1, chosen


def _limits(grid: Grid, cell: dict) -> dict[str, int]:
    """How many replicates of this cell each GEE and the mixed model analyse (`Grid`): none
    below `model_children_min`."""
    mixed = {
        simulation.MIXED: grid.mixed_replicates
        if cell["scenario"] in grid.main_scenarios
        else grid.other_mixed_replicates
    }
    if cell["children"] < grid.model_children_min:
        return {**{name: 0 for name in simulation.GEE}, simulation.MIXED: 0}
    if cell["children"] > grid.gee_children_max:
        return {**{name: 0 for name in simulation.GEE}, **mixed}
    main = cell["scenario"] in grid.gee_scenarios
    return {
        "gee_patient": grid.gee_replicates if main else grid.other_gee_replicates,
        "gee_lesion": grid.lesion_gee_replicates,
        **mixed,
    }


def _key(cell: dict, first: int, last: int, analyses: tuple, member: int | None = None) -> str:
    who = f"m{member:05d}_" if member is not None else ""
    kinds = "-".join(a.replace("_", "") for a in analyses)
    return (
        f"{who}{cell['design']}_{cell['scenario']}_{cell['effect']}_c{cell['children']:03d}"
        f"_r{first:05d}-{last:05d}_{kinds}"
    )


def grid_tasks(model: simulation.Model, grid: Grid, pilot: PilotEffects) -> list[runner.Task]:
    """One task per cell and block of replicates, keyed by the cell, the replicates and the
    analyses it holds (so a larger run reuses only the blocks it shares)."""
    plain = model.as_dict()
    out = []
    for cell in cells(grid, pilot):
        design = asdict(grid.design(cell["design"]))
        limits = _limits(grid, cell)
        for first, last, analyses in _blocks(grid, grid.replicates_of(cell["scenario"]), limits):
            task_cell = {**cell, "analyses": analyses}
            args = (plain, design, task_cell, grid.seed, first, last)
            out.append(runner.Task(_key(cell, first, last, analyses), simulation.run_block, args))
    return out


def kept_members(grid: Grid, folder: Path = paths.ENSEMBLE_DIR) -> list[int]:
    """Seeds of the first `assurance_members` kept members of the shipped ensemble."""
    table = pd.read_csv(folder / "ensemble.csv", usecols=["seed", "kept"])
    seeds = sorted(int(s) for s in table.loc[table["kept"].astype(bool), "seed"].unique())
    return seeds[: grid.assurance_members]


def member_model(seed: int) -> runner.Rows:
    """A runner task: the ensemble member's dataset rebuilt from its seed and the
    simulation model fitted to it (one row; `model` empty and `reason` said if it fails)."""
    from calcinosis.data import trial as data
    from calcinosis.simulate import ensemble, reconstruct

    with tempfile.TemporaryDirectory(prefix="calcinosis-power-member-") as folder:
        try:
            reconstruct.write_dataset(Path(folder), seed, ensemble.member_assumptions(seed))
            # the assurance trials are analysed on length alone (`assurance_analyses`)
            model = simulation.fit_model(data.load_trial(Path(folder)), second=None)
        except (RuntimeError, ValueError, models.NotEstimableError) as err:
            return [{"seed": seed, "model": "", "reason": str(err)}]
    return [{"seed": seed, "model": json.dumps(model.as_dict()), "reason": ""}]


def member_tasks(grid: Grid, seeds: list[int]) -> list[runner.Task]:
    return [runner.Task(f"member_{s:05d}", member_model, (s,)) for s in seeds]


def usable_members(rows: pd.DataFrame) -> dict[int, simulation.Model]:
    """Members a model could be fitted to. Where the mixed model is singular or fails (most
    members: their noise-free reconstructions put a variance at 0), the slope SDs come from
    the least-squares lines, which count each slope's estimation error as spread: those
    members' power errs low. The manifest records each member's source."""
    out = {}
    for row in rows.itertuples(index=False):
        if row.model:
            out[int(row.seed)] = simulation.model_from_dict(json.loads(row.model))
    return out


def assurance_analyses(grid: Grid) -> tuple[str, ...]:
    """The analyses the members' trials get: every one the answer can read (run on at
    least MIN_ANSWER_REPLICATES trials a cell at some size of the assurance scenario) that
    needs length alone, since the members' models are fitted to length alone."""
    scenario = grid.assurance_scenario
    limits = [_limits(grid, {"children": n, "scenario": scenario}) for n in grid.children]
    enough = MIN_ANSWER_REPLICATES
    return tuple(
        a
        for a in grid.analyses
        if a != simulation.COPRIMARY and any(lim.get(a, enough) >= enough for lim in limits)
    )


def assurance_tasks(
    members: dict[int, simulation.Model], grid: Grid, pilot: PilotEffects
) -> list[runner.Task]:
    """Per usable member, design and size: the pilot's effect in the assurance scenario,
    analysed by `assurance_analyses` where the grid runs them at that size (the same seeds
    as every other member's)."""
    out = []
    scenario = grid.assurance_scenario
    chosen = assurance_analyses(grid)
    for seed, model in sorted(members.items()):
        for cell in cells(dataclasses_replace(grid, scenarios=(scenario,)), pilot):
            if cell["effect"] != "pilot":
                continue
            skipped = _limits(grid, cell)
            analyses = tuple(a for a in chosen if skipped.get(a, 1) > 0)
            cell = {**cell, "member": seed, "analyses": analyses}
            design = asdict(grid.design(cell["design"]))
            last = grid.assurance_replicates - 1
            args = (model.as_dict(), design, cell, grid.seed, 0, last)
            key = _key(cell, 0, last, analyses, member=seed)
            out.append(runner.Task(key, simulation.run_block, args))
    return out


def dataclasses_replace(grid: Grid, **changes) -> Grid:
    return Grid(**{**grid.as_dict(), **changes})


# --------------------------------------------------------------------------------------------
# A run, its manifest, and the shipped result
# --------------------------------------------------------------------------------------------


def code_hash() -> str:
    """The content hash (`calcinosis.codehash`) of the code that decides a replicate's
    numbers: so a moved module leaves the shipped run current, and an edited one makes it
    stale."""
    from calcinosis.stats import arraygee, arraymixed, covstruct, mixed

    return content_hash((simulation, models, covstruct, mixed, arraygee, arraymixed))


@dataclass
class Run:
    """A power run: the grid's replicate rows, the assurance rows, and their manifest."""

    replicates: pd.DataFrame
    assurance: pd.DataFrame
    manifest: dict = field(default_factory=dict)
    _performance: dict = field(default_factory=dict, repr=False, compare=False)
    _member_curves: dict = field(default_factory=dict, repr=False, compare=False)

    def performance(self, alpha: float) -> pd.DataFrame:
        """`performance` of the replicates at `alpha`, computed once per run (the chapter's
        tables, figure and answer all read it)."""
        if alpha not in self._performance:
            self._performance[alpha] = performance(self.replicates, alpha)
        return self._performance[alpha]

    def member_curves(self, alpha: float, design: str, analysis: str) -> list[tuple]:
        """Each ensemble member's smooth power curve of `analysis` in `design` at `alpha`,
        fitted once per run (the answer's sentence and every row of its table read them)."""
        key = (alpha, design, analysis)
        if key not in self._member_curves:
            self._member_curves[key] = _member_curves(self.assurance, alpha, design, analysis)
        return self._member_curves[key]

    def grid(self) -> Grid:
        """The grid the run covered (JSON lists back to tuples)."""
        stored = self.manifest["grid"]
        plain: dict[str, Any] = {
            k: tuple(v) if isinstance(v, list) else v for k, v in stored.items()
        }
        return Grid(**plain)

    def model(self) -> simulation.Model:
        return simulation.model_from_dict(self.manifest["model"])

    def pilot(self) -> PilotEffects:
        return PilotEffects(**self.manifest["pilot"])


def compute(
    trial: Trial,
    grid: Grid,
    store_dir: Path,
    *,
    scheduler: str | None = None,
    workers: int | None = None,
    progress: bool = True,
) -> Run:
    """Fit the model to `trial`, run every task not yet in `store_dir` (the grid and the
    ensemble members' models first, then the members' trials), and collect the rows."""
    model = simulation.fit_model(trial)
    pilot = pilot_effects(trial)
    store = runner.Store(store_dir)
    seeds = kept_members(grid) if grid.assurance_members else []
    start = time.perf_counter()
    reports = []
    with runner.client(scheduler, workers) as c:
        # the members first: the assurance trials wait for them
        first = member_tasks(grid, seeds) + grid_tasks(model, grid, pilot)
        reports.append(runner.run(first, store, progress=progress, description="power", on=c))
        members = usable_members(store.table([t.key for t in member_tasks(grid, seeds)]))
        second = assurance_tasks(members, grid, pilot)
        reports.append(runner.run(second, store, progress=progress, description="assurance", on=c))
    timing = {
        "computed": sum(len(r.computed) for r in reports),
        "reused": sum(len(r.reused) for r in reports),
        "workers": max(r.workers for r in reports),
        "wall_seconds": round(time.perf_counter() - start, 1),
    }
    return collect(trial, grid, store_dir, timing)


def collect(trial: Trial, grid: Grid, store_dir: Path, timing: dict | None = None) -> Run:
    """The run from whatever of its tasks `store_dir` holds; the manifest lists the tasks
    still missing (`complete` false), so a stopped run can be shipped for what it has."""
    model = simulation.fit_model(trial)
    pilot = pilot_effects(trial)
    store = runner.Store(store_dir)
    seeds = kept_members(grid) if grid.assurance_members else []
    member_keys = [t.key for t in member_tasks(grid, seeds) if store.has(t.key)]
    member_rows = store.table(member_keys) if member_keys else pd.DataFrame()
    members = usable_members(member_rows) if len(member_rows) else {}
    wanted = grid_tasks(model, grid, pilot) + assurance_tasks(members, grid, pilot)
    done = [t.key for t in wanted if store.has(t.key)]
    missing = len(wanted) - len(done) + len(seeds) - len(member_keys)
    grid_keys = [k for k in done if not k.startswith("m")]
    member_done = [k for k in done if k.startswith("m")]
    seconds = store.seconds(done + member_keys)
    manifest = {
        "code_sha256": code_hash(),
        "model": model.as_dict(),
        "data_sha256": data_fingerprint(trial),
        "pilot": asdict(pilot),
        "grid": grid.as_dict(),
        "members": [
            {
                "seed": int(r.seed),
                "usable": int(r.seed) in members,
                "mixed_model": int(r.seed) in members
                and members[int(r.seed)].slope_source.startswith("random-slope"),
                "reason": r.reason,
            }
            for r in member_rows.itertuples(index=False)
        ],
        "member_models": {str(s): m.as_dict() for s, m in sorted(members.items())},
        "tasks": len(wanted) + len(seeds),
        "missing_tasks": missing,
        "complete": missing == 0,
        "task_seconds": round(sum(seconds.values()), 1),
        "task_seconds_grid": round(sum(seconds[k] for k in grid_keys), 1),
        "task_seconds_members": round(sum(seconds[k] for k in member_keys), 1),
        "task_seconds_assurance": round(sum(seconds[k] for k in member_done), 1),
        **(timing or {}),
        "versions": _versions(),
    }
    order = ["design", "scenario", "effect", "children", "replicate"]
    replicates = _rows(store, grid_keys, order)
    assurance = _rows(store, member_done, ["member", *order])
    return Run(replicates, assurance, manifest)


def _rows(store: runner.Store, keys: list[str], order: list[str]) -> pd.DataFrame:
    if not keys:
        return pd.DataFrame(columns=order)
    return store.table(keys).sort_values(order, kind="mergesort").reset_index(drop=True)


def _versions() -> dict[str, str]:
    names = ("numpy", "pandas", "scipy", "statsmodels", "dask", "distributed")
    return {"python": platform.python_version(), **software.package_versions(names)}


def write(run: Run, folder: Path) -> None:
    """The replicates and assurance rows as gzipped CSV (6 significant digits, gzip without
    a time stamp) and the manifest: the same run gives the same bytes."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, table in ((REPLICATES_FILE, run.replicates), (ASSURANCE_FILE, run.assurance)):
        text = table.to_csv(index=False, float_format="%.6g", lineterminator="\n")
        with open(folder / name, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as gz:
            gz.write(text.encode("utf-8"))
    text = json.dumps(run.manifest, indent=1, sort_keys=True, ensure_ascii=False)
    (folder / MANIFEST_FILE).write_text(text + "\n", encoding="utf-8")


def read(folder: Path = SHIPPED_DIR) -> Run:
    """A written run (by default the one shipped with the package), read once per process
    while its files are unchanged: the planning and pinned sections of every results stage
    read the shipped run, and the run keeps what is computed from it (`Run.performance`)."""
    folder = Path(folder).resolve()
    stamps = tuple(
        (s.st_mtime_ns, s.st_size)
        for s in (
            (folder / name).stat() for name in (MANIFEST_FILE, REPLICATES_FILE, ASSURANCE_FILE)
        )
    )
    return _read(folder, stamps)


@functools.lru_cache(maxsize=4)
def _read(folder: Path, stamps: tuple) -> Run:
    manifest = json.loads((folder / MANIFEST_FILE).read_text(encoding="utf-8"))
    tables = [  # read whole: an analysis that ran in some cells only is a column of blanks
        # and True, which pandas would otherwise type chunk by chunk, with a warning
        pd.read_csv(io.BytesIO(gzip.decompress((folder / name).read_bytes())), low_memory=False)
        for name in (REPLICATES_FILE, ASSURANCE_FILE)
    ]
    return Run(tables[0], tables[1], manifest)


def staleness(run: Run, trial: Trial) -> list[str]:
    """Why `run` no longer describes this code and these data (empty: it does).

    The run's simulation model is a function of the code (its hash) and of the measurements
    it was fitted to (their fingerprint), so comparing the two fingerprints says whether these
    data would give the same model without refitting it: at registry size the refit is the
    costliest part of the planning section."""
    reasons = []
    if run.manifest.get("code_sha256") != code_hash():
        reasons.append(
            "the simulation or analysis code changed since it was computed (code hash "
            f"{str(run.manifest.get('code_sha256'))[:12]} there, {code_hash()[:12]} now)"
        )
    fingerprint = data_fingerprint(trial)
    if run.manifest.get("data_sha256") != fingerprint:
        reasons.append(
            "its simulation model was fitted to other measurements than these (fingerprint "
            f"{str(run.manifest.get('data_sha256'))[:12]} there, {fingerprint[:12]} here)"
        )
    if not run.manifest.get("complete", False):
        reasons.append(
            f"the run is incomplete ({run.manifest.get('missing_tasks')} tasks missing); "
            "the chapter reads only its complete cells"
        )
    return reasons


def data_fingerprint(trial: Trial) -> str:
    """SHA-256 of what the simulation model and the pilot effects read: each measurement's
    patient, lesion, visit and sizes, in the data's order."""
    frame = models.with_patient_id(trial.measurements)[list(FINGERPRINTED)]
    text = frame.to_csv(index=False, float_format="%r", lineterminator="\n")
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


# --------------------------------------------------------------------------------------------
# Performance measures
# --------------------------------------------------------------------------------------------

CELL = ["design", "scenario", "effect", "children"]


def performance(replicates: pd.DataFrame, alpha: float) -> pd.DataFrame:
    """Per cell and analysis: replicates analysed, failed fits, rejections at `alpha`, power
    (rejections among the fits that succeeded) with its Monte-Carlo SE √(p(1 − p)/R), bias
    of the estimate against the true effect and its MC SE, coverage of the 95 % CI and its
    MC SE, and mean lesions per trial."""
    rows = []
    for names, part in replicates.groupby(CELL, sort=True):
        for analysis in ANALYSES:
            if f"{analysis}_p" not in part:
                continue
            ran = part[part[f"{analysis}_ran"].fillna(False).astype(bool)]
            if ran.empty:
                continue
            p = ran[f"{analysis}_p"].to_numpy(float)
            ok = np.isfinite(p)
            valid = int(ok.sum())
            beta = ran[f"{analysis}_beta"].to_numpy(float)[ok]
            se = ran[f"{analysis}_se"].to_numpy(float)[ok]
            df = ran[f"{analysis}_df"].to_numpy(float)[ok]
            truth = ran["true_effect"].to_numpy(float)[ok]
            rejected = int(np.sum(p[ok] < alpha))
            share = rejected / valid if valid else np.nan
            crit = stats.t.ppf(0.975, df)
            covered = np.abs(beta - truth) <= crit * se
            slope = analysis in SLOPE_ANALYSES and valid > 0
            coverage = float(covered.mean()) if slope else np.nan
            rows.append(
                {
                    **dict(zip(CELL, names, strict=True)),
                    "analysis": analysis,
                    "replicates": len(ran),
                    "failed": len(ran) - valid,
                    "valid": valid,
                    "rejected": rejected,
                    "power": share,
                    "mcse": _binomial_se(share, valid),
                    "bias": float(np.mean(beta - truth)) if slope else np.nan,
                    "bias_mcse": float(np.std(beta, ddof=1) / np.sqrt(valid))
                    if slope and valid > 1
                    else np.nan,
                    "coverage": coverage,
                    "coverage_mcse": _binomial_se(coverage, valid),
                    "lesions": float(ran["n_lesions"].mean()),
                }
            )
    return pd.DataFrame(rows)


def _binomial_se(share: float, n: int) -> float:
    """The Monte-Carlo SE of an observed rate: its own, not the one under α."""
    return float(np.sqrt(share * (1 - share) / n)) if n else np.nan


@dataclass(frozen=True)
class Level:
    """Whether an analysis holds its level in one design and scenario (null cells)."""

    rate: float  # pooled over the sizes
    mcse: float
    replicates: int
    worst_rate: float
    worst_children: int
    holds: bool
    verdict: str


def level(perf: pd.DataFrame, design: str, scenario: str, analysis: str, alpha: float) -> Level:
    """An analysis holds its level when its Type I error pooled over the sizes is at most
    α + 2 MC SE and no size's is above α by more than 3 of its own MC SE."""
    null = perf[
        (perf["design"] == design)
        & (perf["scenario"] == scenario)
        & (perf["effect"] == "zero")
        & (perf["analysis"] == analysis)
    ]
    if null.empty or null["valid"].sum() == 0:
        return Level(np.nan, np.nan, 0, np.nan, 0, False, "not estimable: no trials without effect")
    valid = int(null["valid"].sum())
    rate = float(null["rejected"].sum() / valid)
    mcse = _binomial_se(rate, valid)
    worst = null.loc[(null["power"] - alpha - 3 * null["mcse"]).idxmax()]
    holds = rate - alpha <= 2 * mcse and worst["power"] - alpha <= 3 * worst["mcse"]
    if holds:
        verdict = "holds its level (within its Monte-Carlo error of α)"
    else:
        verdict = (
            f"rejects too often at α = {alpha:g} (up to {worst['power']:.3f} with "
            f"{int(worst['children'])} children)"
        )
    return Level(
        rate, mcse, valid, float(worst["power"]), int(worst["children"]), bool(holds), verdict
    )


def smooth_fit(children, rejected, valid) -> tuple[float, float]:
    """(a, b) of power = Φ(a + b√n), by binomial maximum likelihood over the grid's sizes:
    the normal approximation's power Φ(δ√n/(2σ) − z) has this form, so the curve is read
    between the sizes rather than at the first size that clears the line."""
    n = np.sqrt(np.asarray(children, float))
    k, m = np.asarray(rejected, float), np.asarray(valid, float)

    def loss(theta):
        z = theta[0] + theta[1] * n
        return -float(np.sum(k * special.log_ndtr(z) + (m - k) * special.log_ndtr(-z)))

    start = np.array([-1.0, 0.3])
    result = optimize.minimize(
        loss, start, method="Nelder-Mead", options={"xatol": 1e-8, "fatol": 1e-10, "maxiter": 4000}
    )
    return float(result.x[0]), float(result.x[1])


def smooth_power(fit: tuple[float, float], children: float) -> float:
    return float(stats.norm.cdf(fit[0] + fit[1] * np.sqrt(children)))


def children_needed(fit: tuple[float, float], target: float, largest: int) -> int | None:
    """The fewest children (even, so parallel arms are equal) the fitted curve gives
    `target` power with; None beyond the grid's largest size (no extrapolation)."""
    a, b = fit
    if b <= 0:
        return None
    n = ((stats.norm.ppf(target) - a) / b) ** 2
    even = int(2 * np.ceil(n / 2 - 1e-9))
    return max(even, 2) if even <= largest else None


def brute_force_needed(children, power, target: float) -> int | None:
    """The fewest grid size from which on every larger size reaches `target`."""
    found = None
    for n, share in sorted(zip(children, power, strict=True), reverse=True):
        if share < target:
            break
        found = int(n)
    return found


def curve(perf: pd.DataFrame, design: str, scenario: str, effect: str, analysis: str):
    """One power curve's cells, by size."""
    chosen = perf[
        (perf["design"] == design)
        & (perf["scenario"] == scenario)
        & (perf["effect"] == effect)
        & (perf["analysis"] == analysis)
    ]
    return chosen.sort_values("children")


def answer(run: Run, alpha: float, effect: str = "pilot") -> pd.DataFrame:
    """Per design, scenario and analysis: the level verdict, whether the answer may read it
    (level held, every size with at least MIN_ANSWER_REPLICATES), and the children needed
    for each target from the smooth curve (None: more than the grid's largest)."""
    grid = run.grid()
    perf = run.performance(alpha)
    rows = []
    for design in grid.designs:
        for scenario in grid.scenarios:
            for analysis in grid.analyses:
                cells_ = curve(perf, design, scenario, effect, analysis)
                if cells_.empty:
                    continue
                lev = level(perf, design, scenario, analysis, alpha)
                # every size analysed on MIN_ANSWER_REPLICATES trials, and so few failed
                # fits that a rate's MC SE stays within MAX_MCSE
                enough = (
                    bool(cells_["replicates"].min() >= MIN_ANSWER_REPLICATES)
                    and bool(0.5 / np.sqrt(cells_["valid"].min()) <= MAX_MCSE)
                    and len(cells_) == len(analysed_sizes(grid, design, scenario, analysis))
                )
                fit = smooth_fit(cells_["children"], cells_["rejected"], cells_["valid"])
                largest = int(cells_["children"].max())
                row: dict[str, Any] = {
                    "design": design,
                    "scenario": scenario,
                    "analysis": analysis,
                    "type1": lev.rate,
                    "type1_mcse": lev.mcse,
                    "level_holds": lev.holds,
                    "level_verdict": lev.verdict,
                    "replicates": int(cells_["replicates"].min()),
                    "valid": int(cells_["valid"].min()),
                    "offered": lev.holds and enough,
                    "fit_a": fit[0],
                    "fit_b": fit[1],
                    "largest": largest,
                    "smallest": int(cells_["children"].min()),
                }
                for target in grid.targets:
                    row[f"n{round(100 * target)}"] = children_needed(fit, target, largest)
                rows.append(row)
    return pd.DataFrame(rows)


def analysed_sizes(grid: Grid, design: str, scenario: str, analysis: str) -> list[int]:
    """The sizes at which the grid runs `analysis` (the GEEs skip those out of their range)."""
    return [
        n
        for n in grid.sizes(design)
        if _limits(grid, {"children": n, "scenario": scenario}).get(analysis, 1) > 0
    ]


def assurance(
    run: Run, alpha: float, children: int, design: str, analysis: str
) -> dict[str, float]:
    """Power of `analysis` at `children` averaged over the usable ensemble members (each
    member's own smooth curve, read at that size), its 10th percentile across members, and
    the number of members; NaN when the run holds none analysed by it."""
    fits = run.member_curves(alpha, design, analysis)
    if not fits:
        return {"assurance": np.nan, "p10": np.nan, "members": 0}
    values = np.array([smooth_power(fit, children) for fit in fits])
    return {
        "assurance": float(values.mean()),
        "p10": float(np.quantile(values, 0.1)),
        "members": len(values),
    }


def _member_curves(rows: pd.DataFrame, alpha: float, design: str, analysis: str) -> list[tuple]:
    """(a, b) of each member's smooth curve (`smooth_fit`: rejections among the fits that
    succeeded, by size), in the order of the members."""
    if rows.empty or "member" not in rows or f"{analysis}_p" not in rows:
        return []
    part = rows[(rows["design"] == design) & rows[f"{analysis}_ran"].fillna(False).astype(bool)]
    p = part[f"{analysis}_p"].to_numpy(float)
    counts = (
        pd.DataFrame({"valid": np.isfinite(p), "rejected": p < alpha})
        .groupby([part["member"].to_numpy(), part["children"].to_numpy()])
        .sum()
    )
    return [
        smooth_fit(sizes.index.get_level_values(1), sizes["rejected"], sizes["valid"])
        for _, sizes in counts.groupby(level=0, sort=True)
    ]


def feasibility(children: int, catchment_millions: float) -> dict[str, float]:
    """Years a catchment of `catchment_millions` children needs to see `children` new
    cases of JDM with calcinosis, at the incidence range the article cites (every new case
    enrolled: a floor, not an estimate)."""
    per_year = [i * CALCINOSIS_SHARE * catchment_millions for i in INCIDENCE_PER_MILLION]
    return {
        "cases_low": per_year[0],
        "cases_high": per_year[1],
        "years_low": children / per_year[1],
        "years_high": children / per_year[0],
    }
