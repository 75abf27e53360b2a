"""Invariants of the book on trials it was never tuned to (`tests/trials.py`): the results
stage on many generated trials, the whole book on a few, and no patient or lesion ID typed
into the code or the chapters.

On every trial: no producer raises; no `nan`, `inf`, a failed fit's number or a fallback
0/1 stands in for a result, in values, sentences, tables or `results.json`; and each count,
ID, visit number and direction a sentence states equals the one recomputed here from the
CSV files with pandas alone (not through `calcinosis`). A failure names the seed and what it
drew; `python -c "import trials; trials.write_trial(SEED, 'DIR')"` (from tests/) writes it.

The results-stage tests draw each figure once instead of saving it as PNG, SVG and PDF
(`_draft`): drawing runs the layout and every artist, so a figure the data break still
fails, at a quarter of the cost; the book tests render them for real.
"""

from __future__ import annotations

import concurrent.futures as cf
import html
import json
import math
import os
import re
import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from unittest import mock

import pandas as pd
import pytest

import trials
from calcinosis import paths

# Seeds 0–29 as drawn, and 65: 20 patients and 110 lesions, drawn deliberately larger.
RESULT_SEEDS = (*range(30), 65)
# Books: numeric codes, an irregular schedule and growing lesions, no data package; 'Pt-A'
# codes, 16 weekly visits, no event, missing finals; 's1.11_x' codes, irregular, follow-up at
# dose 0, missing baselines, fatal events, a data package without provenance.
BOOK_SEEDS = (21, 24, 29)
NON_NUMBERS = re.compile(r"(?<![A-Za-z])(?:nan|NaN|NAN|-?inf|Inf|Infinity)(?![A-Za-z])")
# a diverged fit's value quoted in a reason ("mean curve reaches 2.89e+31 mm")
HUGE_NUMBER = re.compile(r"(?<![\w.])\d+(?:\.\d+)?[eE]\+?\d{2,}(?!\w)")
TIMINGS: dict[str, float] = {}


# --------------------------------------------------------------------------------------------
# What the CSV files say, read with pandas alone
# --------------------------------------------------------------------------------------------


@dataclass
class Csv:
    """The generated trial's tables as written, IDs as text, sizes as numbers."""

    patients: pd.DataFrame
    lesions: pd.DataFrame
    measurements: pd.DataFrame
    radiography: pd.DataFrame
    events: pd.DataFrame

    @classmethod
    def read(cls, folder: Path) -> Csv:
        def read(name: str) -> pd.DataFrame:
            frame = pd.read_csv(folder / f"{name}.csv", dtype=str, keep_default_na=False)
            for column in frame.columns:
                if column.endswith(("_mm", "_years", "_months", "_cm2")) or column == "visit":
                    frame[column] = pd.to_numeric(frame[column].replace("", None))
            return frame

        return cls(
            read("patients"),
            read("lesions"),
            read("measurements"),
            read("radiography"),
            read("adverse_events"),
        )

    def measured(self, outcome: str | None = None) -> pd.DataFrame:
        m = self.measurements
        if outcome is None:
            return m[m["length_mm"].notna() | m["width_mm"].notna()]
        return m[m[f"{outcome}_mm"].notna()]

    @property
    def visits(self) -> set[int]:
        return set(self.measurements["visit"].astype(int)) | set(self.events["visit"].astype(int))


# --------------------------------------------------------------------------------------------
# Running the results stage producer by producer
# --------------------------------------------------------------------------------------------


@dataclass
class Stage:
    seed: int
    folder: Path
    csv: Csv
    sections: dict = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    cpu_seconds: float = 0.0

    @property
    def values(self) -> dict:
        from calcinosis.report import results

        return results.all_values(self.sections.values())

    def fail(self, problems: list[str]) -> None:
        if problems:
            pytest.fail(
                f"{trials.describe(self.seed)}\n  data: {self.folder}\n  " + "\n  ".join(problems),
                pytrace=False,
            )


def _draft(fig, pdf: bool = True):
    """Draw the figure once (layout and every artist) without saving it (`pdf` as
    `figures.render` takes it: nothing is saved in any format)."""
    import matplotlib.pyplot as plt

    from calcinosis.report.sections import Figure

    try:
        fig.canvas.draw()
    finally:
        plt.close(fig)
    return Figure(png=b"", svg=b"")


@contextmanager
def _draft_figures() -> Iterator[None]:
    from calcinosis.report import figures

    with mock.patch.object(figures, "render", _draft):
        yield


def run_stage(seed: int, folder: Path) -> Stage:
    """Every producer on the trial of `seed`, each on its own, so one that raises does not
    hide what the others make; derived producers run when the others all succeeded."""
    from calcinosis.data.trial import load_trial
    from calcinosis.params import Parameters
    from calcinosis.report import results

    trials.write_trial(seed, folder)
    stage = Stage(seed, folder, Csv.read(folder))
    start = time.process_time()
    trial = load_trial(folder)
    with _draft_figures():
        for producer in sorted(results.PRODUCERS, key=lambda p: p.derived):
            if producer.derived and stage.errors:
                stage.errors[producer.name] = "not run: another producer failed"
                continue
            values = stage.values if producer.derived else None
            try:
                made = results.run(producer, trial, Parameters(), values)
            except Exception as err:  # noqa: BLE001 - every producer's failure is reported
                stage.errors[producer.name] = f"{type(err).__name__}: {err} ({_where(err)})"
                continue
            stage.sections.update({s.name: s for s in made})
    stage.cpu_seconds = time.process_time() - start
    return stage


def _where(err: Exception) -> str:
    """The innermost line of the package's own code that the exception passed through."""
    frames = [f for f in traceback.extract_tb(err.__traceback__) if "/calcinosis/" in f.filename]
    return f"{frames[-1].filename.split('/calcinosis/')[-1]}:{frames[-1].lineno}" if frames else ""


class Stages(dict):
    """Results stages by seed; a seed not yet run is run when a test first asks for it."""

    def __init__(self, root: Path) -> None:
        super().__init__()
        self.root = root

    def __missing__(self, seed: int) -> Stage:
        stage = self[seed] = run_stage(seed, self.root / f"seed{seed}")
        TIMINGS[f"results stage cpu, seed {seed}"] = stage.cpu_seconds
        return stage


@pytest.fixture(scope="module")
def stages(request, tmp_path_factory) -> Stages:
    """The results stage of every seed the selected tests ask for, run once. In one process,
    all of them up front, two trials at a time (the machine's two cores; each stage is one
    process); under pytest-xdist each seed is a group of its own (`by_seed`), so the workers
    share the seeds out and each runs the ones it is given as they come."""
    found = Stages(tmp_path_factory.mktemp("trials"))
    if os.environ.get("PYTEST_XDIST_WORKER"):
        return found
    wanted = sorted(
        {
            _seed(item)
            for item in request.session.items
            if item.module is request.module
            and item.get_closest_marker("integration")
            and _seed(item) is not None
        }
    )
    start = time.perf_counter()
    with cf.ProcessPoolExecutor(min(2, os.cpu_count() or 1)) as pool:
        futures = {s: pool.submit(run_stage, s, found.root / f"seed{s}") for s in wanted}
        found.update({seed: future.result() for seed, future in futures.items()})
    TIMINGS["results stages, wall"] = time.perf_counter() - start
    for stage in found.values():
        TIMINGS[f"results stage cpu, seed {stage.seed}"] = stage.cpu_seconds
    return found


def by_seed(seeds: tuple[int, ...], kind: str) -> list:
    """The seeds as parameters, each its own xdist group: a trial's tests run on one worker,
    which makes its results stage or book once, and the trials spread over the workers."""
    return [pytest.param(seed, marks=pytest.mark.xdist_group(f"{kind}-{seed}")) for seed in seeds]


def _seed(item: pytest.Item) -> int | None:
    callspec = getattr(item, "callspec", None)
    return callspec.params.get("seed") if callspec else None


@pytest.fixture
def stage_of(stages):
    return stages.__getitem__


# --------------------------------------------------------------------------------------------
# Invariants
# --------------------------------------------------------------------------------------------


def non_numbers(values: dict, tables: dict[str, object]) -> list[str]:
    """Where a value, a sentence or a printed table holds nan/inf, a failed fit's huge
    number, or a fallback (an SE of exactly 0, B = 0 with Exp(B) = 1) for a fit."""
    found = []
    for name, value in values.items():
        if isinstance(value, float) and not math.isfinite(value):
            found.append(f"value {name} = {value}")
        elif isinstance(value, str):
            if NON_NUMBERS.search(value):
                found.append(f"value {name} says {_around(value, NON_NUMBERS)!r}")
            if HUGE_NUMBER.search(value):
                found.append(f"value {name} quotes {_around(value, HUGE_NUMBER)!r}")
        if name.endswith("_se") and value == 0:
            found.append(f"value {name} = 0: a fallback SE for a fit that failed")
        if name.endswith(("_beta", "_pct_effect", "pct_per_visit")) and value == 0:
            found.append(f"value {name} = 0: a fallback estimate for a fit that failed")
    for name, table in tables.items():
        text = table.markdown()
        if NON_NUMBERS.search(text):
            found.append(f"table {name} prints {_around(text, NON_NUMBERS)!r}")
        frame = table.frame
        for column in frame.columns:
            numbers = pd.to_numeric(frame[column], errors="coerce")
            if numbers.isin([math.inf, -math.inf]).any():
                found.append(f"table {name}, column {column!r} holds an infinity")
        if "SE" in frame.columns:
            se = pd.to_numeric(frame["SE"], errors="coerce")
            if (se == 0).any():
                rows = frame.loc[se == 0].iloc[:, 0].astype(str).tolist()
                found.append(f"table {name}: SE exactly 0 (a fallback) in rows {rows}")
    return found


def _around(text: str, pattern: re.Pattern) -> str:
    match = pattern.search(text)
    assert match is not None
    return text[max(0, match.start() - 60) : match.end() + 20]


def stated_counts(values: dict, csv: Csv) -> list[str]:
    """Each count, ID, visit and direction the results state that differs from the CSVs."""
    wrong: list[str] = []

    def expect(name: str, expected: object) -> None:
        if name in values and isinstance(values[name], int | float) and values[name] != expected:
            wrong.append(f"{name} = {values[name]!r}, the CSVs give {expected!r}")

    p, les, m, r, ev = csv.patients, csv.lesions, csv.measurements, csv.radiography, csv.events
    doses = m["dose_mg"].astype(float) if "dose_mg" in m.columns else None
    lesion_dose = m["lesion_id"].map(les.set_index("lesion_id")["dose_mg"].astype(float))
    expect("n_patients", len(p))
    expect("n_lesions", len(les))
    expect("n_visits", int(m["visit"].max()))
    expect("n_observations", len(csv.measured()))
    expect("cohort_n_female", int((p["sex"] == "F").sum()))
    expect("cohort_n_male", int((p["sex"] == "M").sum()))
    per_patient = les.groupby("patient_id").size()
    expect("cohort_lesions_per_patient_min", int(per_patient.min()))
    expect("cohort_lesions_per_patient_max", int(per_patient.max()))
    expect("cohort_n_sites", les["site"].nunique())
    expect("n_adverse_events", len(ev))
    expect("n_adverse_events_related", int((ev["related_to_treatment"] == "yes").sum()))
    if doses is not None:
        expect("n_injections", int((doses > 0).sum()))
        expect("total_dose_mg", float(doses.sum()))
    else:  # one injection per measured visit, or per row, as the exposure sentence says
        counted = m["length_mm"].notna() | m["width_mm"].notna()
        if "measured visit" not in str(values.get("exposure_sentence", "")):
            counted = m["visit"].notna()
        expect("n_injections", int(counted.sum()))
        expect("total_dose_mg", float(lesion_dose[counted].sum()))
    short = int((p["disease_duration_months"] < 24).sum())
    expect("n_duration_short", short)
    expect("n_duration_long", len(p) - short)
    with_length = csv.measured("length")
    expect("sens_lesion_clusters", with_length["lesion_id"].nunique())
    owners = with_length["lesion_id"].map(les.set_index("lesion_id")["patient_id"])
    expect("sens_patient_clusters", owners.nunique())
    for outcome in ("length", "width"):
        for timepoint in ("baseline", "final"):
            cells = r.loc[r["timepoint"] == timepoint, f"{outcome}_mm"]
            expect(f"rad_{timepoint}_{outcome}_n", int(cells.notna().sum()))
        pairs = r.pivot(index="lesion_id", columns="timepoint", values=f"{outcome}_mm")
        pairs = pairs.reindex(columns=["baseline", "final"]).dropna()
        expect(f"rad_{outcome}_n_nonzero_change", int((pairs["final"] != pairs["baseline"]).sum()))
        if isinstance(values.get(f"cvr_{outcome}_intervals"), int):
            expect(f"cvr_{outcome}_intervals", int(m["visit"].max() - m["visit"].min()))
    final = r[r["timepoint"] == "final"]
    expect("rad_n_resolved", int(((final["length_mm"] == 0) & (final["width_mm"] == 0)).sum()))
    wrong += _sd_direction(values, r)
    wrong += _safety_sentences(values, csv)
    wrong += _sparse_lesions(values, csv)
    wrong += _lesion_spread(values, csv)
    wrong += _patient_pages(values, csv)
    wrong += _visits_stated(values, csv)
    wrong += _interaction_note(values, csv)
    return wrong


def _sd_direction(values: dict, r: pd.DataFrame) -> list[str]:
    sentence = values.get("rad_sd_sentence")
    if not isinstance(sentence, str):
        return []
    wrong = []
    for outcome in ("length", "width"):
        sd = {
            t: r.loc[r["timepoint"] == t, f"{outcome}_mm"].dropna().std(ddof=1)
            for t in ("baseline", "final")
        }
        if any(pd.isna(v) for v in sd.values()):
            word = None  # fewer than two radiographs: a spread has no direction
        else:
            after, before = sd["final"], sd["baseline"]
            word = "grew" if after > before else "fell" if after < before else "did not change"
        both = re.search(r"(grew|fell|did not change) after treatment for both", sentence)
        said = (
            both
            or re.search(rf"(grew|fell|did not change) for {outcome}", sentence)
            or re.search(rf"of {outcome} (grew|fell|did not change)", sentence)
        )
        said_word = said.group(1) if said else None
        if said_word != word:
            wrong.append(
                f"rad_sd_sentence says the SD of {outcome} {said_word!r}; the CSVs give "
                f"{word!r} (SDs {sd['baseline']:.3g} → {sd['final']:.3g}): {sentence!r}"
            )
    return wrong


def _safety_sentences(values: dict, csv: Csv) -> list[str]:
    ev, n_children = csv.events, len(csv.patients)
    wrong = []
    said = values.get("adverse_events_sentence", "")
    if not isinstance(said, str):
        return []
    if ev.empty:
        if not said.startswith("No adverse event"):
            wrong.append(f"no adverse events in the CSV, but: {said!r}")
    else:
        match = re.match(r"(\d+) adverse events? (?:was|were) recorded in (\d+) of the (\d+)", said)
        stated = tuple(map(int, match.groups())) if match else None
        expected = (len(ev), ev["patient_id"].nunique(), n_children)
        if stated != expected:
            wrong.append(f"adverse_events_sentence states {stated}, the CSVs {expected}: {said!r}")
        for severity, count in ev["severity"].value_counts().items():
            if f"{count} {severity}" not in said:
                wrong.append(f"adverse_events_sentence lacks '{count} {severity}': {said!r}")
    bound = values.get("safety_bound_sentence", "")
    children = re.search(r"(?:among|of) (\d+) children", str(bound))
    if children and int(children.group(1)) != n_children:
        wrong.append(f"safety_bound_sentence counts {children.group(1)} children: {bound!r}")
    return wrong


def _sparse_lesions(values: dict, csv: Csv) -> list[str]:
    said = values.get("sparse_lesions_sentence")
    if not isinstance(said, str):
        return []
    measured = csv.measured("length").groupby("lesion_id")["visit"].agg(list)
    sparse = {lesion: v for lesion, v in measured.items() if len(v) <= 2}
    stated = dict(
        (lesion, [int(x) for x in re.findall(r"\d+", visits)])
        for lesion, visits in re.findall(r"([^\s(;]+) at visits? ([\d and]+?)(?=[;)])", said)
    )
    if stated != {k: [int(x) for x in v] for k, v in sparse.items()}:
        return [f"sparse_lesions_sentence names {stated}, the CSVs {sparse}: {said[:300]!r}"]
    return []


def _lesion_spread(values: dict, csv: Csv) -> list[str]:
    said = values.get("lesion_spread_sentence")
    if not isinstance(said, str):
        return []
    wrong = []
    resolved = 0
    for _, rows in csv.measurements.groupby("lesion_id"):
        length, width = rows["length_mm"].dropna(), rows["width_mm"].dropna()
        if len(length) and len(width) and length.iloc[-1] == 0 and width.iloc[-1] == 0:
            resolved += 1
    match = re.search(r"(\d+) of (\d+) lesions resolved", said)
    stated = tuple(map(int, match.groups())) if match else (0, len(csv.lesions))
    if stated != (resolved, len(csv.lesions)):
        wrong.append(
            f"lesion_spread_sentence: {stated} resolved, the CSVs ({resolved}, "
            f"{len(csv.lesions)}): {said!r}"
        )
    return wrong


def _patient_pages(values: dict, csv: Csv) -> list[str]:
    wrong = []
    lesions = csv.lesions.groupby("patient_id")
    by_id = csv.patients.set_index("patient_id")
    stated_ids = {
        v for k, v in values.items() if k.startswith("patient_") and k.endswith("_patient_id")
    }
    if stated_ids and stated_ids != set(by_id.index):
        wrong.append(f"patient pages for {sorted(stated_ids)}, patients {sorted(by_id.index)}")
    for key, patient_id in values.items():
        if not (key.startswith("patient_") and key.endswith("_patient_id")):
            continue
        prefix = key.removesuffix("patient_id")
        if patient_id not in by_id.index:
            continue
        own = lesions.get_group(patient_id)
        n = values.get(f"{prefix}course_n_lesions")
        if n != len(own):
            wrong.append(f"{prefix}course_n_lesions = {n}, the CSVs {len(own)}")
        sentence = str(values.get(f"{prefix}patient_sentence", ""))
        treated = re.search(r"treated for (\d+) lesion", sentence)
        if treated and int(treated.group(1)) != len(own):
            wrong.append(f"{prefix}patient_sentence: {sentence!r}, {len(own)} lesions")
        sex = {"F": "girl", "M": "boy"}[by_id.loc[patient_id, "sex"]]
        if sentence and sex not in sentence:
            wrong.append(f"{prefix}patient_sentence: {sentence!r}, but the child is a {sex}")
        for site in own["site"]:
            if sentence and site not in sentence:
                wrong.append(f"{prefix}patient_sentence lacks the site {site!r}: {sentence!r}")
    return wrong


VISITS_NAMED = re.compile(
    r"\bvisits? (\d+(?:–| to )\d+|(?:\d+, )*\d+(?: and \d+)?)\b(?! in the median)"
)


def _visits_stated(values: dict, csv: Csv) -> list[str]:
    """Every 'visit N' a sentence names is a visit of the data: lists ('visits 1, 2 and 4')
    and ranges ('visits 2 to 4'); a median ('began at visit 3 in the median of ...') is a
    statistic of visits, which need not be one."""
    known = csv.visits
    wrong = []
    for name, value in values.items():
        if not isinstance(value, str) or name.startswith(("power_", "ens_", "data_notice")):
            continue
        for listed in re.findall(VISITS_NAMED, value):
            numbers = {int(x) for x in re.findall(r"\d+", listed)}
            if numbers - known:
                wrong.append(
                    f"{name} names visit(s) {sorted(numbers - known)} that are not in the "
                    f"data (visits {_span(known)}): {value[:200]!r}"
                )
    return wrong


def _span(visits: set[int]) -> str:
    return (
        ", ".join(map(str, sorted(visits))) if len(visits) <= 10 else f"{min(visits)}–{max(visits)}"
    )


def _interaction_note(values: dict, csv: Csv) -> list[str]:
    note = values.get("interaction_note")
    match = re.search(r"(\d+) patients \((\d+) with < 24 months\)", str(note))
    if not match:
        return []
    p = csv.patients
    expected = (len(p), int((p["disease_duration_months"] < 24).sum()))
    if tuple(map(int, match.groups())) != expected:
        return [f"interaction_note: {note!r}, the CSVs give {expected}"]
    return []


# --------------------------------------------------------------------------------------------
# The generator: valid, reproducible, and covering what the issue asks for
# --------------------------------------------------------------------------------------------

# What the seeds tested must draw between them: (feature, pattern in the description).
DESCRIBED = {
    "weekly schedule": r"schedule weekly",
    "irregular schedule": r"schedule irregular",
    "short schedule": r"schedule short",
    "one visit after baseline": r"schedule one after baseline",
    "missing baseline": r"baseline missing",
    "follow-up at dose 0": r"follow-up visits at dose 0",
    "no dose_mg column": r"no dose_mg column",
    "visits not measured": r"of visits not measured",
    "lesions that shrink": r"\d+ shrink",
    "lesions that stay flat": r"\d+ flat",
    "lesions that grow": r"\d+ grow",
    "lesions that resolve": r"\d+ resolve",
    "lesions read on a 1 mm ruler": r"\d+ ruler",
    "radiographs with ties": r"radiographs ties",
    "radiographs with zero differences": r"radiographs zero differences",
    "missing final radiographs": r"finals missing",
    "no datapackage.json": r"datapackage.json none",
    "a package declaring real data": r"datapackage.json real",
    "a package declaring a reconstruction": r"datapackage.json reconstruction",
    "a package without provenance": r"datapackage.json bare",
    "published.yml": r"published.yml with",
    "no published.yml": r"published.yml absent",
    "no adverse event": r"; 0 adverse events",
    "dash-L lesion codes": r"dash-L codes",
    "dotted lesion codes": r"dot codes",
    "numeric lesion codes": r"global codes",
    "lettered lesion codes": r"underscore-letter codes",
}
PATIENT_CODES = {
    "P01": r"P\d{2}",
    "1001": r"\d+",
    "Pt-A": r"Pt-[A-Z]+",
    "P1": r"P[1-9]\d?",
    "s1.11_x": r"s\d\.\d+_x",
}


def features(drawn: trials.Drawn) -> set[str]:
    """What one generated trial exhibits, by the names of DESCRIBED and a few counted ones."""
    text = drawn.description()
    found = {name for name, pattern in DESCRIBED.items() if re.search(pattern, text)}
    ids = drawn.tables["patients"]["patient_id"]
    found |= {f"patient codes {n}" for n, p in PATIENT_CODES.items() if ids.str.fullmatch(p).all()}
    events = drawn.tables["adverse_events"]
    found |= {f"severity {s}" for s in events["severity"]}
    found |= {f"relatedness {r or 'empty'}" for r in events["related_to_treatment"]}
    sizes = drawn.tables["radiography"].dropna(subset=["length_mm"])
    if sizes.groupby("lesion_id").size().eq(2).sum() > 20:
        found.add("more than 20 radiograph pairs")
    n_patients = len(drawn.tables["patients"])
    found |= {"one patient"} if n_patients == 1 else set()
    found |= {"20 patients or more"} if n_patients >= 20 else set()
    return found


def test_the_seeds_cover_every_kind_of_trial_asked_for() -> None:
    required = {
        *DESCRIBED,
        *(f"patient codes {n}" for n in PATIENT_CODES),
        *(f"severity {s}" for s in ("mild", "moderate", "severe", "life-threatening", "fatal")),
        *(f"relatedness {r}" for r in ("yes", "no", "unknown", "empty")),
        "more than 20 radiograph pairs",
        "one patient",
        "20 patients or more",
    }
    drawn = set().union(*(features(trials.draw(seed)) for seed in RESULT_SEEDS))
    assert required - drawn == set()


@pytest.mark.integration
def test_a_trial_is_valid_and_a_function_of_its_seed(tmp_path: Path) -> None:
    from calcinosis.data.trial import validate

    for seed in sorted({*RESULT_SEEDS, *BOOK_SEEDS}):
        first = trials.write_trial(seed, tmp_path / f"{seed}a")
        again = trials.write_trial(seed, tmp_path / f"{seed}b")
        assert validate(first) == [], trials.describe(seed)
        assert {p.name: p.read_bytes() for p in first.iterdir()} == {
            p.name: p.read_bytes() for p in again.iterdir()
        }, seed
    assert trials.describe(1) != trials.describe(2)


# --------------------------------------------------------------------------------------------
# The results stage on every seed
# --------------------------------------------------------------------------------------------


@pytest.mark.integration
@pytest.mark.parametrize("seed", by_seed(RESULT_SEEDS, "stage"))
def test_no_producer_raises(stage_of, seed: int) -> None:
    stage = stage_of(seed)
    stage.fail([f"{name}: {error}" for name, error in stage.errors.items()])


@pytest.mark.integration
@pytest.mark.parametrize("seed", by_seed(RESULT_SEEDS, "stage"))
def test_no_nan_inf_or_fallback_number(stage_of, seed: int) -> None:
    stage = stage_of(seed)
    tables = {s.item_name(name): t for s in stage.sections.values() for name, t in s.tables.items()}
    problems = non_numbers(stage.values, tables)
    try:
        json.dumps(stage.values, allow_nan=False)
    except ValueError as err:
        problems.append(f"results.json would not be strict JSON: {err}")
    stage.fail(problems)


@pytest.mark.integration
@pytest.mark.parametrize("seed", by_seed(RESULT_SEEDS, "stage"))
def test_stated_counts_follow_the_csvs(stage_of, seed: int) -> None:
    stage = stage_of(seed)
    stage.fail(stated_counts(stage.values, stage.csv))


# --------------------------------------------------------------------------------------------
# The whole book on a few seeds
# --------------------------------------------------------------------------------------------


@dataclass
class Book:
    seed: int
    folder: Path
    out: Path
    error: str = ""


_BOOKS: dict[int, Book] = {}


@pytest.fixture(scope="session")
def book_of(tmp_path_factory):
    from calcinosis.book import build
    from calcinosis.errors import BuildError

    def get(seed: int) -> Book:
        if seed not in _BOOKS:
            root = tmp_path_factory.mktemp(f"book{seed}")
            folder = trials.write_trial(seed, root / "data")
            book = Book(seed, folder, root / "out")
            start = time.perf_counter()
            try:
                build.build(
                    folder, book.out, {}, None, False, cache_dir=root / "cache", echo=lambda _: None
                )
            except BuildError as err:
                book.error = str(err)
            TIMINGS[f"book, seed {seed}"] = time.perf_counter() - start
            _BOOKS[seed] = book
        return _BOOKS[seed]

    return get


def _page_texts(out: Path) -> dict[str, str]:
    """Each built page's main text, tags removed and spaces collapsed."""
    texts = {}
    for page in sorted((out / "html").rglob("*.html")):
        raw = page.read_text(encoding="utf-8")
        code = page.parts[len(out.parts) + 1] == "_modules" or page.stem == "api"
        if code or "<main" not in raw or page.stem in {"genindex", "search", "py-modindex"}:
            continue  # the code's listing and reference mention `np.nan` as code
        main = raw[raw.index("<main") :]
        main = re.sub(r"<(script|style)\b.*?</\1>", " ", main, flags=re.S)
        text = html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", main)))
        texts[str(page.relative_to(out / "html"))] = text
    return texts


@pytest.mark.system
@pytest.mark.parametrize("seed", by_seed(BOOK_SEEDS, "book"))
def test_book_builds_and_prints_no_non_number(book_of, seed: int) -> None:
    book = book_of(seed)
    problems = [f"the build failed: {book.error}"] if book.error else []
    if not book.error:
        for page, text in _page_texts(book.out).items():
            for match in NON_NUMBERS.finditer(text):
                snippet = text[max(0, match.start() - 60) : match.end() + 20]
                problems.append(f"{page}: {snippet!r}")

        def refuse(constant: str) -> None:
            problems.append(f"results.json holds {constant}")

        json.loads((book.out / "results.json").read_text("utf-8"), parse_constant=refuse)
    _fail_book(book, problems)


@pytest.mark.system
@pytest.mark.parametrize("seed", by_seed(BOOK_SEEDS, "book"))
def test_book_states_the_counts_of_its_csvs(book_of, seed: int) -> None:
    book = book_of(seed)
    if book.error:
        _fail_book(book, [f"the build failed: {book.error}"])
    values = json.loads((book.out / "results.json").read_text("utf-8"))
    csv = Csv.read(book.folder)
    problems = stated_counts(values, csv)
    texts = _page_texts(book.out)
    if values.get("adverse_events_sentence", "") not in texts.get("safety.html", ""):
        problems.append("the safety page does not show the adverse events sentence")
    patient_pages = [p for p in texts if re.search(r"patient-.+\.html$", p)]
    if len(patient_pages) != len(csv.patients):
        problems.append(f"{len(patient_pages)} patient pages for {len(csv.patients)} patients")
    _fail_book(book, problems)


def _fail_book(book: Book, problems: list[str]) -> None:
    if problems:
        pytest.fail(
            f"{trials.describe(book.seed)}\n  data: {book.folder}\n  " + "\n  ".join(problems),
            pytrace=False,
        )


# --------------------------------------------------------------------------------------------
# No patient or lesion typed into the code or the chapters
# --------------------------------------------------------------------------------------------

# An ID of the article's trial: P1…P5, or a lesion of theirs such as P1-L1.
TRIAL_ID = re.compile(r"(?<![\w-])P(?:[1-5]|[0-9]+-L[0-9]+)(?![\w-])")
ALLOWED = {
    "src/calcinosis/simulate/reconstruct.py": "builds the article's children and their lesions",
    "src/calcinosis/simulate/ensemble.py": "describes the article's patient 1 in its conclusions",
    "src/calcinosis/simulate/pinned.py": "names the article's slow responders (P3–P5)",
    "src/calcinosis/data/schema.py": "the data dictionary's example of a study code ('e.g. P1')",
    "chapters/data-dictionary.md": "shows the form of a study code ('P1, P1-L1, ...')",
    "src/calcinosis/cli.py": "the help text's example of a page parameter (-p patient_id=P2)",
    "src/calcinosis/data/trial.py": "a docstring's example of two ids that differ only in case",
    "src/calcinosis/stats/models.py": "a docstring: how simulated trials write their lesion ids",
}


def test_no_trial_id_is_typed_into_the_code_or_chapters() -> None:
    found = []
    files = [*sorted((paths.ROOT / "src").rglob("*.py")), *sorted(paths.CHAPTERS_DIR.glob("*.md"))]
    for path in files:
        rel = str(path.relative_to(paths.ROOT))
        if rel in ALLOWED:
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if TRIAL_ID.search(line):
                found.append(f"{rel}:{number}: {line.strip()}")
    assert not found, "patient or lesion IDs of the article's trial:\n" + "\n".join(found)


def test_the_id_pattern_finds_what_it_must() -> None:
    for line in ('if "P1" in ids:', "P12-L1", "start.loc['P2-L1']", "(P3, P4, P5)"):
        assert TRIAL_ID.search(line), line
    for line in ("P10 patients", "SP1", "CP1-x", "P0", "pP1", "P6", "P1_x"):
        assert not TRIAL_ID.search(line), line


@pytest.fixture(scope="module", autouse=True)
def _report_timings() -> Iterator[None]:
    """Print what the generated trials cost (results stages and books), for the CI budget."""
    yield
    cpu = [s for k, s in TIMINGS.items() if k.startswith("results stage cpu")]
    books = [s for k, s in TIMINGS.items() if k.startswith("book")]
    if cpu or books:
        print(
            f"\ngenerated trials: {len(cpu)} results stages in "
            f"{TIMINGS.get('results stages, wall', 0):.0f} s wall ({sum(cpu):.0f} s of CPU in "
            f"the workers, at most {max(cpu, default=0):.0f} s for one); {len(books)} books "
            f"in {sum(books):.0f} s"
        )
