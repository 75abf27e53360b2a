"""Radiographic sizes before the first and after the last injection, as the paper reports them.

The paper prints mean ± SD (min–max) over lesions; the paired comparison here is the Wilcoxon
signed-rank test with zero differences dropped (Wilcoxon's convention, and R's default), by the
rule R's `wilcox.test` follows (R documentation of `wilcox.test`, "Details": an exact p-value
when there are fewer than 50 values, a normal approximation otherwise):

- fewer than `EXACT_BELOW` non-zero differences: exact. Tied absolute differences get
  mid-ranks and the p-value comes from the exact null distribution of W+ given those ranks
  (every sign pattern equally likely), counted by dynamic programming over doubled ranks, which
  are whole numbers (as `exactRankTests::wilcox.exact`; R's own `wilcox.test` gives up on
  exactness at ties, this does not). The count costs n steps over up to n² sums, n³ in all:
  a second at 360 lesions, minutes at 1 800; hence a switch, and R's.
- from `EXACT_BELOW` on: the normal approximation to W+, its variance n(n+1)(2n+1)/24 reduced
  by Σ(t³ − t)/48 over groups of t tied ranks (Hollander, Wolfe & Chicken, *Nonparametric
  Statistical Methods*, 3rd ed., Wiley 2014, §3.1: the large-sample approximation and ties),
  and a continuity correction of ½ towards the mean, exactly as
  `wilcox.test(exact = FALSE, correct = TRUE)` computes it (R's source: `CORRECTION <-
  sign(z) * 0.5`): z = (W+ − n(n+1)/4 − sign·½)/σ, two-sided p = 2·min(Φ(z), 1 − Φ(z)).

Each row says which computation it used (`method`), and so does every sentence naming the test.
scipy switches to an uncorrected normal approximation above 20 non-zero differences; this does
not.
"""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
from scipy import stats

from calcinosis.data.trial import Trial
from calcinosis.stats.patients import is_resolved

OUTCOMES = ("length", "width")
TIMEPOINTS = ("baseline", "final")
ZERO_METHOD = "zero differences dropped, as Wilcoxon proposed"
EXACT_BELOW = 50  # R's wilcox.test: exact while fewer than 50 non-zero differences
EXACT_METHOD = f"exact signed-rank test (mid-ranks for ties; {ZERO_METHOD})"
NORMAL_METHOD = (
    f"signed-rank test by the normal approximation, as R's wilcox.test from {EXACT_BELOW} "
    f"non-zero differences on (variance corrected for ties, continuity correction; {ZERO_METHOD})"
)


def summary(trial: Trial) -> pd.DataFrame:
    """Rows timepoint × outcome: n, mean, SD (n − 1), min, max over lesions."""
    rows = []
    for timepoint, outcome in itertools.product(TIMEPOINTS, OUTCOMES):
        values = _values(trial, timepoint, outcome)
        rows.append(
            {
                "timepoint": timepoint,
                "outcome": outcome,
                "n": int(len(values)),
                "mean": float(values.mean()),
                "sd": float(values.std(ddof=1)),
                "min": float(values.min()),
                "max": float(values.max()),
            }
        )
    return pd.DataFrame(rows)


def _values(trial: Trial, timepoint: str, outcome: str) -> pd.Series:
    rows = trial.radiography[trial.radiography["timepoint"] == timepoint]
    return rows[f"{outcome}_mm"].dropna()


def per_lesion(trial: Trial) -> pd.DataFrame:
    """One row per lesion × outcome with both radiographs: baseline, final, change, and
    whether the lesion resolved (its length and width both 0 on the final radiograph). Built
    column by column: a row at a time cost half a second per call at 1 800 lesions."""
    wide = trial.radiography.pivot(
        index="lesion_id", columns="timepoint", values=["length_mm", "width_mm"]
    )
    patient = trial.lesions.set_index("lesion_id")["patient_id"]
    n = len(wide)
    base, final = (
        np.column_stack([wide[(f"{o}_mm", t)].to_numpy(float) for o in OUTCOMES]).ravel()
        for t in TIMEPOINTS
    )
    gone = [
        is_resolved(length, width)
        for length, width in zip(
            wide[("length_mm", "final")], wide[("width_mm", "final")], strict=True
        )
    ]
    table = pd.DataFrame(
        {
            "lesion_id": np.repeat(wide.index.to_numpy(), len(OUTCOMES)),
            "patient_id": np.repeat(patient.loc[wide.index].to_numpy(), len(OUTCOMES)),
            "outcome": np.tile(OUTCOMES, n),
            "baseline": base,
            "final": final,
            "change_mm": final - base,
            "change_pct": pd.Series(100 * (final - base)).div(base).where(base > 0).to_numpy(),
            "resolved": np.repeat(np.array(gone, dtype=bool), len(OUTCOMES)),
        }
    )
    both = ~(np.isnan(base) | np.isnan(final))
    return table[both].reset_index(drop=True)


def n_resolved(trial: Trial) -> int:
    """Lesions gone on the final radiograph, by the book's one rule (`patients.is_resolved`:
    length and width both 0)."""
    final = trial.radiography[trial.radiography["timepoint"] == "final"]
    return int(sum(is_resolved(r.length_mm, r.width_mm) for r in final.itertuples(index=False)))


def paired_tests(trial: Trial) -> pd.DataFrame:
    """Wilcoxon signed-rank of final vs baseline per outcome, with the rank-biserial r."""
    table = per_lesion(trial)
    rows = []
    for outcome in OUTCOMES:
        diffs = table.loc[table["outcome"] == outcome, "change_mm"].to_numpy()
        rows.append(
            {
                "outcome": outcome,
                "n": int(len(diffs)),
                **signed_rank(diffs),
                "median_change_mm": float(np.median(diffs)),
            }
        )
    return pd.DataFrame(rows)


def signed_rank(diffs: np.ndarray) -> dict:
    """Wilcoxon signed-rank: W+ (sum of ranks of positive differences), two-sided p (exact
    below `EXACT_BELOW` non-zero differences, else the normal approximation), the method used,
    and the matched-pairs rank-biserial correlation (W+ − W−)/(W+ + W−)."""
    nonzero = diffs[diffs != 0]
    n = len(nonzero)
    if n == 0:
        return {
            "n_nonzero": 0,
            "statistic": np.nan,
            "p": np.nan,
            "method": "not estimable: every difference is 0",
            "rank_biserial": np.nan,
        }
    ranks = stats.rankdata(np.abs(nonzero))
    w_plus = float(ranks[nonzero > 0].sum())
    total = float(ranks.sum())
    exact = n < EXACT_BELOW
    return {
        "n_nonzero": n,
        "statistic": w_plus,
        "p": exact_p(ranks, w_plus) if exact else normal_p(ranks, w_plus),
        "method": EXACT_METHOD if exact else NORMAL_METHOD,
        "rank_biserial": (2 * w_plus - total) / total,
    }


def null_distribution(ranks: np.ndarray) -> np.ndarray:
    """P(2·W+ = k) for k = 0 … 2·Σranks when each sign is + or − with probability ½.

    Mid-ranks are multiples of ½, so doubled ranks are whole numbers and the distribution is
    a convolution over them: n steps over at most n(n + 1) + 1 sums.
    """
    doubled = np.rint(2 * np.asarray(ranks, dtype=float)).astype(int)
    if not np.allclose(doubled, 2 * np.asarray(ranks, dtype=float)):
        raise ValueError("ranks must be multiples of 1/2")
    prob = np.zeros(int(doubled.sum()) + 1)
    prob[0] = 1.0
    for d in doubled:
        shifted = np.zeros_like(prob)
        shifted[d:] = prob[: len(prob) - d]
        prob = 0.5 * prob + 0.5 * shifted
    return prob


def exact_p(ranks: np.ndarray, w_plus: float) -> float:
    """Two-sided p: the null probability of a W+ at least as far from Σranks/2 as the one
    observed, counted in whole doubled units."""
    prob = null_distribution(ranks)
    total = len(prob) - 1  # 2·Σranks
    distance = np.abs(2 * np.arange(len(prob)) - total)
    observed = abs(2 * int(round(2 * w_plus)) - total)
    return float(min(1.0, prob[distance >= observed].sum()))


def normal_p(ranks: np.ndarray, w_plus: float) -> float:
    """Two-sided p by the normal approximation with the tie-corrected variance and the
    continuity correction, as R's `wilcox.test(exact = FALSE, correct = TRUE)`: the correction
    is ½ in the direction of z's sign (none when W+ sits at its mean)."""
    n = len(ranks)
    _, ties = np.unique(ranks, return_counts=True)
    z = w_plus - n * (n + 1) / 4
    sigma = np.sqrt(n * (n + 1) * (2 * n + 1) / 24 - np.sum(ties**3 - ties) / 48)
    z = (z - np.sign(z) * 0.5) / sigma
    return float(2 * min(stats.norm.cdf(z), stats.norm.sf(z)))


def sentences(trial: Trial) -> dict[str, str]:
    """Radiography's statements that depend on the data: which test was used, and which way
    the spread of sizes moved after treatment (said only of an outcome with at least two
    radiographs at each timepoint: with fewer there is no spread to compare)."""
    table = summary(trial).set_index(["timepoint", "outcome"])
    moves = []
    for outcome in OUTCOMES:
        before, after = table.loc[("baseline", outcome), "sd"], table.loc[("final", outcome), "sd"]
        if np.isnan(before) or np.isnan(after):  # fewer than two radiographs: no spread
            continue
        word = "grew" if after > before else "fell" if after < before else "did not change"
        moves.append((outcome, word))
    if not moves:
        spread = ""
    elif len(moves) == 1:
        spread = f"The standard deviation of {moves[0][0]} {moves[0][1]} after treatment."
    elif len({w for _, w in moves}) == 1:
        spread = f"The standard deviation {moves[0][1]} after treatment for both length and width."
    else:
        spread = (
            "The standard deviation "
            + " and ".join(f"{w} for {o}" for o, w in moves)
            + " after treatment."
        )
    return {"rad_sd_sentence": spread, "rad_test_sentence": method_sentence(paired_tests(trial))}


def method_sentence(tests: pd.DataFrame) -> str:
    """The test as its rows computed it, to stand before "of the paired differences": one
    method named once when every outcome used it, else each outcome's own."""
    methods = tests["method"].tolist()
    if len(set(methods)) == 1:
        return _with_article(methods[0])
    each = "; ".join(
        f"for {row.outcome}, {_with_article(row.method)}" for row in tests.itertuples(index=False)
    )
    return f"a signed-rank test — {each} —"


def _with_article(method: str) -> str:
    """'an exact signed-rank test …', 'a signed-rank test …'; a row with no test, as it is."""
    if method.startswith("not estimable"):
        return method
    return f"{'an' if method[0] in 'aeiou' else 'a'} {method}"


def coverage_sentence(trial: Trial) -> str:
    """Which lesions have a radiograph before and after treatment, and how many of those with a
    final one are gone on it: the denominators the chapter's means and counts rest on."""
    lesions = trial.lesions["lesion_id"].astype(str).tolist()
    taken = trial.radiography.dropna(subset=["length_mm", "width_mm"], how="all")
    have = {t: set(taken.loc[taken["timepoint"] == t, "lesion_id"].astype(str)) for t in TIMEPOINTS}
    both = [lesion for lesion in lesions if lesion in have["baseline"] and lesion in have["final"]]
    n = len(lesions)
    if len(both) == n:
        text = f"Each of the {n} lesions has a radiograph before treatment and one after it."
    else:
        missing = [
            f"{lesion} has no {' and no '.join(t for t in TIMEPOINTS if lesion not in have[t])} "
            "radiograph"
            for lesion in lesions
            if lesion not in both
        ]
        text = (
            f"{len(both)} of the {n} lesions have a radiograph before treatment and one after "
            f"it; {'; '.join(missing)}."
        )
    finals, gone = len(have["final"]), n_resolved(trial)
    if finals and gone:
        text += (
            f" {gone} of the {finals} lesions with a final radiograph are no longer visible on it."
        )
    elif finals:
        text += " Every lesion with a final radiograph is still visible on it."
    return text


def comparison_sentence(values: dict) -> str:
    """The GEE's change per visit compounded over the visit numbers the data span, beside the
    change of the radiographic mean, for length and width; a value that could not be computed
    is said in words."""
    first, last = int(values["first_visit"]), int(values["n_visits"])
    parts = []
    for outcome in OUTCOMES:
        pct = values.get(f"gee_{outcome}_pct_per_visit")
        base, final = (values.get(f"rad_{t}_{outcome}_mean") for t in TIMEPOINTS)
        clinical = (
            _pct(100 * ((1 + pct / 100) ** (last - first) - 1))
            if isinstance(pct, float) and np.isfinite(pct)
            else "not estimable"
        )
        radiographic = (
            _pct(100 * (final / base - 1))
            if isinstance(base, float) and isinstance(final, float) and base > 0
            else "not computable"
        )
        parts.append(
            f"for {outcome}, the clinical change per visit, compounded over the "
            f"{last - first} steps of the visit number from visit {first} to visit {last}, "
            f"comes to {clinical}, and the radiographic mean changed by {radiographic}"
        )
    return f"{parts[0][0].upper()}{parts[0][1:]}; {parts[1]}."


def _pct(value: float) -> str:
    """'−42 %' with a true minus sign, '+3 %'."""
    from calcinosis.formatting import signed_pct

    return signed_pct(value, 0)
