"""Power of a randomised trial analysed as the pilot was, by simulation on the Dask runner.

A trial randomises patients to injection or control (`simulation.simulate_trial`) and is
analysed twice with the pilot's GEE (Gaussian, log link, exchangeable) on
log E[size] = β₀ + β₁·arm + β₂·time + β₃·arm·time, where β₃ is the effect:

- `patient`: patients as clusters with the book's small-sample correction
  (`models.term_test` with the bias-reduced linearisation of Bell and McCaffrey, CR2): the
  analysis a trial should use;
- `lesion`: lesions as clusters with the robust sandwich and z, as the pilot's main model:
  cheaper, and it shows what ignoring the patient level does to the apparent power.

The grid crosses patients per arm, effect sizes and follow-up lengths; α is applied when the
replicates are summarised, so one run serves every α. A task is one grid cell and one block
of replicates; replicate r of a cell has its own seed, derived from the run's seed, the cell's
patients per arm and follow-up, and r alone: results do not depend on the block size, the
workers or the order, and cells that differ only in effect share their simulated patients
(common random numbers: the power curves are smooth in the effect). `simulation` holds
the code a replicate runs; its bytes are the shipped result's code hash.
"""

from __future__ import annotations

import hashlib
import json
import platform
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from calcinosis import models, paths, runner, simulation, software
from calcinosis.data import Trial

ANALYSES = simulation.ANALYSES
# The files whose code decides a replicate's numbers: a shipped result made with other bytes
# is stale.
CODE_FILES = ("simulation.py", "models.py", "covstruct.py")
SHIPPED_DIR = paths.PACKAGE_DIR / "shipped" / "power"
REPLICATES_FILE = "replicates.csv"
MANIFEST_FILE = "manifest.json"
DEFAULT_SEED = 20261126


@dataclass(frozen=True)
class Grid:
    """What a power run covers. `effects_pct` (changes in percent per visit, injection minus
    control) are extra effects: `with_pilot_effects` adds none, the pilot's estimate and the
    bound of its 95 % CI nearest no change."""

    patients_per_arm: tuple[int, ...] = (4, 8, 12, 16, 24)
    effects_pct: tuple[float, ...] = ()
    visits: tuple[int, ...] = (8, 16)
    alphas: tuple[float, ...] = (0.05, 0.01)
    replicates: int = 100
    block: int = 25
    seed: int = DEFAULT_SEED
    control_slope_pct: float = 0.0
    lesions_per_patient: int | None = None  # None: drawn from the observed counts
    targets: tuple[float, ...] = (0.8, 0.9)

    def as_dict(self) -> dict:
        return asdict(self)

    def cells(self) -> list[tuple[int, float, int]]:
        """(patients per arm, effect in % per visit, visits) for every cell."""
        return [
            (n, e, v) for n in self.patients_per_arm for e in self.effects_pct for v in self.visits
        ]


@dataclass(frozen=True)
class PilotEffects:
    """The pilot's change per visit (%) and the bound of its 95 % CI nearest no change."""

    estimate_pct: float
    bound_pct: float


def pilot_effects(trial: Trial, outcome: str = simulation.OUTCOME) -> PilotEffects:
    """From the pilot's main GEE (the GEE chapter's model)."""
    fit = models.primary(trial, outcome)
    bound = fit.pct_ci_high if fit.pct_per_visit < 0 else fit.pct_ci_low
    return PilotEffects(fit.pct_per_visit, bound)


def assumptions(model: simulation.Model) -> list[tuple[str, str, str]]:
    """(assumption, value, where the value comes from), for the chapter's table."""
    n = model.n_lesions_fitted
    fits = f"per-lesion least-squares lines of log({model.outcome}) on visit, {n} lesions"
    return [
        ("mean log size at baseline (μ)", f"{model.log_mean_baseline:.3f}", fits),
        ("SD of patient level (a)", f"{model.sd_patient_level:.3f}", fits + ", ANOVA"),
        ("SD of lesion level within patient (b)", f"{model.sd_lesion_level:.3f}", fits),
        ("SD of patient slope per visit (c)", f"{model.sd_patient_slope:.4f}", fits),
        ("SD of lesion slope within patient (d)", f"{model.sd_lesion_slope:.4f}", fits),
        ("SD of the within-lesion error (e)", f"{model.sd_residual:.4f}", fits + " residuals"),
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
            "lesions per patient",
            ", ".join(map(str, model.lesions_per_patient)),
            "as observed, drawn with replacement for each simulated patient",
        ),
        (
            "deviations in level and slope",
            "independent, normal",
            f"assumed ({len(model.lesions_per_patient)} patients cannot estimate a correlation)",
        ),
        ("visits", "complete in both arms", "assumed (no drop-out)"),
    ]


def with_pilot_effects(grid: Grid, pilot: PilotEffects) -> Grid:
    """The grid with zero, the pilot's CI bound and its estimate among its effects."""
    effects = {0.0, round(pilot.bound_pct, 4), round(pilot.estimate_pct, 4), *grid.effects_pct}
    ordered = tuple(sorted(effects, key=abs))
    return Grid(**{**grid.as_dict(), "effects_pct": ordered})


# --------------------------------------------------------------------------------------------
# Tasks and runs
# --------------------------------------------------------------------------------------------


def tasks(model: simulation.Model, grid: Grid) -> list[runner.Task]:
    """One task per cell and block of replicates, keyed by the cell and the replicates it
    holds (so a run with more replicates reuses only the blocks it shares)."""
    plain_model = model.as_dict()
    settings = {name: getattr(grid, name) for name in simulation.RUN_SETTINGS}
    out = []
    for n, e, v in grid.cells():
        sign = "m" if e < 0 else "p"
        for b, first in enumerate(range(0, grid.replicates, grid.block)):
            last = min(first + grid.block, grid.replicates) - 1
            key = f"n{n:03d}_e{sign}{abs(e):07.4f}_v{v:03d}_r{first:05d}-{last:05d}"
            out.append(runner.Task(key, simulation.run_block, (plain_model, settings, n, e, v, b)))
    return out


# --------------------------------------------------------------------------------------------
# A run, its manifest, and the shipped result
# --------------------------------------------------------------------------------------------


def code_hash() -> str:
    """SHA-256 over the bytes of the code that decides a replicate's numbers."""
    digest = hashlib.sha256()
    for name in CODE_FILES:
        digest.update(name.encode() + b"\0" + (paths.PACKAGE_DIR / name).read_bytes())
    return digest.hexdigest()


@dataclass
class Run:
    """A finished power run: the replicate rows and their manifest."""

    replicates: pd.DataFrame
    manifest: dict = field(default_factory=dict)

    def grid(self) -> Grid:
        """The grid the run covered (JSON lists back to tuples)."""
        stored = self.manifest["grid"]
        plain: dict[str, Any] = {
            k: tuple(v) if isinstance(v, list) else v for k, v in stored.items()
        }
        return Grid(**plain)

    def model(self) -> simulation.Model:
        """The simulation model the run used."""
        stored = self.manifest["model"]
        return simulation.Model(
            **{**stored, "lesions_per_patient": tuple(stored["lesions_per_patient"])}
        )


def compute(
    trial: Trial,
    grid: Grid,
    store_dir: Path,
    *,
    scheduler: str | None = None,
    workers: int | None = None,
    progress: bool = True,
) -> Run:
    """Fit the model to `trial`, run every task not yet in `store_dir`, and collect the rows."""
    model = simulation.fit_model(trial)
    pilot = pilot_effects(trial)
    grid = with_pilot_effects(grid, pilot)
    todo = tasks(model, grid)
    store = runner.Store(store_dir)
    start = time.perf_counter()
    report = runner.run(
        todo, store, scheduler=scheduler, workers=workers, progress=progress, description="power"
    )
    keys = [t.key for t in todo]
    table = store.table(keys).sort_values(["n_per_arm", "effect_pct", "visits", "replicate"])
    seconds = store.seconds(keys)
    manifest = {
        "code_sha256": code_hash(),
        "model": model.as_dict(),
        "pilot": asdict(pilot),
        "grid": grid.as_dict(),
        "tasks": len(todo),
        "computed": len(report.computed),
        "reused": len(report.reused),
        "workers": report.workers,
        "wall_seconds": round(time.perf_counter() - start, 1),
        "task_seconds": round(sum(seconds.values()), 1),
        "versions": _versions(),
    }
    return Run(table.reset_index(drop=True), manifest)


def _versions() -> dict[str, str]:
    names = ("numpy", "pandas", "scipy", "statsmodels", "dask", "distributed")
    return {"python": platform.python_version(), **software.package_versions(names)}


def write(run: Run, folder: Path) -> None:
    """The replicates as CSV (p to 6 significant digits) and the manifest, byte-stable."""
    folder.mkdir(parents=True, exist_ok=True)
    run.replicates.to_csv(folder / REPLICATES_FILE, index=False, float_format="%.6g")
    text = json.dumps(run.manifest, indent=1, sort_keys=True, ensure_ascii=False)
    (folder / MANIFEST_FILE).write_text(text + "\n", encoding="utf-8")


def read(folder: Path = SHIPPED_DIR) -> Run:
    """A written run (by default the one shipped with the package)."""
    manifest = json.loads((folder / MANIFEST_FILE).read_text(encoding="utf-8"))
    return Run(pd.read_csv(folder / REPLICATES_FILE), manifest)


def staleness(run: Run, trial: Trial) -> list[str]:
    """Why `run` no longer describes this code and these data (empty: it does)."""
    reasons = []
    if run.manifest.get("code_sha256") != code_hash():
        reasons.append(
            "the simulation or analysis code changed since it was computed (code hash "
            f"{str(run.manifest.get('code_sha256'))[:12]} there, {code_hash()[:12]} now)"
        )
    try:
        fitted = simulation.fit_model(trial).as_dict()
    except models.NotEstimableError as err:
        reasons.append(f"no simulation model can be fitted to these data ({err})")
        return reasons
    if not _close(run.model().as_dict(), fitted):
        reasons.append("the simulation model fitted to these data differs from the shipped one")
    return reasons


def _close(a: dict, b: dict) -> bool:
    if a.keys() != b.keys():
        return False
    for key, value in a.items():
        other = b[key]
        if isinstance(value, float) and isinstance(other, float):
            if not np.isclose(value, other, rtol=1e-9, atol=1e-12):
                return False
        elif value != other:
            return False
    return True


# --------------------------------------------------------------------------------------------
# Summaries
# --------------------------------------------------------------------------------------------


def power_table(replicates: pd.DataFrame, alphas) -> pd.DataFrame:
    """Per cell, analysis and α: rejections, valid replicates, power and its Monte-Carlo SE
    √(p(1 − p)/R), mean estimate (% per visit) and its MC SE. Replicates whose fit failed
    count as not rejecting (a trial that cannot be analysed shows no effect)."""
    rows = []
    cells = replicates.groupby(["n_per_arm", "effect_pct", "visits"], sort=True)
    for (n, effect, visits), part in cells:
        for analysis in ANALYSES:
            p = part[f"{analysis}_p"].to_numpy(float)
            beta = part[f"{analysis}_beta"].to_numpy(float)
            reps = len(p)
            for alpha in sorted(alphas):
                rejected = int(np.sum(np.nan_to_num(p, nan=1.0) < alpha))
                share = rejected / reps
                rows.append(
                    {
                        "n_per_arm": int(n),
                        "effect_pct": float(effect),
                        "visits": int(visits),
                        "analysis": analysis,
                        "alpha": float(alpha),
                        "replicates": reps,
                        "failed": int(np.isnan(p).sum()),
                        "rejected": rejected,
                        "power": share,
                        "mcse": float(np.sqrt(share * (1 - share) / reps)),
                        "mean_beta": float(np.nanmean(beta)),
                        "mcse_beta": float(
                            np.nanstd(beta, ddof=1) / np.sqrt(np.isfinite(beta).sum())
                        ),
                    }
                )
    return pd.DataFrame(rows)


def patients_needed(cells: pd.DataFrame, target: float) -> dict[tuple, int | str]:
    """Per (effect, visits, analysis) of `cells` (`cell_power` of one α): the fewest
    patients per arm in the grid from which on every larger size reaches `target` (so one
    lucky cell does not count), or "more than N" when the largest size N does not."""
    out: dict[tuple, int | str] = {}
    for keys, part in cells.groupby(level=["effect_pct", "visits", "analysis"], sort=True):
        by_size = part.droplevel(["effect_pct", "visits", "analysis"])["power"].sort_index()
        found: int | str = f"more than {int(by_size.index.max())}"
        for size, share in by_size[::-1].items():
            if share < target:
                break
            found = int(size)
        out[keys] = found
    return out


def needed_table(cells: pd.DataFrame, targets) -> pd.DataFrame:
    """`patients_needed` for each target, as rows (the effect zero left out)."""
    rows = [
        {"effect_pct": e, "visits": v, "analysis": a, "target": t, "patients": str(n)}
        for t in targets
        for (e, v, a), n in patients_needed(cells, t).items()
        if e != 0
    ]
    return pd.DataFrame(rows)


def cell_power(table: pd.DataFrame, alpha: float) -> pd.DataFrame:
    """`power_table` rows of one α, indexed by (effect, visits, analysis, patients per arm)."""
    chosen = table[np.isclose(table["alpha"], alpha)]
    if chosen.empty:
        raise ValueError(
            f"α = {alpha} is not in the run's grid ({sorted(table['alpha'].unique())})"
        )
    return chosen.set_index(["effect_pct", "visits", "analysis", "n_per_arm"]).sort_index()


def type1_error(replicates: pd.DataFrame, alpha: float, analysis: str) -> tuple[float, float, int]:
    """Share of effect-zero replicates rejected at `alpha` over every cell, its MC SE, and
    the number of replicates."""
    p = replicates.loc[replicates["effect_pct"] == 0, f"{analysis}_p"].to_numpy(float)
    share = float(np.mean(np.nan_to_num(p, nan=1.0) < alpha))
    return share, float(np.sqrt(alpha * (1 - alpha) / len(p))), len(p)


def type1_verdict(share: float, mcse: float, alpha: float) -> str:
    """Whether the test holds its level: within 2 MC SE of α, or which way it errs."""
    if abs(share - alpha) <= 2 * mcse:
        return "within its Monte-Carlo error of α"
    side = "above" if share > alpha else "below"
    kind = "rejects too often (anti-conservative)" if share > alpha else "is conservative"
    return f"{side} α by more than twice its Monte-Carlo error: the test {kind}"


def planning(
    alpha: float,
    target_power: float,
    effect_sizes: list[float] | None = None,
    lesions_per_patient: int | None = None,
    folder: Path = SHIPPED_DIR,
) -> str:
    """The planning chapter's own table, for its parameters, from the shipped replicates (as
    Markdown): patients per arm needed for `target_power` at `alpha` (any α: the replicates
    keep their p-values), for `effect_sizes` (% per visit; None: the pilot's estimate and
    its CI bound), which the shipped grid must hold, as it must `lesions_per_patient`."""
    from calcinosis import tables
    from calcinosis.formatting import markdown_table

    run = read(folder)
    grid = run.grid()
    if not (0 < alpha < 1 and 0 < target_power < 1):
        raise ValueError(f"alpha={alpha} and target_power={target_power} must lie in (0, 1)")
    if lesions_per_patient != grid.lesions_per_patient:
        raise ValueError(
            f"the shipped run drew lesions per patient as {grid.lesions_per_patient or 'observed'}"
            f", not {lesions_per_patient}: make and ship a run with "
            f"`calcinosis power --lesions-per-patient {lesions_per_patient}`"
        )
    if effect_sizes is None:
        pilot = PilotEffects(**run.manifest["pilot"])
        effect_sizes = [round(pilot.estimate_pct, 4), round(pilot.bound_pct, 4)]
    missing = [e for e in effect_sizes if not np.isclose(grid.effects_pct, e, atol=1e-4).any()]
    if missing:
        raise ValueError(
            f"effects {missing} (% per visit) are not in the shipped grid "
            f"{list(grid.effects_pct)}: make and ship a run with "
            + " ".join(f"--effect {e:g}" for e in missing)
        )
    cells = cell_power(power_table(run.replicates, [alpha]), alpha)
    wanted = cells.index.get_level_values("effect_pct")
    keep = np.isclose(wanted.to_numpy()[:, None], np.array(effect_sizes)[None, :], atol=1e-4)
    table = tables.tab_power_needed(needed_table(cells[keep.any(axis=1)], [target_power]))
    return markdown_table(table, 2)


def cluster_gap(cells: pd.DataFrame) -> float:
    """Mean over the cells with an effect of (lesion-clustered − patient-clustered) power:
    what ignoring the patient level adds to the apparent power."""
    with_effect = cells[cells.index.get_level_values("effect_pct") != 0]["power"]
    by_analysis = with_effect.unstack("analysis")
    return float((by_analysis["lesion"] - by_analysis["patient"]).mean())
