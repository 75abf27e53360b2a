"""The one loader of the trial dataset: validate every table, then hand out typed frames.

Nothing downstream should read the CSV files itself. `validate` collects every problem in one
pass (a person fixing a spreadsheet wants the whole list, not one error per run) and
`load_trial` refuses to return data that has any. The rules live in `calcinosis.data.schema`;
this module reads the files, runs those rules and adds the checks that span files.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import re
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pandera.pandas as pa

from calcinosis.data import schema

ID_COLUMNS = ("patient_id", "lesion_id")
_SCHEMA_COLUMNS = frozenset(c for t in schema.TABLES for c in schema.columns(t))

# Normalised column names (lowercase, alphanumerics only) that are direct identifiers ...
_IDENTIFIER_NAMES = frozenset(
    {
        "name",
        "names",
        "patientname",
        "childname",
        "firstname",
        "lastname",
        "fullname",
        "surname",
        "givenname",
        "forename",
        "familyname",
        "middlename",
        "initials",
        "patientinitials",
        "dateofbirth",
        "dob",
        "birthdate",
        "birthday",
        "nationalid",
        "ssn",
        "nin",
        "socialsecuritynumber",
        "nationalinsurancenumber",
        "medicalrecordnumber",
        "mrn",
        "recordnumber",
        "hospitalnumber",
        "phone",
        "telephone",
        "mobile",
        "address",
        "email",
        "postcode",
        "zip",
        "zipcode",
        "postalcode",
    }
)
# ... and fragments that mark one wherever they appear in a normalised name.
# Documented in data/README.md: any extra column whose normalised name contains one of these
# is refused, so "NHS number", "pt_name", "hospital_no" or "initials2" cannot slip through.
_IDENTIFIER_FRAGMENTS = (
    "name",
    "initial",
    "birth",
    "dob",
    "nationalid",
    "socialsecurity",
    "ssn",
    "nhs",
    "mrn",
    "medicalrecord",
    "recordnumber",
    "recordno",
    "hospitalnumber",
    "hospitalno",
    "hospitalid",
    "insurance",
    "passport",
    "phone",
    "mobile",
    "address",
    "email",
    "postcode",
    "zipcode",
    "postalcode",
)


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the dataset, located as precisely as the check allows.

    `row` is the line number in the CSV file as a text editor shows it (the header is line 1,
    the first data row line 2), or None when the problem concerns the whole file or column.
    """

    file: str
    row: int | None
    column: str | None
    message: str

    def __str__(self) -> str:
        where = self.file if self.row is None else f"{self.file}:{self.row}"
        column = f" {self.column}:" if self.column else ""
        return escape_controls(f"{where}:{column} {self.message}")


# C0 and C1 control characters and DEL. A cell may hold tab and line breaks (CSV quotes them);
# anything else is refused, and no message ever prints one raw (a terminal would obey it).
_CONTROL_IN_CELL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")


def control_character(text: str) -> str | None:
    """The first control character in `text` that no cell may hold, or None."""
    found = _CONTROL_IN_CELL.search(text)
    return None if found is None else found.group()


def escape_controls(text: str) -> str:
    """`text` with every control character written as an escape (ESC as \\x1b): one line that
    a terminal shows and does not obey."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


class DataValidationError(Exception):
    """The dataset failed validation; `problems` lists everything that is wrong."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = list(problems)
        lines = "\n".join(str(p) for p in self.problems)
        super().__init__(f"{len(self.problems)} problem(s) in the dataset:\n{lines}")


@dataclass(frozen=True, eq=False)
class Trial:
    """The validated dataset: ids as pandas "string", visit int64, sizes float64 (NaN = not
    measured), other text as str. Measurements are sorted by lesion_id, visit.

    Compared and hashed by identity (eq=False), so analyses can be remembered per loaded trial
    (`calcinosis.data.memo`); nothing should change its frames after loading.
    """

    data_dir: Path
    patients: pd.DataFrame
    lesions: pd.DataFrame
    measurements: pd.DataFrame
    radiography: pd.DataFrame
    adverse_events: pd.DataFrame
    loaded: Trial | None = dataclasses.field(default=None, repr=False)  # a view's whole trial
    notes: tuple[str, ...] = ()  # what loading changed, for a person: "3 values normalised"

    def only(self, tables: tuple[str, ...] | frozenset[str]) -> Trial:
        """A view holding only `tables` (names of `schema.TABLES`); reading any other table
        raises UndeclaredRead. The results stage hands each producer the view of what it
        declares it reads, so the declaration cannot fall behind the code."""
        hidden = {name: _Unread(name) for name in schema.TABLES if name not in tables}
        return dataclasses.replace(self, loaded=self.whole, **hidden)  # type: ignore[arg-type]

    @property
    def whole(self) -> Trial:
        """The loaded trial this is a view of (itself if it is one): what analyses are
        remembered by (`calcinosis.data.memo`), so two producers' views share them."""
        return self.loaded or self

    def holds(self, table: str) -> bool:
        """Whether this view lets `table` be read."""
        return not isinstance(getattr(self, table), _Unread)

    def summary(self) -> str:
        """One line for a person: how much data there is."""
        measured = self.measurements[["length_mm", "width_mm"]].notna().any(axis=1).sum()
        return (
            f"{self.data_dir}: valid: {len(self.patients)} patients, "
            f"{len(self.lesions)} lesions, {measured} measured visits"
        )


class UndeclaredRead(RuntimeError):
    """A producer read a table it did not declare in `calcinosis.report.results.PRODUCERS`."""


class _Unread:
    """Stands for a table a view does not hold."""

    def __init__(self, table: str) -> None:
        self._table = table

    def _refuse(self, *args, **kwargs):
        raise UndeclaredRead(
            f"the table '{self._table}' was read by a producer that does not "
            "declare it (calcinosis.report.results.PRODUCERS)"
        )

    __getattr__ = __getitem__ = __len__ = __iter__ = _refuse


# Files of a dataset besides its tables: the paper's claims and the data package descriptor.
EXTRA_FILES = {"published": "published.yml", "datapackage": "datapackage.json"}


def dataset_files(data_dir: Path | str) -> dict[str, Path]:
    """The dataset's files that exist, by name: each table's CSV, `published.yml` and
    `datapackage.json`. Nothing else in the folder (READMEs, examples) is part of the data."""
    data_dir = Path(data_dir)
    names = {name: f"{name}.csv" for name in schema.TABLES} | EXTRA_FILES
    return {name: data_dir / file for name, file in names.items() if (data_dir / file).is_file()}


# --------------------------------------------------------------------------------------------
# Public entry points
# --------------------------------------------------------------------------------------------


def validate(data_dir: Path | str) -> list[Problem]:
    """Every problem in the dataset at `data_dir` (empty list when it is valid)."""
    return _read_all(Path(data_dir))[1]


def load_trial(data_dir: Path | str) -> Trial:
    """Validate the dataset at `data_dir` and return it typed; raise DataValidationError."""
    data_dir = Path(data_dir)
    frames, problems, notes = _read_all(data_dir)
    if problems:
        raise DataValidationError(problems)
    typed = {name: _typed(frames[name], name) for name in schema.TABLES}
    measurements = (
        typed["measurements"]
        .sort_values(["lesion_id", "visit"], kind="mergesort")
        .reset_index(drop=True)
    )
    # Each row carries its patient, taken from lesions.csv: patient clusters, per-patient
    # fits and leave-one-out rows must not depend on how lesion ids are spelt.
    patient_of = typed["lesions"].set_index("lesion_id")["patient_id"]
    measurements["patient_id"] = measurements["lesion_id"].map(patient_of)
    typed["measurements"] = measurements
    return Trial(data_dir=data_dir, notes=tuple(notes), **typed)


def _optional_file_problems(data_dir: Path, skip: set[str]) -> list[Problem]:
    """published.yml and datapackage.json are optional; present, they must hold what the
    build reads from them (`calcinosis.data.optional_files`)."""
    from calcinosis.data import optional_files

    return optional_files.problems(data_dir, skip)


# --------------------------------------------------------------------------------------------
# Reading one file
# --------------------------------------------------------------------------------------------


def _read_all(
    data_dir: Path,
) -> tuple[dict[str, pd.DataFrame | None], list[Problem], list[str]]:
    """Read and check every table, then the links between them; with the problems, the notes
    on what reading changed (vocabulary normalised)."""
    if not data_dir.is_dir():
        what = "does not exist" if not data_dir.exists() else "is not a directory"
        return {}, [Problem(str(data_dir), None, None, f"data directory {what}")], []
    frames: dict[str, pd.DataFrame | None] = {}
    problems = _symlink_problems(data_dir)
    linked = {p.file for p in problems}
    notes: list[str] = []
    for name in schema.TABLES:
        if schema.table(name).path in linked:
            frames[name] = None
            continue
        frame, found = _read_table(data_dir, name)
        if frame is not None:
            frame, said = _normalise_vocabularies(frame, name)
            notes += said
            found = sorted(found + _schema_problems(frame, name, data_dir), key=_row)
        frames[name] = frame
        problems.extend(found)
    problems.extend(_cross_table_problems(frames))
    problems.extend(_optional_file_problems(data_dir, skip=linked))
    return frames, problems, notes


def _row(problem: Problem) -> int:
    return problem.row or 0


def _symlink_problems(data_dir: Path) -> list[Problem]:
    """A dataset file that is a symbolic link is refused, wherever it points: what the book
    reads and publishes must be the file in the folder, not one that a link can swap for
    another (or for one outside the folder) between validation and publication."""
    names = [schema.table(name).path for name in schema.TABLES] + list(EXTRA_FILES.values())
    return [
        Problem(
            name,
            None,
            None,
            "is a symbolic link; the data folder must hold the file itself (copy it in)",
        )
        for name in names
        if (data_dir / name).is_symlink()
    ]


def _read_table(data_dir: Path, name: str) -> tuple[pd.DataFrame | None, list[Problem]]:
    """The table's cells as text (index = CSV line number) and the problems found in its
    layout (the cells' own checks run after the vocabularies are normalised).

    The frame is None when the file cannot be read at all.
    """
    spec = schema.table(name)
    path = data_dir / spec.path
    if not path.is_file():
        return None, [Problem(spec.path, None, None, f"file is missing from {data_dir}")]
    text, problem = _decode(path, spec.path)
    if problem:
        return None, [problem]
    frame, problems = _parse_csv(text, spec.path)
    if frame is None:
        return None, problems
    problems += _identifier_problems(frame, spec.path)
    missing = [c for c in schema.required_columns(name) if c not in frame.columns]
    problems += [Problem(spec.path, None, c, "required column is missing") for c in missing]
    if frame.empty and not spec.may_be_empty:
        problems.append(Problem(spec.path, None, None, "has no data rows"))
    elif not frame.empty:
        problems += [
            Problem(spec.path, None, c, "has no value in any row; every analysis of it needs some")
            for c in _ANALYSED.get(name, ())
            if c in frame.columns and frame[c].isna().all()
        ]
    return frame, problems


# Columns each analysed on their own (the GEE of length, the GEE of width, ...): a column that
# is empty throughout leaves an analysis with nothing, so it is refused rather than built.
_ANALYSED = {"measurements": ("length_mm", "width_mm")}


def _normalise_vocabularies(frame: pd.DataFrame, name: str) -> tuple[pd.DataFrame, list[str]]:
    """Cells of a controlled vocabulary written in another case (`Yes`, `MILD`, `f`) become
    the vocabulary's own word, and each column that changed gets one note saying how many and
    which; a value outside the vocabulary is left for validation to refuse. (Surrounding
    spaces are already gone: every cell is stripped when read.)"""
    notes = []
    for f in schema.table(name).fields:
        if f.enum is None or f.name not in frame.columns:
            continue
        words = {word.casefold(): word for word in f.enum}
        cells = frame[f.name]
        folded = cells.str.casefold().map(words)
        changed = cells.notna() & folded.notna() & (cells != folded)
        if not changed.any():
            continue
        frame = frame.copy()
        frame.loc[changed, f.name] = folded[changed]
        pairs = sorted({(a, b) for a, b in zip(cells[changed], folded[changed], strict=True)})
        shown = ", ".join(f"{a} → {b}" for a, b in pairs[:5]) + (", …" if len(pairs) > 5 else "")
        count = int(changed.sum())
        notes.append(
            escape_controls(
                f"{schema.table(name).path}: {f.name}: {count} value{'s' * (count != 1)} "
                f"normalised ({shown})"
            )
        )
    return frame, notes


def data_rows(path: Path) -> int | None:
    """The CSV file's records after the header, counted as validation reads them: a line break
    inside a quoted cell is part of one record, blank lines are none, and a file whose lines
    end in CR alone counts like any other. None when the file cannot be read as CSV."""
    text, problem = _decode(path, path.name)
    if problem is not None:
        return None
    try:
        records = sum(
            1 for record in csv.reader(io.StringIO(text, newline="")) if any(map(str.strip, record))
        )
    except csv.Error:
        return None
    return max(records - 1, 0)


def _decode(path: Path, file: str) -> tuple[str, Problem | None]:
    """File text as UTF-8 (a byte-order mark is allowed); point at the line that is not."""
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8-sig"), None
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        bad = raw[err.start : err.start + 1].hex()
        return "", Problem(
            file, line, None, f"not valid UTF-8 (byte 0x{bad} on line {line}); save it as UTF-8"
        )


def _parse_csv(text: str, file: str) -> tuple[pd.DataFrame | None, list[Problem]]:
    """Parse with the csv module so each record keeps the line it starts on."""
    reader = csv.reader(io.StringIO(text, newline=""))
    records: list[tuple[int, list[str]]] = []
    try:
        start = 1
        for record in reader:
            if any(cell.strip() for cell in record):
                records.append((start, record))
            start = reader.line_num + 1
    except csv.Error as err:
        return None, [Problem(file, reader.line_num, None, f"cannot be parsed as CSV: {err}")]
    if not records:
        return None, [Problem(file, None, None, "file is empty (expected a header line)")]
    (_, header), body = records[0], records[1:]
    header = [h.strip() for h in header]
    problems = [
        Problem(file, 1, h, "column name appears more than once")
        for h in sorted({h for h in header if header.count(h) > 1})
    ]
    if problems:
        return None, problems
    if _CONTROL_IN_CELL.search(text):
        problems += _control_problems(records, header, file)
    rows, lines = [], []
    for line, record in body:
        if len(record) != len(header):
            problems.append(
                Problem(
                    file, line, None, f"has {len(record)} fields but the header has {len(header)}"
                )
            )
            continue
        rows.append([cell.strip() for cell in record])
        lines.append(line)
    frame = pd.DataFrame(rows, columns=header, index=pd.Index(lines, dtype="int64"), dtype="str")
    return frame.mask(frame == ""), problems


def _control_problems(
    records: list[tuple[int, list[str]]], header: list[str], file: str
) -> list[Problem]:
    """Each cell holding a control character (ESC, form feed, backspace, ...): a spreadsheet
    cannot store one, a terminal obeys one, and no trial datum needs one."""
    problems = []
    for line, record in records:
        for index, cell in enumerate(record):
            found = _CONTROL_IN_CELL.search(cell)
            if found is None:
                continue
            column = header[index] if line > 1 and index < len(header) else None
            shown = cell if len(cell) <= 40 else cell[:37] + "..."
            problems.append(
                Problem(
                    file,
                    line,
                    column,
                    f"{shown!r} holds the control character {found.group()!r}; "
                    "remove it (only tab and line breaks are allowed in a cell)",
                )
            )
    return problems


def _normalise(column: str) -> str:
    return re.sub(r"[^a-z0-9]", "", column.lower())


def _identifier_problems(frame: pd.DataFrame, file: str) -> list[Problem]:
    """Refuse columns that look like direct identifiers: the dataset is published openly."""
    problems = []
    for column in frame.columns:
        norm = _normalise(column)
        if column in _SCHEMA_COLUMNS or not norm:
            continue
        if norm in _IDENTIFIER_NAMES or any(frag in norm for frag in _IDENTIFIER_FRAGMENTS):
            problems.append(
                Problem(
                    file,
                    None,
                    column,
                    "looks like a direct identifier of a patient; the book and its data are "
                    "published, so remove this column",
                )
            )
    return problems


def declared_maxima(data_dir: Path) -> dict[str, dict[str, float]]:
    """{table: {field: maximum}} that the dataset's datapackage.json declares (its own
    plausibility bounds, in place of the schema's); {} without one or when unreadable (the
    descriptor is optional, and its own check is not validation's business)."""
    import json

    try:
        package = json.loads((data_dir / "datapackage.json").read_text(encoding="utf-8"))
        return {
            resource["name"]: {
                field["name"]: float(field["constraints"]["maximum"])
                for field in resource["schema"]["fields"]
                if "maximum" in field.get("constraints", {})
            }
            for resource in package["resources"]
        }
    except (OSError, ValueError, KeyError, TypeError):
        return {}


def _schema_problems(frame: pd.DataFrame, name: str, data_dir: Path) -> list[Problem]:
    """Run the table's pandera schema over all of it and translate every failure."""
    file = schema.table(name).path
    maxima = declared_maxima(data_dir).get(name)
    try:
        schema.pandera_schema(name, list(frame.columns), maxima).validate(frame, lazy=True)
    except pa.errors.SchemaErrors as err:
        return _translate(err.failure_cases, frame, name, file)
    return []


def _translate(cases: pd.DataFrame, frame: pd.DataFrame, name: str, file: str) -> list[Problem]:
    """Pandera failure cases -> Problems; the frame's index already is the CSV line."""
    problems: list[Problem] = []
    key = schema.table(name).primary_key
    seen_keys: set[int] = set()
    for case in cases.itertuples(index=False):
        line = None if pd.isna(case.index) else int(case.index)
        if case.check == "multiple_fields_uniqueness":
            if line in seen_keys:
                continue  # pandera lists one case per key column; report the row once
            seen_keys.add(line)
            values = ", ".join(f"{k}={frame.at[line, k]}" for k in key)
            problems.append(
                Problem(
                    file, line, "+".join(key), f"duplicate key ({values}); each must appear once"
                )
            )
            continue
        value = None if pd.isna(case.failure_case) else case.failure_case
        column = None if pd.isna(case.column) else str(case.column)
        problems.append(
            Problem(file, line, column, schema.check_message(str(case.check), column or "", value))
        )
    return problems


# --------------------------------------------------------------------------------------------
# Checks across files
# --------------------------------------------------------------------------------------------


def _has(frame: pd.DataFrame | None, *cols: str) -> bool:
    return frame is not None and all(c in frame.columns for c in cols)


def _cross_table_problems(frames: dict[str, pd.DataFrame | None]) -> list[Problem]:
    """Links between tables, visit order, and lesions or patients without data."""
    problems: list[Problem] = []
    problems += _unknown_keys(frames, "lesions", "patient_id", "patients")
    problems += _unknown_keys(frames, "adverse_events", "patient_id", "patients")
    problems += _unknown_keys(frames, "measurements", "lesion_id", "lesions")
    problems += _unknown_keys(frames, "radiography", "lesion_id", "lesions")
    problems += _ids_differing_in_case(frames["patients"], "patients", "patient_id")
    problems += _ids_differing_in_case(frames["lesions"], "lesions", "lesion_id")
    problems += _visits_out_of_order(frames["measurements"])
    problems += _lesions_without_measurements(frames["lesions"], frames["measurements"])
    problems += _patients_without_lesions(frames["patients"], frames["lesions"])
    return problems


def _unknown_keys(frames: dict, child: str, column: str, parent: str) -> list[Problem]:
    """Rows of `child` whose `column` names no row of `parent`."""
    rows, known = frames.get(child), frames.get(parent)
    if not (_has(rows, column) and _has(known, column)):
        return []
    ids = set(known[column].dropna())
    bad = rows[rows[column].notna() & ~rows[column].isin(ids)]
    parent_file = schema.table(parent).path
    return [
        Problem(schema.table(child).path, int(line), column, f"{value!r} is not in {parent_file}")
        for line, value in bad[column].items()
    ]


def _ids_differing_in_case(frame: pd.DataFrame | None, table: str, column: str) -> list[Problem]:
    """IDs name pages and files (`patient-P1.html`): two that differ only in case (`P1`,
    `p1`) are one file on macOS and Windows, so the second is refused."""
    if not _has(frame, column):
        return []
    first: dict[str, tuple[int, str]] = {}
    problems = []
    for line, value in frame[column].dropna().items():
        seen = first.setdefault(value.casefold(), (int(line), value))
        if seen[1] != value:
            problems.append(
                Problem(
                    schema.table(table).path,
                    int(line),
                    column,
                    f"{value!r} differs from {seen[1]!r} (line {seen[0]}) only in case; IDs "
                    "name files, and those two would be one file on macOS and Windows",
                )
            )
    return problems


def _visits_out_of_order(measurements: pd.DataFrame | None) -> list[Problem]:
    """Within a lesion, visits must increase down the file (a sign of a mis-sorted sheet)."""
    if not _has(measurements, "lesion_id", "visit"):
        return []
    visits = pd.to_numeric(measurements["visit"], errors="coerce")
    problems, last = [], {}
    for line, lesion, visit in zip(
        measurements.index, measurements["lesion_id"], visits, strict=True
    ):
        if pd.isna(lesion) or pd.isna(visit):
            continue
        if lesion in last and visit < last[lesion]:
            problems.append(
                Problem(
                    "measurements.csv",
                    int(line),
                    "visit",
                    f"visit {visit:g} of lesion {lesion} comes after visit {last[lesion]:g}; "
                    "visits of a lesion must be in increasing order",
                )
            )
        last[lesion] = max(visit, last.get(lesion, visit))
    return problems


def _lesions_without_measurements(lesions, measurements) -> list[Problem]:
    """A lesion that was never measured cannot enter any analysis."""
    if not (_has(lesions, "lesion_id") and _has(measurements, "lesion_id")):
        return []
    sizes = [c for c in ("length_mm", "width_mm") if c in measurements.columns]
    measured = measurements[measurements[sizes].notna().any(axis=1)] if sizes else measurements
    ids = set(measured["lesion_id"].dropna())
    return [
        Problem(
            "lesions.csv",
            int(line),
            "lesion_id",
            f"lesion {lesion} has no measured visit in measurements.csv",
        )
        for line, lesion in lesions["lesion_id"].dropna().items()
        if lesion not in ids
    ]


def _patients_without_lesions(patients, lesions) -> list[Problem]:
    """Every enrolled patient had at least one lesion injected."""
    if not (_has(patients, "patient_id") and _has(lesions, "patient_id")):
        return []
    ids = set(lesions["patient_id"].dropna())
    return [
        Problem(
            "patients.csv", int(line), "patient_id", f"patient {pid} has no lesions in lesions.csv"
        )
        for line, pid in patients["patient_id"].dropna().items()
        if pid not in ids
    ]


# --------------------------------------------------------------------------------------------
# Typing a valid table
# --------------------------------------------------------------------------------------------


def _typed(frame: pd.DataFrame, name: str) -> pd.DataFrame:
    """Cast a validated text table to its analysis dtypes, columns in schema order first."""
    spec = schema.table(name)
    known = [c for c in schema.columns(name) if c in frame.columns]
    out = frame[known + [c for c in frame.columns if c not in known]].reset_index(drop=True)
    for f in spec.fields:
        if f.name not in out.columns:  # an optional column the file leaves out
            continue
        if f.type == "number":
            out[f.name] = pd.to_numeric(out[f.name]).astype("float64")
        elif f.type == "integer":
            out[f.name] = pd.to_numeric(out[f.name]).astype("int64")
        elif f.name in ID_COLUMNS:
            out[f.name] = out[f.name].astype("string")
        else:
            out[f.name] = out[f.name].fillna("").astype("str")  # empty text stays empty
    return out
