"""What the planning chapter shows of a power run, for its parameters: the answer (children
needed, from analyses that hold their level and cells with enough replicates), Type I error,
bias and coverage per cell, assurance over the ensemble, and feasibility.

The chapter computes this in its own kernel from the run folder it names (`power_dir`,
default the run shipped in the package), so any α, target, scenario, design or effect the
run holds can be asked for; `check` refuses any other in one line naming what exists.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from calcinosis.simulate import power, simulation

if TYPE_CHECKING:
    from calcinosis.report.sections import Section


@dataclass(frozen=True)
class Choice:
    """The chapter's parameters."""

    alpha: float = 0.05
    target_power: float = 0.8
    scenario: str = "quarter"
    design: str = "parallel"
    effect: str = "pilot"
    catchment_millions: float = 10.0


def load(power_dir: str | Path = "") -> power.Run:
    """The run in `power_dir` (empty: the one shipped in the package)."""
    return power.read(Path(power_dir) if power_dir else power.SHIPPED_DIR)


def check(run: power.Run, choice: Choice) -> None:
    """Raise ValueError, in one line naming what the run holds, for a choice it cannot
    answer."""
    grid = run.grid()
    held = {
        "scenario": grid.scenarios,
        "design": grid.designs,
        "effect": [e for e in grid.effects if e != "zero"],
    }
    for name, allowed in held.items():
        value = getattr(choice, name)
        known = {"scenario": power.SCENARIOS, "design": simulation.DESIGNS}.get(name, power.EFFECTS)
        if value not in known or value == "zero":
            raise ValueError(
                f"{name}={value!r} is not one of the {name}s this chapter offers (the power "
                "run holds "
                f"{', '.join(allowed)})"
            )
        if value not in allowed:
            raise ValueError(
                f"{name}={value!r} is not in the power run (it holds {', '.join(allowed)}); "
                f"make one with `calcinosis power --{name} {value} --out DIR` and pass "
                "-p power_dir=DIR"
            )
    for name in ("alpha", "target_power"):
        value = getattr(choice, name)
        if not (isinstance(value, int | float) and 0 < value < 1):
            raise ValueError(f"{name}={value!r}: use a number between 0 and 1")
    if not choice.catchment_millions > 0:
        raise ValueError(f"catchment_millions={choice.catchment_millions!r}: use a number > 0")


def check_params(own: dict[str, object]) -> None:
    """Refuse, before anything is built, chapter parameters the run (`power_dir`, default the
    shipped one) cannot answer (ValueError, one line naming what exists)."""
    power_dir = own.get("power_dir", "")
    try:
        run = load(str(power_dir))
    except (OSError, ValueError, KeyError) as err:
        raise ValueError(f"power_dir={power_dir!r} holds no readable power run ({err})") from None
    fields = Choice.__dataclass_fields__
    check(run, Choice(**{k: v for k, v in own.items() if k in fields}))  # type: ignore[arg-type]


def _children_text(n: int | None, largest: int, smallest: int) -> str:
    """The children a curve needs, within the grid: never extrapolated beyond either end."""
    if n is None:
        return f"more than {largest}"
    return f"{smallest} or fewer" if n <= smallest else str(n)


def values(run: power.Run, choice: Choice) -> dict[str, object]:
    """Every number and phrase the chapter's prose cites, for `choice` (prefix-free names;
    the chapter glues them as plan_<name>)."""
    check(run, choice)
    grid = run.grid()
    pilot = run.pilot()
    perf = run.performance(choice.alpha)
    answers = power.answer(run, choice.alpha, choice.effect)
    mine = answers[(answers["design"] == choice.design) & (answers["scenario"] == choice.scenario)]
    control, effect = power.slopes(pilot, choice.scenario, choice.effect)
    sizes = grid.sizes(choice.design)
    largest = max(sizes)
    target_key = f"n{round(100 * choice.target_power)}"
    out: dict[str, object] = {
        "alpha": choice.alpha,
        "target_pct": 100 * choice.target_power,
        "scenario_words": power.SCENARIO_LABELS[choice.scenario],
        "design_words": power.DESIGN_LABELS[choice.design],
        "control_pct": 100 * float(np.expm1(control)),
        "effect_pct": 100 * float(np.expm1(effect)),
        "effect_end_pct": simulation.pct_at_end(effect, grid.visits),
        "visits": grid.visits,
        "pilot_pct": pilot.estimate_pct,
        "bound_pct": pilot.bound_pct,
        "replicates": grid.replicates,
        "other_replicates": grid.other_replicates,
        "main_scenarios": ", ".join(power.SCENARIO_LABELS[s] for s in grid.main_scenarios),
        "gee_replicates": grid.gee_replicates,
        "other_gee_replicates": grid.other_gee_replicates,
        "lesion_gee_replicates": grid.lesion_gee_replicates,
        "gee_children_max": grid.gee_children_max,
        "model_children_min": grid.model_children_min,
        "mixed_main_replicates": grid.mixed_replicates,  # "mixed_replicates": the cell's count
        "other_mixed_replicates": grid.other_mixed_replicates,
        "n_analyses": len(grid.analyses),
        "response_fall_pct": 100 * (1 - simulation.RESPONSE_SHARE),
        "width_pilot_pct": pilot.width_estimate_pct,
        "slope_correlation": run.model().slope_correlation,
        "gee_scenarios": ", ".join(power.SCENARIO_LABELS[s] for s in grid.gee_scenarios),
        "children_grid": _sizes_text(grid),
        "largest": largest,
        "n_cells": len(power.cells(grid, pilot)),
        "mcse_max": float(0.5 / np.sqrt(grid.replicates)),
        "min_answer_replicates": power.MIN_ANSWER_REPLICATES,
        "dropout_pct": 100 * grid.dropout,
        "missed_pct": 100 * grid.missed,
        "lesion_cap": grid.lesion_cap or "no cap",
    }
    for a in power.ANALYSES:
        out[f"{a}_type1"] = "not run in this scenario"
        out[f"{a}_level"] = "not run in this scenario"
        out[f"{a}_n"] = "not run in this scenario"
        out[f"{a}_replicates"] = 0
    for row in mine.itertuples(index=False):
        a = row.analysis
        out[f"{a}_type1"] = f"{row.type1:.3f} (MC SE {row.type1_mcse:.3f})"
        out[f"{a}_level"] = row.level_verdict
        out[f"{a}_replicates"] = int(row.replicates)
        n = getattr(row, target_key, None)
        n = None if n is None or pd.isna(n) else int(n)
        out[f"{a}_n"] = _children_text(n, row.largest, row.smallest)
    offered = mine[mine["offered"]]
    best = _best(offered, target_key)
    refused = _best(mine[~mine["level_holds"]], target_key)
    out["refused"] = "The answer comes from an analysis that holds its level."
    if best is None:
        out["refused"] = "No analysis holds its level with enough replicates here."
    if refused is not None and best is None:
        row = mine[mine["analysis"] == refused[0]].iloc[0]
        n_text = _children_text(refused[1], largest, int(row["smallest"]))
        out["refused"] = (
            f"The {power.ANALYSIS_LABELS[refused[0]]} would need {n_text} children, but "
            f"without effect it rejects in {row['type1']:.3f} of the trials (MC SE "
            f"{row['type1_mcse']:.3f}) at α = {choice.alpha:g}: more than its Monte-Carlo "
            "error allows, so it is not offered."
        )
    # the smallest size the chosen curve was read from (the GEEs and the mixed model start
    # above the within-patient design's smallest)
    chosen = mine[mine["analysis"] == best[0]] if best is not None else mine.iloc[:0]
    smallest = int(chosen["smallest"].iloc[0]) if len(chosen) else min(sizes)
    n_answer = None if best is None or best[1] is None else max(best[1], smallest)
    if best is None:
        out["answer"] = "no answer: no analysis holds its level with enough replicates here"
        out["answer_analysis"] = "none"
        out["n"] = "not read"
    else:
        out["answer_analysis"] = power.ANALYSIS_LABELS[best[0]]
        out["n"] = _children_text(best[1], largest, smallest)
        per_arm = f" ({n_answer // 2} per arm)" if choice.design == "parallel" and n_answer else ""
        out["answer"] = (
            f"{out['n']} children{per_arm}, analysed by the {power.ANALYSIS_LABELS[best[0]]}"
            if n_answer is not None
            else f"more than {largest} children: the grid does not reach the target"
        )
    # assurance of the answer's analysis at its size, or of a refused one at the size it
    # would need
    candidate = refused if refused is not None and refused[1] is not None else None
    out["answer_sentence"] = (
        f"For this page's parameters the trial needs {out['answer']}."
        if best is not None
        else "For this page's parameters no analysis gives an answer."
    )
    if best is not None and n_answer is not None:
        out.update(_assurance(run, choice, best[0], n_answer))
    elif candidate is not None:
        out.update(_assurance(run, choice, candidate[0], candidate[1]))
    else:
        out.update(_assurance(run, choice, "", None))
    out.update(_performance_ranges(perf, choice))
    sized = n_answer or (refused[1] if refused and refused[1] else largest)
    feasible = power.feasibility(sized, choice.catchment_millions)
    out.update({f"feas_{k}": v for k, v in feasible.items()})
    out["feas_children"] = sized
    out["catchment_millions"] = choice.catchment_millions
    out["incidence_low"], out["incidence_high"] = power.INCIDENCE_PER_MILLION
    out["calcinosis_pct"] = 100 * power.CALCINOSIS_SHARE
    return out


def _best(offered: pd.DataFrame, target_key: str) -> tuple[str, int | None] | None:
    """The offered analysis needing the fewest children (None: none offered)."""
    if offered.empty:
        return None
    needed = offered[target_key].astype(float)
    if needed.notna().any():
        row = offered.loc[needed.idxmin()]
        return str(row["analysis"]), int(row[target_key])
    return str(offered.iloc[0]["analysis"]), None


def _assurance(run: power.Run, choice: Choice, analysis: str, n: int | None) -> dict[str, object]:
    """The assurance of `analysis` at `n` children, in words and numbers."""
    grid = run.grid()
    words = {
        "assurance_words": "",
        "assurance": np.nan,
        "p10": np.nan,
        "members": 0,
        "power_point": np.nan,
    }
    if n is None or choice.scenario != grid.assurance_scenario or choice.effect != "pilot":
        words["assurance_words"] = (
            f"not computed here: the run computes assurance for the pilot's effect in the "
            f"scenario '{power.SCENARIO_LABELS[grid.assurance_scenario]}' at a size the grid "
            "reaches"
        )
        return words
    label = power.ANALYSIS_LABELS[analysis]
    result = power.assurance(run, choice.alpha, n, choice.design, analysis)
    if not result["members"]:
        words["assurance_words"] = (
            f"not computed for the {label}: the run holds no usable ensemble member analysed by it"
        )
        return words
    perf = run.performance(choice.alpha)
    cells_ = power.curve(perf, choice.design, choice.scenario, choice.effect, analysis)
    fit = power.smooth_fit(cells_["children"], cells_["rejected"], cells_["valid"])
    words.update(result)
    words["power_point"] = power.smooth_power(fit, n)
    words["assurance_words"] = (
        f"by the {label}, {result['assurance']:.2f} averaged over {result['members']} "
        "members (10th "
        f"percentile {result['p10']:.2f}), beside {words['power_point']:.2f} at the point "
        f"values, at {n} children"
    )
    return words


def _sizes_text(grid: power.Grid) -> str:
    """The grid's sizes, and those only the within-patient design has."""
    text = ", ".join(map(str, grid.children))
    small = [n for n in grid.sizes("within") if n not in grid.children]
    if "within" in grid.designs and small:
        text += f" (the within-patient design also {', '.join(map(str, small))})"
    return text


def _performance_ranges(perf: pd.DataFrame, choice: Choice) -> dict[str, float]:
    """The largest |bias| (% per visit) and the coverage range of the summary slope over
    the sizes of the chosen design, scenario and effect."""
    cells_ = power.curve(perf, choice.design, choice.scenario, choice.effect, "summary")
    bias = 100 * cells_["bias"].abs()
    return {
        "summary_bias_max_pct": float(bias.max()),
        "summary_coverage_min": float(cells_["coverage"].min()),
        "summary_coverage_max": float(cells_["coverage"].max()),
        "summary_failed_max": int(cells_["failed"].max()),
    }


# --------------------------------------------------------------------------------------------
# Tables
# --------------------------------------------------------------------------------------------

ANSWER_DECIMALS = {"Fewest replicates per size": 0}
CELLS_DECIMALS = {"Children": 0, "Replicates": 0, "Failed": 0}
LEVELS_DECIMALS = {"Trials without effect": 0}


def tab_answer(run: power.Run, choice: Choice) -> pd.DataFrame:
    """Per design, scenario and analysis that holds its level (the others are in
    `tab_levels`, as warnings): Type I error with its MC SE, the fewest trials a size was
    analysed on, the children needed for each target (read only from curves with enough
    trials; the others say so), and at the main target's size the assurance and the 10th
    percentile across the ensemble's members (`_assurance_cell`)."""
    grid = run.grid()
    answers = power.answer(run, choice.alpha, choice.effect)
    answers = answers[answers["level_holds"]]
    main_key = f"n{round(100 * choice.target_power)}"
    rows = []
    for row in answers.itertuples(index=False):
        out = {
            "Design": row.design,
            "Control arm": row.scenario,
            "Analysis": power.ANALYSIS_LABELS[row.analysis],
            "Type I error (MC SE)": f"{row.type1:.3f} ({row.type1_mcse:.3f})",
            "Fewest replicates per size": int(row.replicates),
        }
        for target in grid.targets:
            key = f"n{round(100 * target)}"
            n = getattr(row, key)
            n = None if pd.isna(n) else int(n)
            text = _children_text(n, row.largest, row.smallest)
            if not row.offered:
                text = f"not read: {text} on fewer than {power.MIN_ANSWER_REPLICATES} trials"
            out[f"Children for {round(100 * target)} % power"] = text
        n = getattr(row, main_key, None)
        n = None if n is None or pd.isna(n) else max(int(n), row.smallest)
        out[f"Assurance at that size (10th percentile), {round(100 * choice.target_power)} %"] = (
            _assurance_cell(run, choice, row, n)
        )
        rows.append(out)
    return pd.DataFrame(rows)


def _assurance_cell(run: power.Run, choice: Choice, row, n: int | None) -> str:
    """The members' assurance and 10th percentile of this row's analysis at its size (the
    members' trials are analysed by `power.assurance_analyses`; the others say so)."""
    grid = run.grid()
    if row.scenario != grid.assurance_scenario or choice.effect != "pilot":
        return "not computed (the pilot's effect in the main scenario only)"
    if n is None or not row.offered:
        return "not computed (no size read)"
    if row.analysis not in power.assurance_analyses(grid):
        return "not computed (the members' trials are not analysed by it)"
    result = power.assurance(run, choice.alpha, n, row.design, row.analysis)
    if not result["members"]:
        return "not computed: no usable member"
    return f"{result['assurance']:.2f} ({result['p10']:.2f}), {result['members']} members"


def tab_levels(run: power.Run, choice: Choice) -> pd.DataFrame:
    """Every analysis's Type I error per design and scenario, pooled over the sizes, with
    its MC SE, the largest at one size, and the verdict: the warnings the answer leaves
    out."""
    grid = run.grid()
    perf = run.performance(choice.alpha)
    rows = []
    for design in grid.designs:
        for scenario in grid.scenarios:
            for analysis in grid.analyses:
                lev = power.level(perf, design, scenario, analysis, choice.alpha)
                if not lev.replicates:
                    continue
                rows.append(
                    {
                        "Design": design,
                        "Control arm": scenario,
                        "Analysis": power.ANALYSIS_LABELS[analysis],
                        "Type I error (MC SE)": f"{lev.rate:.3f} ({lev.mcse:.3f})",
                        "Trials without effect": lev.replicates,
                        "Largest at one size": f"{lev.worst_rate:.3f} ({lev.worst_children})",
                        "Verdict": lev.verdict,
                    }
                )
    return pd.DataFrame(rows)


def tab_cells(run: power.Run, choice: Choice) -> pd.DataFrame:
    """Every cell of the chosen design and scenario: replicates, failed fits, power or Type
    I error with MC SE, bias (% per visit) and coverage with MC SE."""
    perf = run.performance(choice.alpha)
    chosen = perf[(perf["design"] == choice.design) & (perf["scenario"] == choice.scenario)]
    chosen = chosen.sort_values(["effect", "analysis", "children"])
    return pd.DataFrame(
        {
            "Effect": chosen["effect"],
            "Analysis": chosen["analysis"].map(power.ANALYSIS_LABELS),
            "Children": chosen["children"],
            "Replicates": chosen["replicates"],
            "Failed": chosen["failed"],
            "Rejected (MC SE)": [
                f"{p:.3f} ({s:.3f})" for p, s in zip(chosen["power"], chosen["mcse"], strict=True)
            ],
            "Bias, % per visit (MC SE)": [
                _pair(100 * b, 100 * s)
                for b, s in zip(chosen["bias"], chosen["bias_mcse"], strict=True)
            ],
            "Coverage (MC SE)": [
                _pair(c, s)
                for c, s in zip(chosen["coverage"], chosen["coverage_mcse"], strict=True)
            ],
        }
    ).reset_index(drop=True)


def _pair(value: float, mcse: float) -> str:
    """'value (MC SE)', or words where the analysis estimates no slope."""
    if not np.isfinite(value):
        return "no slope estimate"
    return f"{value:.3f} ({mcse:.3f})"


def curves(run: power.Run, choice: Choice) -> dict[str, pd.DataFrame]:
    """Per analysis, the chosen design's and scenario's cells (effect and zero) with the
    smooth curve's power at each size, for the figure."""
    perf = run.performance(choice.alpha)
    out = {}
    for analysis in run.grid().analyses:
        part = power.curve(perf, choice.design, choice.scenario, choice.effect, analysis)
        zero = power.curve(perf, choice.design, choice.scenario, "zero", analysis)
        if part.empty:
            continue
        fit = power.smooth_fit(part["children"], part["rejected"], part["valid"])
        part = part.assign(smooth=[power.smooth_power(fit, n) for n in part["children"]])
        out[analysis] = part.merge(
            zero[["children", "power", "mcse"]].rename(
                columns={"power": "type1", "mcse": "type1_mcse"}
            ),
            on="children",
            how="left",
        )
    return out


# --------------------------------------------------------------------------------------------
# The section the chapter shows
# --------------------------------------------------------------------------------------------


def section(run: power.Run, choice: Choice, stale_warning: str):
    """Everything the planning chapter cites, for `choice`: the run's making (power_*), the
    answer and its measures (plan_*), the model, answer and cells tables and the curves."""
    from calcinosis.report import figures, tables
    from calcinosis.report.sections import Section, Table

    manifest = run.manifest
    members = manifest.get("members", [])
    out = Section("power")
    out.add(
        {
            "code_hash": manifest["code_sha256"][:12],
            "wall_minutes": manifest.get("wall_seconds", 0) / 60,
            "task_minutes": manifest["task_seconds"] / 60,
            "workers": manifest.get("workers", 0),
            "tasks": manifest["tasks"],
            "tasks_computed": manifest.get("computed", 0),
            "tasks_missing": manifest["missing_tasks"],
            "members_tried": len(members),
            "members_usable": sum(bool(m["usable"]) for m in members),
            "members_mixed": sum(bool(m.get("mixed_model")) for m in members),
            "stale_warning": stale_warning,
        },
        prefix="power_",
    )
    out.add(values(run, choice), prefix="plan_")
    out.tables["tab_power_assumptions"] = Table(
        tables.tab_power_assumptions(power.assumptions(run.model(), run.grid()))
    )
    out.tables["plan_tab_answer"] = Table(tab_answer(run, choice), ANSWER_DECIMALS)
    out.tables["plan_tab_levels"] = Table(tab_levels(run, choice), LEVELS_DECIMALS)
    out.tables["plan_tab_cells"] = Table(tab_cells(run, choice), CELLS_DECIMALS)
    out.figures["plan_fig_curves"] = figures.render(
        figures.fig_power_curves(
            curves(run, choice), choice.alpha, choice.target_power, power.ANALYSIS_LABELS
        )
    )
    return out


def is_default(power_dir: str | Path = "", **params) -> bool:
    """Whether the page asks for what the book's results stage computed (the shipped run at
    the default parameters): then it shows the `power` section as every page shows its own."""
    return not power_dir and Choice(**params) == Choice()


def page_section(
    power_dir: str | Path = "",
    data_dir: str | Path = "../data",
    stale: str | None = None,
    **params,
) -> tuple[Section, str]:
    """For a page with other parameters or another run: the `power` section built for them
    in this kernel (the page glues it with `calcinosis.book.page.show_built`), and the
    sentence saying why the run is stale ("" when it is current). In a build the shipped
    run's staleness is the results stage's, passed as `stale`, so the page's kernel need not
    see the data; otherwise (`stale` None) the run is judged against the data."""
    from calcinosis.data.trial import load_trial
    from calcinosis.report import results

    run = load(power_dir)
    choice = Choice(**params)
    check(run, choice)
    if stale is None:
        stale = results._stale_sentence(power.staleness(run, load_trial(data_dir)))
    return section(run, choice, stale), stale
