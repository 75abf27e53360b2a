"""Simulated trials with a known rate of change, for the statistics tests."""

from __future__ import annotations

import numpy as np
import pandas as pd

GRID_MM = 0.5


def simulate_measurements(
    rng: np.random.Generator,
    pct_per_visit: float = -3.0,
    n_patients: int = 5,
    lesions_per_patient: int = 4,
    n_visits: int = 16,
    missing: float = 0.1,
    noise: float = 0.15,
) -> pd.DataFrame:
    """Lesion sizes with E[size] = base · (1 + pct/100)^(visit − 1), caliper-rounded.

    Noise is multiplicative and mean-one, sizes are rounded to the 0.5 mm caliper grid, one
    lesion resolves (zeros), and a share of visits after the first is unmeasured.
    """
    rows = []
    slope = np.log1p(pct_per_visit / 100)
    for p in range(1, n_patients + 1):
        for k in range(1, lesions_per_patient + 1):
            # Lesion P1-L1 is tiny and resolves (its last 3 visits read 0): zeros in the data
            # that barely move the population mean, so the true rate stays the one asked for.
            base = 1.0 if (p, k) == (1, 1) else rng.lognormal(np.log(8.0), 0.3)
            visits = np.arange(1, n_visits + 1)
            shock = rng.normal(0.0, noise, n_visits)
            # exp(shock − noise²/2) has mean 1, so the population rate is the one asked for.
            size = base * np.exp(slope * (visits - 1) + shock - noise**2 / 2)
            size = np.round(size / GRID_MM) * GRID_MM
            if (p, k) == (1, 1):
                size[-3:] = 0.0
            measured = np.r_[True, rng.random(n_visits - 1) >= missing]
            measured[-1] |= (p, k) == (1, 1)  # the resolved lesion is seen at 0
            for v, s, m in zip(visits, size, measured, strict=True):
                rows.append(
                    {
                        "lesion_id": f"P{p}-L{k}",
                        "patient_id": f"P{p}",
                        "visit": int(v),
                        "length_mm": s if m else np.nan,
                        "width_mm": s * 0.6 if m else np.nan,
                    }
                )
    return pd.DataFrame(rows)


def data_trial():
    """The bundled dataset (the reconstruction), loaded once per test module by its fixture."""
    from calcinosis import paths
    from calcinosis.data import trial as data

    return data.load_trial(paths.DATA_DIR)


def trial_from(measurements: pd.DataFrame, tmp_path) -> object:
    """A validated Trial built from simulated measurements (radiography from first/last)."""
    from calcinosis.data import trial as data

    patients = sorted(measurements["patient_id"].unique())
    lesions = measurements[["lesion_id", "patient_id"]].drop_duplicates()
    tables = {
        "patients": pd.DataFrame(
            {
                "patient_id": patients,
                "sex": "F",
                "age_years": 10,
                "disease_duration_months": [12 * (i + 1) for i in range(len(patients))],
            }
        ),
        "lesions": lesions.assign(site="forearm", baseline_area_cm2=1.0, dose_mg=20),
        "measurements": measurements[["lesion_id", "visit", "length_mm", "width_mm"]],
        "radiography": _radiography(measurements),
        "adverse_events": pd.DataFrame(
            columns=["patient_id", "visit", "event", "severity", "related_to_treatment"]
        ),
    }
    for name, frame in tables.items():
        frame.to_csv(tmp_path / f"{name}.csv", index=False)
    return data.load_trial(tmp_path)


def _radiography(measurements: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for lesion_id, own in measurements.dropna(subset=["length_mm"]).groupby("lesion_id"):
        for timepoint, row in (("baseline", own.iloc[0]), ("final", own.iloc[-1])):
            rows.append(
                {
                    "lesion_id": lesion_id,
                    "timepoint": timepoint,
                    "length_mm": row["length_mm"],
                    "width_mm": row["width_mm"],
                }
            )
    return pd.DataFrame(rows)


def write_table(path, rows: list[list[object]]) -> None:
    """Overwrite one CSV table of a test dataset."""
    import csv

    with open(path, "w", encoding="utf-8", newline="") as handle:
        csv.writer(handle, lineterminator="\n").writerows(rows)


def with_extra_visit(source, folder, n_lesions: int = 3):
    """A copy of the data package at `source` in `folder` with one more visit for the first
    `n_lesions` lesions measured at the last visit (same sizes as there): a follow-up visit."""
    import shutil
    from pathlib import Path

    folder = Path(folder)
    for path in Path(source).glob("*.csv"):
        shutil.copy(path, folder / path.name)
    measurements = pd.read_csv(folder / "measurements.csv")
    last = int(measurements["visit"].max())
    extra = measurements[measurements["visit"] == last].dropna(subset=["length_mm"])
    extra = extra.head(n_lesions).assign(visit=last + 1)
    out = pd.concat([measurements, extra]).sort_values(["lesion_id", "visit"], kind="mergesort")
    out.to_csv(folder / "measurements.csv", index=False)
    return folder
