"""The built HTML site, opened in Debian's Chromium (headless, no network) through Playwright.

Served over http from 127.0.0.1 (the search page reads its index with fetch, which file://
does not allow). Every page: no console error, no failed request, every image decoded;
the home page shows the headline percentages; search finds "GEE"; every caption's code link
lands on the function's source; each page offers its executed notebook for download.
"""

from __future__ import annotations

import functools
import http.server
import json
import re
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.book

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


@pytest.fixture(scope="module")
def site(built_book: Path) -> Iterator[str]:
    """Base URL of the built html/ served on a free local port."""
    html = built_book / "html"
    assert (html / "index.html").is_file(), f"no {html}/index.html"
    handler = functools.partial(_Quiet, directory=str(html))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        pytest.skip("no /usr/bin/chromium (.ci/install-system-deps installs it)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield browser
        browser.close()


def _pages(built_book: Path) -> list[str]:
    html = built_book / "html"
    return sorted(
        p.name
        for p in html.glob("*.html")
        if p.name not in {"genindex.html", "search.html", "py-modindex.html"}
    )


def _visit(browser, url: str):
    """Open `url`; return the page, console errors and failed requests."""
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    errors, failed = [], []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("requestfailed", lambda r: failed.append(r.url))
    page.on("response", lambda r: failed.append(f"{r.status} {r.url}") if r.status >= 400 else None)
    page.goto(url, wait_until="load")
    page.wait_for_load_state("networkidle")
    return page, errors, failed


def test_every_page_loads_cleanly(built_book: Path, site: str, browser) -> None:
    pages = _pages(built_book)
    assert {"index.html", "methods.html", "gee.html", "patient-P1.html"} <= set(pages)
    problems = {}
    for name in pages:
        page, errors, failed = _visit(browser, f"{site}/{name}")
        broken = page.evaluate(
            "Array.from(document.images).filter(i => !(i.complete && i.naturalWidth > 0))"
            ".map(i => i.src)"
        )
        if errors or failed or broken:
            problems[name] = {"console": errors, "failed": failed, "images": broken}
        page.close()
    assert not problems, json.dumps(problems, indent=1)


def test_every_page_says_the_data_are_reconstructed(built_book: Path) -> None:
    missing = [
        name
        for name in _pages(built_book)
        if not name.startswith(("genindex", "search"))
        and "reconstruct" not in (built_book / "html" / name).read_text("utf-8").lower()
    ]
    assert not missing


def test_home_page_shows_headline_percentages(built_book: Path, site: str, browser) -> None:
    results = json.loads((built_book / "results.json").read_text("utf-8"))
    results = results.get("results", results)
    page, _, _ = _visit(browser, f"{site}/index.html")
    text = page.inner_text("main")
    for key in ("gee_length_pct_per_visit", "gee_width_pct_per_visit"):
        assert f"{results[key]:.2f} % per visit" in text, key
    shots = built_book / "screenshots"
    shots.mkdir(exist_ok=True)
    page.screenshot(path=str(shots / "home.png"), full_page=True)
    page.close()
    page, _, _ = _visit(browser, f"{site}/patient-P1.html")
    assert "Patient P1" in page.inner_text("main")
    page.screenshot(path=str(shots / "patient-P1.png"), full_page=True)
    page.close()
    assert (shots / "home.png").stat().st_size > 10_000


def test_search_finds_gee(site: str, browser) -> None:
    page, errors, _ = _visit(browser, f"{site}/search.html?q=GEE")
    page.wait_for_selector("#search-results ul li", timeout=20_000)
    hits = page.locator("#search-results ul li").all_inner_texts()
    assert any("GEE" in hit for hit in hits), hits
    assert not errors
    page.close()


def test_code_links_land_on_the_function(built_book: Path) -> None:
    """Each caption's link to the code that made a figure or table has a target."""
    html = built_book / "html"
    links = set()
    for page in html.glob("*.html"):
        links |= set(
            re.findall(
                r'href="(_modules/calcinosis/[a-z_]+\.html)#([A-Za-z_]+)"', page.read_text("utf-8")
            )
        )
    names = {name for _, name in links}
    assert {"fig_gee_curve", "fig_radiography_paired", "tab_dose_rule"} <= names
    for target, name in sorted(links):
        source = (html / target).read_text("utf-8")
        assert f'id="{name}"' in source, f"{target}#{name}"


def test_pages_offer_their_executed_notebook(built_book: Path) -> None:
    """The download button's .ipynb is the executed notebook: it holds outputs."""
    html = built_book / "html"
    for name in ("index", "gee", "patient-P2"):
        assert f"_sources/{name}.ipynb" in (html / f"{name}.html").read_text("utf-8")
        nb = json.loads((html / "_sources" / f"{name}.ipynb").read_text("utf-8"))
        outputs = [o for c in nb["cells"] if c["cell_type"] == "code" for o in c["outputs"]]
        assert outputs, f"{name}.ipynb has no outputs"
        tags = {t for c in nb["cells"] for t in c.get("metadata", {}).get("tags", [])}
        assert "injected-parameters" in tags


def test_reviewer_page_has_no_unresolved_reference(
    built_book: Path, browser, tmp_path: Path
) -> None:
    """`calcinosis chapter gee -p ...` renders the page inside a whole book: its cross-references,
    citations and source links resolve, and its text follows the parameters."""
    from calcinosis import paths
    from calcinosis.book import review

    page = review.review(
        "gee",
        {"cluster": "patient", "correlation": "independence"},
        paths.DATA_DIR,
        tmp_path / "review",
        cache_dir=built_book.parent / "cache",
        echo=lambda _: None,
    )
    html = page.read_text(encoding="utf-8")
    text = " ".join(re.sub(r"<[^>]+>", " ", html).split())
    assert "methods-model" not in text and "[]" not in text
    assert "an independence working correlation and the patients as the clusters" in text
    for target in re.findall(r'href="([^"#:]+\.html)(?:#[^"]*)?"', html):
        assert (page.parent / target).is_file(), target
    for target, anchor in re.findall(r'href="(_modules/[^"#]+)#([^"]+)"', html):
        assert f'id="{anchor}"' in (page.parent / target).read_text(encoding="utf-8")
    shown = browser.new_page()
    errors = []
    shown.on("pageerror", lambda e: errors.append(str(e)))
    shown.goto(page.as_uri(), wait_until="load")
    assert shown.locator("a.reference.internal").count() > 0 and not errors
    shown.close()
