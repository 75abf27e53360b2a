"""What changed between two built books: every result that moved and every published claim
whose verdict flipped (a claim the data used to reproduce and no longer do, or the reverse).

Parameter differences come first (from each build's `supplement/parameters.json`): with
other parameters, many results move for that reason alone. Results come from each build's
`results.json`, numbers and sentences apart (a claim's verdict is counted once, as a claim,
however many sentences say it); the claims from the `published.yml` of the data package each
build copied into `supplement/data/`. Every value is shown through `calcinosis.markup`.
"""

from __future__ import annotations

import html
import json
import math
import re
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from calcinosis import markup
from calcinosis.book.page import NOTICE
from calcinosis.formatting import NOT_ESTIMABLE, p_text

Value = float | int | str | None
# p-values (`gee_length_p`, `sens_length_p_max`) and percentages (`..._pct...`) by name
_P_VALUE = re.compile(r"(^|_)p(_(min|max))?$")
_PERCENT = re.compile(r"(^|_)pct(_|$)")
FOLD_AT = 80  # a value longer than this (or of several lines) is shown in full under its table
SHOWN = 48  # how much of a folded value its table cell shows
WIDTH = 100  # the terminal's lines
# a role in the notice: {ref}`text <target>` or {ref}`target`, read as its text
_ROLE = re.compile(r"\{[\w:-]+\}`([^`<]*)(?:<[^`]*>)?`")
FOOTER = "data_footer"  # the site footer's provenance line (HTML); NOTICE is MyST
RELATIVE_UP_TO = 10.0  # a relative change beyond ×10 says nothing a reader can use


@dataclass(frozen=True)
class Change:
    name: str
    old: Value
    new: Value

    @property
    def is_sentence(self) -> bool:
        """A text result (a sentence, a label) rather than a number; "not estimable" stands
        for a number."""
        return any(isinstance(v, str) and v != NOT_ESTIMABLE for v in (self.old, self.new))

    @property
    def delta(self) -> str:
        """How a number moved: a p-value as "p old → new", a percentage in points, another
        number as new - old with its relative change; 'added'/'removed'/'changed' else."""
        if self.old is None:
            return "added"
        if self.new is None:
            return "removed"
        if NOT_ESTIMABLE in (self.old, self.new):
            # a number beside "not estimable" has no difference to show
            return "now estimable" if self.new != NOT_ESTIMABLE else "now not estimable"
        if not (_number(self.old) and _number(self.new)):
            return "changed"
        if _P_VALUE.search(self.name):
            return f"p {p_text(self.old)} → {p_text(self.new)}"
        delta = self.new - self.old
        if _PERCENT.search(self.name):
            return f"{delta:+.3g} points"
        text = f"{delta:+.4g}"
        if self.old != 0 and math.isfinite(delta) and abs(delta / self.old) <= RELATIVE_UP_TO:
            text += f" ({100 * delta / abs(self.old):+.3g} %)"
        return text


@dataclass(frozen=True)
class Flip:
    """A published claim whose verdict (the data reproduce it, or not) changed."""

    name: str
    claim: str
    old: str
    new: str
    old_value: Value = None
    new_value: Value = None


@dataclass
class Comparison:
    old_dir: Path
    new_dir: Path
    changes: list[Change] = field(default_factory=list)
    flips: list[Flip] = field(default_factory=list)
    n_results: int = 0
    parameters: list[Change] = field(default_factory=list)
    n_claims: int = 0

    @property
    def numbers(self) -> list[Change]:
        return [c for c in self.changes if not c.is_sentence]

    @property
    def sentences(self) -> list[Change]:
        return [c for c in self.changes if c.is_sentence]

    @property
    def empty(self) -> bool:
        return not (self.changes or self.flips or self.parameters)

    def summary(self) -> str:
        return (
            f"{len(self.parameters)} parameters differ, "
            f"{len(self.changes)} of {self.n_results} results changed "
            f"({len(self.numbers)} numbers, {len(self.sentences)} sentences), "
            f"{len(self.flips)} of {self.n_claims} published claims changed verdict"
        )

    def tables(self) -> list[tuple[str, list[str], list[list[str]]]]:
        """Each table of the comparison: title, header, rows (cells as text)."""
        out = []
        if self.parameters:
            rows = [[c.name, _show(c.old), _show(c.new)] for c in self.parameters]
            out.append(("Parameters that differ", ["Parameter", "Old", "New"], rows))
        if self.flips:
            rows = [
                [f.name, f.claim, _show(f.old_value), _show(f.new_value), f"{f.old} → {f.new}"]
                for f in self.flips
            ]
            header = ["Claim", "Published", "Old", "New", "Verdict"]
            out.append(("Published claims whose verdict changed", header, rows))
        if self.numbers:
            rows = [[c.name, _show(c.old), _show(c.new), c.delta] for c in self.numbers]
            out.append(("Numbers that changed", ["Result", "Old", "New", "Change"], rows))
        if self.sentences:
            rows = [[c.name, _show(c.old), _show(c.new)] for c in self.sentences]
            out.append(("Sentences that changed", ["Result", "Old", "New"], rows))
        return out

    def markdown(self) -> str:
        """The comparison as MyST: every value escaped as text (`calcinosis.markup`), a long
        or multi-line one shortened in its table and shown in full in a fold below it."""
        lines = [
            f"Comparison of {markup.myst(self.old_dir.name)} (old) with "
            f"{markup.myst(self.new_dir.name)} (new): {self.summary()}.",
            "",
        ]
        for title, header, rows in self.tables():
            lines += [f"## {title}", ""]
            lines += _md_table(header, rows)
        if self.empty:
            lines += ["No result changed and no verdict flipped.", ""]
        return "\n".join(lines)

    def terminal(self) -> str:
        """The comparison for a terminal: lines of at most `WIDTH` characters."""
        parts = textwrap.wrap(self.summary(), WIDTH)
        for _, header, rows in self.tables():
            parts += ["", _text_table([h.lower() for h in header], rows)]
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


def _as_read(name: str, value: Value) -> Value:
    """A value as a reader reads it: the provenance notice (MyST the package writes) and the
    footer (HTML) as their words, so that the changes page shows no markup."""
    if not isinstance(value, str) or name not in (NOTICE, FOOTER):
        return value
    if name == FOOTER:
        return html.unescape(re.sub(r"<[^>]*>", "", value))
    lines = []
    for line in value.splitlines():
        if re.match(r"^:::+\s*$|^:[\w-]+:", line):
            continue  # a fence's end, a directive's option
        lines.append(re.sub(r"^:::+\{[\w-]+\}\s*", "", line))
    text = _ROLE.sub(lambda m: m.group(1).strip(), "\n".join(lines))
    text = re.sub(r"\*\*?([^*]+)\*\*?", r"\1", text)
    return re.sub(r"\\(.)", r"\1", text).strip()


def compare_results(
    old: dict,
    new: dict,
    old_claims: list[dict],
    new_claims: list[dict],
    old_dir: Path = Path("old"),
    new_dir: Path = Path("new"),
) -> Comparison:
    old = {name: _as_read(name, value) for name, value in old.items()}
    new = {name: _as_read(name, value) for name, value in new.items()}
    names = sorted(set(old) | set(new))
    changes = [Change(n, old.get(n), new.get(n)) for n in names if old.get(n) != new.get(n)]
    old_v, new_v = verdicts(old, old_claims), verdicts(new, new_claims)
    flips = [
        Flip(n, old_v[n][0], old_v[n][1], new_v[n][1], old.get(n), new.get(n))
        for n in sorted(set(old_v) & set(new_v))
        if old_v[n][1] != new_v[n][1]
    ]
    return Comparison(
        old_dir,
        new_dir,
        changes,
        flips,
        n_results=len(names),
        n_claims=len(set(old_v) | set(new_v)),
    )


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
    """A MyST pipe table of text cells; a value too long for a cell (or of several lines) is
    shortened there and given in full in a fold under the table, named by its row."""
    folds: list[str] = []

    def row(cells: list[str]) -> str:
        shown = []
        for title, cell in zip(header, cells, strict=True):
            if len(cell) > FOLD_AT or "\n" in cell:
                shown.append(markup.myst(_short(cell, SHOWN)) + " (in full below)")
                folds.append(_fold(f"{cells[0]}: {title.lower()}", cell))
            else:
                shown.append(markup.myst(cell))
        return "| " + " | ".join(shown) + " |"

    table = [row(header), "|" + "|".join([":--"] * len(header)) + "|", *(row(r) for r in rows)]
    return [*table, "", *folds]


def _fold(title: str, text: str) -> str:
    """A folded admonition holding `text` in full (open in the PDF)."""
    return (
        f":::{{admonition}} {markup.myst(title)}\n:class: dropdown\n\n"
        f"{markup.myst_block(text)}\n:::\n"
    )


def _short(text: str, width: int) -> str:
    """The first line of `text`, cut to `width` characters with an ellipsis."""
    lines = text.strip().splitlines() or [""]
    line = lines[0]
    cut = len(line) > width or len(lines) > 1
    return (line[: width - 1].rstrip() + "…") if cut else line


def _text_table(header: list[str], rows: list[list[str]]) -> str:
    """Columns in at most `WIDTH` characters: the widest value columns narrowed first (the
    name column last); a value cut to fit is given in full, wrapped, under its row."""
    header = [markup.terminal(c) for c in header]
    rows = [[markup.terminal(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    while sum(widths) + 2 * (len(widths) - 1) > WIDTH and max(widths) > 12:
        values = widths[1:] if max(widths[1:], default=0) > 12 else widths  # names last
        widest = max(values)
        widths[len(widths) - len(values) + values.index(widest)] -= 1

    def line(cells: list[str]) -> str:
        return "  ".join(_short(c, w).ljust(w) for c, w in zip(cells, widths, strict=True))

    lines = [line(header).rstrip(), "  ".join("-" * w for w in widths)]
    for r in rows:
        lines.append(line(r).rstrip())
        for title, cell, w in zip(header, r, widths, strict=True):
            if len(cell) > w:
                lines += textwrap.wrap(
                    f"{title}: {cell}", WIDTH, initial_indent="    ", subsequent_indent="      "
                )
    return "\n".join(lines)
