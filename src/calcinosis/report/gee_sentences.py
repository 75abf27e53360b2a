"""What the GEE page says in words: the main model's change per visit for each outcome, or why
the data cannot give one, and which test leads.

With few clusters the robust sandwich is too small and its z-test too confident
(Mancl & DeRouen 2001; Li & Redden 2015): a page whose main model has fewer clusters than
`FEW_CLUSTERS` leads with the small-sample corrected test (`SMALL_SAMPLE_COV`, t on its
Satterthwaite df), and the robust z-test, which is what SPSS prints and the article reports,
stands beside it under that name. A model that cannot be estimated is said to be so, with the
reason, and no number stands in for it.
"""

from __future__ import annotations

from calcinosis.formatting import NOT_ESTIMABLE, p_phrase, signed_pct
from calcinosis.stats import models

# Below this many clusters the sandwich's small-sample bias is material (the simulations of
# Mancl & DeRouen 2001 and Li & Redden 2015 find it up to about 40 clusters).
FEW_CLUSTERS = 40
SMALL_SAMPLE_COV = "bias_reduced"


def leads_with_correction(n_clusters: int) -> bool:
    """Whether the page leads with the small-sample corrected test."""
    return n_clusters < FEW_CLUSTERS


def corrected_fit(trial, outcome: str, params) -> tuple[models.GEEFit | None, str]:
    """The main model with the small-sample corrected covariance, or None and why not."""
    try:
        fit = models.fit_gee(
            trial,
            outcome,
            cov_struct=params.correlation,
            cluster=params.cluster,
            cov_type=SMALL_SAMPLE_COV,
            qic=False,
        )
    except models.NotEstimableError as err:
        return None, str(err).removeprefix(f"{models.outcome_column(outcome)}: ")
    return fit, ""


def not_estimable_text(reason: str) -> str:
    """The one wording of a fit that failed: "not estimable: <reason>"."""
    return f"{NOT_ESTIMABLE}: {reason}" if reason else NOT_ESTIMABLE


def _interval(low: float, high: float) -> str:
    return f"95 % CI {signed_pct(low)} to {signed_pct(high)}"


def _robust_test(fit: models.GEEFit) -> str:
    return f"{_interval(fit.pct_ci_low, fit.pct_ci_high)}; Wald χ² = {fit.wald_chi2:.1f}, " + (
        p_phrase(fit.p)
    )


def _corrected_test(fit: models.GEEFit) -> str:
    df = fit.ref_df[1] if fit.ref_df is not None else float("nan")
    return f"{_interval(fit.pct_ci_low, fit.pct_ci_high)}; t on {df:.1f} df, {p_phrase(fit.p)}"


def outcome_sentence(
    fit: models.GEEFit | None,
    reason: str,
    corrected: models.GEEFit | None,
    corrected_reason: str,
) -> str:
    """The page's lead for one outcome, starting in lower case after "For lesion length, "."""
    if fit is None:
        return f"the main model is {not_estimable_text(reason)}."
    sample = f"from {fit.n_obs} measurements of {fit.n_lesions} lesions"
    robust = f"the robust z-test as SPSS prints it ({_robust_test(fit)})"
    if not leads_with_correction(fit.n_clusters):
        pct = signed_pct(fit.pct_per_visit)
        return f"the change per visit is {pct} ({_robust_test(fit)}), {sample}."
    if corrected is None:
        return (
            f"the change per visit is {signed_pct(fit.pct_per_visit)}, {sample}; the "
            f"small-sample corrected test is {not_estimable_text(corrected_reason)}, and "
            f"{robust} rests on {fit.n_clusters} clusters only."
        )
    return (
        f"the change per visit is {signed_pct(fit.pct_per_visit)} "
        f"({models.COV_TYPE_NAMES[SMALL_SAMPLE_COV]}: {_corrected_test(corrected)}), {sample}; "
        f"beside it, {robust}."
    )


def headline(fit: models.GEEFit | None, reason: str, corrected: models.GEEFit | None) -> str:
    """The result in one line for the home page: the change per visit with the CI and p of the
    test the GEE page leads with (named when it is the corrected one), or why there is none."""
    if fit is None:
        return not_estimable_text(reason)
    pct = f"{signed_pct(fit.pct_per_visit)} per visit"
    if not leads_with_correction(fit.n_clusters):
        return f"{pct} ({_interval(fit.pct_ci_low, fit.pct_ci_high)}, {p_phrase(fit.p)})"
    if corrected is None:
        return f"{pct} (the small-sample corrected test is {NOT_ESTIMABLE})"
    interval = _interval(corrected.pct_ci_low, corrected.pct_ci_high)
    return f"{pct} ({interval}, {p_phrase(corrected.p)}; {models.COV_TYPE_NAMES[SMALL_SAMPLE_COV]})"


def lead_reason_sentence(n_clusters: int, clusters: str) -> str:
    """Why the page leads with the test it leads with."""
    name = models.COV_TYPE_NAMES[SMALL_SAMPLE_COV]
    if leads_with_correction(n_clusters):
        return (
            f"With {n_clusters} {clusters} as clusters, fewer than {FEW_CLUSTERS}, the robust "
            "standard errors are too small and their z-test too confident, so the page leads "
            f"with the {name} covariance and a t reference on its Satterthwaite degrees of "
            "freedom; the robust z-test, which is what SPSS prints and the article reports, "
            "stands beside it."
        )
    return (
        f"With {n_clusters} {clusters} as clusters, at least {FEW_CLUSTERS}, the robust "
        "standard errors and their z-test are what SPSS prints and the page reports."
    )


def correlation_sentence(fits: dict[str, models.GEEFit | None]) -> str:
    """The estimated working correlation and QIC per outcome, or that the model has none (its
    reason is given where the page leads)."""
    parts = []
    for outcome, fit in fits.items():
        if fit is None:
            parts.append(f"for {outcome} the model is {NOT_ESTIMABLE}, so it has neither")
            continue
        qic = "" if fit.qic is None else f" and the QIC {fit.qic:.1f}"
        parts.append(f"for {outcome} the working correlation is {fit.working_correlation:.2f}{qic}")
    text = "; ".join(parts)
    return text[:1].upper() + text[1:] + "."
