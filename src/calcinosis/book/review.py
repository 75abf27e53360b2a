"""A chapter with other parameters, for reviewers: the whole book built with those parameters
into a folder named after them (`_review/<parameters>/`), so the page's cross-references,
citations and source links resolve and `compare` works on it. Pages the parameters do not
change come from the cache."""

from __future__ import annotations

from pathlib import Path

from calcinosis import paths
from calcinosis.book import build, cache
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
    """Build the book with `params` and return the path of chapter `name`'s HTML page."""
    chapters = {c.name: c for c in read_chapters(chapters_dir)}
    if name not in chapters:
        raise UsageError(f"no chapter '{name}' (chapters: {', '.join(sorted(chapters))})")
    params = dict(params)
    patient_id = params.pop("patient_id", None)
    if patient_id is not None and name != TEMPLATE:
        raise UsageError(f"patient_id is a parameter of the '{TEMPLATE}' chapter only")
    try:
        chosen = Parameters.of(params)
    except ValueError as err:
        raise UsageError(str(err)) from None
    out_dir = Path(out_dir) if out_dir else REVIEW_DIR / chosen.slug()
    report = build.build(
        data_dir,
        out_dir,
        chosen.as_dict(),
        chapters_dir=chapters_dir,
        book_dir=book_dir,
        cache_dir=cache_dir or cache.default_dir(paths.BUILD_DIR),
        echo=echo,
    )
    if name != TEMPLATE:
        return report.out_dir / "html" / f"{name}.html"
    pages = sorted((report.out_dir / "html").glob(f"{TEMPLATE}-*.html"))
    if patient_id is None:
        return pages[0]
    from calcinosis.sections import slug

    page = report.out_dir / "html" / f"{TEMPLATE}-{slug(patient_id)}.html"
    if not page.is_file():
        raise UsageError(f"patient_id {patient_id!r} is not in the data")
    return page
