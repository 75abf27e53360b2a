"""What a build executes: the chapters, their parameters, and the pages planned from them (each
chapter once, the patient template once per patient of the validated data).

A page's `recipe` hashes what makes it besides the results it shows: the chapter's bytes, its
own parameters (the patient), the page-side code and the environment. The analysis parameters
are passed to the page but left out of the recipe: they reach a page only through the sections
it shows, whose digests complete its cache key after its first run
(`calcinosis.book.execute`); a page that shows nothing they change is not run again for them.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

from calcinosis.book import cache
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
        cell = next(
            (c for c in code if "parameters" in c.get("metadata", {}).get("tags", [])), None
        )
        if cell is None:
            raise BuildError(
                f"chapter '{path.stem}' ({path}) has code but no code cell tagged 'parameters'"
            )
        return cls(path.stem, path, source, tuple(_assigned_names(cell.source)))


def _assigned_names(code: str) -> list[str]:
    """Names assigned at top level of a parameters cell, in order."""
    names = []
    for node in ast.parse(code).body:
        targets = (
            node.targets
            if isinstance(node, ast.Assign)
            else ([node.target] if isinstance(node, ast.AnnAssign) else [])
        )
        names += [t.id for t in targets if isinstance(t, ast.Name) and t.id not in names]
    return names


@dataclass(frozen=True)
class Page:
    """One executed notebook: a chapter with its parameters, and its recipe hash."""

    name: str
    chapter: Chapter
    parameters: dict
    recipe: str


def read_chapters(chapters_dir: Path) -> list[Chapter]:
    chapters = [Chapter.read(p) for p in sorted(Path(chapters_dir).glob("*.md"))]
    if not chapters:
        raise BuildError(f"no chapters (*.md) in {chapters_dir}")
    return chapters


def parse_parameters(pairs: list[str] | tuple[str, ...]) -> dict[str, str]:
    """`NAME=VALUE` pairs, each NAME once."""
    params: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        name = name.strip()
        if not sep or not name.isidentifier():
            raise UsageError(f"parameter {pair!r} is not NAME=VALUE")
        if name in params:
            raise UsageError(f"parameter {name} is given twice")
        params[name] = value.strip()
    return params


RESULTS_DIR = "results"  # the results folder, relative to the folder pages run in


def plan_pages(
    chapters: list[Chapter],
    patient_ids: list[str],
    params: dict[str, str],
    page_code: str,
    chapter_params: dict[str, dict] | None = None,
) -> list[Page]:
    """Every page to execute: each chapter once, the patient template once per patient.

    A page gets the results folder, those of `params` its parameters cell names, and its
    chapter's own from `chapter_params` (chapter name -> NAME -> value).
    """
    pages = []
    for chapter in (c for c in chapters if not c.static):
        given: dict[str, object] = {"results_dir": RESULTS_DIR}
        given.update({k: v for k, v in params.items() if k in chapter.parameters})
        given.update((chapter_params or {}).get(chapter.name, {}))
        if chapter.name == TEMPLATE:
            pages += [
                _page(f"{TEMPLATE}-{_slug(pid)}", chapter, {**given, "patient_id": pid}, page_code)
                for pid in patient_ids
            ]
        else:
            pages.append(_page(chapter.name, chapter, given, page_code))
    return pages


def _slug(identifier: str) -> str:
    from calcinosis.names import slug

    return slug(identifier)


def _page(name: str, chapter: Chapter, params: dict, page_code: str) -> Page:
    from calcinosis.params import NAMES

    own = {k: v for k, v in params.items() if k not in NAMES}
    recipe = cache.sha256_json(
        {
            "kind": "page",
            "version": cache.CACHE_VERSION,
            "source": cache.sha256_bytes(chapter.source),
            "parameters": own,
            "page_code": page_code,
            "environment": cache.environment(),
        }
    )
    return Page(name, chapter, params, recipe)


def load_valid(data_dir: Path):
    """The validated Trial, or InvalidData with the same problems `calcinosis validate` lists."""
    from calcinosis.data import trial as data

    try:
        return data.load_trial(data_dir)
    except data.DataValidationError as err:
        raise InvalidData(data_dir, err.problems) from None
    except Exception as err:  # unreadable in a way the validator did not foresee
        raise InvalidData(data_dir, [f"error: could not read the dataset: {err}"]) from None
