"""The dataset validator: a valid dataset passes; each kind of breakage is reported precisely,
all at once, with exit status 2 and never a traceback."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from calcinosis import paths
from calcinosis.cli import main
from calcinosis.data import schema
from calcinosis.data import trial as data

# --------------------------------------------------------------------------------------------
# Helpers that break one thing in a copy of the tiny dataset
# --------------------------------------------------------------------------------------------


def _lines(data_dir: Path, table: str) -> list[str]:
    return (data_dir / f"{table}.csv").read_text(encoding="utf-8").splitlines()


def _write_lines(data_dir: Path, table: str, lines: list[str]) -> None:
    (data_dir / f"{table}.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")


def set_line(table: str, line: int, text: str) -> Callable[[Path], None]:
    """Replace line `line` (1 = header) of a table's file."""

    def mutate(data_dir: Path) -> None:
        lines = _lines(data_dir, table)
        lines[line - 1] = text
        _write_lines(data_dir, table, lines)

    return mutate


def append_line(table: str, text: str) -> Callable[[Path], None]:
    def mutate(data_dir: Path) -> None:
        _write_lines(data_dir, table, [*_lines(data_dir, table), text])

    return mutate


def drop_lines(table: str, *numbers: int) -> Callable[[Path], None]:
    def mutate(data_dir: Path) -> None:
        lines = _lines(data_dir, table)
        _write_lines(data_dir, table, [x for i, x in enumerate(lines, 1) if i not in numbers])

    return mutate


def rename_column(table: str, old: str, new: str) -> Callable[[Path], None]:
    def mutate(data_dir: Path) -> None:
        lines = _lines(data_dir, table)
        lines[0] = ",".join(new if c == old else c for c in lines[0].split(","))
        _write_lines(data_dir, table, lines)

    return mutate


def add_column(table: str, column: str) -> Callable[[Path], None]:
    def mutate(data_dir: Path) -> None:
        lines = _lines(data_dir, table)
        lines = [f"{lines[0]},{column}"] + [f"{x},x" for x in lines[1:]]
        _write_lines(data_dir, table, lines)

    return mutate


def remove_file(table: str) -> Callable[[Path], None]:
    return lambda data_dir: (data_dir / f"{table}.csv").unlink()


def latin1_line(table: str, line: int, text: str) -> Callable[[Path], None]:
    def mutate(data_dir: Path) -> None:
        lines = _lines(data_dir, table)
        lines[line - 1] = text
        (data_dir / f"{table}.csv").write_bytes(("\n".join(lines) + "\n").encode("latin-1"))

    return mutate


def empty_file(table: str) -> Callable[[Path], None]:
    return lambda data_dir: (data_dir / f"{table}.csv").write_bytes(b"")


# (id, breakage, strings that must all appear in the problem output)
CASES = [
    ("missing file", remove_file("lesions"), ["lesions.csv", "missing"]),
    (
        "missing column",
        rename_column("measurements", "width_mm", "breadth"),
        ["measurements.csv: width_mm: required column is missing"],
    ),
    (
        "bad encoding",
        latin1_line("lesions", 3, "P1-L2,P1,genou côté,1.2,10"),
        ["lesions.csv:3:", "UTF-8", "line 3"],
    ),
    ("empty file", empty_file("patients"), ["patients.csv", "empty"]),
    ("ragged row", set_line("patients", 2, "P1,F,9"), ["patients.csv:2:", "fields"]),
    (
        "non-numeric size",
        set_line("measurements", 3, "P1-L1,2,eighteen,14,10"),
        ["measurements.csv:3: length_mm:", "'eighteen' is not a number"],
    ),
    (
        "negative size",
        set_line("radiography", 4, "P1-L2,baseline,13,-1"),
        ["radiography.csv:4: width_mm:", "'-1'", "minimum"],
    ),
    (
        "non-positive dose",
        set_line("lesions", 2, "P1-L1,P1,elbow,2.5,0"),
        ["lesions.csv:2: dose_mg:", "greater than 0"],
    ),
    (
        "negative age",
        set_line("patients", 3, "P2,M,-3,70"),
        ["patients.csv:3: age_years:", "minimum"],
    ),
    (
        "visit not integer",
        set_line("measurements", 4, "P1-L1,2.5,15,12,10"),
        ["measurements.csv:4: visit:", "'2.5' is not a whole number"],
    ),
    (
        "visit beyond int64",
        set_line("measurements", 4, "P1-L1,1e20,15,12,10"),
        ["measurements.csv:4: visit:", "'1e20' is not a whole number"],
    ),
    (
        "implausible visit",
        set_line("measurements", 4, "P1-L1,1000,15,12,10"),
        ["measurements.csv:4: visit:", "'1000' is above the plausible maximum 520"],
    ),
    (
        "implausible size",
        set_line("measurements", 4, "P1-L1,3,1e9,12,10"),
        ["measurements.csv:4: length_mm:", "above the plausible maximum 500"],
    ),
    (
        "underscore in a number",
        set_line("measurements", 4, "P1-L1,3,9_5,12,10"),
        ["measurements.csv:4: length_mm:", "'9_5' is not a number"],
    ),
    (
        "full-width digits",
        set_line("measurements", 4, "P1-L1,3,１２,12,10"),
        ["measurements.csv:4: length_mm:", "is not a number"],
    ),
    (
        "id that is a path",
        set_line("patients", 2, "../../pwned,F,9,40"),
        ["patients.csv:2: patient_id:", "is not a study code"],
    ),
    (
        "id with markup",
        set_line("lesions", 2, "<img src=x>,P1,elbow,2.5,10"),
        ["lesions.csv:2: lesion_id:", "is not a study code"],
    ),
    (
        "unreadable claims",
        lambda d: (d / "published.yml").write_text("claims: [ {name: x\n"),
        ["published.yml:", "not readable YAML"],
    ),
    (
        "claim without a number",
        lambda d: (d / "published.yml").write_text("claims:\n- {name: x, value: many}\n"),
        ["published.yml:2: claims[1]:", "value must be a number"],
    ),
    (
        "unreadable data package",
        lambda d: (d / "datapackage.json").write_text("{"),
        ["datapackage.json:", "not readable JSON"],
    ),
    (
        "visit below 1",
        set_line("measurements", 2, "P1-L1,0,20,15,10"),
        ["measurements.csv:2: visit:", "minimum 1"],
    ),
    (
        "bad timepoint",
        set_line("radiography", 3, "P1-L1,end,14,11"),
        ["radiography.csv:3: timepoint:", "'end' is not one of baseline, final"],
    ),
    (
        "bad sex",
        set_line("patients", 2, "P1,female,9,40"),
        ["patients.csv:2: sex:", "'female' is not one of F, M"],
    ),
    (
        "empty required cell",
        set_line("lesions", 4, "P2-L1,P2,,4.0,20"),
        ["lesions.csv:4: site:", "empty"],
    ),
    (
        "duplicate patient",
        append_line("patients", "P2,M,12.5,70"),
        ["patients.csv:4: patient_id:", "duplicate"],
    ),
    (
        "duplicate lesion",
        set_line("lesions", 3, "P1-L1,P1,knee,1.2,10"),
        ["lesions.csv:3: lesion_id:", "duplicate"],
    ),
    (
        "duplicate visit",
        set_line("measurements", 4, "P1-L1,2,15,12,10"),
        ["measurements.csv:4: lesion_id+visit:", "duplicate key"],
    ),
    (
        "duplicate timepoint",
        set_line("radiography", 3, "P1-L1,baseline,14,11"),
        ["radiography.csv:3: lesion_id+timepoint:", "duplicate key"],
    ),
    (
        "visits out of order",
        set_line("measurements", 4, "P1-L1,1,15,12,10"),
        ["measurements.csv:4: visit:", "increasing order"],
    ),
    (
        "unknown patient in lesions",
        set_line("lesions", 4, "P2-L1,P9,thigh,4.0,20"),
        ["lesions.csv:4: patient_id:", "'P9' is not in patients.csv"],
    ),
    (
        "unknown patient in adverse events",
        append_line("adverse_events", "P7,1,rash,mild,no"),
        ["adverse_events.csv:2: patient_id:", "'P7' is not in patients.csv"],
    ),
    (
        "unknown lesion in measurements",
        append_line("measurements", "P3-L1,1,10,10,10"),
        ["measurements.csv:11: lesion_id:", "'P3-L1' is not in lesions.csv"],
    ),
    (
        "unknown lesion in radiography",
        append_line("radiography", "P1-L9,final,1,1"),
        ["radiography.csv:8: lesion_id:", "'P1-L9' is not in lesions.csv"],
    ),
    (
        "lesion never measured",
        drop_lines("measurements", 5, 6, 7),
        ["lesions.csv:3: lesion_id:", "P1-L2 has no measured visit"],
    ),
    (
        "lesion only empty measurements",
        lambda d: _write_lines(
            d,
            "measurements",
            [
                x if not x.startswith("P2-L1") else "P2-L1," + x.split(",")[1] + ",,"
                for x in _lines(d, "measurements")
            ],
        ),
        ["lesions.csv:4: lesion_id:", "P2-L1 has no measured visit"],
    ),
    (
        "patient without lesions",
        append_line("patients", "P3,F,10,12"),
        ["patients.csv:4: patient_id:", "P3 has no lesions"],
    ),
    (
        "identifier column",
        add_column("patients", "Full Name"),
        ["patients.csv: Full Name:", "direct identifier", "published"],
    ),
    (
        "date of birth column",
        add_column("patients", "date_of_birth"),
        ["patients.csv: date_of_birth:", "direct identifier"],
    ),
    ("mrn column", add_column("lesions", "MRN"), ["lesions.csv: MRN:", "direct identifier"]),
    *[
        (
            f"{column} column",
            add_column("patients", column),
            [f"patients.csv: {column}:", "direct identifier"],
        )
        for column in ("NHS number", "MRN number", "pt_name", "hospital_no", "initials2")
    ],
]


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


# --------------------------------------------------------------------------------------------
# The valid dataset
# --------------------------------------------------------------------------------------------


def test_tiny_dataset_is_valid(tiny_dataset: Path, runner: CliRunner) -> None:
    assert data.validate(tiny_dataset) == []
    result = runner.invoke(main, ["validate", str(tiny_dataset)])
    assert result.exit_code == 0, result.output
    assert "2 patients, 3 lesions, 8 measured visits" in result.output


def test_load_trial_types(tiny_dataset: Path) -> None:
    trial = data.load_trial(tiny_dataset)
    assert trial.data_dir == tiny_dataset
    for frame in (trial.patients, trial.lesions, trial.measurements, trial.radiography):
        for column in ("patient_id", "lesion_id"):
            if column in frame.columns:
                assert frame[column].dtype == pd.StringDtype()
    assert trial.measurements["visit"].dtype == "int64"
    assert trial.measurements["length_mm"].dtype == "float64"
    assert trial.measurements["length_mm"].isna().sum() == 1
    assert trial.patients["sex"].tolist() == ["F", "M"]
    assert trial.adverse_events.empty
    assert list(trial.adverse_events.columns) == schema.columns("adverse_events")
    assert trial.adverse_events["visit"].dtype == "int64"
    keys = list(zip(trial.measurements["lesion_id"], trial.measurements["visit"], strict=True))
    assert keys == sorted(keys)


def test_measurements_carry_their_patient_from_lesions_csv(tiny_dataset: Path) -> None:
    """Lesion ids that do not spell their patient ("A7" of patient "P2") still cluster by
    the patient lesions.csv names."""
    lesions = pd.read_csv(tiny_dataset / "lesions.csv", dtype=str)
    renamed = {old: f"A{i}" for i, old in enumerate(lesions["lesion_id"])}
    for name in ("lesions", "measurements", "radiography"):
        frame = pd.read_csv(tiny_dataset / f"{name}.csv", dtype=str, keep_default_na=False)
        frame["lesion_id"] = frame["lesion_id"].map(renamed)
        frame.to_csv(tiny_dataset / f"{name}.csv", index=False)
    trial = data.load_trial(tiny_dataset)
    patient_of = dict(zip(trial.lesions["lesion_id"], trial.lesions["patient_id"], strict=True))
    assert trial.measurements["patient_id"].tolist() == [
        patient_of[lesion] for lesion in trial.measurements["lesion_id"]
    ]
    assert set(trial.measurements["patient_id"]) == {"P1", "P2"}


def test_width_above_length_is_accepted(tiny_dataset: Path) -> None:
    set_line("measurements", 2, "P1-L1,1,10,15,10")(tiny_dataset)
    assert data.validate(tiny_dataset) == []


def test_extra_column_is_allowed(tiny_dataset: Path) -> None:
    add_column("lesions", "note")(tiny_dataset)
    assert data.validate(tiny_dataset) == []
    assert "note" in data.load_trial(tiny_dataset).lesions.columns


@pytest.mark.skipif(
    not (paths.DATA_DIR / "patients.csv").exists(), reason="data/ has not been generated yet"
)
def test_bundled_data_is_valid(runner: CliRunner) -> None:
    result = runner.invoke(main, ["validate", str(paths.DATA_DIR)])
    assert result.exit_code == 0, result.output


# --------------------------------------------------------------------------------------------
# Broken copies
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("breakage", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_broken_dataset_is_refused(
    tiny_dataset: Path, runner: CliRunner, breakage: Callable[[Path], None], expected: list[str]
) -> None:
    breakage(tiny_dataset)
    result = runner.invoke(main, ["validate", str(tiny_dataset)])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    for text in expected:
        assert text in result.output, f"{text!r} not in:\n{result.output}"
    with pytest.raises(data.DataValidationError) as caught:
        data.load_trial(tiny_dataset)
    assert caught.value.problems == data.validate(tiny_dataset)


def test_every_problem_is_reported_at_once(tiny_dataset: Path, runner: CliRunner) -> None:
    set_line("patients", 2, "P1,X,-1,40")(tiny_dataset)
    set_line("measurements", 3, "P1-L1,two,abc,14,10")(tiny_dataset)
    add_column("radiography", "email")(tiny_dataset)
    remove_file("adverse_events")(tiny_dataset)
    problems = data.validate(tiny_dataset)
    found = {(p.file, p.row, p.column) for p in problems}
    assert {
        ("patients.csv", 2, "sex"),
        ("patients.csv", 2, "age_years"),
        ("measurements.csv", 3, "visit"),
        ("measurements.csv", 3, "length_mm"),
        ("radiography.csv", None, "email"),
        ("adverse_events.csv", None, None),
    } <= found
    result = runner.invoke(main, ["validate", str(tiny_dataset)])
    assert result.exit_code == 2
    assert f"{len(problems)} problem(s)" in result.output
    assert len([x for x in result.output.splitlines() if x.count(":") >= 2]) >= len(problems)


def test_missing_directory_is_a_clear_error(tmp_path: Path, runner: CliRunner) -> None:
    result = runner.invoke(main, ["validate", str(tmp_path / "nowhere")])
    assert result.exit_code == 2
    assert "does not exist" in result.output
    assert "Traceback" not in result.output


def test_a_dataset_may_declare_its_own_plausible_maximum(tiny_dataset: Path) -> None:
    set_line("measurements", 4, "P1-L1,600,15,12,10")(tiny_dataset)
    assert any("plausible maximum 520" in str(p) for p in data.validate(tiny_dataset))
    package = schema.datapackage({})
    for resource in package["resources"]:
        for field in resource["schema"]["fields"]:
            if field["name"] == "visit":
                field["constraints"]["maximum"] = 1000
    (tiny_dataset / "datapackage.json").write_text(json.dumps(package), encoding="utf-8")
    assert data.validate(tiny_dataset) == []


def test_problem_format() -> None:
    assert str(data.Problem("a.csv", 7, "visit", "bad")) == "a.csv:7: visit: bad"
    assert str(data.Problem("a.csv", None, None, "file is missing")) == "a.csv: file is missing"


# --------------------------------------------------------------------------------------------
# The data package descriptor
# --------------------------------------------------------------------------------------------


def test_datapackage_is_deterministic_and_complete() -> None:
    provenance = {"description": "Reconstructed.", "sources": [{"title": "paper"}], "seed": 1}
    first = json.dumps(schema.datapackage(provenance), indent=2, sort_keys=False)
    assert first == json.dumps(schema.datapackage(provenance), indent=2, sort_keys=False)
    package = json.loads(first)
    assert package["profile"] == "tabular-data-package"
    assert package["sources"] == [{"title": "paper"}]
    assert package["description"].endswith("Reconstructed.")
    assert package["provenance"] == {"seed": 1}
    assert [r["name"] for r in package["resources"]] == list(schema.TABLES)
    for resource in package["resources"]:
        assert resource["path"] == f"{resource['name']}.csv"
        assert resource["encoding"] == "utf-8" and resource["format"] == "csv"
        names = [f["name"] for f in resource["schema"]["fields"]]
        assert names == schema.columns(resource["name"])
    measurements = package["resources"][schema.TABLES.index("measurements")]["schema"]
    assert measurements["primaryKey"] == ["lesion_id", "visit"]
    assert measurements["foreignKeys"][0]["reference"] == {
        "resource": "lesions",
        "fields": ["lesion_id"],
    }
