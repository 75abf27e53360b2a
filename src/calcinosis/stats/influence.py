"""Which patients move the primary GEE: one-step cluster-deletion estimates.

Refitting the model without each patient in turn costs patients × measurements; at registry
size that is the sensitivity grid's largest part. Preisser & Qaqish (1996, Biometrika
83:551–562) give the change in β from deleting a cluster from the full fit's pieces, one
Newton step from the full estimate with the working correlation and scale held at their full-
data values:

    β̂ − β̂₍S₎ ≈ M⁻¹ D_S' V_S⁻¹ (I − H_SS)⁻¹ e_S,   M = Σⱼ Dⱼ' Vⱼ⁻¹ Dⱼ,   H_SS = D_S M⁻¹ D_S' V_S⁻¹

where S is the set of a patient's clusters (its lesions, under lesion clustering) with their
rows stacked: for a linear model with fixed weights this is the exact group-deletion formula
(Cook & Weisberg 1982); for the log link and a re-estimated α it is the one-step
approximation. The scale φ cancels, so the working covariance is used without it.

By the Woodbury identity the same change is (M − K_S)⁻¹ g_S with K_S = D_S' V_S⁻¹ D_S and
g_S = D_S' V_S⁻¹ e_S, sums of each cluster's p × p and p-vector pieces: no matrix as large
as the patient's rows is formed or solved (that solve, once per patient, cost a third of the
sensitivity grid at 100 patients), and the leverage is 1 exactly where M − K_S is singular.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from calcinosis.stats import models

COLUMNS = ["patient_id", "n_rows", "beta", "beta_without", "pct_per_visit", "change_std"]


def one_step_deletion(measurements: pd.DataFrame, outcome: str) -> pd.DataFrame:
    """Per patient: the primary model's time coefficient without that patient, one-step.

    `beta_without` is the one-step estimate of the time coefficient without the patient,
    `pct_per_visit` its rate (100·(exp β − 1)), and `change_std` the change deleting the
    patient makes, β₍S₎ − β, in units of the full fit's robust SE (Preisser & Qaqish's
    standardised DBETAC for the time term, sign reversed to read as a change): the measure
    by which the most influential patients are chosen for exact refits. A patient without
    whom fewer than two clusters remain, or whose clusters have leverage 1, has no row.
    """
    column = models.outcome_column(outcome)
    with_patients = models.with_patient_id(measurements)
    result = models.fit_primary(with_patients, column)
    model = result.model
    frame = models.gee_frame(with_patients, column)
    patient_of = frame.groupby("lesion_id", sort=False)["patient_id"].first()
    pieces = [_cluster_pieces(model, i) for i in range(model.num_group)]
    information = np.sum([k for k, _, _ in pieces], axis=0)  # M
    slope = list(result.params.index).index("time")
    beta, se = float(result.params["time"]), float(result.bse["time"])
    clusters_of: dict[str, list[int]] = {}
    for i, label in enumerate(model.group_labels):
        clusters_of.setdefault(str(patient_of[label]), []).append(i)
    rows = []
    for patient_id, members in clusters_of.items():
        if model.num_group - len(members) < 2:
            continue  # what is left has no sandwich to speak of: no estimate without them
        try:
            change = _deletion_change(information, [pieces[i] for i in members])
        except np.linalg.LinAlgError:
            continue  # their clusters carry the whole fit (leverage 1): not estimable
        without = beta - float(change[slope])
        rows.append(
            {
                "patient_id": patient_id,
                "n_rows": int(sum(pieces[i][2] for i in members)),
                "beta": beta,
                "beta_without": without,
                "pct_per_visit": 100.0 * (np.exp(without) - 1.0),
                "change_std": -float(change[slope]) / se,
            }
        )
    return pd.DataFrame(rows, columns=COLUMNS)


def most_influential(table: pd.DataFrame, count: int) -> list[str]:
    """The `count` patients whose deletion moves the time coefficient most (|change_std|),
    ties broken by patient id so the choice is the same on every run."""
    ranked = table.assign(size=table["change_std"].abs()).sort_values(
        ["size", "patient_id"], ascending=[False, True], kind="mergesort"
    )
    return ranked["patient_id"].head(count).tolist()


def _cluster_pieces(model, i: int) -> tuple[np.ndarray, np.ndarray, int]:
    """Cluster i's D'V⁻¹D, D'V⁻¹e and row count at the full fit (D the mean derivative,
    V the working covariance, e the residuals, as `models.adjusted_sandwich` builds them)."""
    expval, lin_pred = model.cached_means[i]
    derivative = model.mean_deriv(model.exog_li[i], lin_pred)
    sdev = np.sqrt(model.family.variance(expval))
    corr, _ = model.cov_struct.covariance_matrix(expval, i)
    weighted = np.linalg.solve(np.atleast_2d(corr) * np.outer(sdev, sdev), derivative).T
    residual = model.endog_li[i] - expval
    return weighted @ derivative, weighted @ residual, len(residual)


def _deletion_change(information: np.ndarray, pieces: list) -> np.ndarray:
    """β̂ − β̂₍S₎ = (M − K_S)⁻¹ g_S for the clusters in `pieces` (see the module docstring);
    raises LinAlgError where their leverage is 1 (M − K_S singular)."""
    kept = information - np.sum([k for k, _, _ in pieces], axis=0)
    return np.linalg.solve(kept, np.sum([g for _, g, _ in pieces], axis=0))
