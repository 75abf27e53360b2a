"""Bounds on what the data may hold, each refused by `validate` (and so by `build`) in one line
naming file, line and column: vocabularies as people write them, control characters, symbolic
links, implausible numbers, malformed optional files, IDs that differ only in case. The hostile
files are generated here, small, from the tiny dataset."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from calcinosis.cli import main
from calcinosis.data import schema
from calcinosis.data import trial as data
from conftest import write_csv


def _validate(data_dir: Path) -> tuple[int, str]:
    """Exit status and everything `calcinosis validate` printed."""
    result = CliRunner().invoke(main, ["validate", str(data_dir)])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result.exit_code, result.output


def _set_cell(data_dir: Path, table: str, line: int, column: str, value: str) -> None:
    """Write `value` into one cell (line 1 is the header) through the csv module, so quotes
    and line breaks in it stay one cell."""
    import csv

    path = data_dir / f"{table}.csv"
    with path.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.reader(handle))
    rows[line - 1][rows[0].index(column)] = value
    write_csv(path, rows)


def _one_problem_line(output: str, start: str) -> str:
    lines = [line for line in output.splitlines() if line.startswith(start)]
    assert len(lines) == 1, output
    return lines[0]


# --- 1. vocabularies as people write them --------------------------------------------------


def test_vocabularies_are_normalised_and_said_once_per_column(tiny_dataset: Path) -> None:
    write_csv(
        tiny_dataset / "adverse_events.csv",
        [
            ["patient_id", "visit", "event", "severity", "related_to_treatment"],
            ["P1", 1, "pain", "Mild", "Yes"],
            ["P1", 2, "pain", " mild ", " yes "],
            ["P2", 2, "rash", "MODERATE", "YES"],
            ["P2", 3, "rash", "mild", "no"],
            ["P2", 3, "fever", "mild", "yes"],
        ],
    )
    _set_cell(tiny_dataset, "patients", 2, "sex", "f")
    _set_cell(tiny_dataset, "radiography", 2, "timepoint", "Baseline")
    status, output = _validate(tiny_dataset)
    assert status == 0, output
    assert (
        "adverse_events.csv: related_to_treatment: 2 values normalised (YES → yes, Yes → yes)"
        in output
    )
    assert (
        "adverse_events.csv: severity: 2 values normalised (MODERATE → moderate, Mild → mild)"
        in output
    )
    assert "patients.csv: sex: 1 value normalised (f → F)" in output
    assert "radiography.csv: timepoint: 1 value normalised (Baseline → baseline)" in output
    trial = data.load_trial(tiny_dataset)  # what the build reads
    assert set(trial.adverse_events["related_to_treatment"]) == {"yes", "no"}
    assert set(trial.adverse_events["severity"]) == {"mild", "moderate"}
    assert trial.patients["sex"].tolist() == ["F", "M"]
    assert set(trial.radiography["timepoint"]) == {"baseline", "final"}

    _set_cell(tiny_dataset, "adverse_events", 3, "related_to_treatment", "Maybe")
    status, output = _validate(tiny_dataset)
    assert status == 2
    line = _one_problem_line(output, "adverse_events.csv:3: related_to_treatment:")
    assert "'Maybe' is not one of yes, no, unknown" in line


# --- 2. control characters -----------------------------------------------------------------


@pytest.mark.parametrize("char", ["\x1b", "\x0c", "\x08", "\x00", "\x7f", "\x9b"])
def test_control_characters_are_refused_and_shown_escaped(tiny_dataset: Path, char: str) -> None:
    _set_cell(tiny_dataset, "lesions", 3, "site", f"knee{char}[31m")
    status, output = _validate(tiny_dataset)
    assert status == 2
    line = _one_problem_line(output, "lesions.csv:3: site:")
    assert f"\\x{ord(char):02x}" in line and "control character" in line
    assert char not in output  # nothing raw reaches the terminal


def test_tab_and_line_breaks_in_a_text_cell_are_allowed(tiny_dataset: Path) -> None:
    _set_cell(tiny_dataset, "lesions", 3, "site", "knee,\tleft\nlateral")
    assert data.validate(tiny_dataset) == []


def test_a_control_character_in_an_optional_file_is_refused(tiny_dataset: Path) -> None:
    package = schema.datapackage({"note": "made \x1b[2J here"})
    (tiny_dataset / "datapackage.json").write_text(json.dumps(package), encoding="utf-8")
    status, output = _validate(tiny_dataset)
    assert status == 2
    line = _one_problem_line(output, "datapackage.json: provenance.note:")
    assert "\\x1b" in line and "\x1b" not in output


# --- 3. symbolic links ---------------------------------------------------------------------


@pytest.mark.parametrize("name", ["lesions.csv", "published.yml", "datapackage.json"])
def test_a_data_file_that_is_a_symlink_is_refused(
    tiny_dataset: Path, tmp_path: Path, name: str
) -> None:
    outside = tmp_path / "elsewhere" / name
    outside.parent.mkdir()
    if name == "lesions.csv":
        outside.write_bytes((tiny_dataset / name).read_bytes())
    elif name == "published.yml":
        outside.write_text("claims: []\n", encoding="utf-8")
    else:
        outside.write_text(json.dumps(schema.datapackage({})), encoding="utf-8")
    (tiny_dataset / name).unlink(missing_ok=True)
    (tiny_dataset / name).symlink_to(outside)
    status, output = _validate(tiny_dataset)
    assert status == 2
    line = _one_problem_line(output, f"{name}:")
    assert "symbolic link" in line
    assert "1 problem(s)" in output  # the link is not followed, so nothing else is said of it


# --- 4. plausible ranges -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("table", "column", "value", "bound"),
    [
        ("lesions", "baseline_area_cm2", "1e100", schema.MAX_AREA_CM2),
        ("lesions", "dose_mg", "1e308", schema.MAX_DOSE_MG),
        ("measurements", "dose_mg", "1e308", schema.MAX_DOSE_MG),
        ("measurements", "length_mm", "1e20", schema.MAX_SIZE_MM),
        ("measurements", "visit", "100000000", schema.MAX_VISIT),
        ("patients", "age_years", "1e9", 120),
        ("patients", "disease_duration_months", "1e9", 1200),
        ("radiography", "width_mm", "9e99", schema.MAX_SIZE_MM),
    ],
)
def test_implausible_numbers_are_refused_fast(
    tiny_dataset: Path, table: str, column: str, value: str, bound: float
) -> None:
    _set_cell(tiny_dataset, table, 2, column, value)
    start = time.perf_counter()
    status, output = _validate(tiny_dataset)
    assert time.perf_counter() - start < 30
    assert status == 2
    line = _one_problem_line(output, f"{table}.csv:2: {column}:")
    assert f"plausible maximum {bound:g}" in line


def test_every_numeric_column_has_a_plausible_range() -> None:
    for spec in schema.TABLE_SPECS:
        for f in spec.fields:
            if f.type in ("number", "integer"):
                assert f.maximum is not None, f"{spec.name}.{f.name}"
                assert f.minimum is not None or f.exclusive_minimum is not None
    # ... and the data dictionary the schema produces states them
    lesions = schema.datapackage({})["resources"][schema.TABLES.index("lesions")]
    area = next(f for f in lesions["schema"]["fields"] if f["name"] == "baseline_area_cm2")
    assert area["constraints"]["maximum"] == schema.MAX_AREA_CM2


def test_the_data_dictionary_states_each_range(tiny_dataset: Path) -> None:
    from calcinosis.report import tables

    dictionary = tables.tab_data_dictionary(data.load_trial(tiny_dataset))
    rules = dictionary.set_index(["Table", "Field"])["Rules"]
    assert rules["lesions", "baseline_area_cm2"] == "required; > 0; ≤ 2500"
    assert rules["lesions", "dose_mg"] == "required; > 0; ≤ 1000"
    assert rules["measurements", "visit"] == "required; ≥ 1; ≤ 520"


def test_a_declared_maximum_cannot_lift_the_bound_without_limit(tiny_dataset: Path) -> None:
    package = schema.datapackage({})
    for resource in package["resources"]:
        for field in resource["schema"]["fields"]:
            if field["name"] == "baseline_area_cm2":
                field["constraints"]["maximum"] = 1e100
    (tiny_dataset / "datapackage.json").write_text(json.dumps(package), encoding="utf-8")
    status, output = _validate(tiny_dataset)
    assert status == 2
    line = _one_problem_line(output, "datapackage.json: resources[2].schema.fields[4]")
    assert "more than 100 times the book's plausible maximum 2500" in line


# --- 6. optional files checked against what the build reads ---------------------------------

_CLAIM = "- {name: n_patients, value: 2, decimals: 0, relation: '='}\n"


def _package(change) -> str:
    package = schema.datapackage({"note": "x"})
    change(package)
    return json.dumps(package)


@pytest.mark.parametrize(
    ("file", "text", "expected"),
    [
        (
            "published.yml",
            "claims:\n- {name: a, value: 1}\n",
            "published.yml:2: claims[1]: needs a decimals",
        ),
        (
            "published.yml",
            "claims:\n" + _CLAIM + "- {name: b, value: 1, decimals: two}\n",
            "published.yml:3: claims[2]: decimals must be a whole number from 0 to 10, not 'two'",
        ),
        (
            "published.yml",
            "claims:\n- {name: b, value: 1, decimals: 100000000}\n",
            "published.yml:2: claims[1]: decimals 100000000 is not a whole number from 0 to 10",
        ),
        (
            "published.yml",
            "claims:\n- {name: [a], value: 1, decimals: 0}\n",
            "published.yml:2: claims[1]: name must be text, not ['a']",
        ),
        (
            "published.yml",
            "claims:\n- {name: a, value: .inf, decimals: 0}\n",
            "published.yml:2: claims[1]: value inf is not a finite number",
        ),
        (
            "published.yml",
            "claims:\n- {name: a, value: 1, decimals: 0, relation: '>'}\n",
            "published.yml:2: claims[1]: relation must be one of =, <, not '>'",
        ),
        ("published.yml", "claims: 3\n", "published.yml: claims: must be a list of claims"),
        ("published.yml", "[1, 2]\n", "published.yml:1: must be a mapping with a 'claims' list"),
        ("datapackage.json", "[]", "datapackage.json: must be a JSON object, not a list"),
        (
            "datapackage.json",
            _package(lambda p: p.update(resources="x")),
            "datapackage.json: resources: must be a list, not text",
        ),
        (
            "datapackage.json",
            _package(lambda p: p.update(provenance=[1])),
            "datapackage.json: provenance: must be an object, not a list",
        ),
        (
            "datapackage.json",
            _package(lambda p: p.update(licenses="CC0")),
            "datapackage.json: licenses: must be a list, not text",
        ),
        (
            "datapackage.json",
            _package(lambda p: p.update(licenses=[3])),
            "datapackage.json: licenses[1]: must be an object with a text name",
        ),
        (
            "datapackage.json",
            _package(lambda p: p["resources"][0].pop("schema")),
            "datapackage.json: resources[1].schema: is missing",
        ),
        (
            "datapackage.json",
            _package(lambda p: p.pop("resources")),
            "datapackage.json: resources: is missing",
        ),
        (
            "datapackage.json",
            _package(lambda p: p["resources"][1]["schema"].update(fields={})),
            "datapackage.json: resources[2].schema.fields: must be a list, not an object",
        ),
        (
            "datapackage.json",
            '{"resources": [], "title": NaN}',
            "datapackage.json: not readable JSON: NaN is not JSON",
        ),
    ],
)
def test_optional_files_are_checked_as_the_build_reads_them(
    tiny_dataset: Path, file: str, text: str, expected: str
) -> None:
    (tiny_dataset / file).write_text(text, encoding="utf-8")
    start = time.perf_counter()
    status, output = _validate(tiny_dataset)
    assert time.perf_counter() - start < 30
    assert status == 2
    assert expected in output, output
    assert "Traceback" not in output


def test_an_all_empty_size_column_is_refused(tiny_dataset: Path) -> None:
    for line in range(2, 11):
        _set_cell(tiny_dataset, "measurements", line, "width_mm", "")
    status, output = _validate(tiny_dataset)
    assert status == 2
    line = _one_problem_line(output, "measurements.csv: width_mm:")
    assert "no value in any row" in line


# --- 8. IDs that differ only in case -------------------------------------------------------


def test_ids_differing_only_in_case_are_refused(tiny_dataset: Path) -> None:
    _set_cell(tiny_dataset, "patients", 3, "patient_id", "p1")
    _set_cell(tiny_dataset, "lesions", 4, "patient_id", "p1")
    _set_cell(tiny_dataset, "lesions", 3, "lesion_id", "p1-l1")
    for line in (5, 6, 7):
        _set_cell(tiny_dataset, "measurements", line, "lesion_id", "p1-l1")
    _set_cell(tiny_dataset, "radiography", 4, "lesion_id", "p1-l1")
    _set_cell(tiny_dataset, "radiography", 5, "lesion_id", "p1-l1")
    status, output = _validate(tiny_dataset)
    assert status == 2
    line = _one_problem_line(output, "patients.csv:3: patient_id:")
    assert "'p1' differs from 'P1' (line 2) only in case" in line
    line = _one_problem_line(output, "lesions.csv:3: lesion_id:")
    assert "'p1-l1' differs from 'P1-L1' (line 2) only in case" in line
    assert "2 problem(s)" in output


# --- 7. results.json is strict JSON ---------------------------------------------------------


def _refuse(constant: str) -> None:
    raise ValueError(f"{constant} in results.json")


def test_results_json_is_strict_json_with_the_reason_beside_a_null(tmp_path: Path) -> None:
    from calcinosis.book import results_folder
    from calcinosis.params import Parameters
    from calcinosis.report.sections import Section

    values = {"total": float("inf"), "alpha": float("nan"), "n": 3, "ci": [1.5, float("-inf")]}
    results_folder.write([Section("exposure", values=values)], Parameters(), tmp_path)
    text = (tmp_path / "results.json").read_text(encoding="utf-8")
    written = json.loads(text, parse_constant=_refuse)
    assert written["total"] is None and written["alpha"] is None
    assert written["ci"] == [1.5, None] and written["n"] == 3
    assert written["total_null_reason"] == "not a finite number: the computation gave inf"
    assert written["alpha_null_reason"] == "not a finite number: the computation gave nan"
    assert written["ci_null_reason"] == "not a finite number: the computation gave -inf"
    assert "n_null_reason" not in written
    for name in ("sections.json", "parameters.json"):
        json.loads((tmp_path / name).read_text(encoding="utf-8"), parse_constant=_refuse)


# --- 9. the data-files table's "Data rows"; full-disk messages -----------------------------


def test_data_rows_count_csv_records(tiny_dataset: Path) -> None:
    from calcinosis.report import tables

    _set_cell(tiny_dataset, "lesions", 2, "site", "elbow,\nleft\nlateral")  # one record, 3 lines
    radiography = tiny_dataset / "radiography.csv"
    radiography.write_bytes(radiography.read_bytes().replace(b"\n", b"\r"))  # CR-only lines
    trial = data.load_trial(tiny_dataset)
    table = tables.tab_data_files(trial).set_index("File")["Data rows"]
    assert table["lesions.csv"] == 3
    assert table["radiography.csv"] == 6
    assert table["measurements.csv"] == 9
    assert table["adverse_events.csv"] == 0


def test_a_full_disk_is_one_line_naming_the_file() -> None:
    import errno
    import shutil

    from calcinosis.errors import could_not_write

    full = "[Errno 28] No space left on device"
    copying = shutil.Error([("a/x.csv", "out/x.csv", full), ("a/y.csv", "out/y.csv", full)])
    message = str(could_not_write(copying))
    assert message == "could not write out/x.csv: No space left on device (and 1 other file)"
    plain = OSError(errno.ENOSPC, "No space left on device", "out/results.json")
    assert (
        str(could_not_write(plain)) == "could not write out/results.json: No space left on device"
    )


# --- 5. size limits before the build starts; memory per worker ------------------------------


def _big_trial(data_dir: Path, patients: int, lesions: int, visits: int) -> Path:
    """A valid trial of patients x lesions x weekly visits, written directly (fast)."""
    data_dir.mkdir(parents=True)
    ids = [(f"P{p}", f"P{p}-L{k}") for p in range(patients) for k in range(lesions)]
    write_csv(
        data_dir / "patients.csv",
        [["patient_id", "sex", "age_years", "disease_duration_months"]]
        + [[f"P{p}", "F", 10, 40] for p in range(patients)],
    )
    write_csv(
        data_dir / "lesions.csv",
        [["lesion_id", "patient_id", "site", "baseline_area_cm2", "dose_mg"]]
        + [[lesion, patient, "knee", 2, 10] for patient, lesion in ids],
    )
    with (data_dir / "measurements.csv").open("w", encoding="utf-8") as handle:
        handle.write("lesion_id,visit,length_mm,width_mm,dose_mg\n")
        for _, lesion in ids:
            handle.writelines(
                f"{lesion},{v},{20 - v % 7},{12 + v % 5},10\n" for v in range(1, visits + 1)
            )
    write_csv(
        data_dir / "radiography.csv",
        [["lesion_id", "timepoint", "length_mm", "width_mm"]]
        + [[lesion, t, 20, 12] for _, lesion in ids for t in ("baseline", "final")],
    )
    write_csv(
        data_dir / "adverse_events.csv",
        [["patient_id", "visit", "event", "severity", "related_to_treatment"]],
    )
    return data_dir


@pytest.mark.integration
def test_a_trial_above_the_size_limits_is_refused_before_the_build(tmp_path: Path) -> None:
    big = _big_trial(tmp_path / "big", 20, 10, 500)  # 200 lesions x 500 visits: 100 000 rows
    out = tmp_path / "out"
    start = time.process_time()  # CPU seconds: a loaded test machine stretches wall time
    result = CliRunner().invoke(main, ["build", "--data", str(big), "--out", str(out)])
    assert time.process_time() - start < 30
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    assert "measurements.csv: 100000 rows, above the limit of 30000" in lines[0]
    assert "measurements.csv: 500 visits of one lesion, above the limit of 104" in lines[0]
    assert "GB of memory); `calcinosis build --large` goes on" in lines[0]
    assert not out.exists()
    supplement = CliRunner().invoke(main, ["supplement", "--data", str(big), "--out", str(out)])
    assert supplement.exit_code == 2 and supplement.output == result.output
    assert not out.exists()
    status, output = _validate(big)  # valid data: validate says what build will need
    assert status == 0 and "note: measurements.csv: 100000 rows" in output


@pytest.mark.integration
def test_large_goes_on_with_a_memory_estimate(tmp_path: Path) -> None:
    from calcinosis.data import limits

    trial = data.load_trial(_big_trial(tmp_path / "big", 3, 2, 200))  # 200 visits a lesion
    note = limits.check(trial, large=True)
    assert note.startswith("large trial (measurements.csv: 200 visits of one lesion, above")
    assert note.endswith("GB of memory") and "the analysis needs about" in note
    with pytest.raises(limits.TooLarge):
        limits.check(trial, large=False)
    assert limits.check(data.load_trial(tmp_path / "big"), large=True) == note


@pytest.mark.integration
def test_a_runaway_analysis_ends_as_a_memory_error_naming_the_trial(tiny_dataset: Path) -> None:
    import os
    import subprocess
    import sys

    code = (
        "import numpy as np, sys\n"
        "from calcinosis.data import trial as data, limits\n"
        "trial = data.load_trial(sys.argv[1])\n"
        "ceiling = limits.cap_memory(trial)\n"
        "try:\n"
        "    np.ones(6 * 2**30 // 8)\n"
        "except MemoryError:\n"
        "    print(limits.out_of_memory(trial, ceiling))\n"
    )
    env = {**os.environ, "CALCINOSIS_WORKER_MEMORY_GB": "4"}
    done = subprocess.run(
        [sys.executable, "-c", code, str(tiny_dataset)], env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == (
        "the analysis needed more than the worker's 4.0 GB of memory (measurements.csv: "
        "9 measurement rows, 3 lesions, up to 3 visits per lesion): the trial is too big "
        "for this machine"
    )


def test_the_results_stage_reports_a_worker_out_of_memory_in_one_line() -> None:
    import concurrent.futures as cf
    from concurrent.futures.process import BrokenProcessPool

    from calcinosis.book.results_stage import ResultsFailed, _result
    from calcinosis.data import limits

    for error, expected in (
        (limits.OutOfMemory("the analysis needed more"), "results stage failed: the analysis"),
        (BrokenProcessPool("x"), "results stage failed: its worker was ended from outside"),
    ):
        future: cf.Future = cf.Future()
        future.set_exception(error)
        with pytest.raises(ResultsFailed) as raised:
            _result(future)
        assert str(raised.value).startswith(expected)
        assert "\n" not in str(raised.value)
