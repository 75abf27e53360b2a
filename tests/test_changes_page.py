"""The page "Changes from the previous build" (`build --compare-to`), read in Chromium.

A tiny book is built, then again from data whose sites carry markup, math, a file download
and an outside image, and whose data package changes the provenance notice (several lines of
MyST): the changes page shows each as the text it is, runs nothing, copies nothing from
outside the data, and stays one table per kind (no row broken into a paragraph of pipes).
The LaTeX of the PDF holds no `\\input`. Then the real example update (`data/examples/updated`
against the bundled data): no raw Markdown, directive or pipe in what the page shows.
"""

from __future__ import annotations

import base64
import csv
import shutil
from pathlib import Path

import pytest

from calcinosis import paths
from calcinosis.book import build
from calcinosis.book.staging import pdf_missing
from conftest import write_tiny_dataset

pytestmark = [pytest.mark.system, pytest.mark.book]

PAYLOADS = {
    "P1-L1": "<script>alert(1)</script> {download}`../../secret.txt`",
    "P1-L2": "<img src=x onerror=alert(2)> ![x](../../img.png)",
    "P2-L1": "$\\input{/etc/hostname}$ | O'Neil -- as 'typed'",
}
SECRET = "the secret beside the book\n"
# a 1x1 PNG: what `![x](../../img.png)` would copy into _images if it were markup
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)


def _sites(data_dir: Path) -> None:
    path = data_dir / "lesions.csv"
    with path.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.reader(handle))
    for row in rows[1:]:
        row[2] = PAYLOADS.get(row[0], row[2])
    with path.open("w", encoding="utf-8", newline="") as handle:
        csv.writer(handle, lineterminator="\n").writerows(rows)


def _build(data_dir: Path, out: Path, cache: Path, compare_to: Path | None, pdf: bool) -> Path:
    build.build(
        data_dir, out, {}, 2, pdf, cache_dir=cache, compare_to=compare_to, echo=lambda _: None
    )
    return out


@pytest.fixture(scope="module")
def hostile_update(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("changes")
    cache = root / "cache"
    # what the payloads point at, from the staged changes page (cache/sphinx/<out>/_source/)
    for folder in (cache / "sphinx", root):
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "secret.txt").write_text(SECRET, encoding="utf-8")
        (folder / "img.png").write_bytes(PNG)
    old_data = write_tiny_dataset(root / "old-data")
    old = _build(old_data, root / "old", cache, None, False)
    new_data = root / "new-data"
    shutil.copytree(old_data, new_data)
    _sites(new_data)
    pdf = not pdf_missing()
    new = _build(new_data, root / "new", cache, old, pdf)
    return {"old": old, "new": new, "cache": cache, "pdf": pdf}


# Elements a payload would make: scripts, images, frames, math, links to the planted file.
ACTIVE = "main script, main img, main iframe, main a[href*=secret], main .math, main mjx-container"


def _read(browser, url: str, reference: str) -> dict:
    """The page's text (a fold's too, though closed; scripts left out), dialogs opened, and
    the active elements it has that the `reference` page (made without data) has not."""
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))

    def active() -> set[str]:
        return set(
            page.evaluate(
                f"Array.from(document.querySelectorAll('{ACTIVE}')).map(e => e.outerHTML)"
            )
        )

    page.goto(reference, wait_until="load")
    theme = active()
    page.goto(url, wait_until="load")
    page.wait_for_timeout(300)
    seen = {
        "text": page.evaluate(
            "(() => { const a = document.querySelector('main article').cloneNode(true);"
            " a.querySelectorAll('script, style').forEach(e => e.remove());"
            " return a.textContent; })()"
        ),
        "dialogs": dialogs,
        "injected": sorted(active() - theme),
        "rows": page.evaluate(
            "Array.from(document.querySelectorAll('main table')).map(t => t.rows.length)"
        ),
    }
    page.close()
    return seen


RAW = (":::", "```", "{admonition}", "{download}`", "**", "\\|")


def test_hostile_values_are_text_on_the_changes_page(hostile_update: dict, browser) -> None:
    html = hostile_update["new"] / "html"
    seen = _read(browser, (html / "changes.html").as_uri(), (html / "references.html").as_uri())
    assert not seen["dialogs"] and not seen["injected"], seen
    for payload in PAYLOADS.values():
        assert payload in seen["text"], payload  # as typed, not as markup
    assert seen["rows"], "the changes page has tables"
    for raw in RAW:
        assert raw not in seen["text"].replace("{download}`../../secret.txt`", ""), raw


def test_nothing_from_outside_the_data_is_published(hostile_update: dict) -> None:
    out = hostile_update["new"]
    published = {p.read_bytes() for p in out.rglob("*") if p.is_file() and p.stat().st_size < 10**5}
    assert SECRET.encode() not in published and PNG not in published
    names = [p.name for p in (out / "html").rglob("*")]
    assert not any(n.startswith(("secret", "img")) for n in names), names


def test_latex_of_the_changes_page_is_text(hostile_update: dict) -> None:
    if not hostile_update["pdf"]:
        pytest.skip("no LaTeX toolchain: the PDF is checked where it can be built (CI)")
    sources = list((hostile_update["new"] / "logs").glob("latex-*.tex"))
    assert sources, "the PDF's LaTeX source is kept beside the build's logs"
    tex = "".join(p.read_text(encoding="utf-8") for p in sources)
    assert "\\input{/etc/hostname}" not in tex
    assert "\\textbackslash{}input\\{/etc/hostname\\}" in tex


def test_data_text_keeps_its_quotes_and_dashes(hostile_update: dict) -> None:
    """Smart quotes are off for data text only: a site's ' and -- stay as typed in a table
    cell and in a glued sentence; the prose keeps its typographic quotes."""
    html = hostile_update["new"] / "html"
    typed = "O'Neil -- as 'typed'"
    for page in ("cohort.html", "patient-P2.html", "changes.html"):
        text = _visible_text(html / page)
        assert typed in text, page
        assert "O’Neil" not in text and "as ‘typed’" not in text, page
    assert "’" in _visible_text(html / "cohort.html")  # the prose's apostrophes


def _visible_text(page: Path) -> str:
    import html as entities
    import re

    source = page.read_text(encoding="utf-8")
    source = re.sub(r"(?s)<(script|style)\b.*?</\1>", "", source)
    return entities.unescape(re.sub(r"<[^>]+>", "", source))


@pytest.fixture(scope="module")
def example_update(built_book: Path, tmp_path_factory) -> Path:
    """data/examples/updated built with --compare-to the bundled data's book."""
    root = tmp_path_factory.mktemp("update")
    return _build(
        paths.DATA_DIR / "examples" / "updated", root / "out", root / "cache", built_book, False
    )


def test_example_update_shows_no_markup(example_update: Path, browser) -> None:
    html = example_update / "html"
    seen = _read(browser, (html / "changes.html").as_uri(), (html / "references.html").as_uri())
    assert not seen["dialogs"] and not seen["injected"], seen
    for raw in (*RAW, " | ", "{ref}`"):
        assert raw not in seen["text"], raw
    assert "published claims changed verdict" in seen["text"]
    assert len(seen["rows"]) >= 3  # claims, numbers, sentences: each a table of its own
