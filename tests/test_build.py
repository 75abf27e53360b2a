"""The build pipeline on a tiny book (real results stage, tiny chapters), built once per module
and copied for each test that changes something.

The tiny book has the real book's shape: a root page, a page with the analysis parameters,
pages that show safety and radiography, the `patients` overview and the `patient` template
run once per patient, glue in the prose.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from calcinosis import cli, errors, paths
from calcinosis.book import build, review
from calcinosis.data import schema
from conftest import once_per_run, write_tiny_dataset

pytestmark = pytest.mark.system

HEADER = """---
jupytext:
  text_representation:
    extension: .md
    format_name: myst
kernelspec:
  name: python3
  display_name: Python 3
  language: python
---
"""
PARAMS = """```{code-cell} ipython3
:tags: [parameters]
data_dir = "../data"
results_dir = ""
correlation = "exchangeable"
cluster = "lesion"
"""


def chapter(title: str, sections: str, prose: str, extra: str = "") -> str:
    return (
        f"\n# {title}\n\n{PARAMS}{extra}```\n\n```{{code-cell}} ipython3\n"
        "from calcinosis.book.page import show, show_patient\n"
        f"shown = {sections}\n```\n\n{prose}\n"
    )


CHAPTERS = {
    "intro": chapter(
        "Introduction",
        'show("design", results_dir=results_dir)',
        "The trial has {glue:text}`n_patients` patients.",
    ),
    "summary": chapter(
        "Summary",
        'show("gee", results_dir=results_dir, correlation=correlation, cluster=cluster)',
        "Length changes by {glue:text}`gee_length_pct_per_visit:.3f` % per visit with "
        "{glue:text}`gee_correlation_phrase`.",
    ),
    "safety": chapter(
        "Safety",
        'show("safety", results_dir=results_dir)',
        "Adverse events: {glue:text}`n_adverse_events`.",
    ),
    "radiography": chapter(
        "Radiography",
        'show("radiography", results_dir=results_dir)',
        "Mean length before: {glue:text}`rad_baseline_length_mean:.2f` mm.",
    ),
    "patients": "\n# Patients\n\nOne page per patient follows.\n",
    "patient": chapter(
        "Patient {glue:text}`patient_id`",
        "show_patient(patient_id, results_dir=results_dir)",
        "Lesions of this patient: {glue:text}`course_n_lesions`.",
        extra='patient_id = "P1"\n',
    ),
}
BROKEN = (
    chapter("Broken", 'show("design", results_dir=results_dir)', "")
    + """
```{code-cell} ipython3
raise ValueError("the lesion table is upside down")
```
"""
)
CONFIG = "title: Tiny book\nauthor: Test\n"
TOC = """format: jb-book
root: intro
chapters:
- file: summary
- file: safety
- file: radiography
- file: patients
"""


def make_tiny_book(root: Path, data_dir: Path) -> dict:
    """chapters/ and book/ under `root`; returns the keyword arguments of `build.build`."""
    (root / "chapters").mkdir(parents=True)
    (root / "book").mkdir()
    for name, body in CHAPTERS.items():
        (root / "chapters" / f"{name}.md").write_text(HEADER + body, encoding="utf-8")
    (root / "book" / "_config.yml").write_text(CONFIG, encoding="utf-8")
    (root / "book" / "_toc.yml").write_text(TOC, encoding="utf-8")
    return kwargs_for(root, data_dir)


def kwargs_for(root: Path, data_dir: Path | None = None) -> dict:
    return {
        "data_dir": data_dir or root / "data",
        "out_dir": root / "out",
        "jobs": 2,
        "pdf": False,
        "chapters_dir": root / "chapters",
        "book_dir": root / "book",
        "cache_dir": root / "cache",
        "echo": lambda _: None,
    }


def edit_csv(path: Path, row: int, column: str, value: str) -> None:
    """Set `column` of data row `row` (0-based) of a CSV file to `value`."""
    lines = path.read_text(encoding="utf-8").splitlines()
    header = lines[0].split(",")
    cells = lines[row + 1].split(",")
    cells[header.index(column)] = value
    lines[row + 1] = ",".join(cells)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def tree_bytes(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def page_text(out: Path) -> dict[str, str]:
    """The words of every page's main content (no scripts, styles or tags)."""
    texts = {}
    for path in sorted((out / "html").glob("*.html")):
        html = path.read_text(encoding="utf-8")
        main = html[html.find("<main") : html.find("</main>")]
        main = re.sub(r"<(script|style)\b.*?</\1>", " ", main, flags=re.S)
        words = " ".join(re.sub(r"<[^>]+>", " ", main).split())
        texts[path.name] = re.sub(r" ([.,;:)])", r"\1", words)
    return texts


@pytest.fixture(scope="session")
def built_root(tmp_path_factory) -> Path:
    """The tiny book built once for the test run, whatever the number of xdist workers (so
    the incremental builds below can run apart from the module): root/{data,chapters,book,
    out,cache}. Read-only: each test works on a copy (`built_tiny`)."""

    def make(root: Path) -> None:
        write_tiny_dataset(root / "data")
        report = build.build(**make_tiny_book(root, root / "data"))
        assert len(report.executed) == 6, report.executed

    return once_per_run(tmp_path_factory, "tiny-book", make)


@pytest.fixture
def built_tiny(built_root: Path, tmp_path: Path) -> dict:
    """A copy of the built tiny book (data, chapters, output and cache) for one test."""
    root = tmp_path / "root"
    shutil.copytree(built_root, root, symlinks=True)
    return kwargs_for(root)


# --------------------------------------------------------------------------------------------
# A page re-executes only when something it shows changed, and is never stale
# --------------------------------------------------------------------------------------------


def test_no_change_rebuild_executes_nothing(built_tiny: dict) -> None:
    out = built_tiny["out_dir"]
    before = tree_bytes(out)
    report = build.build(**built_tiny)
    assert report.up_to_date and report.executed == [] and report.computed == []
    assert tree_bytes(out) == before  # not even rewritten


def test_adverse_event_reexecutes_only_the_safety_page(built_tiny: dict) -> None:
    events = built_tiny["data_dir"] / "adverse_events.csv"
    with events.open("a", encoding="utf-8") as handle:
        handle.write("P1,2,injection-site pain,mild,yes\n")
    report = build.build(**built_tiny)
    assert report.executed == ["safety"]
    assert "safety" in report.computed and "gee" not in report.computed
    assert "Adverse events: 1." in page_text(built_tiny["out_dir"])["safety.html"]


def test_an_edited_reconstruction_changes_every_notice_and_reexecutes_only_safety(
    built_tiny: dict,
) -> None:
    data_dir = built_tiny["data_dir"]
    hashes = {p.stem: hashlib.sha256(p.read_bytes()).hexdigest() for p in data_dir.glob("*.csv")}
    package = schema.datapackage({"reconstruction": True}, hashes)
    (data_dir / "datapackage.json").write_text(json.dumps(package), encoding="utf-8")
    declared = build.build(**built_tiny)
    executed = ["intro", "patient-P1", "patient-P2", "radiography", "safety", "summary"]
    assert sorted(declared.executed) == [] and sorted(declared.cached) == executed
    texts = page_text(built_tiny["out_dir"])
    assert all("Reconstructed data" in texts[f"{page}.html"] for page in executed)
    with (data_dir / "adverse_events.csv").open("a", encoding="utf-8") as handle:
        handle.write("P1,2,injection-site pain,mild,yes\n")
    report = build.build(**built_tiny)
    assert report.executed == ["safety"]
    texts = page_text(built_tiny["out_dir"])
    for page in executed:
        assert "Reconstructed data" not in texts[f"{page}.html"], page
        assert "adverse_events.csv no longer matches" in texts[f"{page}.html"], page


def test_radiograph_reexecutes_only_the_radiography_page(built_tiny: dict) -> None:
    edit_csv(built_tiny["data_dir"] / "radiography.csv", 0, "length_mm", "23")
    report = build.build(**built_tiny)
    assert report.executed == ["radiography"]


def test_data_readme_reexecutes_nothing(built_tiny: dict) -> None:
    (built_tiny["data_dir"] / "README.md").write_text("# notes on the data\n")
    report = build.build(**built_tiny)
    assert report.executed == [] and report.computed == []


EDITS = {
    "patients": (0, "age_years", "10"),
    "lesions": (0, "dose_mg", "20"),
    "measurements": (0, "length_mm", "29"),
    "radiography": (1, "width_mm", "12"),
    "adverse_events": None,  # appended below: the bundled table has no rows
}


@pytest.mark.parametrize(  # three builds each: each case its own xdist group
    "table",
    [pytest.param(t, marks=pytest.mark.xdist_group(f"incremental-{t}")) for t in sorted(EDITS)],
)
def test_incremental_build_equals_clean_build(built_tiny: dict, table: str, tmp_path: Path) -> None:
    data_dir = built_tiny["data_dir"]
    manifest = built_tiny["out_dir"] / "manifest.json"  # a stale key: rebuilt, so that
    manifest.write_text(json.dumps({**json.loads(manifest.read_text()), "build_key": ""}))
    build.build(**built_tiny)  # Sphinx's workspace is made here, the edit then updates it
    if EDITS[table] is None:
        with (data_dir / "adverse_events.csv").open("a", encoding="utf-8") as handle:
            handle.write("P2,3,fever,moderate,no\n")
    else:
        edit_csv(data_dir / f"{table}.csv", *EDITS[table])
    incremental = build.build(**built_tiny)
    clean = build.build(
        **{**built_tiny, "out_dir": tmp_path / "clean", "cache_dir": tmp_path / "clean-cache"}
    )
    assert len(clean.executed) == 6  # really clean
    assert len(incremental.executed) < 6 or table == "patients"
    old, new = incremental.out_dir, clean.out_dir
    assert (old / "results.json").read_bytes() == (new / "results.json").read_bytes()
    assert page_text(old) == page_text(new)


# --------------------------------------------------------------------------------------------
# Parameters reach everything
# --------------------------------------------------------------------------------------------


def test_parameters_reach_results_supplement_manifest_and_compare(
    built_tiny: dict, tmp_path: Path
) -> None:
    default = built_tiny["out_dir"]
    other = tmp_path / "independence"
    report = build.build(
        **{**built_tiny, "out_dir": other, "params": {"correlation": "independence"}}
    )
    assert "summary" in report.executed and "intro" not in report.executed
    old = json.loads((default / "results.json").read_text())
    new = json.loads((other / "results.json").read_text())
    assert new["gee_length_pct_per_visit"] != old["gee_length_pct_per_visit"]
    assert new["gee_correlation"] == "independence"
    assert (
        json.loads((other / "supplement" / "parameters.json").read_text())["correlation"]
        == "independence"
    )
    manifest = json.loads((other / "manifest.json").read_text())
    assert manifest["changed_parameters"] == {"correlation": "independence"}
    assert "independence working correlation" in page_text(other)["summary.html"]
    result = CliRunner().invoke(cli.main, ["compare", str(default), str(other)])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith("1 parameters differ")
    parameters_at = next(i for i, line in enumerate(lines) if line.startswith("correlation"))
    result_at = next(
        i for i, line in enumerate(lines) if line.startswith("gee_length_pct_per_visit")
    )
    assert parameters_at < result_at


def test_unknown_parameter_is_a_usage_error(built_tiny: dict) -> None:
    with pytest.raises(errors.UsageError, match="no parameter named scael"):
        build.build(**{**built_tiny, "params": {"scael": "2"}})
    with pytest.raises(errors.UsageError, match="correlation='banana'"):
        build.build(**{**built_tiny, "params": {"correlation": "banana"}})


def test_reviewer_page_is_built_inside_a_book_named_after_the_parameters(
    built_tiny: dict, tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.setattr(review, "REVIEW_DIR", tmp_path / "_review")
    before = tree_bytes(built_tiny["out_dir"])
    page = review.review(
        "summary",
        {"cluster": "patient"},
        built_tiny["data_dir"],
        chapters_dir=built_tiny["chapters_dir"],
        book_dir=built_tiny["book_dir"],
        cache_dir=built_tiny["cache_dir"],
        echo=lambda _: None,
    )
    assert page == tmp_path / "_review" / "cluster-patient" / "html" / "summary.html"
    default = page_text(built_tiny["out_dir"])["summary.html"]
    reviewed = page_text(page.parents[1])["summary.html"]
    number = re.compile(r"Length changes by (\S+) %")
    assert number.search(reviewed).group(1) != number.search(default).group(1)
    assert (page.parent / "intro.html").is_file()  # the whole book, so links resolve
    assert tree_bytes(built_tiny["out_dir"]) == before


def test_a_chapters_own_parameter_reaches_its_page_and_its_downloaded_notebook(
    built_tiny: dict, tmp_path: Path, monkeypatch
) -> None:
    """`calcinosis chapter NAME -p` takes what the chapter's parameters cell declares, typed
    as its default; the page's downloaded notebook runs again with papermill from the
    repository's root with any -p, its data folder kept."""
    import papermill

    monkeypatch.setattr(review, "REVIEW_DIR", tmp_path / "_review")
    safety = built_tiny["chapters_dir"] / "safety.md"
    safety.write_text(
        HEADER
        + chapter(
            "Safety",
            'show("safety", data_dir=data_dir, results_dir=results_dir)\n'
            'print(f"level is {level!r}")',
            "Adverse events: {glue:text}`n_adverse_events`.",
            extra="level = 0.05\n",
        ),
        encoding="utf-8",
    )
    kwargs = {k: built_tiny[k] for k in ("chapters_dir", "book_dir", "cache_dir", "echo")}
    for wrong, message in (
        ({"level": "high"}, "parameter level: 'high' is not a number"),
        ({"alpha": "0.01"}, "no parameter alpha (its parameters: correlation, cluster, level)"),
        ({"data_dir": "x"}, "set by the command"),
    ):
        with pytest.raises(errors.UsageError, match=re.escape(message)):
            review.review("safety", wrong, built_tiny["data_dir"], **kwargs)
    page = review.review("safety", {"level": "1e-2"}, built_tiny["data_dir"], **kwargs)
    assert page == tmp_path / "_review" / "safety_level-0.01" / "html" / "safety.html"
    assert "level is 0.01" in page.read_text(encoding="utf-8")
    downloaded = page.parent / "_sources" / "safety.ipynb"
    ran = tmp_path / "ran.ipynb"
    papermill.execute_notebook(
        str(downloaded),
        str(ran),
        parameters={"level": 0.5},
        cwd=str(paths.ROOT),
        kernel_name="python3",
        progress_bar=False,
    )
    text = ran.read_text(encoding="utf-8")
    assert "level is 0.5" in text and "Adverse events" in text
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    with pytest.raises(papermill.PapermillExecutionError, match="pass -p data_dir PATH"):
        papermill.execute_notebook(
            str(downloaded),
            str(ran),
            parameters={"level": 0.5},
            cwd=str(elsewhere),
            kernel_name="python3",
            progress_bar=False,
        )


# --------------------------------------------------------------------------------------------
# Failures leave the last good book
# --------------------------------------------------------------------------------------------


def test_failing_chapter_keeps_previous_out_and_names_the_chapter(built_tiny: dict) -> None:
    out = built_tiny["out_dir"]
    before = tree_bytes(out)
    (built_tiny["chapters_dir"] / "broken.md").write_text(HEADER + BROKEN, encoding="utf-8")
    with pytest.raises(errors.BuildError) as failed:
        build.build(**built_tiny)
    message = str(failed.value)
    assert "chapter 'broken' failed in cell [4]" in message
    assert "ValueError: the lesion table is upside down" in message
    assert tree_bytes(out) == before
    builds = built_tiny["cache_dir"] / "builds"  # the build's own folders live in the cache
    (failed,) = builds.glob("out-*.failed")
    kept = failed / "notebooks" / "broken.ipynb"
    assert kept.is_file() and str(kept) in message
    assert not list(builds.glob("*.tmp-*")) and not list(out.parent.glob("out.*"))


def test_invalid_data_writes_nothing(built_tiny: dict) -> None:
    data_dir = built_tiny["data_dir"]
    edit_csv(data_dir / "measurements.csv", 1, "length_mm", "-5")
    runner = CliRunner()
    validate = runner.invoke(cli.main, ["validate", str(data_dir)])
    assert validate.exit_code == 2
    root = built_tiny["out_dir"].parent
    before = tree_bytes(root / "out")
    with pytest.raises(errors.InvalidData) as invalid:
        build.build(**built_tiny)
    assert str(invalid.value) == validate.output.rstrip("\n")
    result = runner.invoke(
        cli.main,
        [
            "build",
            "--data",
            str(data_dir),
            "--out",
            str(root / "new"),
            "--cache",
            str(root / "new-cache"),
        ],
    )
    assert result.exit_code == 2 and result.output == validate.output
    assert not (root / "new").exists() and not (root / "new-cache").exists()
    assert tree_bytes(root / "out") == before


def test_out_must_be_a_build_folder(built_tiny: dict, tmp_path: Path) -> None:
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "thesis.tex").write_text("years of work")
    with pytest.raises(errors.UsageError, match="did not make"):
        build.build(**{**built_tiny, "out_dir": precious})
    assert (precious / "thesis.tex").read_text() == "years of work"


def test_only_folders_a_build_made_are_replaced(built_tiny: dict, tmp_path: Path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    (site / "manifest.json").write_text("{}")  # someone else's manifest
    (site / "index.html").write_text("my own site")
    with pytest.raises(errors.UsageError, match="did not make"):
        build.build(**{**built_tiny, "out_dir": site})
    assert (site / "index.html").read_text() == "my own site"


def test_two_builds_never_write_one_folder_at_once(built_tiny: dict, tmp_path: Path) -> None:
    from calcinosis.book.output import exclusive

    before = tree_bytes(built_tiny["out_dir"])
    with exclusive(Path(built_tiny["out_dir"]).resolve()):  # a build holds it
        for cache_dir in (built_tiny["cache_dir"], tmp_path / "another-cache"):
            with pytest.raises(errors.UsageError, match="another calcinosis command is writing"):
                build.build(**{**built_tiny, "cache_dir": cache_dir})
    assert tree_bytes(built_tiny["out_dir"]) == before
    assert not (tmp_path / "another-cache").exists() or not any(
        (tmp_path / "another-cache").rglob("*.ipynb")
    )


def test_operating_system_error_is_one_message(built_tiny: dict) -> None:
    out = Path("/proc/calcinosis/out")  # not writable, not even by root
    result = CliRunner().invoke(
        cli.main,
        [
            "build",
            "--data",
            str(built_tiny["data_dir"]),
            "--out",
            str(out),
            "--cache",
            str(built_tiny["cache_dir"]),
        ],
    )
    assert result.exit_code == 1
    assert result.output.splitlines()[-1].startswith("error: could not write /proc/calcinosis")
    assert "Traceback" not in result.output


def test_corrupt_cache_entry_is_made_again(built_tiny: dict) -> None:
    cache_dir = built_tiny["cache_dir"]
    stored = sorted(
        p for p in (cache_dir / "sections").rglob("*.json") if p.suffixes[-2:] != [".json", ".json"]
    )
    for entry in stored[:3]:
        entry.write_bytes(entry.read_bytes()[:10])  # truncated
    for entry in sorted((cache_dir / "notebooks").rglob("*.ipynb")):
        entry.write_text("{}")  # valid JSON, wrong notebook
    shutil.rmtree(built_tiny["out_dir"])
    report = build.build(**built_tiny)
    assert len(report.computed) >= 3 and len(report.executed) == 6
    assert "Lesions of this patient" in page_text(built_tiny["out_dir"])["patient-P2.html"]


def test_two_pages_swapped_in_the_cache_are_executed_again(built_tiny: dict) -> None:
    """Swapped with their records, patient-P1's notebook once published P2's page under
    P1's name without a word."""
    cache_dir = built_tiny["cache_dir"]
    by_page = {}
    for record in (cache_dir / "notebooks").rglob("*.ipynb.json"):
        by_page[json.loads(record.read_text())["page"]] = record.with_suffix("")
    one, two = by_page["patient-P1"], by_page["patient-P2"]
    for suffix in ("", ".json"):
        a, b = Path(f"{one}{suffix}"), Path(f"{two}{suffix}")
        a_bytes = a.read_bytes()
        a.write_bytes(b.read_bytes())
        b.write_bytes(a_bytes)
    shutil.rmtree(built_tiny["out_dir"])
    said: list[str] = []
    report = build.build(**{**built_tiny, "echo": said.append})
    assert sorted(report.executed) == ["patient-P1", "patient-P2"]
    for name in ("P1", "P2"):
        html = (built_tiny["out_dir"] / "html" / f"patient-{name}.html").read_text("utf-8")
        assert re.search(rf"<title>\s*Patient {name}\b", html), html[:500]
    assert sum("was stored under another key" in line for line in said) == 2


# --------------------------------------------------------------------------------------------
# What a build writes
# --------------------------------------------------------------------------------------------


def test_supplement_holds_every_table_and_figure_of_the_results(built_tiny: dict) -> None:
    out = built_tiny["out_dir"]
    sections = json.loads((out / "manifest.json").read_text())["sections"]
    with zipfile.ZipFile(out / "supplement.zip") as archive:
        names = set(archive.namelist())
        assert {i.date_time for i in archive.infolist()} == {(1980, 1, 1, 0, 0, 0)}
    assert names == set(tree_bytes(out / "supplement"))
    assert {
        "results.json",
        "parameters.json",
        "README.md",
        "data/patients.csv",
        "tables/tab_patient_lesions_P1.csv",
        "tables/tab_patient_lesions_P2.csv",
        "tables.xlsx",
        "figures/fig_patient_trajectories_P2.svg",
        "figures/fig_gee_curve.png",
        "tables/tab_gee_length.csv",
    } <= names
    assert "patient_P1" in sections and "safety" in sections
    assert not any(n.endswith(".md") and n.startswith("tables/") for n in names)


def test_two_clean_builds_are_identical(built_tiny: dict, tmp_path: Path) -> None:
    second = build.build(
        **{**built_tiny, "out_dir": tmp_path / "out2", "cache_dir": tmp_path / "cache2"}
    )
    assert len(second.executed) == 6  # really clean: nothing from the first build's cache
    first = built_tiny["out_dir"]
    for name in ["results.json", "supplement.zip"]:
        assert (first / name).read_bytes() == (second.out_dir / name).read_bytes(), name


def test_output_layout_and_manifest(built_tiny: dict) -> None:
    out = built_tiny["out_dir"]
    for path in [
        "html/index.html",
        "html/summary.html",
        "html/patient-P1.html",
        "html/patient-P2.html",
        "results.json",
        "manifest.json",
        "supplement.zip",
        "notebooks/intro.ipynb",
        "notebooks/patient-P2.ipynb",
    ]:
        assert (out / path).is_file(), path
    manifest = json.loads((out / "manifest.json").read_text())
    assert set(manifest["data_files"]) == {
        f"{t}.csv" for t in ["patients", "lesions", "measurements", "radiography", "adverse_events"]
    }
    assert manifest["git"].keys() == {"commit", "dirty"}
    shows = {p["page"]: p["shows"] for p in manifest["pages"]}
    # the provenance notice is set by the build, not shown by the page (portable.make_portable)
    assert shows["safety"] == ["safety"] and shows["patient-P2"] == ["patient_P2"]
    assert manifest["parameters"] == {"correlation": "exchangeable", "cluster": "lesion"}
    leftovers = [*out.parent.glob("out.*"), *(built_tiny["cache_dir"] / "builds").iterdir()]
    assert not leftovers  # nothing beside --out; no temporary or failed build in the cache


def test_new_patient_gets_a_page(built_tiny: dict) -> None:
    data_dir = built_tiny["data_dir"]
    with (data_dir / "patients.csv").open("a") as f:
        f.write("P3,F,7,20\n")
    with (data_dir / "lesions.csv").open("a") as f:
        f.write("P3-L1,P3,hand,1.0,10\n")
    with (data_dir / "measurements.csv").open("a") as f:
        f.write("P3-L1,1,10,8,10\nP3-L1,2,9,8,10\nP3-L1,3,8,7,10\n")
    with (data_dir / "radiography.csv").open("a") as f:
        f.write("P3-L1,baseline,10,8\nP3-L1,final,9,8\n")
    build.build(**built_tiny)
    out = built_tiny["out_dir"]
    assert "patient-P3.html" in (out / "html" / "patients.html").read_text()
    assert "Lesions of this patient: 1." in page_text(out)["patient-P3.html"]


def test_site_without_repository_url_has_no_repository_or_binder_button(built_tiny: dict) -> None:
    out = built_tiny["out_dir"]
    assert (out / "html" / "downloads" / "supplement.zip").read_bytes() == (
        out / "supplement.zip"
    ).read_bytes()
    for page in (out / "html").glob("*.html"):
        html = page.read_text(encoding="utf-8")
        assert "mybinder" not in html and "btn-source-repository-button" not in html, page.name


def test_repository_url_adds_its_buttons_and_a_stylesheet_change_reaches_the_site(
    built_tiny: dict,
) -> None:
    """One setting, `repository.url`, brings the repository, issue and Binder buttons; Binder
    opens the chapter's file in the repository, and no page made from the patient template.
    A changed stylesheet alone (no page changed) is in the next site (Sphinx writes nothing
    when no page changed unless told to)."""
    from calcinosis import paths

    book = built_tiny["book_dir"]
    shutil.copytree(paths.BOOK_DIR / "_ext", book / "_ext")
    (book / "_static").mkdir()
    (book / "_static" / "tiny.css").write_text("p { color: black; }\n", encoding="utf-8")
    url = "https://github.com/someone/calcinosis"
    config = {
        "title": "Tiny book",
        "author": "Test",
        "repository": {"url": url, "path_to_book": "chapters", "branch": "main"},
        "launch_buttons": {"binderhub_url": "https://mybinder.org"},
        "html": {"use_repository_button": True, "use_issues_button": True},
        "sphinx": {
            "recursive_update": True,
            "local_extensions": {"calcinosis_sphinx": "_ext/"},
            "config": {"html_static_path": ["_static"], "html_css_files": ["tiny.css"]},
        },
    }
    (book / "_config.yml").write_text(json.dumps(config), encoding="utf-8")
    build.build(**built_tiny)
    html = built_tiny["out_dir"] / "html"
    summary = (html / "summary.html").read_text(encoding="utf-8")
    assert f'href="{url}"' in summary and f"{url}/issues" in summary
    binder = re.findall(r'href="(https://mybinder\.org[^"]+)"', summary)
    assert binder and binder[0].endswith("tree/chapters/summary.md"), binder
    assert "mybinder" not in (html / "patient-P1.html").read_text(encoding="utf-8")

    (book / "_static" / "tiny.css").write_text("p { color: navy; }\n", encoding="utf-8")
    report = build.build(**built_tiny)
    assert not report.executed
    assert "navy" in (html / "_static" / "tiny.css").read_text(encoding="utf-8")
