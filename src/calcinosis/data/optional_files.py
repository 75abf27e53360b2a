"""The dataset's optional files, `published.yml` and `datapackage.json`, checked against what
the build reads from them, so that `validate` refuses what the build could not use.

The build reads each claim's name, value, decimals, relation and source (the audit rounds to
`decimals` and loops over grids it sets: a huge or negative `decimals` would run for minutes),
and the package's title, licences, provenance and every resource's name, path, hash and field
list (the data dictionary, the provenance notice, the declared plausibility bounds). Every
problem names the file, the line where YAML gives one, and the item (`claims[3].decimals`,
`resources[2].schema`).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import yaml

from calcinosis.data import schema
from calcinosis.data.trial import Problem

CLAIMS_FILE = "published.yml"
PACKAGE_FILE = "datapackage.json"
MAX_DECIMALS = 10  # printed precision of a claim: more digits than any article prints
MAX_CLAIM = 1e12  # a published number larger than this is a typing error, not a claim
RELATIONS = ("=", "<")  # the recomputed value equals the claim at its precision, or is below it


def problems(data_dir: Path, skip: frozenset[str] | set[str] = frozenset()) -> list[Problem]:
    """Every problem of the optional files present in `data_dir` (those in `skip`, already
    refused for another reason, are not read)."""
    found = []
    if CLAIMS_FILE not in skip and (data_dir / CLAIMS_FILE).is_file():
        found += claims_problems(data_dir / CLAIMS_FILE)
    if PACKAGE_FILE not in skip and (data_dir / PACKAGE_FILE).is_file():
        found += package_problems(data_dir / PACKAGE_FILE)
    return found


# --------------------------------------------------------------------------------------------
# published.yml
# --------------------------------------------------------------------------------------------


def claims_problems(path: Path) -> list[Problem]:
    """published.yml: a mapping whose `claims` is a list of {name, value, decimals[, relation,
    source]}: name text, value a finite number, decimals a whole number 0..10."""
    file = path.name
    try:
        text = path.read_text(encoding="utf-8")
        body = yaml.safe_load(text)
        lines = _claim_lines(text)
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        mark = getattr(err, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        what = getattr(err, "problem", None) or str(err).splitlines()[0]
        return [Problem(file, line, None, f"not readable YAML: {what}")]
    if body is None:
        return []
    if not isinstance(body, dict):
        return [Problem(file, 1, None, "must be a mapping with a 'claims' list")]
    found = _text_problems(file, body, "", skip=("claims",))
    claims = body.get("claims")
    if claims is None:
        return found
    if not isinstance(claims, list):
        return [*found, Problem(file, None, "claims", "must be a list of claims")]
    names: dict[str, int] = {}
    for i, claim in enumerate(claims):
        where = f"claims[{i + 1}]"
        line = lines[i] if i < len(lines) else None
        for message in _claim_problems(claim):
            found.append(Problem(file, line, where, message))
        name = claim.get("name") if isinstance(claim, dict) else None
        if isinstance(name, str):
            if name in names:
                found.append(Problem(file, line, where, f"a second claim named {name!r}"))
            names.setdefault(name, i)
    return found


def _claim_lines(text: str) -> list[int]:
    """The line each item of the `claims` list starts on (YAML's own positions)."""
    root = yaml.compose(text)
    if not isinstance(root, yaml.MappingNode):
        return []
    for key, value in root.value:
        if key.value == "claims" and isinstance(value, yaml.SequenceNode):
            return [item.start_mark.line + 1 for item in value.value]
    return []


def _claim_problems(claim: Any) -> list[str]:
    """What is wrong with one claim, in words."""
    if not isinstance(claim, dict):
        return ["must be a mapping with name, value and decimals"]
    out = [f"needs a {key}" for key in ("name", "value", "decimals") if key not in claim]
    name: Any = claim.get("name")
    value: Any = claim.get("value")
    decimals: Any = claim.get("decimals")
    if "name" in claim and (not isinstance(name, str) or not name.strip()):
        out.append(f"name must be text, not {_shown(name)}")
    if "value" in claim and not _is_number(value):
        out.append(f"value must be a number, not {_shown(value)}")
    elif "value" in claim and not (math.isfinite(value) and abs(value) <= MAX_CLAIM):
        out.append(f"value {_shown(value)} is not a finite number up to {MAX_CLAIM:g}")
    if "decimals" in claim and not (isinstance(decimals, int) and not isinstance(decimals, bool)):
        out.append(
            f"decimals must be a whole number from 0 to {MAX_DECIMALS}, not {_shown(decimals)}"
        )
    elif "decimals" in claim and not 0 <= decimals <= MAX_DECIMALS:
        out.append(f"decimals {decimals} is not a whole number from 0 to {MAX_DECIMALS}")
    if claim.get("relation", "=") not in RELATIONS:
        out.append(
            f"relation must be one of {', '.join(RELATIONS)}, not {_shown(claim['relation'])}"
        )
    if claim.get("source") is not None and not isinstance(claim["source"], str):
        out.append(f"source must be text, not {_shown(claim['source'])}")
    out += [f"{p.column} {p.message}" for p in _text_problems("", claim, "")]
    return out


# --------------------------------------------------------------------------------------------
# datapackage.json
# --------------------------------------------------------------------------------------------


def package_problems(path: Path) -> list[Problem]:
    """datapackage.json: an object; `resources` a list of resources each with a name and a
    schema whose fields are objects with a name; `licenses` a list of objects; `provenance`
    an object; declared maxima finite numbers within `schema.MAX_DECLARED_FACTOR` times the
    book's own bound."""
    file = path.name
    try:
        package = json.loads(path.read_text(encoding="utf-8"), parse_constant=_refuse_constant)
    except (ValueError, UnicodeDecodeError) as err:
        line = getattr(err, "lineno", None)
        return [Problem(file, line, None, f"not readable JSON: {err}")]
    if not isinstance(package, dict):
        return [Problem(file, None, None, f"must be a JSON object, not {_kind(package)}")]
    found = _text_problems(file, package, "")
    for key, kind in (("title", str), ("description", str), ("provenance", dict)):
        if key in package and not isinstance(package[key], kind):
            found.append(_wrong(file, key, kind, package[key]))
    licenses = package.get("licenses", [])
    if not isinstance(licenses, list):
        found.append(_wrong(file, "licenses", list, licenses))
    else:
        for i, lic in enumerate(licenses):
            if not isinstance(lic, dict) or not isinstance(lic.get("name", ""), str):
                found.append(
                    Problem(file, None, f"licenses[{i + 1}]", "must be an object with a text name")
                )
    if "resources" not in package:
        found.append(Problem(file, None, "resources", "is missing (a list of the tables)"))
    elif not isinstance(package["resources"], list):
        found.append(_wrong(file, "resources", list, package["resources"]))
    else:
        for i, resource in enumerate(package["resources"]):
            found += _resource_problems(file, f"resources[{i + 1}]", resource)
    return found


def _resource_problems(file: str, where: str, resource: Any) -> list[Problem]:
    if not isinstance(resource, dict):
        return [Problem(file, None, where, f"must be an object, not {_kind(resource)}")]
    found = []
    for key in ("name", "path", "hash"):
        if key in resource and not isinstance(resource[key], str):
            found.append(_wrong(file, f"{where}.{key}", str, resource[key]))
    if "name" not in resource:
        found.append(Problem(file, None, f"{where}.name", "is missing"))
    table_schema = resource.get("schema")
    if table_schema is None:
        return [*found, Problem(file, None, f"{where}.schema", "is missing (the table's fields)")]
    if not isinstance(table_schema, dict):
        return [*found, _wrong(file, f"{where}.schema", dict, table_schema)]
    fields = table_schema.get("fields")
    if not isinstance(fields, list):
        return [*found, _wrong(file, f"{where}.schema.fields", list, fields)]
    table = resource.get("name") if resource.get("name") in schema.TABLES else None
    for j, field in enumerate(fields):
        found += _field_problems(file, f"{where}.schema.fields[{j + 1}]", field, table)
    return found


def _field_problems(file: str, where: str, field: Any, table: str | None) -> list[Problem]:
    if not isinstance(field, dict) or not isinstance(field.get("name"), str):
        return [Problem(file, None, where, "must be an object with a text name")]
    found = [
        _wrong(file, f"{where}.{key}", str, field[key])
        for key in ("type", "unit", "description")
        if key in field and not isinstance(field[key], str)
    ]
    constraints = field.get("constraints", {})
    if not isinstance(constraints, dict):
        return [*found, _wrong(file, f"{where}.constraints", dict, constraints)]
    if "enum" in constraints and not isinstance(constraints["enum"], list):
        found.append(_wrong(file, f"{where}.constraints.enum", list, constraints["enum"]))
    for key in ("minimum", "maximum"):
        if key in constraints and not (
            _is_number(constraints[key]) and math.isfinite(constraints[key])
        ):
            found.append(
                Problem(
                    file,
                    None,
                    f"{where}.constraints.{key}",
                    f"must be a finite number, not {_shown(constraints[key])}",
                )
            )
    own = _own_maximum(table, field["name"])
    declared: Any = constraints.get("maximum")
    if own is not None and _is_number(declared) and declared > own * schema.MAX_DECLARED_FACTOR:
        found.append(
            Problem(
                file,
                None,
                f"{where}.constraints.maximum",
                f"{declared:g} for {table}.{field['name']} is more than "
                f"{schema.MAX_DECLARED_FACTOR} times the book's plausible maximum {own:g}",
            )
        )
    return found


def _own_maximum(table: str | None, name: str) -> float | None:
    if table is None or name not in schema.columns(table):
        return None
    return schema.table(table).field(name).maximum


# --------------------------------------------------------------------------------------------
# Shared
# --------------------------------------------------------------------------------------------


def _text_problems(file: str, value: Any, where: str, skip: tuple[str, ...] = ()) -> list[Problem]:
    """Text anywhere in `value` holding a control character (it would reach the book's prose
    and the terminal)."""
    from calcinosis.data.trial import control_character

    found = []
    if isinstance(value, str):
        char = control_character(value)
        if char is not None:
            found.append(
                Problem(file, None, where or None, f"holds the control character {char!r}")
            )
    elif isinstance(value, dict):
        for key, item in value.items():
            if key not in skip:
                found += _text_problems(file, item, f"{where}.{key}" if where else str(key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            found += _text_problems(file, item, f"{where}[{i + 1}]")
    return found


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _refuse_constant(name: str) -> float:
    """json.loads takes NaN and Infinity, which are not JSON; refuse them."""
    raise ValueError(f"{name} is not JSON (write a number)")


_KINDS: dict[type, str] = {dict: "an object", list: "a list", str: "text"}


def _kind(value: Any) -> str:
    return _KINDS.get(type(value), _shown(value))


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _wrong(file: str, where: str, kind: type, value: Any) -> Problem:
    return Problem(file, None, where, f"must be {_KINDS[kind]}, not {_kind(value)}")
