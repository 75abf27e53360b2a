"""What the article's summaries pin down: each conclusion of the book in the data beside its
spread over the shipped ensemble of reconstructions (`calcinosis.ensemble`), and a verdict.

A conclusion is *fixed by the article* when at least AGREEMENT of the ensemble's kept members
agree with the data on it (it holds in both, or fails in both): every dataset that prints the
article's summaries then says the same, and so would the trial's own data, as far as the
reconstruction's assumptions span what the article leaves open. Otherwise it *depends on data
never published*. The verdicts are computed here from the shipped table, never typed.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from calcinosis import ensemble, paths
from calcinosis.sections import slug

AGREEMENT = 0.95
FIXED, OPEN = "fixed by the article", "depends on data never published"
ALPHA = 0.05
SLOW_PATIENTS = ("P3", "P4", "P5")


def sensitivity_quantity(outcome: str, factor: str, choice: str, what: str = "p") -> str:
    """The table's name of one sensitivity row's number (as `ensemble.conclusion_values`
    names it)."""
    return f"sens_{outcome}_{slug(factor)}_{slug(choice)}".lower() + f"_{what}"


PATIENT_LEVEL = ("covariance", "Mancl–DeRouen, patient clusters (independence)")


def _column(frame: pd.DataFrame, name: str) -> pd.Series:
    return frame[name] if name in frame else pd.Series(np.nan, index=frame.index)


@dataclass(frozen=True)
class Conclusion:
    """A conclusion of the book: whether it holds on each row of a wide table (members as
    rows, quantities as columns), given the data's own row; and the number to show."""

    name: str
    claim: str
    quantity: str
    holds: Callable[[pd.DataFrame, pd.Series], pd.Series]
    kind: str = "pct"  # what the number is: a key of KINDS

    @property
    def label(self) -> str:
        return KINDS[self.kind]


KINDS = {
    "pct": "change per visit (%)",
    "p": "p",
    "share": "share of the grid's analyses with p < 0.05",
    "interaction": "extra change per visit, long vs short duration (%)",
    "visit": "median visit",
    "count": "lesions",
}


def _significant(p: str) -> Callable[[pd.DataFrame, pd.Series], pd.Series]:
    return lambda frame, data: _column(frame, p) < ALPHA


def _same_as_data(q: str) -> Callable[[pd.DataFrame, pd.Series], pd.Series]:
    return lambda frame, data: _column(frame, q) == data.get(q, np.nan)


def _fastest(frame: pd.DataFrame, data: pd.Series) -> pd.Series:
    slow = pd.concat([_column(frame, f"rate_{p}_length_pct") for p in SLOW_PATIENTS], axis=1)
    return _column(frame, "rate_P1_length_pct") < slow.min(axis=1, skipna=False)


def _slower_when_long(outcome: str) -> Callable[[pd.DataFrame, pd.Series], pd.Series]:
    def holds(frame: pd.DataFrame, data: pd.Series) -> pd.Series:
        pct, p = (
            _column(frame, f"interaction_{outcome}_pct"),
            _column(frame, f"interaction_{outcome}_p"),
        )
        return (p < ALPHA) & (pct > 0)

    return holds


def conclusions() -> tuple[Conclusion, ...]:
    """The book's conclusions, in the order of the book."""
    out = []
    for outcome in ("length", "width"):
        out.append(
            Conclusion(
                f"gee_{outcome}",
                f"Lesion {outcome} falls significantly per visit (primary GEE, lesion clusters)",
                f"gee_{outcome}_pct",
                _significant(f"gee_{outcome}_p"),
            )
        )
    for outcome in ("length", "width"):
        p = sensitivity_quantity(outcome, *PATIENT_LEVEL)
        out.append(
            Conclusion(
                f"patient_level_{outcome}",
                f"{outcome.capitalize()} still falls significantly with patients as clusters "
                "and the Mancl–DeRouen small-sample correction",
                p,
                _significant(p),
                kind="p",
            )
        )
    out.append(
        Conclusion(
            "sensitivity_all",
            "Every analysis of the sensitivity grid finds a significant decline",
            "sens_share_significant",
            lambda frame, data: _column(frame, "sens_share_significant") >= 1.0,
            kind="share",
        )
    )
    out.append(
        Conclusion(
            "p1_fastest",
            "Patient 1's lesions shrink faster than those of patients 3, 4 and 5 (length)",
            "rate_P1_length_pct",
            _fastest,
        )
    )
    for outcome in ("length", "width"):
        out.append(
            Conclusion(
                f"duration_{outcome}",
                f"Longer disease duration, slower decline: the time × duration interaction "
                f"is significant ({outcome})",
                f"interaction_{outcome}_pct",
                _slower_when_long(outcome),
                kind="interaction",
            )
        )
    for outcome in ("length", "width"):
        out.append(
            Conclusion(
                f"radiography_{outcome}",
                f"Radiographic {outcome} is smaller after treatment (Wilcoxon signed-rank)",
                f"rad_{outcome}_p",
                _significant(f"rad_{outcome}_p"),
                kind="p",
            )
        )
    out.append(
        Conclusion(
            "decline_start",
            "Patient 1's decline starts at the visit these data give (median over its lesions)",
            "decline_start_P1",
            _same_as_data("decline_start_P1"),
            kind="visit",
        )
    )
    out.append(
        Conclusion(
            "n_resolved",
            "As many lesions are gone on the final radiograph as in these data",
            "rad_n_resolved",
            _same_as_data("rad_n_resolved"),
            kind="count",
        )
    )
    return tuple(out)


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
    return (
        f"the shipped ensemble in {folder} was made with other code than this (code hash "
        f"{shipped.manifest.get('code_hash', '')[:12]}, now {ensemble.code_hash()[:12]}): its "
        f"chapter may be wrong. Refresh it: calcinosis ensemble --n {shipped.manifest['n_members']}"
    )


def verdicts(wide: pd.DataFrame, data: dict[str, float]) -> pd.DataFrame:
    """One row per conclusion: its number in the data and over the members, whether it holds
    in the data, the share of members where it holds, their agreement and the verdict."""
    own = pd.Series(data, dtype=float)
    own_frame = own.to_frame().T
    rows = []
    for c in conclusions():
        in_data = bool(c.holds(own_frame, own).iloc[0])
        holds = c.holds(wide, own)
        values = _column(wide, c.quantity)
        agreement = float((holds == in_data).mean()) if len(wide) else np.nan
        rows.append(
            {
                "conclusion": c.name,
                "claim": c.claim,
                "quantity": c.quantity,
                "kind": c.kind,
                "label": c.label,
                "value_in_data": float(own.get(c.quantity, np.nan)),
                "holds_in_data": in_data,
                "ensemble_median": float(values.median()),
                "ensemble_p5": float(values.quantile(0.05)),
                "ensemble_p95": float(values.quantile(0.95)),
                "share_holding": float(holds.mean()) if len(wide) else np.nan,
                "agreement": agreement,
                "verdict": FIXED if agreement >= AGREEMENT else OPEN,
            }
        )
    return pd.DataFrame(rows)
