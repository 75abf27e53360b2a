"""Does the paper reproduce? Published claims against recomputed values, and the published
radiographic summaries checked for internal consistency (GRIM, GRIMMER, SD bounds).

On real data the first table tells authors whether their numbers reproduce. On the bundled
reconstruction a match is by construction: it only shows that the
published numbers are jointly achievable under the reconstruction's assumptions. The
consistency checks use nothing but the published summaries, so they read the same either way.
"""

from __future__ import annotations

import itertools
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from calcinosis import paths
from calcinosis.data.trial import Trial
from calcinosis.simulate.sprite import Target, grim_total, rounds_to

GRIDS_MM = (0.1, 0.25, 0.5, 1.0)
PLAUSIBLE_N = (16, 17, 18)  # 18 = 9 + 1 + 3 + 3 + 2 lesions; 17 and 16 if some lacked a film
_SUMMARY = re.compile(r"rad_(baseline|final)_(length|width)_(mean|sd|min|max)")


def load_claims(data_dir: Path | str | None = None) -> pd.DataFrame:
    """The paper's claims from data/published.yml: name, value, decimals, relation, source."""
    path = Path(data_dir or paths.DATA_DIR) / "published.yml"
    return _claims_from(path)


def _claims_from(path: Path) -> pd.DataFrame:
    """The claims in `path`; a dataset without published.yml (it is optional) is checked
    against the article's own claims, as `calcinosis reconstruct` writes them."""
    if path.is_file():
        records = (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("claims") or []
    else:
        from calcinosis.simulate import reconstruct

        records = reconstruct.published_claims(reconstruct.load_facts())
    return pd.DataFrame(records, columns=["name", "value", "decimals", "relation", "source"])


# --------------------------------------------------------------------------------------------
# Claims against recomputed values
# --------------------------------------------------------------------------------------------


CLAIMS_COLUMNS = (
    "name",
    "relation",
    "published",
    "recomputed",
    "recomputed_rounded",
    "verdict",
    "source",
)


def claims_audit(trial: Trial, values: dict, claims_path: Path | str | None = None) -> pd.DataFrame:
    """Every claim with the recomputed value (from `values`, the results stage's values) at
    the printed precision, and a verdict."""
    claims = _claims_from(Path(claims_path)) if claims_path else load_claims(trial.data_dir)
    rows = []
    for claim in claims.itertuples(index=False):
        recomputed = values.get(claim.name)
        rows.append(
            {
                "name": claim.name,
                "relation": claim.relation,
                "published": claim.value,
                "recomputed": recomputed,
                "recomputed_rounded": _rounded(recomputed, int(claim.decimals)),
                "verdict": _verdict(claim, recomputed),
                "source": claim.source,
            }
        )
    return pd.DataFrame(rows, columns=list(CLAIMS_COLUMNS))


def _rounded(value, decimals: int):
    if not isinstance(value, int | float):
        return value
    scale = 10**decimals
    return math.copysign(math.floor(abs(value) * scale + 0.5) / scale, value)


def _verdict(claim, recomputed) -> str:
    if not isinstance(recomputed, int | float):
        return "not computed"
    if claim.relation == "<":
        ok = recomputed < claim.value
    else:
        ok = rounds_to(recomputed, claim.value, int(claim.decimals))
    return "match" if ok else "differs"


# --------------------------------------------------------------------------------------------
# Consistency of the published summaries
# --------------------------------------------------------------------------------------------


def published_summaries(claims: pd.DataFrame | None = None) -> pd.DataFrame:
    """The radiographic summaries as one row per quantity: mean, sd, min, max, decimals."""
    claims = load_claims() if claims is None else claims
    rows: dict[str, dict] = {}
    for claim in claims.itertuples(index=False):
        match = _SUMMARY.fullmatch(claim.name)
        if match:
            timepoint, outcome, stat = match.groups()
            row = rows.setdefault(f"{timepoint} {outcome}", {"quantity": f"{timepoint} {outcome}"})
            row[stat] = float(claim.value)
            row["decimals"] = int(claim.decimals)
    return pd.DataFrame(
        list(rows.values()), columns=["quantity", "mean", "sd", "min", "max", "decimals"]
    )


def grim_table(claims: pd.DataFrame | None = None, ns=PLAUSIBLE_N, grids=GRIDS_MM) -> pd.DataFrame:
    """GRIM: can each published mean come from n values on a grid of g mm?"""
    rows = []
    for s, n, grid in itertools.product(published_summaries(claims).itertuples(), ns, grids):
        target = Target(s.mean, s.sd, s.decimals, grid)
        rows.append(
            {
                "quantity": s.quantity,
                "mean": s.mean,
                "n": n,
                "grid": grid,
                "consistent": grim_total(target, n) is not None,
            }
        )
    return pd.DataFrame(rows, columns=["quantity", "mean", "n", "grid", "consistent"])


def grimmer_table(
    claims: pd.DataFrame | None = None, ns=PLAUSIBLE_N, grids=GRIDS_MM
) -> pd.DataFrame:
    """GRIMMER-style: does some total that fits the mean also give an integer sum of squares
    (in grid units, with the parity a sum of squares must share with the sum) that fits the SD?"""
    rows = []
    for s, n, grid in itertools.product(published_summaries(claims).itertuples(), ns, grids):
        totals = _mean_totals(s.mean, s.decimals, n, grid)
        rows.append(
            {
                "quantity": s.quantity,
                "mean": s.mean,
                "sd": s.sd,
                "n": n,
                "grid": grid,
                "grim_consistent": bool(totals),
                "grimmer_consistent": any(_sd_fits(t, s.sd, s.decimals, n, grid) for t in totals),
            }
        )
    return pd.DataFrame(
        rows,
        columns=["quantity", "mean", "sd", "n", "grid", "grim_consistent", "grimmer_consistent"],
    )


def _mean_totals(mean: float, decimals: int, n: int, grid: float) -> list[int]:
    """Every total (in grid units) whose mean prints as `mean`."""
    exact = mean * n / grid
    span = int(math.ceil(n * 10**-decimals / grid)) + 1
    return [
        t
        for t in range(int(exact) - span, int(exact) + span + 1)
        if rounds_to(t * grid / n, mean, decimals)
    ]


def _sd_fits(total: int, sd: float, decimals: int, n: int, grid: float) -> bool:
    half = 0.5 * 10**-decimals
    low = (n - 1) * max(sd - half, 0) ** 2 / grid**2 + total**2 / n
    high = (n - 1) * (sd + half) ** 2 / grid**2 + total**2 / n
    first = math.ceil(low - 1e-9)
    candidates = range(first, min(math.floor(high + 1e-9), first + 1) + 1)
    return any(q % 2 == total % 2 for q in candidates)


def sd_feasibility(claims: pd.DataFrame | None = None, ns=(18,)) -> pd.DataFrame:
    """The smallest and largest SD that n values in [min, max], with min and max attained and
    the published mean, can have; feasible when the published SD (± rounding) lies between."""
    rows = []
    for s, n in itertools.product(published_summaries(claims).itertuples(), ns):
        low, high = _sd_bounds(s.mean, n, s.min, s.max)
        half = 0.5 * 10**-s.decimals
        rows.append(
            {
                "quantity": s.quantity,
                "n": n,
                "mean": s.mean,
                "sd": s.sd,
                "min": s.min,
                "max": s.max,
                "sd_min_possible": low,
                "sd_max_possible": high,
                "feasible": bool(low - half <= s.sd <= high + half),
            }
        )
    columns = [
        "quantity",
        "n",
        "mean",
        "sd",
        "min",
        "max",
        "sd_min_possible",
        "sd_max_possible",
        "feasible",
    ]
    return pd.DataFrame(rows, columns=columns)


def _sd_bounds(mean: float, n: int, low: float, high: float) -> tuple[float, float]:
    """SD bounds with one value at each limit and the other n − 2 free in [low, high]."""
    m, rest = n - 2, mean * n - low - high
    if not m * low <= rest <= m * high:
        return math.nan, math.nan
    even = np.r_[low, high, np.full(m, rest / m)]
    at_high = int((rest - m * low) // (high - low)) if high > low else 0
    at_high = min(at_high, m)
    middle = rest - at_high * high - (m - at_high - 1) * low if at_high < m else None
    spread = np.r_[
        low,
        high,
        np.full(at_high, high),
        [] if middle is None else [middle],
        np.full(max(m - at_high - 1, 0), low),
    ]
    return float(np.std(even, ddof=1)), float(np.std(spread, ddof=1))


def sentences(provenance_kind: str, verdicts: pd.Series) -> dict[str, str]:
    """Where the data come from and what the audit's agreement means, for the data's declared
    provenance (`calcinosis.data.provenance`): agreement is by construction only for the intact
    reconstruction, and only when every claim matched."""
    from calcinosis.data import provenance

    n, matched = len(verdicts), int((verdicts == "match").sum())
    if provenance_kind == provenance.RECONSTRUCTION:
        origin = (
            "The article publishes summaries, not data. The dataset read here declares itself "
            "a reconstruction: a program (calcinosis reconstruct) searched for per-lesion "
            "values that reproduce every summary the article prints, under the assumptions "
            "listed in data/README.md. A reconstruction that matches the summaries is one of "
            "many datasets that would; its details, for example which lesion shrank when, are "
            "not the trial's."
        )
    elif provenance_kind == provenance.MODIFIED:
        origin = (
            "The dataset read here declares itself a reconstruction of the trial data, but "
            "some of its files no longer match the hashes its data package records: it was "
            "changed after it was reconstructed, and it is neither the trial's raw data nor "
            "the reconstruction built to match the article."
        )
    elif provenance_kind == provenance.UNVERIFIED:
        origin = (
            "The dataset read here declares itself a reconstruction of the trial data, but its "
            "data package records no hashes, so the book cannot check that it is still the "
            "reconstruction built to match the article."
        )
    elif provenance_kind == provenance.SYNTHETIC:
        origin = (
            "The dataset read here declares itself a synthetic example: invented data, not "
            "the trial's, so whether it reproduces the article's summaries says nothing "
            "about the trial."
        )
    elif provenance_kind == provenance.REAL:
        origin = "The dataset read here declares itself the trial's own data."
    else:
        origin = (
            "The dataset read here declares no provenance in a data package: this book does "
            "not label it a reconstruction, and its numbers are the data's own."
        )
    if provenance_kind == provenance.RECONSTRUCTION and matched == n:
        meaning = (
            "For this dataset the agreement is by construction, since it was built to match; "
            "the audit matters when the data are replaced."
        )
    elif matched == n:
        meaning = "Every checkable number of the article is reproduced by these data."
    else:
        meaning = (
            f"{n - matched} of the {n} numbers differ: these data do not reproduce every "
            "summary the article prints (for data other than the trial's, they should not)."
        )
    return {"data_origin_sentence": origin, "audit_meaning_sentence": meaning}
