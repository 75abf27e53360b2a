"""Datasets the book was not tuned to, each with properties the bundled reconstruction lacks.

Every one starts from a reconstruction with another seed (or from the bundled data) and
changes it the way real data could differ: more patients and lesions, follow-up visits
without injections, adverse events, noisy re-measurements, no data package at all.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd

from calcinosis import paths
from calcinosis.data import schema
from calcinosis.simulate import reconstruct

# (patient copied, new patient): three more children, lesions renamed, 26 lesions in all
EXTRA_PATIENTS = {"P3": "P6", "P4": "P7", "P5": "P8"}
FOLLOW_UP_VISITS = (17, 18, 19, 20)
EVENTS = [
    ["P1", 3, "injection-site pain", "mild", "yes"],
    ["P6", 10, "cellulitis at the injection site", "moderate", "no"],
    ["P7", 12, "fever", "mild", ""],
]


def larger_trial(out_dir: Path, seed: int = 7) -> Path:
    """8 patients, 26 lesions, visits 17–20 as follow-up without injections, three adverse
    events (one related, one not, one not assessed), and only the five CSV tables: no
    datapackage.json (no provenance declared) and no published.yml."""
    data = reconstruct.reconstruct(seed)
    patients, lesions = data.patients.copy(), data.lesions.copy()
    measurements, radiography = data.measurements.copy(), data.radiography.copy()
    for old, new in EXTRA_PATIENTS.items():
        patients = pd.concat(
            [
                patients,
                patients[patients["patient_id"] == old].assign(
                    patient_id=new, age_years=lambda d: d["age_years"] + 1
                ),
            ]
        )
        lesions = pd.concat([lesions, _renamed(lesions, old, new).assign(patient_id=new)])
        measurements = pd.concat([measurements, _renamed(measurements, old, new)])
        radiography = pd.concat([radiography, _renamed(radiography, old, new)])
    last = measurements[measurements["visit"] == measurements["visit"].max()]
    follow_up = [last.assign(visit=visit, dose_mg=0) for visit in FOLLOW_UP_VISITS]
    measurements = pd.concat([measurements, *follow_up]).sort_values(["lesion_id", "visit"])
    events = pd.DataFrame(EVENTS, columns=schema.columns("adverse_events"))
    return _write(
        out_dir,
        {
            "patients": patients,
            "lesions": lesions,
            "measurements": measurements,
            "radiography": radiography,
            "adverse_events": events,
        },
    )


def noisy_reconstruction(out_dir: Path, seed: int = 11) -> Path:
    """The bundled data with one length in ten re-measured 0.5 mm larger, and one severe
    unrelated adverse event: the package still declares a reconstruction, but its hashes no
    longer match."""
    shutil.copytree(paths.DATA_DIR, out_dir, ignore=shutil.ignore_patterns("examples", "*.md"))
    rng = np.random.default_rng(seed)
    measurements = pd.read_csv(out_dir / "measurements.csv")
    noisy = rng.random(len(measurements)) < 0.1
    measured = measurements["length_mm"].notna()
    measurements.loc[noisy & measured, "length_mm"] += 0.5
    (out_dir / "measurements.csv").write_text(reconstruct.to_csv(measurements), "utf-8")
    events = pd.DataFrame(
        [["P4", 6, "syncope after the injection", "severe", "no"]],
        columns=schema.columns("adverse_events"),
    )
    (out_dir / "adverse_events.csv").write_text(reconstruct.to_csv(events), "utf-8")
    return out_dir


def _renamed(frame: pd.DataFrame, old: str, new: str) -> pd.DataFrame:
    rows = frame[frame["lesion_id"].str.startswith(f"{old}-")].copy()
    rows["lesion_id"] = rows["lesion_id"].str.replace(f"{old}-", f"{new}-", regex=False)
    return rows


def _write(out_dir: Path, tables: dict[str, pd.DataFrame]) -> Path:
    out_dir.mkdir(parents=True)
    for name, frame in tables.items():
        frame = frame[[c for c in schema.columns(name) if c in frame.columns]]
        (out_dir / f"{name}.csv").write_text(reconstruct.to_csv(frame), encoding="utf-8")
    return out_dir
