"""Reconstruct a per-lesion dataset that agrees with every summary the paper prints.

The trial's measurements were never published. This module builds a deterministic, seeded
stand-in: the published cohort (sex, age, disease duration, lesions and sites), radiographs
found by a SPRITE-style search to match the printed mean ± SD (min–max), and weekly clinical
measurements whose shapes follow the paper's description of each patient, calibrated so that
the primary GEE model gives the published change per visit. It is *not* the trial's data;
`data/README.md` lists every assumption.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from scipy import optimize

from calcinosis import paths
from calcinosis.data import dose, schema
from calcinosis.simulate import sprite
from calcinosis.stats import models

DEFAULT_SEED = 20231121
N_VISITS = 16
CLINICAL_GRID_MM = 0.5
RADIOGRAPHIC_GRID_MM = 0.1

# Site of each lesion, in lesion order; the paper names the sites per patient, not per lesion.
SITES = {
    1: ["left forearm"] * 5 + ["right forearm"] * 4,
    2: ["axilla"],
    3: ["lateral pelvic area", "left front thigh", "right lateral thigh"],
    4: ["right heel", "right sole", "right sole"],
    5: ["left forearm", "right forearm"],
}

# Relative speed of decline per patient: patient 1 is flat to about visit 4 then falls
# steadily; patient 3 falls slowly throughout; patients 4 and 5 fall more slowly still, in
# steps separated by runs of unchanged visits (the shapes are built by `Assumptions.shapes`).
SPEED = {1: 1.0, 3: 0.45, 4: 0.28, 5: 0.3}
# Typical radiographic baseline length per patient (mm), the start of the search.
BASELINE_PRIOR_MM = {1: 9.0, 2: 20.0, 3: 14.0, 4: 16.0, 5: 12.0}
# Typical width as a share of length at baseline: the slow responders' lesions are rounder.
WIDTH_RATIO_PRIOR = {1: 0.4, 2: 0.4, 3: 0.65, 4: 0.65, 5: 0.65}
# Radiographic size at week 16 as a share of baseline, per patient, before the search.
FINAL_SHARE = {1: 0.3, 2: 0.0, 3: 0.75, 4: 0.9, 5: 0.9}
# Patient 1's lesions that are gone on the final radiograph (patient 2's lesion is too).
RESOLVED_ON_RADIOGRAPH = ("P1-L1", "P1-L3", "P1-L4", "P1-L5", "P1-L7", "P1-L9")
# Which lesions carry the printed extremes: the largest is a slow-responding heel lesion,
# the smallest a forearm lesion of patient 1.
LARGEST, SMALLEST = "P4-L1", "P1-L2"


@dataclass(frozen=True)
class Assumptions:
    """What the article leaves open, as the reconstruction fills it in; the defaults make the
    bundled data. `calcinosis.simulate.ensemble` varies them (its ASSUMPTIONS table gives the
    ranges).
    """

    # Clinical ruler grid (mm): visit sizes are rounded to it.
    clinical_grid_mm: float = CLINICAL_GRID_MM
    # Visits patient 1 stays flat before the fall ("around the 4th injection").
    decline_onset: int = 3
    # Speed of patients 3-5 relative to the bundled one (patient 1 keeps speed 1).
    slow_speed_factor: float = 1.0
    # Visits per step of patients 4 and 5 (their runs of unchanged visits).
    step_visits_p4: int = 4
    step_visits_p5: int = 5
    # Lesions' speeds spread uniformly over 1 ± this share around their patient's.
    lesion_spread: float = 0.2
    # Rater noise (SD in grid steps) before rounding; sizes still never rise, so a high
    # reading persists: the noise is correlated within a lesion.
    noise_steps: float = 0.0
    # Patient 1's lesions gone on the final radiograph.
    resolved: tuple[str, ...] = RESOLVED_ON_RADIOGRAPH

    def shapes(self) -> dict[int, np.ndarray]:
        """Share of each patient's full decline reached at every visit."""
        visits = np.arange(N_VISITS)
        last = N_VISITS - 1
        return {
            1: np.clip((visits - self.decline_onset) / (last - self.decline_onset), 0, 1),
            3: visits / last,
            4: np.floor(visits / self.step_visits_p4) / (last // self.step_visits_p4),
            5: np.floor(visits / self.step_visits_p5) / (last // self.step_visits_p5),
        }

    def speeds(self) -> dict[int, float]:
        return {p: s * (1.0 if p == 1 else self.slow_speed_factor) for p, s in SPEED.items()}

    def as_dict(self) -> dict:
        """Plain values (the resolved lesions joined by ' '), for tables and manifests."""
        out = asdict(self)
        out["resolved"] = " ".join(self.resolved)
        return out


@dataclass(frozen=True)
class Dataset:
    """The reconstructed tables, in the data model's column order."""

    patients: pd.DataFrame
    lesions: pd.DataFrame
    measurements: pd.DataFrame
    radiography: pd.DataFrame
    adverse_events: pd.DataFrame

    def table(self, name: str) -> pd.DataFrame:
        return getattr(self, name)


def load_facts(path: Path = paths.FACTS_FILE) -> dict:
    """The paper's facts (a bundled copy of shared/paper/published-facts.yml)."""
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def reconstruct(
    seed: int = DEFAULT_SEED, facts: dict | None = None, assumptions: Assumptions | None = None
) -> Dataset:
    """Build the whole dataset for one seed and set of assumptions; the same seed and
    assumptions always give the same tables."""
    facts = facts or load_facts()
    assumptions = assumptions or Assumptions()
    rng = np.random.default_rng(seed)
    patients = _patients(facts)
    lesion_ids = [f"P{p}-L{i + 1}" for p, sites in SITES.items() for i in range(len(sites))]
    radiography = _radiography(facts, lesion_ids, rng, assumptions.resolved)
    measurements = _measurements(facts, radiography, rng, assumptions)
    lesions = _lesions(measurements)
    # the protocol: one injection of the lesion's dose at every weekly visit, 1 to 16
    measurements["dose_mg"] = measurements["lesion_id"].map(
        lesions.set_index("lesion_id")["dose_mg"]
    )
    adverse = pd.DataFrame(columns=schema.columns("adverse_events"))
    return Dataset(patients, lesions, measurements, radiography, adverse)


def _patients(facts: dict) -> pd.DataFrame:
    rows = [
        {
            "patient_id": f"P{p['id']}",
            "sex": p["sex"],
            "age_years": p["age"],
            "disease_duration_months": p["duration_months"],
        }
        for p in facts["patients"]
    ]
    for p in facts["patients"]:
        if p["lesions"] != len(SITES[p["id"]]):
            raise ValueError(f"patient {p['id']}: facts give {p['lesions']} lesions")
    return pd.DataFrame(rows, columns=schema.columns("patients"))


def _patient_of(lesion_id: str) -> int:
    return int(lesion_id.split("-")[0][1:])


def _radiography(
    facts: dict, lesion_ids: list[str], rng: np.random.Generator, resolved: tuple[str, ...]
) -> pd.DataFrame:
    """Baseline and week-16 radiographic sizes matching the printed summaries."""
    printed = facts["results"]["radiography_mm"]
    n = len(lesion_ids)
    idx = {lid: i for i, lid in enumerate(lesion_ids)}
    patient = np.array([_patient_of(lid) for lid in lesion_ids])

    def fit(summary: dict, lower, upper, prior, pins: dict[str, float]) -> np.ndarray:
        lower, upper = np.array(lower, float), np.array(upper, float)
        lower = np.maximum(lower, summary["min"])
        upper = np.minimum(upper, summary["max"])
        for lid, value in pins.items():
            lower[idx[lid]] = upper[idx[lid]] = value
        target = sprite.Target(summary["mean"], summary["sd"], 2, RADIOGRAPHIC_GRID_MM)
        return sprite.search(target, lower, upper, prior, rng)

    base, final = printed["baseline"], printed["week16"]
    prior_len = np.array([BASELINE_PRIOR_MM[p] for p in patient]) + rng.normal(0, 2.0, n)
    length0 = fit(
        base["length"],
        np.zeros(n),
        np.full(n, np.inf),
        prior_len,
        {LARGEST: base["length"]["max"], SMALLEST: base["length"]["min"]},
    )
    ratio = np.array([WIDTH_RATIO_PRIOR[p] for p in patient]) * rng.uniform(0.85, 1.15, n)
    width0 = fit(
        base["width"],
        np.zeros(n),
        length0,
        length0 * ratio,
        {LARGEST: base["width"]["max"], SMALLEST: base["width"]["min"]},
    )

    # Week 16: lesions gone are 0 in both; the widths are found first so that the lengths
    # can be kept at or above them.
    gone = np.array([patient[i] == 2 or lid in resolved for i, lid in enumerate(lesion_ids)])
    share = np.array([FINAL_SHARE[p] for p in patient]) * rng.uniform(0.85, 1.1, n)
    floor = np.where(gone, 0.0, 1.0)
    ceiling = np.where(gone, 0.0, np.inf)
    width1 = fit(
        final["width"],
        np.minimum(floor, width0),
        np.minimum(ceiling, width0),
        width0 * share,
        {LARGEST: final["width"]["max"]},
    )
    length1 = fit(
        final["length"],
        np.maximum(floor, width1),
        np.minimum(ceiling, length0),
        length0 * share,
        {LARGEST: final["length"]["max"]},
    )

    rows = []
    for i, lid in enumerate(lesion_ids):
        rows.append(
            {
                "lesion_id": lid,
                "timepoint": "baseline",
                "length_mm": length0[i],
                "width_mm": width0[i],
            }
        )
        rows.append(
            {"lesion_id": lid, "timepoint": "final", "length_mm": length1[i], "width_mm": width1[i]}
        )
    return pd.DataFrame(rows, columns=schema.columns("radiography"))


def _measurements(
    facts: dict, radiography: pd.DataFrame, rng: np.random.Generator, assumptions: Assumptions
) -> pd.DataFrame:
    """Weekly clinical sizes, calibrated to the published GEE change per visit."""
    grid = assumptions.clinical_grid_mm
    baseline = radiography[radiography["timepoint"] == "baseline"].set_index("lesion_id")
    start = (baseline[["length_mm", "width_mm"]] / grid).round() * grid
    p2 = next(p for p in facts["patients"] if p["id"] == 2)
    start.loc["P2-L1"] = p2["clinical_size_mm"]
    spread = assumptions.lesion_spread
    jitter = pd.Series(rng.uniform(1 - spread, 1 + spread, len(start)), index=start.index)
    noise = _noise(start.index, assumptions.noise_steps * grid, rng)
    targets = facts["results"]["gee_percent_change_per_visit"]
    course = _Course(assumptions, jitter, noise)

    sizes = {}
    for outcome, key in (("length_mm", "length"), ("width_mm", "width")):

        def miss(theta: float, outcome=outcome, key=key) -> float:
            return _pct(course.sizes(start[outcome], theta), outcome) - targets[key]

        theta = optimize.brentq(miss, 0.0, 3.0, xtol=1e-6)
        frame = course.sizes(start[outcome], theta)
        sizes[outcome] = _nudge(frame, outcome, targets[key], grid)
    frame = sizes["length_mm"].rename(columns={"size": "length_mm"})
    frame["width_mm"] = np.minimum(sizes["width_mm"]["size"].to_numpy(), frame["length_mm"])
    return frame[["lesion_id", "visit", "length_mm", "width_mm"]]


def _noise(lesion_ids: pd.Index, sd_mm: float, rng: np.random.Generator) -> pd.DataFrame:
    """Rater noise per lesion and visit (none at visit 1, the radiographic baseline); no draws
    when there is none, so the bundled seed's stream is unchanged."""
    values = np.zeros((len(lesion_ids), N_VISITS))
    if sd_mm > 0:
        values[:, 1:] = rng.normal(0.0, sd_mm, (len(lesion_ids), N_VISITS - 1))
    return pd.DataFrame(values, index=lesion_ids)


@dataclass(frozen=True)
class _Course:
    """Sizes at every visit on the clinical grid for a decline strength `theta`.

    Patient 2's lesion is measured at the first and last visits only and is gone by the last.
    """

    assumptions: Assumptions
    jitter: pd.Series
    noise: pd.DataFrame

    def sizes(self, start: pd.Series, theta: float) -> pd.DataFrame:
        grid = self.assumptions.clinical_grid_mm
        shapes, speeds = self.assumptions.shapes(), self.assumptions.speeds()
        rows = []
        for lid, size0 in start.items():
            patient = _patient_of(lid)
            if patient == 2:
                sizes = np.full(N_VISITS, np.nan)
                sizes[0], sizes[-1] = size0, 0.0
            else:
                drop = min(speeds[patient] * theta * self.jitter[lid], 0.9)
                raw = size0 * (1 - drop * shapes[patient]) + self.noise.loc[lid].to_numpy()
                on_grid = np.minimum.accumulate(np.round(raw / grid) * grid)
                sizes = np.maximum(on_grid, grid)
            rows += [{"lesion_id": lid, "visit": v + 1, "size": s} for v, s in enumerate(sizes)]
        return pd.DataFrame(rows)


def _nudge(
    frame: pd.DataFrame, outcome: str, target: float, grid: float, steps: int = 40
) -> pd.DataFrame:
    """Move single late-visit values of patient 1 and 3 by one grid step until the GEE
    percentage prints as `target` with a margin, keeping every course non-increasing."""

    def settled(value: float) -> bool:
        return abs(value - target) < 0.003

    current = _pct(frame, outcome)
    for _ in range(steps):
        if settled(current):
            return frame
        best = None
        for row in _nudgeable(frame):
            for step in (-grid, grid):
                trial = frame.copy()
                trial.loc[row, "size"] += step
                if not _non_increasing(trial, trial.loc[row, "lesion_id"], grid):
                    continue
                value = _pct(trial, outcome)
                if best is None or abs(value - target) < abs(best[0] - target):
                    best = (value, trial)
        if best is None or abs(best[0] - target) >= abs(current - target):
            break
        current, frame = best
    if not settled(current):
        raise RuntimeError(f"{outcome}: calibration stopped at {current:.4f} % per visit")
    return frame


def _pct(frame: pd.DataFrame, outcome: str) -> float:
    """The primary model's change per visit for sizes held in a `size` column."""
    return models.primary_rate(frame.rename(columns={"size": outcome}), outcome).pct_per_visit


def _nudgeable(frame: pd.DataFrame) -> list[int]:
    patient = frame["lesion_id"].map(_patient_of)
    late = frame["visit"] >= 12
    return frame.index[patient.isin([1, 3]) & late].tolist()


def _non_increasing(frame: pd.DataFrame, lesion_id: str, grid: float) -> bool:
    sizes = frame.loc[frame["lesion_id"] == lesion_id, "size"].dropna().to_numpy()
    return bool(sizes.min() >= grid and np.all(np.diff(sizes) <= 0))


def _lesions(measurements: pd.DataFrame) -> pd.DataFrame:
    """Area from the first clinical length × width (cm²) and the dose the rule gives it.

    The rule covers areas up to 5 cm²; a lesion above it (patient 2's) gets the top dose,
    and the methods chapter flags it.
    """
    first = measurements[measurements["visit"] == 1].set_index("lesion_id")
    area = (first["length_mm"] * first["width_mm"] / 100).round(2)
    rows = []
    for lid, a in area.items():
        patient = _patient_of(lid)
        n = int(lid.split("-L")[1])
        rows.append(
            {
                "lesion_id": lid,
                "patient_id": f"P{patient}",
                "site": SITES[patient][n - 1],
                "baseline_area_cm2": float(a),
                "dose_mg": int(dose.rule_dose(a) or dose.bands()[-1][1]),
            }
        )
    return pd.DataFrame(rows, columns=schema.columns("lesions"))


# --- writing -------------------------------------------------------------------------------


def write_dataset(
    out_dir: Path,
    seed: int = DEFAULT_SEED,
    assumptions: Assumptions | None = None,
    *,
    replace: bool = True,
) -> list[Path]:
    """Write every table, the data package descriptor and the published claims to `out_dir`.

    Only those files are written, each whole (a temporary file renamed into place), and never
    through a symbolic link: a link among them, or `out_dir` itself a link or a file, is a
    UsageError before anything is written; so are existing files unless `replace`."""
    out_dir = Path(out_dir)
    facts = load_facts()
    dataset = reconstruct(seed, facts, assumptions)
    contents, hashes = {}, {}
    for name in schema.TABLES:
        content = to_csv(dataset.table(name)).encode("utf-8")
        contents[f"{name}.csv"] = content
        hashes[name] = hashlib.sha256(content).hexdigest()
    descriptor = schema.datapackage(provenance(seed, facts), hashes)
    text = json.dumps(descriptor, indent=2, ensure_ascii=False) + "\n"
    contents["datapackage.json"] = text.encode("utf-8")
    contents["published.yml"] = published_claims_yaml(facts).encode("utf-8")
    _check_writable(out_dir, list(contents), replace)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, content in contents.items():
        _write_whole(out_dir / name, content)
        written.append(out_dir / name)
    return written


def _check_writable(out_dir: Path, names: list[str], replace: bool) -> None:
    from calcinosis.errors import UsageError

    if out_dir.is_symlink():
        raise UsageError(f"--out {out_dir} is a symbolic link; choose a folder of its own")
    if out_dir.exists() and not out_dir.is_dir():
        raise UsageError(f"--out {out_dir} exists and is not a folder; choose a folder")
    links = [n for n in names if (out_dir / n).is_symlink()]
    if links:
        raise UsageError(
            f"--out {out_dir}: {', '.join(links)} is a symbolic link, never written through; "
            "remove it or choose another folder"
        )
    held = [n for n in names if (out_dir / n).exists()]
    if held and not replace:
        raise UsageError(
            f"--out {out_dir} already holds a dataset ({', '.join(sorted(held))}); "
            "choose an empty folder, or pass --replace to overwrite it"
        )
    if any((out_dir / n).is_dir() for n in held):
        raise UsageError(f"--out {out_dir}: a folder has the name of a dataset file")


def _write_whole(path: Path, content: bytes) -> None:
    """`content` into `path` by rename: a crash leaves the old file or the new one."""
    import os
    import tempfile

    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(content)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def to_csv(frame: pd.DataFrame) -> str:
    """CSV text with sizes printed on their grid ('12.5', '6.0'), empty cells for not measured."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(frame.columns)
    for row in frame.itertuples(index=False):
        writer.writerow([_cell(value) for value in row])
    return buffer.getvalue()


def _cell(value) -> str:
    if isinstance(value, float | np.floating):
        if np.isnan(value):
            return ""
        return f"{value:.2f}".rstrip("0").rstrip(".") if value != int(value) else f"{value:.1f}"
    return str(value)


def provenance(seed: int, facts: dict) -> dict:
    """What the data package says about where the data came from."""
    article = facts["article"]
    return {
        "reconstruction": True,
        "seed": seed,
        "generator": "calcinosis reconstruct",
        "article_doi": article["doi"],
        "note": (
            "RECONSTRUCTION, NOT THE TRIAL'S RAW DATA. Built by `calcinosis reconstruct` to agree "
            "with the summaries printed in the article; see data/README.md for the method "
            "and every assumption."
        ),
    }


def published_claims(facts: dict) -> list[dict]:
    """The paper's checkable claims as flat records named like the results they are checked by."""
    results = facts["results"]
    claims = [
        _claim("n_patients", facts["design"]["patients"], 0, "Methods"),
        _claim("n_lesions", sum(p["lesions"] for p in facts["patients"]), 0, "Results (cases)"),
        _claim("n_visits", N_VISITS, 0, "Methods"),
    ]
    gee = results["gee_percent_change_per_visit"]
    for outcome in ("length", "width"):
        claims.append(_claim(f"gee_{outcome}_pct_per_visit", gee[outcome], 2, gee["source"]))
        claims.append(
            _claim(f"gee_{outcome}_p", gee["significant_at"], 2, gee["source"], relation="<")
        )
    for timepoint, when in (("baseline", "baseline"), ("week16", "final")):
        for outcome in ("length", "width"):
            for stat, value in results["radiography_mm"][timepoint][outcome].items():
                claims.append(
                    _claim(
                        f"rad_{when}_{outcome}_{stat}", value, 2, "Abstract; Results (radiography)"
                    )
                )
    claims.append(_claim("n_adverse_events_related", 0, 0, "Results (safety)"))
    return claims


def _claim(name: str, value, decimals: int, source: str, relation: str = "=") -> dict:
    return {
        "name": name,
        "value": value,
        "decimals": decimals,
        "relation": relation,
        "source": source,
    }


def published_claims_yaml(facts: dict) -> str:
    header = (
        "# The paper's checkable claims as data, written by `calcinosis reconstruct` from the\n"
        "# paper's facts (src/calcinosis/published_facts.yml). `decimals` is the precision\n"
        "# printed; `relation` says whether the recomputed value should equal the claim or\n"
        "# lie below it.\n"
    )
    body = {"article_doi": facts["article"]["doi"], "claims": published_claims(facts)}
    return header + yaml.safe_dump(body, sort_keys=False, allow_unicode=True)
