"""A chapter with other parameters, for reviewers: the whole book built with those parameters
into a folder named after them (`_review/<parameters>/`), so the page's cross-references,
citations and source links resolve and `compare` works on it. Pages the parameters do not
change come from the cache."""

from __future__ import annotations

import json
import re
from pathlib import Path

from calcinosis import paths
from calcinosis.book import build, cache, chapter_params
from calcinosis.book.plan import TEMPLATE, read_chapters
from calcinosis.book.process import Echo
from calcinosis.errors import UsageError
from calcinosis.params import Parameters

REVIEW_DIR = paths.ROOT / "_review"


def review(
    name: str,
    params: dict[str, str],
    data_dir: Path = paths.DATA_DIR,
    out_dir: Path | None = None,
    *,
    chapters_dir: Path = paths.CHAPTERS_DIR,
    book_dir: Path = paths.BOOK_DIR,
    cache_dir: Path | None = None,
    echo: Echo = print,
) -> Path:
    """Build the book with `params` and return the path of chapter `name`'s HTML page.

    `params` (NAME -> text) are exactly those chapter `name`'s parameters cell declares
    (`calcinosis.book.chapter_params`): the analysis parameters reach the whole book, the
    chapter's own only its page; for the patient template, `patient_id` picks the page."""
    chapters = {c.name: c for c in read_chapters(chapters_dir)}
    if name not in chapters:
        raise UsageError(f"no chapter '{name}' (chapters: {', '.join(sorted(chapters))})")
    analysis, own = chapter_params.split(chapters[name], params)
    if name == "power":  # a cell the power run does not hold: refused before any build
        from calcinosis.report import power_report

        try:
            power_report.check_params(own)
        except ValueError as err:
            raise UsageError(str(err)) from None
    patient_id = own.pop("patient_id", None) if name == TEMPLATE else None
    try:
        chosen = Parameters.of(analysis)
    except ValueError as err:
        raise UsageError(str(err)) from None
    out_dir = Path(out_dir) if out_dir else REVIEW_DIR / folder_name(chosen, name, own)
    report = build.build(
        data_dir,
        out_dir,
        chosen.as_dict(),
        chapters_dir=chapters_dir,
        book_dir=book_dir,
        cache_dir=cache_dir or cache.default_dir(paths.BUILD_DIR),
        chapter_params={name: own} if own else None,
        echo=echo,
    )
    if name != TEMPLATE:
        return report.out_dir / "html" / f"{name}.html"
    pages = sorted((report.out_dir / "html").glob(f"{TEMPLATE}-*.html"))
    if patient_id is None:
        return pages[0]
    from calcinosis.names import slug

    page = report.out_dir / "html" / f"{TEMPLATE}-{slug(str(patient_id))}.html"
    if not page.is_file():
        raise UsageError(f"patient_id {patient_id!r} is not in the data")
    return page


def folder_name(chosen: Parameters, chapter: str, own: dict[str, object]) -> str:
    """'default', 'cluster-patient_correlation-ar1', or with a chapter's own parameters
    'power_alpha-0.01' (a value with other characters gets a short hash of itself)."""
    parts = [chosen.slug()] if chosen.changed() or not own else []
    if own:
        parts.append(chapter)
        parts += [f"{k}-{_name_part(v)}" for k, v in sorted(own.items())]
    return "_".join(parts)


def _name_part(value: object) -> str:
    text = value if isinstance(value, str) else json.dumps(value)
    plain = re.sub(r"[^A-Za-z0-9.+-]+", "-", text).strip("-.")[:40]
    if plain == text and plain:
        return plain
    return f"{plain}-{cache.sha256_bytes(text.encode())[:8]}".lstrip("-")
