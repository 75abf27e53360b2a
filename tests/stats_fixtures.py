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

    Noise is multiplicative and mean-one (so the population rate is exactly the one asked
    for), rounding to 0.5 mm makes the smallest lesions read 0, and a share of visits after
    the first is unmeasured. Lesions under 1.5 mm read 0 (too small to feel).
    """
    rows = []
    slope = np.log1p(pct_per_visit / 100)
    for p in range(1, n_patients + 1):
        for k in range(1, lesions_per_patient + 1):
            base = rng.lognormal(np.log(8.0), 0.3)
            visits = np.arange(1, n_visits + 1)
            shock = rng.normal(0.0, noise, n_visits)
            smooth = np.cumsum(shock) / np.sqrt(np.arange(1, n_visits + 1))
            # smooth has variance noise² at every visit, so exp(smooth − noise²/2) has mean 1.
            size = base * np.exp(slope * (visits - 1) + smooth - noise**2 / 2)
            size = np.round(size / GRID_MM) * GRID_MM
            size[size < 1.5] = 0.0
            if (p, k) == (1, 1):
                size[-3:] = 0.0  # one lesion resolves: zeros stay in the data
            measured = np.r_[True, rng.random(n_visits - 1) >= missing]
            for v, s, m in zip(visits, size, measured, strict=True):
                rows.append({"lesion_id": f"P{p}-L{k}", "patient_id": f"P{p}", "visit": int(v),
                             "length_mm": s if m else np.nan,
                             "width_mm": s * 0.6 if m else np.nan})
    return pd.DataFrame(rows)
