"""What a build executes: the chapters, their parameters, and the pages planned from them
(each chapter once, the patient template once per patient of the validated data), each with the
cache key of everything it reads."""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

from calcinosis import cache
from calcinosis.errors import BuildError, InvalidData, UsageError

TEMPLATE = "patient"  # chapters/patient.md is run once per patient


@dataclass(frozen=True)
class Chapter:
    """A Jupytext chapter: its bytes (hashed and executed: the same ones) and parameter names."""

    name: str
    path: Path
    source: bytes
    parameters: tuple[str, ...]
    static: bool = False  # no code cells: copied into the book as it is, never executed

    @classmethod
    def read(cls, path: Path) -> Chapter:
        import jupytext

        source = path.read_bytes()
        nb = jupytext.reads(source.decode("utf-8"), fmt=path.suffix.lstrip("."))
        code = [c for c in nb.cells if c.cell_type == "code"]
        if not code:
            return cls(path.stem, path, source, (), static=True)
        cell = next((c for c in code
                     if "parameters" in c.get("metadata", {}).get("tags", [])), None)
        if cell is None:
            raise BuildError(f"chapter '{path.stem}' ({path}) has code but no code cell "
                             "tagged 'parameters'")
        return cls(path.stem, path, source, tuple(_assigned_names(cell.source)))


def _assigned_names(code: str) -> list[str]:
    """Names assigned at top level of a parameters cell, in order."""
    names = []
    for node in ast.parse(code).body:
        targets = node.targets if isinstance(node, ast.Assign) else (
            [node.target] if isinstance(node, ast.AnnAssign) else [])
        names += [t.id for t in targets if isinstance(t, ast.Name) and t.id not in names]
    return names


@dataclass(frozen=True)
class Page:
    """One executed notebook: a chapter with its parameters, and its cache key."""

    name: str
    chapter: Chapter
    parameters: dict
    key: str


def read_chapters(chapters_dir: Path) -> list[Chapter]:
    chapters = [Chapter.read(p) for p in sorted(Path(chapters_dir).glob("*.md"))]
    if not chapters:
        raise BuildError(f"no chapters (*.md) in {chapters_dir}")
    return chapters


def parse_parameters(pairs: list[str] | tuple[str, ...]) -> dict[str, object]:
    """`NAME=VALUE` pairs -> values typed as papermill's `-p NAME VALUE` types them."""
    from papermill.cli import _resolve_type

    params = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip().isidentifier():
            raise UsageError(f"parameter {pair!r} is not NAME=VALUE")
        params[name.strip()] = _resolve_type(value)
    return params


def plan_pages(chapters: list[Chapter], patient_ids: list[str], data_dir: Path,
               overrides: dict, inputs: cache.Inputs) -> list[Page]:
    """Every page to execute: each chapter once, the patient template once per patient.

    Each chapter gets `data_dir` (absolute) and only those overrides its parameters cell names.
    """
    if "data_dir" in overrides:
        raise UsageError("give the data folder with --data, not -p data_dir=...")
    known = {n for c in chapters for n in c.parameters}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise UsageError(f"no chapter has a parameter named {', '.join(unknown)} "
                         f"(parameters: {', '.join(sorted(known))})")
    pages = []
    for chapter in (c for c in chapters if not c.static):
        params = {"data_dir": str(data_dir)}
        params.update({k: v for k, v in overrides.items() if k in chapter.parameters})
        if chapter.name == TEMPLATE:
            pages += [_page(f"{TEMPLATE}-{pid}", chapter, {**params, "patient_id": pid}, inputs)
                      for pid in patient_ids]
        else:
            pages.append(_page(chapter.name, chapter, params, inputs))
    return pages


def _page(name: str, chapter: Chapter, params: dict, inputs: cache.Inputs) -> Page:
    return Page(name, chapter, params, cache.page_key(inputs, chapter.source, params))


def load_valid(data_dir: Path):
    """The validated Trial, or InvalidData with the same problems `calcinosis validate` lists."""
    from calcinosis import data

    try:
        return data.load_trial(data_dir)
    except data.DataValidationError as err:
        raise InvalidData(data_dir, err.problems) from None
    except Exception as err:  # unreadable in a way the validator did not foresee
        raise InvalidData(data_dir, [f"error: could not read the dataset: {err}"]) from None
