"""The results stage: every number, sentence, table and figure the chapters show, computed once
in named sections; and the chapters cite nothing the stage does not produce."""

from __future__ import annotations

import ast
import dataclasses
import json
import math
import re
import shutil
from pathlib import Path

import jupytext
import numpy as np
import pandas as pd
import pytest

from calcinosis import paths
from calcinosis.data import trial as data
from calcinosis.data.trial import load_trial
from calcinosis.formatting import NOT_ESTIMABLE
from calcinosis.params import NAMES, Parameters
from calcinosis.report import results
from calcinosis.report.sections import Section
from calcinosis.simulate import reconstruct
from calcinosis.stats import models
from stats_fixtures import simulate_measurements, trial_from

pytestmark = pytest.mark.integration

CHAPTERS = sorted((paths.ROOT / "chapters").glob("*.md"))
PATIENT_TEMPLATE = "patient.md"
ids = "{.name}".format


@pytest.fixture(scope="module")
def trial():
    return load_trial(paths.DATA_DIR)


@pytest.fixture(scope="module")
def sections(trial) -> dict[str, Section]:
    return results.compute(trial)


@pytest.fixture(scope="module")
def values(sections) -> dict:
    return results.all_values(sections.values())


@pytest.fixture(scope="module")
def described(sections) -> dict[str, dict]:
    return results.describe(sections.values())


# --------------------------------------------------------------------------------------------
# What the stage produces
# --------------------------------------------------------------------------------------------


def test_values_are_plain_and_json_safe(values):
    assert values
    bad = {k: type(v).__name__ for k, v in values.items() if type(v) not in (int, float, str)}
    assert not bad
    json.dumps(values, allow_nan=False)  # no NaN or infinity: they are not valid JSON


def test_reproduces_the_paper(values):
    assert round(values["gee_length_pct_per_visit"], 2) == -2.66
    assert round(values["gee_width_pct_per_visit"], 2) == -3.32
    assert values["gee_length_p"] < 0.05 and values["gee_width_p"] < 0.05
    printed = {
        "rad_baseline_length": (12.09, 5.05, 6.0, 25.5),
        "rad_baseline_width": (6.35, 3.00, 2.0, 16.0),
        "rad_final_length": (5.59, 7.05, 0.0, 23.0),
        "rad_final_width": (3.41, 4.05, 0.0, 13.0),
    }
    for prefix, expected in printed.items():
        got = tuple(round(values[f"{prefix}_{s}"], 2) for s in ("mean", "sd", "min", "max"))
        assert got == expected, prefix
    assert (values["n_patients"], values["n_lesions"], values["n_visits"]) == (5, 18, 16)


def test_every_name_belongs_to_one_section(sections, values):
    """all_values is a union: two sections with one global name would silently overwrite."""
    seen: dict[str, str] = {}
    for section in sections.values():
        names = [section.value_name(n) for n in section.values]
        names += [section.item_name(n) for n in (*section.tables, *section.figures)]
        for name in names:
            assert name not in seen, f"{name} is in both {seen[name]} and {section.name}"
            seen[name] = section.name
    assert set(values) <= set(seen)
    assert sum(len(s.values) for s in sections.values()) == len(values)


def test_sections_are_named_and_scoped(sections, described, trial):
    assert set(sections) == set(described)
    assert all(name == section.name for name, section in sections.items())
    patient_ids = trial.patients["patient_id"].astype(str).tolist()
    scoped = {s.scope for s in sections.values() if s.scope}
    assert scoped == set(patient_ids)
    for pid in patient_ids:
        entry = described[f"patient_{pid}"]
        assert entry["scope"] == pid
        assert f"patient_{pid}_rate_sentence" in entry["values"]
        assert f"tab_patient_rate_{pid}" in entry["tables"]
        assert f"fig_patient_trajectories_{pid}" in entry["figures"]


def test_names(values):
    for outcome in ("length", "width"):
        for field in results.GEE_FIELDS:
            assert f"gee_{outcome}_{field}" in values
        assert values[f"gee_{outcome}_p_text"].startswith("p ")
        assert f"rad_{outcome}_wilcoxon_p" in values
    for name in (
        "n_observations",
        "rad_n_resolved",
        "n_adverse_events",
        "n_adverse_events_related",
        "n_injections",
        "sens_n_significant",
        "patient_P1_rate_length_pct_per_visit",
        "audit_n_claims",
        "commit",
    ):
        assert name in values
    assert isinstance(values["patient_P1_rate_length_pct_per_visit"], float)
    # patient 2 has one lesion: no rate of its own, said in words rather than left blank
    assert values["patient_P2_rate_length_pct_per_visit"] == NOT_ESTIMABLE
    assert "No rate can be fitted" in values["patient_P2_rate_sentence"]


def test_derived_sections_read_the_other_values(values):
    for outcome in ("length", "width"):
        intervals = values["n_visits"] - 1
        assert values[f"cvr_{outcome}_intervals"] == intervals
        pct = values[f"gee_{outcome}_pct_per_visit"]
        assert values[f"cvr_{outcome}_compounded_pct"] == pytest.approx(
            100 * ((1 + pct / 100) ** intervals - 1)
        )
        base, final = (values[f"rad_{t}_{outcome}_mean"] for t in ("baseline", "final"))
        assert values[f"cvr_{outcome}_radiographic_pct"] == pytest.approx(100 * (final / base - 1))
    assert values["audit_n_claims"] == values["audit_n_match"] + values["audit_n_differ"] > 0


# --------------------------------------------------------------------------------------------
# The chapters cite only what the stage produces, from the sections they show
# --------------------------------------------------------------------------------------------

# {glue:text}`name:format`, {glue:md}`name`, {glue}`name` ... and the directives
# ```{glue:figure} name / ```{glue:md} name (also with ::: fences)
_ROLE = re.compile(r"\{glue(?::[a-z]+)?\}`([^`]+)`")
_DIRECTIVE = re.compile(r"^[ \t]*(?:`{3,}|:{3,})\{glue(?::[a-z]+)?\}[ \t]+(\S+)", re.M)


def cited(markdown: str) -> set[str]:
    """The glue names a piece of MyST cites (the name before any ':format')."""
    names = {m.split(":", 1)[0].strip() for m in _ROLE.findall(markdown)}
    return names | set(_DIRECTIVE.findall(markdown))


def test_cited_parses_roles_formats_and_directives():
    text = (
        "A {glue:text}`a_b:.2f` and {glue:text}`c` {glue}`d:d`.\n"
        "```{glue:md} tab_x\n:format: myst\n```\n"
        "```{glue:figure} fig_y\n:name: fig-y\n```\n"
        ":::{glue:figure} fig_z\n:::\n"
        "no {glue:text} here, `not_cited` either\n"
    )
    assert cited(text) == {"a_b", "c", "d", "tab_x", "fig_y", "fig_z"}


@dataclasses.dataclass
class Chapter:
    path: Path
    names: set[str]  # glue names cited in the markdown cells
    shows: list[tuple[str, list[str], dict]]  # (function, string sections, keyword args)
    parameters: dict[str, object] | None  # the parameters cell's defaults


def read_chapter(path: Path) -> Chapter:
    notebook = jupytext.read(path)
    names: set[str] = set()
    shows, parameters = [], None
    for cell in notebook.cells:
        if cell.cell_type == "markdown":
            names |= cited(cell.source)
            continue
        if cell.cell_type != "code":
            continue
        tree = ast.parse(cell.source)
        if "parameters" in cell.metadata.get("tags", []):
            assert parameters is None, f"{path.name}: two parameters cells"
            parameters = {
                target.id: ast.literal_eval(node.value)
                for node in tree.body
                if isinstance(node, ast.Assign)
                for target in node.targets
                if isinstance(target, ast.Name)
            }
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id in ("show", "show_patient")
            ):
                # positional arguments: the section names as written (None: not a literal)
                strings = [
                    a.value if isinstance(a, ast.Constant) and isinstance(a.value, str) else None
                    for a in node.args
                ]
                keywords = {k.arg: k.value for k in node.keywords}
                shows.append((node.func.id, strings, keywords))
    return Chapter(path, names, shows, parameters)


def _patient_local_names(entry: dict) -> set[str]:
    scope = entry["scope"]
    names = {v.removeprefix(f"patient_{scope}_") for v in entry["values"]}
    return names | {t.removesuffix(f"_{scope}") for t in entry["tables"] + entry["figures"]}


def _global_names(entry: dict) -> set[str]:
    return set(entry["values"]) | set(entry["tables"]) | set(entry["figures"])


def test_the_chapter_reader_finds_what_a_chapter_cites():
    gee = read_chapter(paths.ROOT / "chapters" / "gee.md")
    assert {
        "gee_length_sentence",
        "gee_correlation_phrase",
        "n_patients",
        "tab_gee_length",
        "fig_gee_curve",
        "fig_gee_checks",
    } <= gee.names
    assert [f for f, _, _ in gee.shows] == ["show"] and "gee" in gee.shows[0][1]
    patient = read_chapter(paths.ROOT / "chapters" / PATIENT_TEMPLATE)
    assert {
        "patient_id",
        "rate_sentence",
        "tab_patient_rate",
        "fig_patient_trajectories",
    } <= patient.names
    assert [f for f, _, _ in patient.shows] == ["show_patient"]


SHOWING = [p for p in CHAPTERS if read_chapter(p).shows]


def test_pages_without_results_cite_none():
    assert len(SHOWING) >= 10 and paths.ROOT / "chapters" / PATIENT_TEMPLATE in SHOWING
    for path in set(CHAPTERS) - set(SHOWING):
        chapter = read_chapter(path)
        assert not chapter.names, f"{path.name} cites {chapter.names} but shows no section"
        assert not set(NAMES) & set(chapter.parameters or {}), path.name


@pytest.mark.parametrize("path", SHOWING, ids=ids)
def test_chapter_cites_only_produced_names_of_the_sections_it_shows(path, values, described):
    chapter = read_chapter(path)
    assert len(chapter.shows) == 1, f"{path.name}: one show(...) call per page"
    function, shown, _ = chapter.shows[0]
    if function == "show_patient":  # show_patient(patient_id, *sections)
        assert shown and shown[0] is None, f"{path.name}: the patient's id comes first"
        shown = shown[1:]
    assert None not in shown, f"{path.name}: sections are named by string literals"
    unknown = [s for s in shown if s not in described]
    assert not unknown, f"{path.name} shows sections that do not exist: {unknown}"
    if path.name == PATIENT_TEMPLATE:
        assert function == "show_patient"
        patients = [e for e in described.values() if e["scope"]]
        assert patients
        for entry in patients:  # the template becomes every patient's page
            local = _patient_local_names(entry)
            available = local.union(*(_global_names(described[s]) for s in shown))
            missing = sorted(chapter.names - available)
            assert not missing, (
                f"{path.name} cites names patient {entry['scope']}'s "
                f"section does not hold: {missing}"
            )
        return
    assert function == "show"
    produced = set(values).union(
        *(set(e["tables"]) | set(e["figures"]) for e in described.values())
    )
    missing = sorted(chapter.names - produced)
    assert not missing, f"{path.name} cites names no producer makes: {missing}"
    available = set().union(*(_global_names(described[s]) for s in shown))
    unshown = sorted(chapter.names - available)
    assert not unshown, f"{path.name} cites names of sections it does not show: {unshown}"


@pytest.mark.parametrize("path", SHOWING, ids=ids)
def test_chapter_parameters_are_the_papers_and_reach_show(path):
    chapter = read_chapter(path)
    assert chapter.parameters is not None, f"{path.name} has no parameters cell"
    default = Parameters()
    for name in NAMES:
        assert chapter.parameters.get(name) == getattr(default, name), (path.name, name)
        keyword = chapter.shows[0][2].get(name)
        assert isinstance(keyword, ast.Name) and keyword.id == name, (
            f"{path.name} does not pass its parameter {name} to show"
        )


# --------------------------------------------------------------------------------------------
# Parameters
# --------------------------------------------------------------------------------------------


def _producer(name: str) -> results.Producer:
    (producer,) = [p for p in results.PRODUCERS if p.name == name]
    return producer


def test_parameters_change_the_main_model(trial, values):
    params = Parameters(correlation="independence", cluster="patient")
    (gee,) = results.run(_producer("gee"), trial, params)
    assert gee.values["gee_correlation"] == "independence"
    assert gee.values["gee_cluster"] == "patient"
    assert gee.values["gee_cluster_plural"] == "patients"
    assert gee.values["gee_correlation_phrase"] == models.CORRELATION_PHRASES["independence"]
    for outcome in ("length", "width"):
        moved = gee.values[f"gee_{outcome}_pct_per_visit"]
        assert isinstance(moved, float)
        assert not math.isclose(moved, values[f"gee_{outcome}_pct_per_visit"], rel_tol=1e-9)
        assert gee.values[f"gee_{outcome}_working_correlation"] == 0
    assert values["gee_correlation"] == "exchangeable" and values["gee_cluster"] == "lesion"


def test_every_accepted_parameter_choice_computes_or_says_why_not(trial):
    """A choice the data cannot support is said to be not estimable, with its reason; it is
    never printed as a number, and the results stage goes on."""
    import itertools

    from calcinosis.params import CHOICES

    computed = 0
    for combination in itertools.product(*CHOICES.values()):
        params = Parameters.of(dict(zip(CHOICES, combination, strict=True)))
        (gee,) = results.run(_producer("gee"), trial, params)
        if not gee.values["gee_length_estimable"]:
            assert gee.values["gee_length_pct_per_visit"] == NOT_ESTIMABLE
            assert gee.values["gee_length_sentence"].startswith("the main model is not estimable: ")
            continue
        assert isinstance(gee.values["gee_length_pct_per_visit"], float), params
        computed += 1
    assert computed >= 4  # lesion clusters with every correlation, patient with independence


@pytest.mark.integration
def test_uses_parameters_is_declared_honestly(trial):
    """The cache keys a producer's sections on the parameters only when it says it uses them:
    one that says not must give the same sections under other parameters, and one that says
    so must give some other section."""
    other = Parameters(correlation="independence")
    for producer in (p for p in results.PRODUCERS if not p.derived):
        default = {s.name: s.digest() for s in results.run(producer, trial, Parameters())}
        changed = {s.name: s.digest() for s in results.run(producer, trial, other)}
        assert (default != changed) == producer.uses_parameters, producer.name


@pytest.mark.parametrize(
    "bad",
    [
        {"bogus": 1},
        {"correlation": "unstructured"},
        {"cluster": "hospital"},
        {"correlation": "exchangeable", "Cluster": "lesion"},
    ],
)
def test_unknown_parameters_are_refused(bad):
    with pytest.raises(ValueError):
        Parameters.of(bad)


def test_parameters_of_known_values():
    assert Parameters.of({}) == Parameters()
    assert Parameters.of({"cluster": "patient"}) == Parameters(cluster="patient")
    with pytest.raises(ValueError, match="ar2"):
        Parameters(correlation="ar2")


# --------------------------------------------------------------------------------------------
# Declared reads
# --------------------------------------------------------------------------------------------


def _counts(inp):
    section = Section("fake")
    section.add({"n": len(inp.trial.patients), "m": len(inp.trial.measurements)})
    yield section


def test_an_undeclared_read_raises(trial):
    with pytest.raises(data.UndeclaredRead, match="measurements"):
        results.run(results.Producer("fake", ("patients",), _counts), trial, Parameters())
    (section,) = results.run(
        results.Producer("fake", ("patients", "measurements"), _counts), trial, Parameters()
    )
    assert section.values == {"n": len(trial.patients), "m": len(trial.measurements)}


def test_a_real_producer_with_too_narrow_a_declaration_raises(trial):
    narrow = dataclasses.replace(_producer("gee"), reads=("patients", "lesions"))
    with pytest.raises(data.UndeclaredRead):
        results.run(narrow, trial, Parameters())


def test_a_view_hides_every_undeclared_table(trial):
    view = trial.only(("lesions",))
    assert view.lesions is trial.lesions and view.data_dir == trial.data_dir
    for table in ("patients", "measurements", "radiography", "adverse_events"):
        with pytest.raises(data.UndeclaredRead):
            len(getattr(view, table))
        with pytest.raises(data.UndeclaredRead):
            getattr(view, table)["lesion_id"]
    assert trial.measurements is not None and len(trial.measurements) > 0  # trial unchanged


# --------------------------------------------------------------------------------------------
# Computed once, deterministic, and on any valid dataset
# --------------------------------------------------------------------------------------------


def test_each_model_is_fitted_once(trial, monkeypatch):
    calls: list[tuple] = []
    fit_frame = models._fit_frame

    def counting(frame, *options):
        calls.append((models._fingerprint(frame), options))
        return fit_frame(frame, *options)

    monkeypatch.setattr(models, "_fit_frame", counting)
    monkeypatch.setattr(models, "_FITS", {})
    results.compute(trial)
    assert calls, "compute fitted no GEE through models.fit_gee"
    repeated = {key: n for key in set(calls) if (n := calls.count(key)) > 1}
    assert not repeated, f"{len(repeated)} fits were made more than once"
    primary = models.fit_gee(trial, "length")  # the paper's model: remembered, not refitted
    n = len(calls)
    assert models.primary(trial, "length") is primary and len(calls) == n


def test_a_patients_page_from_its_own_rows_is_the_whole_trials(trial):
    """The stage makes each patient's page from a trial of that patient's rows alone (split
    once, for a pool of processes): the same page as from the whole trial."""
    from calcinosis.stats import patients

    ids = [str(p) for p in trial.patients["patient_id"]]
    view = trial.only(results.CLINICAL)
    for patient_id, rows in zip(ids, results._one_by_one(view, ids), strict=True):
        one = results._own_trial(trial.data_dir, rows)
        assert set(one.lesions["patient_id"]) == {patient_id}
        alone, whole = (
            patients.patient_page(one, patient_id),
            patients.patient_page(view, patient_id),
        )
        for field in dataclasses.fields(whole):
            mine, theirs = getattr(alone, field.name), getattr(whole, field.name)
            if isinstance(theirs, pd.DataFrame):
                pd.testing.assert_frame_equal(mine, theirs)
            elif isinstance(theirs, pd.Series):
                pd.testing.assert_series_equal(mine, theirs)
            else:
                assert repr(mine) == repr(theirs), field.name  # NaN-safe for the rates


def test_patients_side_by_side_are_the_patients_one_by_one(tmp_path):
    """With enough patients for a pool (two copies of the data: 10), the patients' pages
    made in two worker processes are the sections made one after another here."""
    frames = {
        name: pd.read_csv(paths.DATA_DIR / f"{name}.csv", dtype=str, keep_default_na=False)
        for name in ("patients", "lesions", "measurements", "radiography", "adverse_events")
    }
    dest = tmp_path / "data"
    dest.mkdir()
    for name, frame in frames.items():
        second = frame.copy()
        for column in ("patient_id", "lesion_id"):
            if column in second:
                second[column] = second[column].str.replace(r"^P(\d+)", r"Q\1", regex=True)
        pd.concat([frame, second]).to_csv(dest / f"{name}.csv", index=False)
    twice = load_trial(dest)
    producer = next(p for p in results.PRODUCERS if p.name == "patients")
    alone = results.run(producer, twice, Parameters(), workers=1, pdf=False)
    side_by_side = results.run(producer, load_trial(dest), Parameters(), workers=2, pdf=False)
    assert len(alone) == 2 + len(twice.patients)
    assert [s.digest() for s in side_by_side] == [s.digest() for s in alone]


@pytest.fixture(scope="module")
def simulated(tmp_path_factory):
    rng = np.random.default_rng(5)
    return trial_from(simulate_measurements(rng), tmp_path_factory.mktemp("simulated"))


@pytest.fixture(scope="module")
def simulated_sections(simulated):
    return results.compute(simulated)


def test_compute_runs_on_another_dataset(simulated_sections):
    values = results.all_values(simulated_sections.values())
    json.dumps(values, allow_nan=False)
    assert values["n_lesions"] == 20 and values["n_patients"] == 5
    assert -5 < values["gee_length_pct_per_visit"] < -1
    assert {f"patient_P{i}" for i in range(1, 6)} <= set(simulated_sections)
    # no published.yml: the data are checked against the article's own claims
    article = reconstruct.published_claims(reconstruct.load_facts())
    assert values["audit_n_claims"] == len(article) > 0
    assert values["audit_n_differ"] > 0  # n_lesions is 20 here, 18 in the article


def test_consistency_checks_use_the_datasets_own_claims(simulated, simulated_sections, tmp_path):
    """Without published.yml the GRIM checks are of the article's summaries; with one, of
    the summaries it holds (here none)."""
    from calcinosis.report import tables

    assert len(simulated_sections["audit"].tables["tab_grim"].frame) > 0
    copy = tmp_path / "data"
    shutil.copytree(simulated.data_dir, copy)
    (copy / "published.yml").write_text(
        "claims:\n- {name: n_patients, value: 5, decimals: 0, relation: '=', source: x}\n",
        encoding="utf-8",
    )
    trial = load_trial(copy)
    for make in (tables.tab_grim, tables.tab_grimmer, tables.tab_sd_feasibility):
        assert len(make(trial)) == 0, make.__name__


def test_digests_follow_the_data(sections, tmp_path):
    copy = tmp_path / "data"
    shutil.copytree(paths.DATA_DIR, copy)
    again = results.describe(results.compute(load_trial(copy)).values())
    before = {name: entry["digest"] for name, entry in results.describe(sections.values()).items()}
    assert {name: entry["digest"] for name, entry in again.items()} == before

    measurements = copy / "measurements.csv"
    lines = measurements.read_text(encoding="utf-8").splitlines(keepends=True)
    header = lines[0].rstrip("\n").split(",")
    row = next(
        i
        for i, line in enumerate(lines[1:], 1)
        if line.startswith("P1-L1,") and line.split(",")[header.index("visit")] == "5"
    )
    cells = lines[row].rstrip("\n").split(",")
    column = header.index("length_mm")
    cells[column] = str(float(cells[column]) + 3.0)
    lines[row] = ",".join(cells) + "\n"
    measurements.write_text("".join(lines), encoding="utf-8")

    changed = results.describe(results.compute(load_trial(copy)).values())
    assert set(changed) == set(before)
    moved = {name for name, entry in changed.items() if entry["digest"] != before[name]}
    assert {"gee", "patient_P1", "patients", "sensitivity", "data_files", "audit"} <= moved
    # what does not read the measurements, or does not depend on that one value, stays
    assert not moved & {
        "methods",
        "radiography",
        "software",
        "data_package",
        "patient_P3",
        "patient_P4",
        "patient_P5",
    }
