"""What changed between two built books: every result that moved and every audit verdict that
flipped (a published claim the data used to reproduce and no longer does, or the reverse).

Parameter differences come first (from each build's `supplement/parameters.json`): with
other parameters, many results move for that reason alone. Results come from each build's
`results.json`; the claims from the `published.yml` of the data package each build copied
into `supplement/data/`. A string-valued result is itself a verdict.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from calcinosis.formatting import NOT_ESTIMABLE

Value = float | int | str | None


@dataclass(frozen=True)
class Change:
    name: str
    old: Value
    new: Value

    @property
    def delta(self) -> str:
        """new - old (and the relative change) for numbers; 'added'/'removed'/'changed' else."""
        if self.old is None:
            return "added"
        if self.new is None:
            return "removed"
        if NOT_ESTIMABLE in (self.old, self.new):
            # a number beside "not estimable" has no difference to show
            return "now estimable" if self.new != NOT_ESTIMABLE else "now not estimable"
        if _number(self.old) and _number(self.new):
            delta = self.new - self.old
            text = f"{delta:+.4g}"
            if self.old != 0 and math.isfinite(delta):
                text += f" ({100 * delta / abs(self.old):+.3g} %)"
            return text
        return "changed"


@dataclass(frozen=True)
class Flip:
    name: str
    claim: str
    old: str
    new: str


@dataclass
class Comparison:
    old_dir: Path
    new_dir: Path
    changes: list[Change] = field(default_factory=list)
    flips: list[Flip] = field(default_factory=list)
    n_results: int = 0
    parameters: list[Change] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (self.changes or self.flips or self.parameters)

    def parameter_rows(self) -> list[list[str]]:
        return [[c.name, _show(c.old), _show(c.new)] for c in self.parameters]

    def result_rows(self) -> list[list[str]]:
        return [[c.name, _show(c.old), _show(c.new), c.delta] for c in self.changes]

    def flip_rows(self) -> list[list[str]]:
        return [[f.name, f.claim, f.old, f.new] for f in self.flips]

    def markdown(self) -> str:
        lines = [
            f"Comparison of `{self.old_dir.name}` (old) with `{self.new_dir.name}` (new): "
            f"{len(self.parameters)} parameters differ, "
            f"{len(self.changes)} of {self.n_results} results changed, "
            f"{len(self.flips)} audit verdicts flipped.",
            "",
        ]
        if self.parameters:
            lines += ["## Parameters that differ", ""]
            lines += _md_table(["Parameter", "Old", "New"], self.parameter_rows())
        if self.changes:
            lines += ["## Results that changed", ""]
            lines += _md_table(["Result", "Old", "New", "Change"], self.result_rows())
        if self.flips:
            lines += ["## Audit verdicts that flipped", ""]
            lines += _md_table(
                ["Claim", "Published", "Old verdict", "New verdict"], self.flip_rows()
            )
        if self.empty:
            lines += ["No result changed and no verdict flipped.", ""]
        return "\n".join(lines)

    def terminal(self) -> str:
        parts = [
            f"{len(self.parameters)} parameters differ, "
            f"{len(self.changes)} of {self.n_results} results changed, "
            f"{len(self.flips)} audit verdicts flipped"
        ]
        if self.parameters:
            parts += ["", _text_table(["parameter", "old", "new"], self.parameter_rows())]
        if self.changes:
            parts += ["", _text_table(["result", "old", "new", "change"], self.result_rows())]
        if self.flips:
            parts += [
                "",
                _text_table(["claim", "published", "old verdict", "new verdict"], self.flip_rows()),
            ]
        return "\n".join(parts)


def compare(old_dir: Path, new_dir: Path) -> Comparison:
    """Compare the builds in two output folders."""
    old_dir, new_dir = Path(old_dir), Path(new_dir)
    old, new = load_results(old_dir), load_results(new_dir)
    comparison = compare_results(
        old, new, load_claims(old_dir), load_claims(new_dir), old_dir=old_dir, new_dir=new_dir
    )
    old_p, new_p = load_parameters(old_dir), load_parameters(new_dir)
    comparison.parameters = [
        Change(n, old_p.get(n), new_p.get(n))
        for n in sorted(set(old_p) | set(new_p))
        if old_p.get(n) != new_p.get(n)
    ]
    return comparison


def load_parameters(out_dir: Path) -> dict:
    """The parameters a build used (its supplement's parameters.json; {} for none)."""
    path = Path(out_dir) / "supplement" / "parameters.json"
    if not path.is_file():
        return {}
    return json.loads(path.read_text(encoding="utf-8"))


def compare_results(
    old: dict,
    new: dict,
    old_claims: list[dict],
    new_claims: list[dict],
    old_dir: Path = Path("old"),
    new_dir: Path = Path("new"),
) -> Comparison:
    names = sorted(set(old) | set(new))
    changes = [Change(n, old.get(n), new.get(n)) for n in names if old.get(n) != new.get(n)]
    old_v, new_v = verdicts(old, old_claims), verdicts(new, new_claims)
    flips = [
        Flip(n, old_v[n][0], old_v[n][1], new_v[n][1])
        for n in sorted(set(old_v) & set(new_v))
        if old_v[n][1] != new_v[n][1]
    ]
    flips += [
        Flip(c.name, "", str(c.old), str(c.new))
        for c in changes
        if isinstance(c.old, str) and isinstance(c.new, str) and NOT_ESTIMABLE not in (c.old, c.new)
    ]
    return Comparison(old_dir, new_dir, changes, flips, n_results=len(names))


def load_results(out_dir: Path) -> dict:
    path = Path(out_dir) / "results.json"
    if not path.is_file():
        raise FileNotFoundError(f"{out_dir} holds no results.json: is it a built book?")
    return json.loads(path.read_text(encoding="utf-8"))


def load_claims(out_dir: Path) -> list[dict]:
    """The published claims in the data package the build used (none if it has none)."""
    path = Path(out_dir) / "supplement" / "data" / "published.yml"
    if not path.is_file():
        return []
    return list((yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("claims") or [])


def verdicts(results: dict, claims: list[dict]) -> dict[str, tuple[str, str]]:
    """{claim name: (claim as printed, 'agrees'|'differs')} for claims with a result."""
    out = {}
    for claim in claims:
        name, value = claim.get("name"), claim.get("value")
        result = results.get(name)
        if not (_number(result) and _number(value)):
            continue
        relation, decimals = claim.get("relation", "="), int(claim.get("decimals", 2))
        if relation == "<":
            ok = result < value
        else:  # agrees when it rounds to the printed value
            ok = abs(result - value) <= 0.5 * 10**-decimals + 1e-12
        out[name] = (f"{relation} {value}", "agrees" if ok else "differs")
    return out


def _number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _show(value: Value) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def _md_table(header: list[str], rows: list[list[str]]) -> list[str]:
    def row(cells: list[str]) -> str:
        return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"

    return [row(header), "|" + "|".join(["---"] * len(header)) + "|", *(row(r) for r in rows), ""]


def _text_table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = [
        "  ".join(c.ljust(w) for c, w in zip(header, widths, strict=True)).rstrip(),
        "  ".join("-" * w for w in widths),
    ]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    return "\n".join(lines)
