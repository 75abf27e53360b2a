"""One-step cluster-deletion estimates (Preisser & Qaqish 1996) against exact refits."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from calcinosis import paths
from calcinosis.data import trial as data
from calcinosis.stats import influence, models, sensitivity

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
    table = pd.DataFrame({"patient_id": ["b", "a", "c", "d"], "change_std": [0.5, -0.5, 2.0, 0.1]})
    assert influence.most_influential(table, 3) == ["c", "a", "b"]


def _copies(source: Path, dest: Path, copies: int) -> Path:
    """The dataset at `source` `copies` times with new ids (a suffix per copy) and seeded
    noise on the clinical sizes, as CSV files a build reads."""
    rng = np.random.default_rng(copies)
    dest.mkdir()
    for name in ("patients", "lesions", "measurements", "radiography", "adverse_events"):
        frame = pd.read_csv(source / f"{name}.csv", dtype=str, keep_default_na=False)
        parts = []
        for copy in range(copies):
            part = frame.copy()
            for column in ("patient_id", "lesion_id"):
                if column in part:
                    part[column] = part[column] + f"c{copy}"
            if name == "measurements":
                for column in ("length_mm", "width_mm"):
                    sizes = pd.to_numeric(part[column], errors="coerce")
                    noisy = (sizes * np.exp(rng.normal(0.0, 0.1, len(part)))).round(1)
                    part[column] = noisy.map(lambda v: "" if np.isnan(v) else f"{v:g}")
            parts.append(part)
        pd.concat(parts).to_csv(dest / f"{name}.csv", index=False, lineterminator="\n")
    return dest


def test_above_the_switch_the_grid_refits_the_most_influential(tmp_path):
    """With more patients than EXACT_LEAVE_ONE_OUT_MAX the leave-one-out rows are the
    INFLUENTIAL_REFITS patients the one-step estimates rank first, for each outcome."""
    copies = sensitivity.EXACT_LEAVE_ONE_OUT_MAX // 5 + 1
    trial = data.load_trial(_copies(paths.DATA_DIR, tmp_path / "data", copies))
    assert len(trial.patients) > sensitivity.EXACT_LEAVE_ONE_OUT_MAX
    table = sensitivity.influence_table(trial)
    for outcome in ("length", "width"):
        chosen = sensitivity.refitted_patients(trial, outcome)
        part = table[table["outcome"] == outcome]
        assert len(part) == len(trial.patients)
        assert chosen == influence.most_influential(part, sensitivity.INFLUENTIAL_REFITS)
        rows = sensitivity._leave_one_out_rows(trial, outcome)
        assert [row["analysis"] for row in rows] == [f"without {pid}: primary" for pid in chosen]
    assert "influence plot" in sensitivity.leave_out_sentence(trial)


def test_up_to_the_switch_every_patient_is_refitted():
    trial = data.load_trial(paths.DATA_DIR)
    ids = trial.patients["patient_id"].astype(str).tolist()
    assert sensitivity.refitted_patients(trial, "length") == ids
    assert sensitivity.leave_out_sentence(trial).startswith(f"Each of the {len(ids)} patients")


def test_a_patient_who_holds_the_whole_fit_has_no_row(bundled):
    """With one patient left, deleting it leaves nothing to fit: no estimate, no exception."""
    one = bundled[bundled["patient_id"] == "P4"]
    assert one["lesion_id"].nunique() >= 2
    assert influence.one_step_deletion(one, "length").empty


def test_the_sensitivity_chapter_of_a_100_patient_trial(tmp_path):
    """What the chapter shows of a 100-patient trial (the results stage's sensitivity section,
    which the chapter glues): an influence plot with a one-step point for every patient, the
    INFLUENTIAL_REFITS filled, and exact refits of those patients alone in the table."""
    import matplotlib.pyplot as plt

    from calcinosis.params import Parameters
    from calcinosis.report import figures, results

    trial = data.load_trial(_copies(paths.DATA_DIR, tmp_path / "data", 20))
    assert len(trial.patients) == 100
    producer = next(p for p in results.PRODUCERS if p.name == "sensitivity")
    (section,) = results.run(producer, trial, Parameters())
    assert section.figures["fig_sensitivity_influence"].png
    assert "influence plot" in section.values["sens_leave_out_sentence"]
    shown = section.tables["tab_sensitivity"].frame
    leave_out = shown[shown["Factor"] == "leave one patient out"]
    fig = figures.fig_sensitivity_influence(trial)
    for ax, (outcome, name) in zip(
        fig.axes, (("length", "Length"), ("width", "Width")), strict=False
    ):
        (points,) = ax.collections
        assert len(points.get_offsets()) == 100  # every patient, one step
        filled = [tuple(c) != (1.0, 1.0, 1.0, 1.0) for c in points.get_facecolors()]
        assert sum(filled) == sensitivity.INFLUENTIAL_REFITS
        chosen = sensitivity.refitted_patients(trial, outcome)
        rows = leave_out[leave_out["Outcome"].str.startswith(name)]
        assert [c.split(" (")[0] for c in rows["Choice"]] == [f"without {p}" for p in chosen]
        assert rows["Change per visit (%)"].notna().all()  # exact refits, each estimated
    plt.close(fig)
