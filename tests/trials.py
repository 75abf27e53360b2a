"""Trials that owe nothing to the reconstruction: each one a function of its seed alone.

`tests/synthetic.py` edits the reconstruction (same IDs, same weekly schedule, same shape),
so what the book assumes about those never shows there. Here a seed draws a whole trial the
schema admits: study codes in any allowed form, 1–60 patients with 1–12 lesions each,
weekly, irregular, short or one-visit-after-baseline schedules, missing baselines, follow-up
visits at dose 0, lesions that shrink, stay flat, grow, resolve or are read on a 1 mm ruler,
radiographs with ties, zero differences, missing finals and many pairs, adverse events of
every severity and relatedness (empty included), and with or without `datapackage.json`,
`published.yml` and the measurements' `dose_mg` column.

`write_trial(seed, folder)` writes the CSV tables (and the optional files it drew);
`describe(seed)` says in one paragraph what the seed drew, for a failing test to print. A plain
seeded generator (`numpy.random.default_rng`) rather than Hypothesis: Hypothesis is not a
dependency, and a seed is all a failure report needs to reproduce a trial.
"""

from __future__ import annotations

import hashlib
import json
import string
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from calcinosis.data import schema
from calcinosis.simulate import reconstruct

# An ordinary trial has at most 12 patients and 600 measurement rows, so that its results
# stage takes seconds (its cost grows with patients × rows); one in twenty is drawn larger.
MAX_ROWS = 600
PATIENTS_P = (0.15, 0.15, 0.15, 0.1, 0.15, 0.1, 0.1, 0.1)  # of 1, 2, 3, 4, 5, 6, 8, 12
LARGE_ROWS = 1500
LARGE_SHARE = 0.05

SCHEDULES = {
    "weekly": None,  # 1..n, n drawn
    "irregular": (1, 2, 4, 8, 16, 32),
    "short": (1, 2, 3),
    "one after baseline": (1, 2),
}
COURSES = ("shrink", "flat", "grow", "resolve", "ruler")
SITES = (
    "left forearm",
    "right elbow",
    "knee",
    "thigh",
    "buttock",
    "axilla",
    "left hand, 2nd finger",
    "abdominal wall",
)
EVENTS = (
    "injection-site pain",
    "fever",
    "cellulitis at the injection site",
    "rash",
    "headache",
    "infusion reaction",
)


@dataclass
class Drawn:
    """A generated trial: its tables, its optional files, and what the seed drew."""

    seed: int
    tables: dict[str, pd.DataFrame]
    package: dict | None  # datapackage.json's provenance, or None for no file
    claims: list[dict] | None  # published.yml's claims, or None for no file
    notes: list[str] = field(default_factory=list)

    def description(self) -> str:
        return f"trial seed {self.seed}: " + "; ".join(self.notes)


def write_trial(seed: int, folder: Path) -> Path:
    """Write the trial of `seed` into `folder` (created) and return it."""
    drawn = draw(seed)
    folder = Path(folder)
    folder.mkdir(parents=True)
    for name, frame in drawn.tables.items():
        (folder / f"{name}.csv").write_text(reconstruct.to_csv(frame), encoding="utf-8")
    if drawn.claims is not None:
        text = yaml.safe_dump({"claims": drawn.claims}, sort_keys=False)
        (folder / "published.yml").write_text(text, encoding="utf-8")
    if drawn.package is not None:
        hashes = {
            name: hashlib.sha256((folder / f"{name}.csv").read_bytes()).hexdigest()
            for name in drawn.tables
        }
        descriptor = schema.datapackage(drawn.package, hashes)
        (folder / "datapackage.json").write_text(json.dumps(descriptor, indent=2), "utf-8")
    (folder / "TRIAL.txt").write_text(drawn.description() + "\n", encoding="utf-8")
    return folder


def describe(seed: int) -> str:
    """What the seed drew, in one paragraph."""
    return draw(seed).description()


def draw(seed: int) -> Drawn:
    rng = np.random.default_rng(seed)
    notes: list[str] = []
    large = bool(rng.random() < LARGE_SHARE)
    cap = LARGE_ROWS if large else MAX_ROWS
    visits, schedule = _schedule(rng)
    if large:
        n_patients = int(rng.choice([20, 35, 60]))
    else:
        n_patients = int(rng.choice([1, 2, 3, 4, 5, 6, 8, 12], p=PATIENTS_P))
    per_patient = rng.integers(1, 13, size=n_patients)
    while per_patient.sum() * len(visits) > cap and per_patient.max() > 1:
        per_patient = np.maximum(1, per_patient // 2)
    if per_patient.sum() * len(visits) > cap:
        n_patients = max(1, cap // len(visits))
        per_patient = per_patient[:n_patients]
    patient_ids = _patient_ids(rng, n_patients)
    lesion_style = str(rng.choice(["dash-L", "dot", "global", "underscore-letter"]))
    notes.append(
        f"{n_patients} patients ({patient_ids[0]}…{patient_ids[-1]}), "
        f"{int(per_patient.sum())} lesions ({lesion_style} codes, 1–{int(per_patient.max())} "
        f"per patient){', deliberately large' if large else ''}"
    )
    notes.append(f"schedule {schedule}: visits {_span(visits)}")

    patients = _patients(rng, patient_ids, notes)
    lesions = _lesions(rng, patient_ids, per_patient, lesion_style)
    measurements = _measurements(rng, lesions, visits, notes)
    radiography = _radiography(rng, measurements, notes)
    events = _events(rng, patient_ids, visits, notes)
    tables = {
        "patients": patients,
        "lesions": lesions,
        "measurements": measurements,
        "radiography": radiography,
        "adverse_events": events,
    }
    package, claims = _optional_files(rng, tables, notes)
    return Drawn(seed, tables, package, claims, notes)


# --------------------------------------------------------------------------------------------
# Codes and schedule
# --------------------------------------------------------------------------------------------


def _letters(i: int) -> str:
    """A, B, ..., Z, AA, AB, ...: the i-th (from 0) letter code."""
    out = ""
    i += 1
    while i:
        i, rest = divmod(i - 1, 26)
        out = string.ascii_uppercase[rest] + out
    return out


def _patient_ids(rng: np.random.Generator, n: int) -> list[str]:
    style = str(rng.choice(["P01", "1001", "Pt-A", "P1", "site.code"]))
    make = {
        "P01": lambda i: f"P{i + 1:02d}",
        "1001": lambda i: str(1001 + 7 * i),
        "Pt-A": lambda i: f"Pt-{_letters(i)}",
        "P1": lambda i: f"P{i + 1}",
        "site.code": lambda i: f"s{1 + i % 3}.{i + 11}_x",
    }[style]
    ids = [make(i) for i in range(n)]
    order = rng.permutation(n) if rng.random() < 0.3 else np.arange(n)  # not always sorted
    return [ids[i] for i in order]


def _lesion_id(style: str, patient_id: str, k: int, serial: int) -> str:
    return {
        "dash-L": f"{patient_id}-L{k + 1}",
        "dot": f"{patient_id}.{k + 1}",
        "global": f"{9000 + serial}",
        "underscore-letter": f"{patient_id}_{_letters(k).lower()}",
    }[style]


def _schedule(rng: np.random.Generator) -> tuple[list[int], str]:
    kind = str(rng.choice(list(SCHEDULES), p=[0.45, 0.25, 0.15, 0.15]))
    fixed = SCHEDULES[kind]
    if fixed is None:
        n = int(rng.choice([4, 8, 12, 16, 24]))
        return list(range(1, n + 1)), f"weekly, {n} visits"
    return list(fixed), kind


def _span(visits: list[int]) -> str:
    return ", ".join(map(str, visits)) if len(visits) <= 8 else f"{visits[0]}–{visits[-1]}"


# --------------------------------------------------------------------------------------------
# Tables
# --------------------------------------------------------------------------------------------


def _patients(rng: np.random.Generator, ids: list[str], notes: list[str]) -> pd.DataFrame:
    durations = str(rng.choice(["mixed", "all short", "all long"], p=[0.6, 0.2, 0.2]))
    low, high = {"mixed": (2, 150), "all short": (1, 23), "all long": (24, 150)}[durations]
    notes.append(f"disease durations {durations}")
    ages = rng.uniform(2, 17, size=len(ids))
    whole = rng.random() < 0.5
    return pd.DataFrame(
        {
            "patient_id": ids,
            "sex": rng.choice(["F", "M"], size=len(ids)),
            "age_years": np.round(ages) if whole else np.round(ages, 1),
            "disease_duration_months": rng.integers(low, high + 1, size=len(ids)).astype(float),
        }
    )


def _lesions(
    rng: np.random.Generator, patient_ids: list[str], per_patient: np.ndarray, style: str
) -> pd.DataFrame:
    rows = []
    serial = 0
    for patient_id, n in zip(patient_ids, per_patient, strict=True):
        for k in range(int(n)):
            area = float(np.round(rng.uniform(0.05, 6.0), 2))
            dose = (
                float(rng.choice([10, 20, 40]))
                if rng.random() < 0.2
                else (20.0 if area <= 1.5 else 40.0)
            )
            rows.append(
                [
                    _lesion_id(style, patient_id, k, serial),
                    patient_id,
                    str(rng.choice(SITES)),
                    area,
                    dose,
                ]
            )
            serial += 1
    return pd.DataFrame(rows, columns=schema.columns("lesions"))


def _measurements(
    rng: np.random.Generator, lesions: pd.DataFrame, visits: list[int], notes: list[str]
) -> pd.DataFrame:
    n_follow_up = int(rng.choice([0, 0, 1, 2])) if len(visits) > 2 else 0
    injected = set(visits[: len(visits) - n_follow_up])
    missing_baseline = rng.random() < 0.25 and len(visits) > 1
    gaps = float(rng.choice([0.0, 0.0, 0.05, 0.15]))
    half = float(rng.choice([0.0, 0.0, 0.0, 0.1]))  # visits with a length but no width
    with_dose = rng.random() < 0.7
    weights = rng.dirichlet(np.full(len(COURSES), 0.4))  # often one course dominates
    courses: Counter[str] = Counter()
    n_missing_baseline = 0
    rows = []
    for lesion in lesions.itertuples(index=False):
        course = str(rng.choice(COURSES, p=weights))
        courses[course] += 1
        lengths = _course(rng, course, visits)
        ratio = rng.uniform(0.4, 0.95)
        widths = np.round(np.maximum(lengths * ratio + rng.normal(0, 0.3, len(visits)), 0), 1)
        if course in ("ruler", "resolve"):
            widths = np.round(widths)
        widths[lengths == 0] = 0.0
        measured = rng.random(len(visits)) >= gaps
        skip_first = missing_baseline and rng.random() < 0.5
        if skip_first:
            measured[0] = False
            n_missing_baseline += 1
        if not measured.any():
            measured[-1] = True
        drop_row = skip_first and rng.random() < 0.5  # no baseline row at all, or an empty one
        for i, visit in enumerate(visits):
            if i == 0 and drop_row:
                continue
            length = lengths[i] if measured[i] else np.nan
            width = widths[i] if measured[i] else np.nan
            if half and measured[i] and rng.random() < half:  # one diameter not read
                width = np.nan
            dose = lesion.dose_mg if visit in injected else 0.0
            rows.append([lesion.lesion_id, visit, length, width, dose])
    frame = pd.DataFrame(rows, columns=schema.columns("measurements"))
    if not with_dose:
        frame = frame.drop(columns="dose_mg")
    notes.append(
        "courses "
        + ", ".join(f"{n} {c}" for c, n in sorted(courses.items()))
        + (f"; {n_follow_up} follow-up visits at dose 0" if n_follow_up and with_dose else "")
        + (f"; baseline missing in {n_missing_baseline} lesions" if n_missing_baseline else "")
        + (f"; {gaps:.0%} of visits not measured" if gaps else "")
        + (f"; {half:.0%} of measured visits without a width" if half else "")
        + ("" if with_dose else "; no dose_mg column")
    )
    return frame


def _course(rng: np.random.Generator, course: str, visits: list[int]) -> np.ndarray:
    """A lesion's lengths (mm) at `visits`: a course and ±0.5 mm rater noise."""
    t = np.asarray(visits, dtype=float) - visits[0]
    start = rng.uniform(4, 40)
    rate = {"shrink": -rng.uniform(0.01, 0.08), "flat": 0.0, "grow": rng.uniform(0.005, 0.03)}
    if course == "resolve":
        gone = rng.uniform(0.3, 1.0) * t[-1] if t[-1] else 0.0
        lengths = np.where(t >= gone, 0.0, start * (1 - t / max(gone, 1e-9)) + 1)
        lengths[t >= gone] = 0.0
        if t[-1] and lengths[-1] != 0.0:
            lengths[-1] = 0.0
        return np.round(lengths)
    slope = rate.get(course, -rng.uniform(0.0, 0.05))  # a ruler-read lesion shrinks or not
    lengths = start * np.exp(slope * t) + rng.normal(0, 0.5, len(t))
    lengths = np.clip(lengths, 0.5, schema.MAX_SIZE_MM)
    return np.round(lengths) if course == "ruler" else np.round(lengths * 2) / 2


def _radiography(
    rng: np.random.Generator, measurements: pd.DataFrame, notes: list[str]
) -> pd.DataFrame:
    kind = str(rng.choice(["plain", "ties", "zero differences", "missing finals"]))
    rows = []
    n_missing = 0
    for lesion_id, rows_of in measurements.groupby("lesion_id", sort=False):
        seen = rows_of.dropna(subset=["length_mm"])
        first = float(seen["length_mm"].iloc[0]) if len(seen) else rng.uniform(4, 30)
        last = float(seen["length_mm"].iloc[-1]) if len(seen) else first
        base_l = max(first + rng.normal(0, 1), 1.0)
        final_l = max(last + rng.normal(0, 1), 0.0) if last > 0 else 0.0
        if kind == "ties":
            base_l, final_l = float(round(base_l / 2) * 2), float(round(final_l / 2) * 2)
        if kind == "zero differences" and rng.random() < 0.5:
            final_l = base_l
        base_w = round(base_l * rng.uniform(0.4, 0.9), 1)
        final_w = round(final_l * base_w / base_l, 1) if base_l else 0.0
        if kind == "zero differences" and final_l == base_l:
            final_w = base_w
        rows.append([lesion_id, "baseline", round(base_l, 1), base_w])
        if kind == "missing finals" and rng.random() < 0.3:
            n_missing += 1
            if rng.random() < 0.5:
                rows.append([lesion_id, "final", np.nan, np.nan])
            continue
        rows.append([lesion_id, "final", round(final_l, 1), final_w])
    frame = pd.DataFrame(rows, columns=schema.columns("radiography"))
    pairs = frame.groupby("lesion_id")["length_mm"].count().eq(2).sum()
    notes.append(
        f"radiographs {kind}: {int(pairs)} complete pairs"
        + (f", {n_missing} finals missing" if n_missing else "")
    )
    return frame


def _events(
    rng: np.random.Generator, patient_ids: list[str], visits: list[int], notes: list[str]
) -> pd.DataFrame:
    n = int(rng.choice([0, 0, 1, 2, 3, 5, 9]))
    relatedness = (*schema.RELATEDNESS, "")
    rows = [
        [
            str(rng.choice(patient_ids)),
            int(rng.choice(visits)),
            str(rng.choice(EVENTS)),
            str(rng.choice(schema.SEVERITIES)),
            str(rng.choice(relatedness)),
        ]
        for _ in range(n)
    ]
    frame = pd.DataFrame(rows, columns=schema.columns("adverse_events"))
    severities = Counter(frame["severity"])
    notes.append(
        f"{n} adverse events"
        + (f" ({', '.join(f'{v} {k}' for k, v in sorted(severities.items()))})" if n else "")
    )
    return frame


def _optional_files(
    rng: np.random.Generator, tables: dict[str, pd.DataFrame], notes: list[str]
) -> tuple[dict | None, list[dict] | None]:
    package_kind = str(rng.choice(["none", "real", "reconstruction", "bare"]))
    package = {
        "none": None,
        "real": {"note": "Collected at the trial's sites; pseudonymised study codes."},
        "reconstruction": {"reconstruction": True, "generator": "tests/trials.py"},
        "bare": {},
    }[package_kind]
    claims = None
    if rng.random() < 0.4:
        n_lesions = len(tables["lesions"])
        claims = [
            {
                "name": "n_patients",
                "value": len(tables["patients"]),
                "decimals": 0,
                "relation": "=",
            },
            {"name": "n_lesions", "value": n_lesions + int(rng.integers(0, 2)), "decimals": 0},
            {"name": "gee_length_pct_per_visit", "value": -2.5, "decimals": 2, "relation": "="},
        ]
    notes.append(
        f"datapackage.json {package_kind}; published.yml {'with 3 claims' if claims else 'absent'}"
    )
    return package, claims
