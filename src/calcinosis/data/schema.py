"""The data model of the trial dataset: the one place that says what each table holds.

Everything else is derived from `TABLE_SPECS`: the pandera schemas that validation runs, the
column order the dataset writer uses, and the Frictionless Data Package descriptor published
beside the CSV files. Changing a field here changes all three, so they cannot drift apart.

Validation runs on the CSV cells *as text* (see `calcinosis.data`), so the pandera checks below
parse each cell themselves: that lets a problem report say exactly which cell is not a number
instead of failing a whole-column type cast.
"""

from __future__ import annotations

import copy
import math
import re
from dataclasses import dataclass
from typing import Any

import pandera.pandas as pa

# --------------------------------------------------------------------------------------------
# The data model
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Field:
    """One column: Table Schema type plus the constraints validation enforces."""

    name: str
    type: str  # Table Schema type: "string", "integer" or "number"
    description: str
    unit: str | None = None
    required: bool = True
    minimum: float | None = None
    exclusive_minimum: float | None = None
    maximum: float | None = None  # a plausibility bound; a dataset may declare its own
    enum: tuple[str, ...] | None = None
    pattern: str | None = None  # a regular expression the whole cell must match
    optional_column: bool = False  # a file may leave the column out (see its description)


# Study codes: a letter or digit, then letters, digits, ".", "_" or "-"; at most 40 characters.
# They name pages, files and results, so nothing else (no "/", spaces, markup) is allowed.
ID_PATTERN = r"[A-Za-z0-9][A-Za-z0-9._-]{0,39}"


@dataclass(frozen=True)
class ForeignKey:
    """A column whose values must exist in another table's key."""

    field: str
    table: str
    reference: str


@dataclass(frozen=True)
class Table:
    """One CSV file of the dataset."""

    name: str
    title: str
    description: str
    fields: tuple[Field, ...]
    primary_key: tuple[str, ...]
    foreign_keys: tuple[ForeignKey, ...] = ()
    may_be_empty: bool = False

    @property
    def path(self) -> str:
        return f"{self.name}.csv"

    def field(self, name: str) -> Field:
        return next(f for f in self.fields if f.name == name)


# Plausibility bounds: values beyond them are typing errors, not data (a lesion of 1e9 mm, visit
# 1000). A dataset that needs other bounds declares them as `maximum` constraints of its
# datapackage.json fields; validation then uses those.
MAX_SIZE_MM = 500
MAX_VISIT = 520  # ten years of weekly visits
MAX_AREA_CM2 = 2500  # 50 cm by 50 cm: larger than any one lesion; sizes stop at 50 cm too
MAX_DOSE_MG = 1000  # per lesion and visit: ten times a whole intravenous infusion of a child
# A dataset's datapackage.json may widen a bound, but only this many times: the figures and
# sums grow with the values, and a bound of 1e300 would let a typing error hang the build.
MAX_DECLARED_FACTOR = 100


# Controlled vocabularies of the adverse-event table: the grades of CTCAE in words, and the
# investigator's answer to "related to the injections?".
SEVERITIES = ("mild", "moderate", "severe", "life-threatening", "fatal")
RELATEDNESS = ("yes", "no", "unknown")


def _size(name: str, what: str, required: bool) -> Field:
    """A caliper or radiograph size in millimetres (0 means the lesion is gone)."""
    return Field(name, "number", what, unit="mm", required=required, minimum=0, maximum=MAX_SIZE_MM)


TABLE_SPECS: tuple[Table, ...] = (
    Table(
        name="patients",
        title="Patients",
        description="One row per patient enrolled in the trial.",
        fields=(
            Field(
                "patient_id", "string", "Study code of the patient, e.g. P1.", pattern=ID_PATTERN
            ),
            Field("sex", "string", "Sex of the patient.", enum=("F", "M")),
            Field("age_years", "number", "Age at enrolment.", unit="year", minimum=0, maximum=120),
            Field(
                "disease_duration_months",
                "number",
                "Time from diagnosis of juvenile dermatomyositis to enrolment.",
                unit="month",
                minimum=0,
                maximum=1200,
            ),
        ),
        primary_key=("patient_id",),
    ),
    Table(
        name="lesions",
        title="Lesions",
        description="One row per calcinosis lesion injected with infliximab.",
        fields=(
            Field(
                "lesion_id", "string", "Study code of the lesion, e.g. P1-L1.", pattern=ID_PATTERN
            ),
            Field("patient_id", "string", "Patient the lesion belongs to.", pattern=ID_PATTERN),
            Field("site", "string", "Anatomical site of the lesion."),
            Field(
                "baseline_area_cm2",
                "number",
                "Area of the lesion before treatment.",
                unit="cm2",
                exclusive_minimum=0,
                maximum=MAX_AREA_CM2,
            ),
            Field(
                "dose_mg",
                "number",
                "Infliximab dose injected into the lesion per visit.",
                unit="mg",
                exclusive_minimum=0,
                maximum=MAX_DOSE_MG,
            ),
        ),
        primary_key=("lesion_id",),
        foreign_keys=(ForeignKey("patient_id", "patients", "patient_id"),),
    ),
    Table(
        name="measurements",
        title="Weekly measurements",
        description="Caliper size of each lesion at each weekly visit; empty = not measured.",
        fields=(
            Field("lesion_id", "string", "Lesion measured.", pattern=ID_PATTERN),
            Field(
                "visit",
                "integer",
                "Weekly visit number, starting at 1.",
                minimum=1,
                maximum=MAX_VISIT,
            ),
            _size("length_mm", "Longest diameter of the lesion; empty if not measured.", False),
            _size("width_mm", "Diameter across the length; empty if not measured.", False),
            Field(
                "dose_mg",
                "number",
                "Infliximab injected into the lesion at this visit; 0 at a follow-up visit.",
                unit="mg",
                minimum=0,
                maximum=MAX_DOSE_MG,
                optional_column=True,
            ),
        ),
        primary_key=("lesion_id", "visit"),
        foreign_keys=(ForeignKey("lesion_id", "lesions", "lesion_id"),),
    ),
    Table(
        name="radiography",
        title="Radiography",
        description="Size of each lesion on the radiograph before and after treatment.",
        fields=(
            Field("lesion_id", "string", "Lesion imaged.", pattern=ID_PATTERN),
            Field(
                "timepoint",
                "string",
                "Radiograph before or after treatment.",
                enum=("baseline", "final"),
            ),
            _size("length_mm", "Longest diameter on the radiograph.", False),
            _size("width_mm", "Diameter across the length on the radiograph.", False),
        ),
        primary_key=("lesion_id", "timepoint"),
        foreign_keys=(ForeignKey("lesion_id", "lesions", "lesion_id"),),
    ),
    Table(
        name="adverse_events",
        title="Adverse events",
        description="Adverse events reported during the trial, one row per event.",
        fields=(
            Field("patient_id", "string", "Patient who had the event.", pattern=ID_PATTERN),
            Field(
                "visit",
                "integer",
                "Visit at which the event was reported.",
                minimum=1,
                maximum=MAX_VISIT,
            ),
            Field("event", "string", "What happened."),
            Field(
                "severity",
                "string",
                "Severity of the event (CTCAE grades 1 to 5, in words).",
                enum=SEVERITIES,
            ),
            Field(
                "related_to_treatment",
                "string",
                "Whether the event was judged related to the injections; empty if not assessed.",
                required=False,
                enum=RELATEDNESS,
            ),
        ),
        primary_key=(),
        foreign_keys=(ForeignKey("patient_id", "patients", "patient_id"),),
        may_be_empty=True,
    ),
)

TABLES: tuple[str, ...] = tuple(t.name for t in TABLE_SPECS)
_BY_NAME = {t.name: t for t in TABLE_SPECS}


def table(name: str) -> Table:
    """The specification of one table, by name (e.g. "lesions")."""
    return _BY_NAME[name]


def columns(name: str) -> list[str]:
    """Column names of a table in schema order: the order the dataset writer uses."""
    return [f.name for f in _BY_NAME[name].fields]


def required_columns(name: str) -> list[str]:
    """The columns every file of the table must have."""
    return [f.name for f in _BY_NAME[name].fields if not f.optional_column]


# --------------------------------------------------------------------------------------------
# Pandera schemas (run on the cells as text; empty cells already turned into missing values)
# --------------------------------------------------------------------------------------------


# What a number looks like in a CSV cell: ASCII digits, one optional sign, point and exponent.
# Python's float() also takes "9_5", "nan", "inf" and full-width digits; pandas does not.
_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?", re.ASCII)
_LARGEST_INTEGER = 2**53  # every whole number up to here is exact as a float and an int64


def _as_number(cell: str) -> float | None:
    """The cell as a finite number, or None when it is not one."""
    if not isinstance(cell, str) or not _NUMBER.fullmatch(cell.strip()):
        return None
    value = float(cell)
    return value if math.isfinite(value) else None


def _is_number(cell: str) -> bool:
    return _as_number(cell) is not None


def _is_integer(cell: str) -> bool:
    value = _as_number(cell)
    return value is not None and value.is_integer() and abs(value) <= _LARGEST_INTEGER


def _check_minimum(bound: float, exclusive: bool) -> pa.Check:
    """Range check that passes cells that are not numbers: `number` reports those already."""

    def ok(cell: str) -> bool:
        value = _as_number(cell)
        return value is None or (value > bound if exclusive else value >= bound)

    label = f"greater_than({bound:g})" if exclusive else f"at_least({bound:g})"
    return pa.Check(ok, element_wise=True, name=label)


def _check_maximum(bound: float) -> pa.Check:
    def ok(cell: str) -> bool:
        value = _as_number(cell)
        return value is None or value <= bound

    return pa.Check(ok, element_wise=True, name=f"at_most({bound:g})")


# Check name -> what a person is told, given the offending cell.
CHECK_MESSAGES: dict[str, str] = {
    "number": "{value!r} is not a number",
    "integer": "{value!r} is not a whole number",
    "not_nullable": "is empty but a value is required",
    "field_uniqueness": "duplicate {column} {value!r} (the key must be unique)",
    "multiple_fields_uniqueness": "duplicate {column} (the key must be unique)",
}


def check_message(check: str, column: str, value: Any) -> str:
    """Turn a pandera failure (check name, column, cell) into a sentence for a person."""
    if check in CHECK_MESSAGES:
        return CHECK_MESSAGES[check].format(value=value, column=column)
    if check.startswith("at_least("):
        return f"{value!r} is below the minimum {check[9:-1]}"
    if check.startswith("greater_than("):
        return f"{value!r} must be greater than {check[13:-1]}"
    if check.startswith("at_most("):
        return (
            f"{value!r} is above the plausible maximum {check[8:-1]} (a dataset that "
            "needs more declares its own maximum in datapackage.json)"
        )
    if check.startswith("one_of("):
        return f"{value!r} is not one of {check[7:-1]}"
    if check.startswith("pattern("):
        return (
            f"{value!r} is not a study code: letters, digits, '.', '_' or '-', starting "
            "with a letter or digit, at most 40 characters"
        )
    return f"{value!r} fails check {check}"


def _field_checks(f: Field, maximum: float | None = None) -> list[pa.Check]:
    checks: list[pa.Check] = []
    if f.type == "number":
        checks.append(pa.Check(_is_number, element_wise=True, name="number"))
    if f.type == "integer":
        checks.append(pa.Check(_is_integer, element_wise=True, name="integer"))
    if f.minimum is not None:
        checks.append(_check_minimum(f.minimum, exclusive=False))
    if f.exclusive_minimum is not None:
        checks.append(_check_minimum(f.exclusive_minimum, exclusive=True))
    maximum = f.maximum if maximum is None else maximum
    if maximum is not None:
        checks.append(_check_maximum(maximum))
    if f.pattern is not None:
        compiled = re.compile(f.pattern)
        checks.append(
            pa.Check(
                lambda cell: bool(compiled.fullmatch(cell)),
                element_wise=True,
                name=f"pattern({f.pattern})",
            )
        )
    if f.enum is not None:
        allowed = frozenset(f.enum)
        checks.append(
            pa.Check(
                lambda cell: cell in allowed, element_wise=True, name=f"one_of({', '.join(f.enum)})"
            )
        )
    return checks


def pandera_schema(
    name: str, present: list[str] | None = None, maxima: dict[str, float] | None = None
) -> pa.DataFrameSchema:
    """Pandera schema of a table's text cells, limited to the columns `present` in the file.

    Missing columns are reported by the loader itself; restricting the schema to the columns
    that exist lets every other column still be checked in the same pass.
    """
    spec = _BY_NAME[name]
    keep = [f for f in spec.fields if present is None or f.name in present]
    single_key = len(spec.primary_key) == 1
    cols = {
        f.name: pa.Column(
            str,
            nullable=not f.required,
            checks=_field_checks(f, (maxima or {}).get(f.name)),
            unique=single_key and f.name == spec.primary_key[0],
            report_duplicates="exclude_first",
            required=True,
        )
        for f in keep
    }
    composite = len(spec.primary_key) > 1 and all(k in cols for k in spec.primary_key)
    return pa.DataFrameSchema(
        cols,
        name=name,
        strict=False,
        unique=list(spec.primary_key) if composite else None,
        report_duplicates="exclude_first",
    )


# --------------------------------------------------------------------------------------------
# Frictionless Data Package descriptor
# --------------------------------------------------------------------------------------------

PACKAGE_NAME = "calcinosis-infliximab-trial"
PACKAGE_TITLE = "Intralesional infliximab for calcinosis in juvenile dermatomyositis: trial dataset"
PACKAGE_DESCRIPTION = (
    "Tidy tables of a five-patient, open-label pilot trial of infliximab injected into "
    "calcinosis lesions of children with juvenile dermatomyositis: patients, lesions, weekly "
    "caliper measurements, radiography and adverse events. Patients are identified by study "
    "codes only; the tables hold no direct identifiers."
)
LICENSES = (
    {
        "name": "CC-BY-4.0",
        "title": "Creative Commons Attribution 4.0",
        "path": "https://creativecommons.org/licenses/by/4.0/",
    },
)


def _field_descriptor(f: Field) -> dict[str, Any]:
    out: dict[str, Any] = {"name": f.name, "type": f.type, "description": f.description}
    if f.unit is not None:
        out["unit"] = f.unit
    constraints: dict[str, Any] = {"required": f.required}
    if f.minimum is not None:
        constraints["minimum"] = int(f.minimum) if float(f.minimum).is_integer() else f.minimum
    if f.exclusive_minimum is not None:
        bound = f.exclusive_minimum
        constraints["exclusiveMinimum"] = int(bound) if float(bound).is_integer() else bound
    if f.maximum is not None:
        constraints["maximum"] = int(f.maximum) if float(f.maximum).is_integer() else f.maximum
    if f.enum is not None:
        constraints["enum"] = list(f.enum)
    if f.pattern is not None:
        constraints["pattern"] = f.pattern
    out["constraints"] = constraints
    return out


def _resource(spec: Table, sha256: str | None = None) -> dict[str, Any]:
    schema: dict[str, Any] = {
        "fields": [_field_descriptor(f) for f in spec.fields],
        "missingValues": [""],
    }
    if spec.primary_key:
        schema["primaryKey"] = list(spec.primary_key)
    if spec.foreign_keys:
        schema["foreignKeys"] = [
            {"fields": [fk.field], "reference": {"resource": fk.table, "fields": [fk.reference]}}
            for fk in spec.foreign_keys
        ]
    resource: dict[str, Any] = {
        "name": spec.name,
        "path": spec.path,
        "title": spec.title,
        "description": spec.description,
        "profile": "tabular-data-resource",
        "format": "csv",
        "mediatype": "text/csv",
        "encoding": "utf-8",
    }
    if sha256 is not None:
        resource["hash"] = f"sha256:{sha256}"
    resource["schema"] = schema
    return resource


def datapackage(provenance: dict, hashes: dict[str, str] | None = None) -> dict:
    """The Frictionless Data Package descriptor of the dataset, built from `TABLE_SPECS`.

    `hashes` (table name → SHA-256 of its CSV) are recorded as each resource's `hash`, so a
    reader can tell whether the files are still the ones the package describes.

    `provenance` is merged in: its "sources" (a list) become the package's sources, its
    "description" is appended to the package description, and every other key is kept under
    "provenance". The result depends only on the input, with keys in a fixed order, so
    `json.dumps(..., indent=2)` of it is byte-for-byte reproducible.
    """
    prov = copy.deepcopy(dict(provenance))
    sources = prov.pop("sources", [])
    extra = prov.pop("description", None)
    description = PACKAGE_DESCRIPTION + (f"\n\n{extra}" if extra else "")
    descriptor: dict[str, Any] = {
        "profile": "tabular-data-package",
        "name": PACKAGE_NAME,
        "title": PACKAGE_TITLE,
        "description": description,
        "licenses": [dict(lic) for lic in LICENSES],
        "sources": list(sources) if isinstance(sources, list | tuple) else [sources],
    }
    if prov:
        descriptor["provenance"] = prov
    descriptor["resources"] = [
        _resource(spec, (hashes or {}).get(spec.name)) for spec in TABLE_SPECS
    ]
    return descriptor
