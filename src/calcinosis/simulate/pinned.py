"""What the article's summaries pin down: each conclusion of the book across the shipped
ensemble of reconstructions (`calcinosis.simulate.ensemble`), of one of three kinds, with its
verdict.

- *Imposed by the audit*: every quantity the conclusion rests on is one of the article's
  printed claims, which a member must reproduce to be kept; that it holds in every member is
  the audit's doing, so it gets no verdict.
- *Built into the generator*: it rests on a quantity that one of the generator's fixed choices
  decides (`ensemble.constructions`); it holds because of how members are made, and the
  chapter names that choice instead of a verdict.
- *Open*: the rest. Its verdict reads the share of kept members in which it holds: *pinned
  down* (it holds, or fails, in at least AGREEMENT of them) or *left open by the article*.

A share is a proportion among the datasets this generator makes and the audit keeps, not a
probability about the trial. Conclusions of decline hold only where the estimate falls *and*
is significant. The data are compared with the ensemble only when they are the article's
trial (`article.match`). The kinds and verdicts are computed here, never typed.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from calcinosis import paths
from calcinosis.names import slug
from calcinosis.simulate import article, ensemble, reconstruct
from calcinosis.simulate.ensemble import ALPHA
from calcinosis.stats import models

AGREEMENT = 0.95
IMPOSED, BUILT_IN, OPEN = "imposed by the audit", "built into the generator", "open"
HOLDS, FAILS, LEFT_OPEN = (
    "pinned down: holds",
    "pinned down: fails",
    "left open by the article",
)
NO_VERDICT = {IMPOSED: "none: the audit keeps only members where it holds", BUILT_IN: "none"}
SLOW_PATIENTS = (3, 4, 5)  # the article's patients with long disease duration


def sensitivity_quantity(outcome: str, factor: str, choice: str, what: str = "p") -> str:
    """The table's name of one sensitivity row's number (as `ensemble.conclusion_values`
    names it)."""
    return f"sens_{outcome}_{slug(factor)}_{slug(choice)}".lower() + f"_{what}"


# the sensitivity grid's row of that analysis, named as the grid names it
PATIENT_LEVEL = (
    "covariance",
    f"{models.COV_TYPE_NAMES['mancl_derouen']}, patient clusters (independence)",
)


def _column(frame: pd.DataFrame, name: str) -> pd.Series:
    return frame[name] if name in frame else pd.Series(np.nan, index=frame.index)


Holds = Callable[[pd.DataFrame, pd.Series], pd.Series]


@dataclass(frozen=True)
class Conclusion:
    """A conclusion of the book: whether it holds on each row of a wide table (members as
    rows, quantities as columns) given a reference row (the data's when they are compared,
    else the members' most common values); the number to show; the quantities it rests on."""

    name: str
    claim: str  # may name the reference value as {reference}
    quantity: str
    holds: Holds
    rests_on: tuple[str, ...]
    kind: str = "pct"  # what the number is: a key of KINDS

    @property
    def label(self) -> str:
        return KINDS[self.kind]


KINDS = {
    "pct": "change per visit (%)",
    "p": "p",
    "share": "share of the grid's analyses with a significant decline",
    "interaction": "extra change per visit, long vs short duration (%)",
    "change": "median change, final − baseline (mm)",
    "visit": "median visit",
    "count": "lesions",
}


def _declines(pct: str, p: str) -> Holds:
    """Falls significantly: the estimate is negative and its p below ALPHA."""
    return lambda frame, reference: (_column(frame, pct) < 0) & (_column(frame, p) < ALPHA)


def _same_as_reference(q: str) -> Holds:
    return lambda frame, reference: _column(frame, q) == reference.get(q, np.nan)


def _fastest(frame: pd.DataFrame, reference: pd.Series) -> pd.Series:
    slow = pd.concat([_column(frame, f"rate_article{p}_length_pct") for p in SLOW_PATIENTS], axis=1)
    fastest = _column(frame, "rate_article1_length_pct")
    return (fastest < 0) & (fastest < slow.min(axis=1, skipna=False))


def _slower_when_long(outcome: str) -> Holds:
    """A decline overall, less steep (significantly) with longer disease duration."""

    def holds(frame: pd.DataFrame, reference: pd.Series) -> pd.Series:
        pct, p = (
            _column(frame, f"interaction_{outcome}_pct"),
            _column(frame, f"interaction_{outcome}_p"),
        )
        declines = _column(frame, f"gee_{outcome}_pct_per_visit") < 0
        return declines & (p < ALPHA) & (pct > 0)

    return holds


def conclusions() -> tuple[Conclusion, ...]:
    """The book's conclusions, in the order of the book."""
    out = []
    for outcome in ("length", "width"):
        pct, p = f"gee_{outcome}_pct_per_visit", f"gee_{outcome}_p"
        out.append(
            Conclusion(
                f"gee_{outcome}",
                f"Lesion {outcome} falls significantly per visit (primary GEE, lesion clusters)",
                pct,
                _declines(pct, p),
                (pct, p),
            )
        )
    for outcome in ("length", "width"):
        pct, p = (sensitivity_quantity(outcome, *PATIENT_LEVEL, what=w) for w in ("pct", "p"))
        out.append(
            Conclusion(
                f"patient_level_{outcome}",
                f"{outcome.capitalize()} still falls significantly with patients as clusters "
                "and the Mancl–DeRouen small-sample correction",
                p,
                _declines(pct, p),
                (pct, p),
                kind="p",
            )
        )
    out.append(
        Conclusion(
            "sensitivity_all",
            "Every analysis of the sensitivity grid finds a significant decline",
            "sens_share_declining",
            lambda frame, reference: _column(frame, "sens_share_declining") >= 1.0,
            ("sens_share_declining",),
            kind="share",
        )
    )
    rates = tuple(f"rate_article{p}_length_pct" for p in (1, *SLOW_PATIENTS))
    out.append(
        Conclusion(
            "p1_fastest",
            "Patient 1's lesions shrink faster than those of patients 3, 4 and 5 (length)",
            rates[0],
            _fastest,
            rates,
        )
    )
    for outcome in ("length", "width"):
        pct, p = f"interaction_{outcome}_pct", f"interaction_{outcome}_p"
        out.append(
            Conclusion(
                f"duration_{outcome}",
                f"Longer disease duration, slower decline: the time × duration interaction "
                f"is significant ({outcome})",
                pct,
                _slower_when_long(outcome),
                (pct, p, f"gee_{outcome}_pct_per_visit"),
                kind="interaction",
            )
        )
    for outcome in ("length", "width"):
        change, p = f"rad_{outcome}_median_change_mm", f"rad_{outcome}_p"
        out.append(
            Conclusion(
                f"radiography_{outcome}",
                f"Radiographic {outcome} is smaller after treatment (Wilcoxon signed-rank)",
                change,
                _declines(change, p),
                (change, p),
                kind="change",
            )
        )
    out.append(
        Conclusion(
            "decline_start",
            "Patient 1's decline starts at visit {reference} (median over its lesions)",
            "decline_start_article1",
            _same_as_reference("decline_start_article1"),
            ("decline_start_article1",),
            kind="visit",
        )
    )
    out.append(
        Conclusion(
            "n_resolved",
            "{reference} lesions are gone on the final radiograph",
            "rad_n_resolved",
            _same_as_reference("rad_n_resolved"),
            ("rad_n_resolved",),
            kind="count",
        )
    )
    return tuple(out)


@functools.cache
def _audited_claims() -> dict[str, dict]:
    """The published claims the audit checks, by name: parsed from the facts file once per
    process, because `basis` asks for every conclusion of every sub-ensemble (a YAML parse
    each took most of the pinned section's time)."""
    return {c["name"]: c for c in reconstruct.published_claims(reconstruct.load_facts())}


def basis(conclusion: Conclusion) -> tuple[str, str]:
    """The conclusion's kind and why: imposed when the audit checks every quantity it rests
    on (why: those claims), built in when a fixed choice of the generator decides one of
    them (why: that choice), else open."""
    claims = _audited_claims()
    if set(conclusion.rests_on) <= set(claims):
        printed = (claims[q] for q in conclusion.rests_on)
        return IMPOSED, " and ".join(f"{c['name']} {c['relation']} {c['value']:g}" for c in printed)
    for construction in ensemble.constructions():
        if set(conclusion.rests_on) & set(construction.decides):
            return BUILT_IN, construction.meaning
    return OPEN, ""


# --------------------------------------------------------------------------------------------
# The shipped ensemble
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Shipped:
    """The ensemble the book reads: the tidy table, its manifest, and whether the code its
    members depend on changed since it was made."""

    table: pd.DataFrame
    manifest: dict

    @property
    def stale(self) -> bool:
        return self.manifest.get("code_hash") != ensemble.code_hash()

    def wide(self) -> pd.DataFrame:
        """Kept members as rows, quantities as columns."""
        kept = self.table[self.table["kept"]]
        return kept.pivot(index="key", columns="quantity", values="value")


def load(folder: Path = paths.ENSEMBLE_DIR) -> Shipped | None:
    """The ensemble in `folder`, or None when there is none."""
    folder = Path(folder)
    table, manifest = folder / ensemble.TABLE_FILE, folder / ensemble.MANIFEST_FILE
    if not (table.is_file() and manifest.is_file()):
        return None
    return Shipped(pd.read_parquet(table), json.loads(manifest.read_text(encoding="utf-8")))


def stale_message(folder: Path = paths.ENSEMBLE_DIR) -> str:
    """A warning for the build when the shipped ensemble no longer matches the code."""
    shipped = load(folder)
    if shipped is None or not shipped.stale:
        return ""
    # named relative to the repository, so neither the page nor the PDF carries the build
    # machine's paths
    where = folder.relative_to(paths.ROOT) if folder.is_relative_to(paths.ROOT) else folder.name
    return (
        f"the shipped ensemble in {where} was made with other code than this (code hash "
        f"{shipped.manifest.get('code_hash', '')[:12]}, now {ensemble.code_hash()[:12]}): its "
        f"chapter may be wrong. Refresh it: calcinosis ensemble --n {shipped.manifest['n_members']}"
    )


def pinned_verdict(share: float) -> str:
    """An open conclusion's verdict from the share of kept members where it holds."""
    if share >= AGREEMENT:
        return HOLDS
    if share <= 1 - AGREEMENT:
        return FAILS
    return LEFT_OPEN


def verdicts(
    wide: pd.DataFrame, data: dict[str, float] | None, common: pd.Series | None = None
) -> pd.DataFrame:
    """One row per conclusion: its kind and why, its number over the members, the share of
    members where it holds and the verdict; with `data` (the article's trial, see
    `article.match`), its number in the data, whether it holds there and whether that agrees
    with the verdict. Without, the reference of a "same as" conclusion is the members' most
    common value (or `common`'s) and nothing is said of the data."""
    compared = data is not None
    if compared:
        reference = pd.Series(data, dtype=float)
    else:
        reference = _most_common(wide) if common is None else common
    rows = []
    for c in conclusions():
        kind, why = basis(c)
        holds = c.holds(wide, reference)
        values = _column(wide, c.quantity)
        share = float(holds.mean()) if len(wide) else np.nan
        verdict = pinned_verdict(share) if kind == OPEN else NO_VERDICT[kind]
        in_data = bool(c.holds(reference.to_frame().T, reference).iloc[0]) if compared else None
        rows.append(
            {
                "conclusion": c.name,
                "claim": c.claim.format(reference=_plain(reference.get(c.quantity, np.nan))),
                "quantity": c.quantity,
                "kind": c.kind,
                "label": c.label,
                "basis": kind,
                "why": why,
                "value_in_data": float(reference.get(c.quantity, np.nan)) if compared else np.nan,
                "holds_in_data": in_data,
                "ensemble_median": float(values.median()),
                "ensemble_p5": float(values.quantile(0.05)),
                "ensemble_p95": float(values.quantile(0.95)),
                "share_holding": share,
                "verdict": verdict,
                "data_agree": _agree(verdict, in_data),
            }
        )
    return pd.DataFrame(rows)


def _most_common(wide: pd.DataFrame) -> pd.Series:
    """Each quantity's most common value over the members (the smallest of tied ones)."""
    return wide.mode().iloc[0] if len(wide) else pd.Series(dtype=float)


def _plain(value: float) -> str:
    return "–" if pd.isna(value) else f"{value:g}"


def _agree(verdict: str, in_data: bool | None) -> str:
    """Whether the data say what the ensemble pins down ("" when there is nothing to say)."""
    if in_data is None or verdict not in (HOLDS, FAILS):
        return ""
    return "yes" if in_data == (verdict == HOLDS) else "no"


# --------------------------------------------------------------------------------------------
# Sub-ensembles: how the shares move with what the generator assumes
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SubEnsemble:
    """Kept members chosen by their recorded generator parameters."""

    label: str
    group: str  # "all", "ruler grid", "noise" or "range halved"
    keys: pd.Index


def _drawn(members: pd.DataFrame, assumption: ensemble.Assumption) -> pd.Series:
    """The members' drawn values of `assumption` as numbers (a set of lesions: its count)."""
    column = members[assumption.name]
    if assumption.name == "resolved":
        return column.astype(str).str.split().str.len().astype(float)
    return column.astype(float)


def sub_ensembles(table: pd.DataFrame) -> list[SubEnsemble]:
    """All kept members; those of each ruler grid; those with rater noise in the lower and
    the upper half of its range; and, one assumption at a time, those whose drawn value lies
    in the middle half of its range (the range halved)."""
    members = table[table["kept"]].drop_duplicates("key").set_index("key")
    out = [SubEnsemble("all kept members", "all", members.index)]
    for a in ensemble.ASSUMPTIONS:
        if a.name not in members:
            continue
        values = _drawn(members, a)
        if a.between == "or":
            for v in (a.low, a.high):
                out.append(SubEnsemble(f"{a.name} {v:g}", "ruler grid", members.index[values == v]))
            continue
        middle, quarter = (a.low + a.high) / 2, (a.high - a.low) / 4
        if a.name == "noise_steps":
            out.append(
                SubEnsemble(f"{a.name} below {middle:g}", "noise", members.index[values < middle])
            )
            out.append(
                SubEnsemble(f"{a.name} from {middle:g}", "noise", members.index[values >= middle])
            )
        inside = (values >= a.low + quarter) & (values <= a.high - quarter)
        out.append(
            SubEnsemble(
                f"{a.name} {a.low + quarter:g} to {a.high - quarter:g}",
                "range halved",
                members.index[inside],
            )
        )
    return out


def sub_ensemble_shares(
    wide: pd.DataFrame, table: pd.DataFrame, data: dict[str, float] | None
) -> pd.DataFrame:
    """Per sub-ensemble and conclusion that is not imposed by the audit: its members, the
    share where the conclusion holds and, for an open one, the verdict there ("same as"
    conclusions against the whole ensemble's reference)."""
    common = _most_common(wide)
    rows = []
    for sub in sub_ensembles(table):
        part = wide.loc[wide.index.intersection(sub.keys)]
        if part.empty:
            continue
        for row in verdicts(part, data, common).itertuples(index=False):
            if row.basis == IMPOSED:
                continue
            rows.append(
                {
                    "sub_ensemble": sub.label,
                    "group": sub.group,
                    "n_members": len(part),
                    "conclusion": row.conclusion,
                    "basis": row.basis,
                    "share_holding": row.share_holding,
                    "verdict": row.verdict,
                }
            )
    return pd.DataFrame(rows)


def sub_ensemble_numbers(shares: pd.DataFrame) -> dict[str, object]:
    """How far the open conclusions' shares and verdicts move across the sub-ensembles."""
    open_ = shares[shares["basis"] == OPEN] if len(shares) else shares
    if open_.empty:
        return {
            "sub_max_move_pct": 0.0,
            "sub_n_verdicts_moved": 0,
            "sub_n_open": 0,
            "sub_n_sub_ensembles": 0,
            "sub_n_smallest": 0,
        }
    whole = open_[open_["group"] == "all"].set_index("conclusion")
    moves = (open_["share_holding"] - open_["conclusion"].map(whole["share_holding"])).abs()
    moved = open_.groupby("conclusion")["verdict"].nunique() > 1
    return {
        "sub_max_move_pct": 100 * float(moves.max()),
        "sub_n_verdicts_moved": int(moved.sum()),
        "sub_n_open": int(len(moved)),
        "sub_n_sub_ensembles": int(shares["sub_ensemble"].nunique()) - 1,
        "sub_n_smallest": int(shares["n_members"].min()),
    }


# --------------------------------------------------------------------------------------------
# What the design cannot show
# --------------------------------------------------------------------------------------------


LESION_ANALYSIS = "gee_lesion"  # the planning run's lesion-clustered GEE, the pilot's test


def design_numbers() -> dict[str, object]:
    """The article's design in its own words and, from the planning chapter's shipped run,
    how often the lesion-clustered test rejects when there is no effect (share, its
    Monte-Carlo SE, replicates, and failed fits counted as non-rejections there)."""
    from calcinosis.simulate import power

    run = power.read()
    grid = run.grid()
    alpha, design, scenario = grid.alphas[0], grid.designs[0], grid.main_scenarios[0]
    perf = run.performance(alpha)
    level = power.level(perf, design, scenario, LESION_ANALYSIS, alpha)
    share, se, replicates = level.rate, level.mcse, level.replicates
    null = perf[
        (perf["design"] == design)
        & (perf["scenario"] == scenario)
        & (perf["effect"] == "zero")
        & (perf["analysis"] == LESION_ANALYSIS)
    ]
    failed = int(null["failed"].sum())
    design = str(reconstruct.load_facts()["design"]["type"])
    uncontrolled = "uncontrolled" in design or "single-arm" in design
    return {
        "design_sentence": (
            f"The article describes its study as a {design}. Without a control arm, no "
            "dataset that prints its summaries can tell a decline under injections from the "
            "natural course of calcinosis, from regression to the mean or from a "
            "co-treatment: every verdict above is about change during treatment, none about "
            "efficacy against control."
            if uncontrolled
            else f"The article describes its study as a {design}."
        ),
        "type1_alpha": alpha,
        "type1_lesion_pct": 100 * share,
        "type1_lesion_mcse_pct": 100 * se,
        "type1_lesion_replicates": replicates,
        "type1_lesion_failed": failed,
        "type1_sentence": _type1_sentence(alpha, share, se, replicates),
    }


def _type1_sentence(alpha: float, share: float, se: float, replicates: int) -> str:
    """The lesion-clustered test's rejection rate under no effect, and what it means for the
    conclusions that rest on it."""
    if not replicates:
        return (
            "The planning chapter's simulation holds no trials without effect for the "
            "lesion-clustered GEE, so how often it rejects by chance is not shown here."
        )
    said = (
        f"In the planning chapter's simulation with no effect at all, the lesion-clustered "
        f"GEE, the test behind the primary conclusions, rejects at α = {alpha:g} in "
        f"{100 * share:.0f} % of {replicates} simulated trials (Monte-Carlo SE "
        f"{100 * se:.1f} percentage points)"
    )
    if share - alpha > 2 * se:
        return said + ": far more often than α, so its significance alone is weak evidence."
    return said + ", close to α."


# --------------------------------------------------------------------------------------------
# The chapter's sentences
# --------------------------------------------------------------------------------------------


def sentences(verdicts: pd.DataFrame, found: article.Match) -> dict[str, str]:
    """What the chapter says of these data, of each kind of conclusion and of the design,
    worded from the verdicts (a sentence with nothing to say is empty)."""
    imposed = verdicts[verdicts["basis"] == IMPOSED]
    built = verdicts[verdicts["basis"] == BUILT_IN]
    out = {"data_sentence": _data_sentence(found)}
    out["imposed_sentence"] = (
        f"Here: {_join(imposed['claim'])} (the article prints {_join(imposed['why'].unique())})."
        if len(imposed)
        else ""
    )
    out["built_in_sentence"] = " ".join(
        f"Here: {_join(rows['claim'])}. The generator's choice: {why}."
        for why, rows in built.groupby("why", sort=False)
    )
    return out


def _data_sentence(found: article.Match) -> str:
    if found.is_article:
        return (
            "These data describe the article's children: each patient the article describes "
            "matches exactly one patient here (sex, age, disease duration, number of "
            "lesions), and the visits follow its schedule. So the table also shows each "
            "conclusion in these data, direction as well as significance, beside what the "
            "ensemble pins down."
        )
    return (
        f"These data are not the article's trial: {found.reason}. The ensemble describes "
        "the article's summaries, so this chapter shows what the article pins down and does "
        "not compare these data with it."
    )


def _join(items) -> str:
    items = [str(i) for i in items]
    if len(items) <= 1:
        return "".join(items)
    return "; ".join(items[:-1]) + " and " + items[-1]
