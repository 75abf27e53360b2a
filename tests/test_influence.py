"""One-step cluster-deletion estimates (Preisser & Qaqish 1996) against exact refits."""

import numpy as np
import pandas as pd
import pytest

from calcinosis import data, influence, models, paths

pytestmark = pytest.mark.integration


def _exact_pct(measurements: pd.DataFrame, outcome: str, patient_id: str) -> float:
    kept = measurements[measurements["patient_id"] != patient_id]
    return models.fit_gee(kept, outcome, qic=False).pct_per_visit


@pytest.fixture(scope="module")
def bundled() -> pd.DataFrame:
    return models.with_patient_id(data.load_trial(paths.DATA_DIR).measurements)


@pytest.fixture(scope="module")
def registry(bundled) -> pd.DataFrame:
    """The bundled measurements 20 times over (100 patients), each copy's sizes moved by
    seeded multiplicative noise so that patients differ."""
    rng = np.random.default_rng(20)
    copies = []
    for copy in range(20):
        frame = bundled.copy()
        frame["patient_id"] = frame["patient_id"] + f"c{copy}"
        frame["lesion_id"] = frame["lesion_id"] + f"c{copy}"
        for column in ("length_mm", "width_mm"):
            noise = np.exp(rng.normal(0.0, 0.1, len(frame)))
            frame[column] = (frame[column] * noise).round(1)
        copies.append(frame)
    return pd.concat(copies, ignore_index=True)


@pytest.mark.parametrize("outcome", ["length", "width"])
def test_one_step_follows_exact_refits_on_the_bundled_data(bundled, outcome):
    """Deleting one of five patients removes a fifth of the data: the one-step estimate is
    rough there (within 0.5 points of the exact refit), but it moves the rate the same way
    and picks the same three most influential patients as the refits do."""
    table = influence.one_step_deletion(bundled, outcome)
    full = models.fit_gee(bundled, outcome, qic=False).pct_per_visit
    exact = {pid: _exact_pct(bundled, outcome, pid) for pid in table["patient_id"]}
    for row in table.itertuples(index=False):
        assert abs(row.pct_per_visit - exact[row.patient_id]) < 0.5
        assert np.sign(row.pct_per_visit - full) == np.sign(exact[row.patient_id] - full)
    by_exact = sorted(exact, key=lambda pid: -abs(exact[pid] - full))
    assert set(influence.most_influential(table, 3)) == set(by_exact[:3])


def test_one_step_matches_exact_refits_at_registry_size(registry):
    """With 100 patients a deletion removes 1 % of the data and one step is close: the ten
    most influential patients' rates within 0.005 points of their exact refits, and each
    change in β within 5 % of the exact change."""
    table = influence.one_step_deletion(registry, "length").set_index("patient_id")
    assert len(table) == 100
    beta = float(table["beta"].iloc[0])
    for patient_id in influence.most_influential(table.reset_index(), 10):
        exact_pct = _exact_pct(registry, "length", patient_id)
        one_step = table.loc[patient_id]
        assert abs(one_step["pct_per_visit"] - exact_pct) < 0.005
        exact_change = beta - np.log1p(exact_pct / 100.0)
        one_step_change = beta - one_step["beta_without"]
        assert abs(one_step_change - exact_change) < 0.05 * abs(exact_change)


def test_most_influential_is_ordered_and_stable():
    table = pd.DataFrame({"patient_id": ["b", "a", "c", "d"], "dbeta_std": [0.5, -0.5, 2.0, 0.1]})
    assert influence.most_influential(table, 3) == ["c", "a", "b"]
