"""The built HTML site, opened in Debian's Chromium (headless, no network) through Playwright.

Served over http from 127.0.0.1 (the search page reads its index with fetch, which file://
does not allow). Every page: no console error, no failed request, every image decoded;
the home page shows the headline percentages; search finds "GEE"; every caption's code link
lands on the function's source; each page offers its executed notebook for download.

For every reader, at 1400 px and on a 390 px phone, in light and dark mode: the menu opens on
the phone and leads to a chapter, the sidebar collapses on the desktop, no page scrolls
sideways on the phone, every table's caption is whole and outside its scroll box; the home
page links the book's PDF and the supplement, which are in the site.
"""

from __future__ import annotations

import functools
import http.server
import json
import os
import re
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import seeded_cache

pytestmark = pytest.mark.book


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


def _pages(built_book: Path) -> list[str]:
    html = built_book / "html"
    return sorted(
        p.name
        for p in html.glob("*.html")
        if p.name not in {"genindex.html", "search.html", "py-modindex.html"}
    )


PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1400, "height": 900}
DARK = "localStorage.setItem('mode', 'dark'); localStorage.setItem('theme', 'dark');"


@pytest.fixture(scope="module", params=["light", "dark"])
def reader(request, browser):
    """A browser context in the reader's colour mode (the theme keeps it in localStorage)."""
    context = browser.new_context()
    if request.param == "dark":
        context.add_init_script(DARK)
    yield request.param, context
    context.close()


def _open(context, url: str, viewport: dict, mode: str):
    page = context.new_page()
    page.set_viewport_size(viewport)
    page.goto(url, wait_until="load")
    assert page.evaluate("document.documentElement.dataset.theme") == mode
    return page


def _screenshots(built_book: Path) -> Path:
    """Where screenshots go: $CALCINOSIS_SCREENSHOTS, else beside the built book."""
    folder = Path(os.environ.get("CALCINOSIS_SCREENSHOTS") or built_book / "screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _listen(page) -> tuple[list[str], list[str]]:
    """The page's console errors and failed requests, filled in as it loads."""
    errors: list[str] = []
    failed: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("requestfailed", lambda r: failed.append(r.url))
    page.on("response", lambda r: failed.append(f"{r.status} {r.url}") if r.status >= 400 else None)
    return errors, failed


def _visit(browser, url: str):
    """Open `url`; return the page, console errors and failed requests."""
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    errors, failed = _listen(page)
    page.goto(url, wait_until="load")
    page.wait_for_load_state("networkidle")
    return page, errors, failed


_CAPTIONS = """() => Array.from(document.querySelectorAll('main table')).map(t => {
    const box = t.closest('.pst-scrollable-table-container');
    const caption = t.closest('figure.calcinosis-table')?.querySelector(':scope > figcaption');
    const r = caption?.getBoundingClientRect();
    return {id: t.id, boxed: !!box, inner: !!t.querySelector('caption'),
            caption: caption ? caption.innerText : null,
            inBox: !!(caption && box && box.contains(caption)),
            whole: !!(caption && caption.scrollWidth <= caption.clientWidth),
            inView: !!(r && r.width > 0 && r.left >= 0 && r.right <= window.innerWidth)};
})"""

_OVERFLOW = """() => Array.from(document.querySelectorAll('main .pst-scrollable-table-container'))
    .map(b => ({id: b.querySelector('table')?.id, over: b.scrollWidth - b.clientWidth,
                cue: b.classList.contains('calcinosis-scrolls')}))"""

# What a loaded page shows, read in one evaluation: every check below reads from it
_SHOWN = (
    """() => ({
    theme: document.documentElement.dataset.theme,
    broken: Array.from(document.images).filter(i => !(i.complete && i.naturalWidth > 0))
        .map(i => i.src),
    scroll: [document.documentElement.scrollWidth, document.documentElement.clientWidth],
    captions: ("""
    + _CAPTIONS
    + """)(),
    overflow: ("""
    + _OVERFLOW
    + """)(),
    figures: [...document.querySelectorAll('.bd-article figure[id]')].filter(f =>
        f.querySelector('img')).map(f => [f.id, f.querySelector('img')
        .getBoundingClientRect().width]),
})"""
)
VIEWPORTS = {"1400px": DESKTOP, "390px": PHONE}
CLEAN_LOAD = ("light", "1400px")  # the load that waits for the network to go quiet


@pytest.fixture(scope="module")
def seen(built_book: Path, site: str, browser) -> dict[tuple[str, str], dict[str, dict]]:
    """Every page of the site opened once per colour mode and viewport (light and dark, 1 400
    px and a 390 px phone): (mode, viewport id) -> page name -> what it showed (`_SHOWN`) and
    its console errors and failed requests. The page checks below each read the loads they
    concern, so a page is opened four times, not once per check (it was nine times)."""
    names = sorted(p.name for p in (built_book / "html").glob("*.html"))
    loads: dict[tuple[str, str], dict[str, dict]] = {}
    for mode in ("light", "dark"):
        context = browser.new_context()
        if mode == "dark":
            context.add_init_script(DARK)
        for size, viewport in VIEWPORTS.items():
            loads[mode, size] = {}
            page = context.new_page()  # one tab per pass: a new tab per page costs twice
            page.set_viewport_size(viewport)
            errors, failed = _listen(page)
            for name in names:
                errors.clear()
                failed.clear()
                page.goto(f"{site}/{name}", wait_until="load")
                if (mode, size) == CLEAN_LOAD:
                    page.wait_for_load_state("networkidle")
                loads[mode, size][name] = {
                    **page.evaluate(_SHOWN),
                    "console": list(errors),
                    "failed": list(failed),
                }
            page.close()
        context.close()
    return loads


def _in_mode(seen: dict, mode: str, size: str) -> dict[str, dict]:
    """The loads of one mode and viewport, each page shown in that mode."""
    loads = seen[mode, size]
    wrong = {name: shown["theme"] for name, shown in loads.items() if shown["theme"] != mode}
    assert not wrong, f"not in {mode} mode: {wrong}"
    return loads


def test_every_page_loads_cleanly(built_book: Path, seen: dict) -> None:
    """No console error, failed request or undecoded image on any page, once the network is
    quiet (the light desktop load)."""
    pages = _pages(built_book)
    assert {"index.html", "methods.html", "gee.html", "patient-P1.html"} <= set(pages)
    problems = {}
    loads = _in_mode(seen, *CLEAN_LOAD)
    for name in pages:
        errors, failed, broken = (loads[name][key] for key in ("console", "failed", "broken"))
        if errors or failed or broken:
            problems[name] = {"console": errors, "failed": failed, "images": broken}
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
    from calcinosis.formatting import signed_pct

    results = json.loads((built_book / "results.json").read_text("utf-8"))
    results = results.get("results", results)
    page, _, _ = _visit(browser, f"{site}/index.html")
    text = page.inner_text("main")
    for key in ("gee_length_pct_per_visit", "gee_width_pct_per_visit"):
        assert f"{signed_pct(results[key])} per visit" in text, key
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
                r'href="(_modules/calcinosis/[a-z_/]+\.html)#([A-Za-z_]+)"', page.read_text("utf-8")
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


@pytest.mark.xdist_group("review")  # a book of its own: beside the module's browser tests
def test_reviewer_page_has_no_unresolved_reference(
    built_book: Path, browser, tmp_path: Path
) -> None:
    """`calcinosis chapter gee -p cluster=patient` renders the page inside a whole book: its
    cross-references, citations and source links resolve, and its text follows the
    parameters. On the bundled data the exchangeable model with patient clusters cannot be
    estimated for length (it diverges): the page says so in words, and the build goes on."""
    from calcinosis import paths
    from calcinosis.book import review

    page = review.review(
        "gee",
        {"cluster": "patient"},
        paths.DATA_DIR,
        tmp_path / "review",
        cache_dir=seeded_cache(built_book, tmp_path / "cache"),
        echo=lambda _: None,
    )
    html = page.read_text(encoding="utf-8")
    text = " ".join(re.sub(r"<[^>]+>", " ", html).split())
    assert "methods-model" not in text and "[]" not in text
    assert "an exchangeable working correlation and the patients as the clusters" in text
    assert "not estimable" in text and not re.search(r"\bnan\b", text)
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


def test_phone_menu_opens_and_leads_to_a_chapter(built_book: Path, site: str, reader) -> None:
    mode, context = reader
    page = _open(context, f"{site}/index.html", PHONE, mode)
    toggle = page.locator(".primary-toggle:visible")
    assert toggle.count() == 1
    toggle.click()
    menu = page.locator("#pst-primary-sidebar-modal")
    assert menu.evaluate("d => d.open")
    link = menu.get_by_role("link", name="GEE analysis")
    assert link.is_visible() and link.bounding_box()["x"] >= 0
    if mode == "light":
        page.screenshot(path=str(_screenshots(built_book) / "phone-menu.png"))
    link.click()
    page.wait_for_url("**/gee.html")
    assert page.get_by_role("heading", name="GEE analysis", level=1).is_visible()
    page.close()


def test_desktop_sidebar_collapses_and_comes_back(site: str, reader) -> None:
    mode, context = reader
    page = _open(context, f"{site}/gee.html", DESKTOP, mode)
    sidebar = page.locator("#pst-primary-sidebar")
    article = page.locator(".bd-article-container")
    assert sidebar.is_visible()
    width = article.bounding_box()["width"]
    page.locator(".primary-toggle:visible").click()
    page.wait_for_timeout(600)  # the theme's transition
    assert not sidebar.is_visible()
    assert article.bounding_box()["width"] > width  # the text takes the room
    page.locator(".primary-toggle:visible").click()
    page.wait_for_timeout(600)
    assert sidebar.is_visible()
    page.close()


@pytest.mark.parametrize("mode", ["light", "dark"])
def test_no_page_scrolls_sideways_on_a_phone(seen: dict, mode: str) -> None:
    wide = {}
    for name, shown in sorted(_in_mode(seen, mode, "390px").items()):
        scroll, client = shown["scroll"]
        if scroll > client:
            wide[name] = scroll
    assert not wide, f"wider than {PHONE['width']} px: {wide}"


@pytest.mark.parametrize("mode", ["light", "dark"])
@pytest.mark.parametrize("size", VIEWPORTS)
def test_every_table_caption_is_whole_and_outside_its_scroll_box(
    built_book: Path, seen: dict, mode: str, size: str
) -> None:
    loads = _in_mode(seen, mode, size)
    problems, numbered = {}, 0
    for name in _pages(built_book):
        for table in loads[name]["captions"]:
            if not table["id"]:
                continue  # an unnumbered table (no caption to keep)
            numbered += 1
            ok = table["caption"] and not table["inner"] and not table["inBox"]
            if not (ok and table["whole"] and table["inView"]):
                problems[f"{name}#{table['id']}"] = table
    assert numbered >= 12 and not problems, json.dumps(problems, indent=1)


def test_phone_table_keeps_its_first_column_in_view(built_book: Path, site: str, reader) -> None:
    """A wide table scrolls in its box; its first column (the row's name) stays, drawn in
    the page's own colour (so dark mode stays dark)."""
    mode, context = reader
    page = _open(context, f"{site}/gee.html", PHONE, mode)
    table = page.locator("#tab-gee-length")
    table.evaluate("t => t.closest('figure').scrollIntoView()")
    box = table.evaluate("t => t.parentElement.getBoundingClientRect().left")
    table.evaluate("t => { t.parentElement.scrollLeft = 200 }")
    first = table.locator("tbody tr td").first
    assert abs(first.bounding_box()["x"] - box) < 1
    colours = page.evaluate(
        "[getComputedStyle(document.querySelector('#tab-gee-length td')).backgroundColor,"
        " getComputedStyle(document.body).backgroundColor]"
    )
    assert colours[0] == colours[1]
    if mode == "light":
        page.screenshot(path=str(_screenshots(built_book) / "phone-wide-table.png"))
    page.close()


def test_home_page_links_the_book_pdf_and_the_supplement(built_book: Path, site: str, browser):
    html = built_book / "html"
    page, _, failed = _visit(browser, f"{site}/index.html")
    links = dict(
        page.evaluate(
            "Array.from(document.querySelectorAll('ul.calcinosis-downloads a'))"
            ".map(a => [a.textContent, a.getAttribute('href')])"
        )
    )
    pdfs = sorted((built_book / "pdf").glob("*.pdf"))
    expected = {"The supplement": "downloads/supplement.zip"}
    if pdfs:
        expected["The book as PDF"] = f"downloads/{pdfs[0].name}"
    else:
        assert "No PDF of the book was built" in page.inner_text("main")
    assert links == expected
    assert (html / expected["The supplement"]).read_bytes() == (
        built_book / "supplement.zip"
    ).read_bytes()
    if pdfs:
        assert (html / expected["The book as PDF"]).read_bytes() == pdfs[0].read_bytes()
    for href in links.values():  # served, and opened from disk (relative links)
        assert page.request.get(f"{site}/{href}").ok
        assert (html / href).is_file()
    page.close()


def test_download_menu_pdf_is_the_book(built_book: Path) -> None:
    pdfs = sorted((built_book / "pdf").glob("*.pdf"))
    for name in ("index.html", "gee.html", "patient-P2.html"):
        html = (built_book / "html" / name).read_text("utf-8")
        assert "window.print()" not in html, name
        assert (f'href="downloads/{pdfs[0].name}"' in html) == bool(pdfs), name


def test_no_repository_or_binder_button_without_a_repository_url(built_book: Path) -> None:
    for page in (built_book / "html").glob("*.html"):
        html = page.read_text("utf-8")
        assert "mybinder.org" not in html and "btn-source-repository-button" not in html, page


def test_downloaded_notebooks_hold_no_builder_path(built_book: Path) -> None:
    from calcinosis import paths

    for notebook in (built_book / "html" / "_sources").glob("*.ipynb"):
        text = notebook.read_text("utf-8")
        assert str(paths.ROOT) not in text and str(built_book.parent) not in text, notebook
        params = json.loads(text)["metadata"]["papermill"]["parameters"]
        assert params["data_dir"] == "data" and params["results_dir"] == "", notebook


def test_the_site_holds_no_path_of_the_build_machine(built_book: Path) -> None:
    """No page, source, script or data file of the site names the checkout, the data folder
    or the output folder of the machine that built it (issue 22: the API appendix's
    defaults and warnings did)."""
    from calcinosis import paths

    own = {str(paths.ROOT), str(paths.DATA_DIR.resolve()), str(built_book.parent)}
    found = []
    for path in sorted((built_book / "html").rglob("*")):
        if path.suffix not in {".html", ".ipynb", ".js", ".txt", ".json", ".md", ".csv"}:
            continue
        text = path.read_text("utf-8", errors="replace")
        found += [f"{path.relative_to(built_book)}: {p}" for p in own if p in text]
    assert not found, "\n".join(found)


def test_a_table_wider_than_the_screen_says_it_scrolls(built_book: Path, site: str, reader):
    """On a phone the GEE table is cut at the screen's edge: a cue above it says that more
    columns follow, and stays in view as the table scrolls; a table that fits has none."""
    mode, context = reader
    page = _open(context, f"{site}/gee.html", PHONE, mode)
    box = page.locator("#tab-gee-length").locator("xpath=..")
    assert "calcinosis-scrolls" in (box.get_attribute("class") or "")
    cue = "el => getComputedStyle(el, '::before').content"
    assert "Scroll sideways" in box.evaluate(cue)
    if mode == "light":
        box.evaluate("b => b.closest('figure').scrollIntoView()")
        page.screenshot(path=str(_screenshots(built_book) / "phone-gee-table.png"))
    page.set_viewport_size(DESKTOP)
    page.wait_for_function(
        "() => !document.querySelector('#tab-gee-length').parentElement"
        ".classList.contains('calcinosis-scrolls')"
    )
    page.close()


def test_the_title_leaves_the_first_phone_screen_to_the_text(site: str, reader) -> None:
    """On a phone the home page's title takes at most a fifth of the first screen and does
    not run past the screen's edge."""
    mode, context = reader
    page = _open(context, f"{site}/index.html", PHONE, mode)
    box = page.locator(".bd-article h1").first.bounding_box()
    assert box["height"] <= PHONE["height"] / 5
    assert page.evaluate("document.querySelector('.bd-article h1').scrollWidth") <= PHONE["width"]
    page.close()


def test_desk_tables_fit_or_say_they_scroll(built_book: Path, seen: dict) -> None:
    """At 1 400 px the sensitivity grid (Table 8.1, whose notes were cut) fits its text
    column; any other table wider than its box says it scrolls (issue 22)."""
    loads = _in_mode(seen, "light", "1400px")
    widths, silent = {}, []
    for name in _pages(built_book):
        for box in loads[name]["overflow"]:
            widths[box["id"]] = box["over"]
            if box["over"] > 1 and not box["cue"]:
                silent.append(f"{name}#{box['id']}: {box['over']} px")
    assert widths["tab-sensitivity"] <= 1, widths["tab-sensitivity"]
    assert not silent, silent


def test_every_figure_reads_on_a_phone(built_book: Path, seen: dict) -> None:
    """On a 390 px phone the smallest text of every figure is at least 9 CSS px: its size in
    the figure (the supplement's SVG, in pt) times the scale at which the page shows the
    image. Figures drawn at a page's text width showed it at about 5 px (Figure 4.1, 4.2);
    Figure 9.1 was redrawn narrow, the others keep a legible width and scroll in their box,
    and the page itself never scrolls sideways."""
    svgs = {p.stem: p for p in (built_book / "supplement" / "figures").glob("*.svg")}
    checked, small = [], []
    for name, shown in sorted(_in_mode(seen, "light", "390px").items()):
        assert shown["scroll"][0] <= PHONE["width"], name
        for figure_id, width in shown["figures"]:
            svg = svgs.get(figure_id.replace("-", "_"))
            if svg is None:
                continue
            text = svg.read_text("utf-8")
            width_pt = float(re.search(r'<svg[^>]* width="([\d.]+)pt"', text).group(1))
            smallest_pt = min(float(s) for s in re.findall(r"font-size: ([\d.]+)px", text))
            checked.append(figure_id)
            if smallest_pt * width / width_pt < 9:
                small.append((name, figure_id, round(smallest_pt * width / width_pt, 1)))
    assert {"fig-gee-curve", "fig-gee-checks", "fig-pinned"} <= set(checked), checked
    assert not small, small


def test_glued_sentences_read_as_the_text_around_them(site: str, browser) -> None:
    """myst-nb sets glued values in bold; the GEE page glues whole sentences (a wall of bold
    on a phone): a glued text has the weight of its surroundings (issue 22's screenshots)."""
    page = browser.new_page(viewport=PHONE)
    page.goto(f"{site}/gee.html", wait_until="load")
    weights = page.evaluate(
        "Array.from(document.querySelectorAll('main span.pasted-text')).map(s =>"
        " [getComputedStyle(s).fontWeight, getComputedStyle(s.parentElement).fontWeight])"
    )
    page.close()
    assert len(weights) > 5 and all(own == around for own, around in weights), weights
