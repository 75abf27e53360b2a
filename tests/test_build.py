"""The build pipeline on a tiny book made in tmp_path (fast), and once on the real chapters.

The tiny book has the real book's shape: a root page, a chapter with an extra parameter, the
`patients` overview and the `patient` template run once per patient, glue in the prose, and
tables/figures/results registries (defined below; worker processes import this module).
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import matplotlib.pyplot as plt
import pytest
from click.testing import CliRunner

from calcinosis import build, cli, errors, execute, pages, paths, staging
from calcinosis.review import papermill_command, run_chapter

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

CHAPTERS = {
    "intro": """
# Introduction

```{code-cell} ipython3
:tags: [parameters]
data_dir = "../data"
```

```{code-cell} ipython3
import pandas as pd
from myst_nb import glue
n_patients = len(pd.read_csv(f"{data_dir}/patients.csv"))
glue("n_patients", n_patients, display=False)
```

The trial has {glue:text}`n_patients` patients.
""",
    "summary": """
# Summary

```{code-cell} ipython3
:tags: [parameters]
data_dir = "../data"
scale = 1.0
```

```{code-cell} ipython3
import pandas as pd
from myst_nb import glue
m = pd.read_csv(f"{data_dir}/measurements.csv")
mean_length = float(m["length_mm"].mean()) * scale
glue("mean_length", mean_length, display=False)
```

Mean length: {glue:text}`mean_length:.3f` mm.
""",
    "patients": """
# Patients

```{code-cell} ipython3
:tags: [parameters]
data_dir = "../data"
```

One page per patient follows.
""",
    "patient": """
# Patient

```{code-cell} ipython3
:tags: [parameters]
data_dir = "../data"
patient_id = "P1"
```

```{code-cell} ipython3
import pandas as pd
from myst_nb import glue
lesions = pd.read_csv(f"{data_dir}/lesions.csv")
n_lesions = int((lesions["patient_id"] == patient_id).sum())
glue("n_lesions", n_lesions, display=False)
print(patient_id, n_lesions)
```

Lesions of this patient: {glue:text}`n_lesions`.
""",
}

BROKEN = """
# Broken

```{code-cell} ipython3
:tags: [parameters]
data_dir = "../data"
```

```{code-cell} ipython3
x = 1
```

```{code-cell} ipython3
raise ValueError("the lesion table is upside down")
```
"""

CONFIG = """title: Tiny book
author: Test
execute:
  execute_notebooks: force
"""

TOC = """format: jb-book
root: intro
chapters:
- file: summary
- file: patients
"""


# Registries of the tiny book's supplement and results ("test_build:TABLES", ...).
def _sizes(trial):
    return (trial.measurements.groupby("lesion_id")[["length_mm", "width_mm"]].mean()
            .rename(columns=str))


def _size_plot(trial):
    fig, ax = plt.subplots(figsize=(3, 2))
    ax.plot(trial.measurements["visit"], trial.measurements["length_mm"], "o")
    return fig


TABLES = {"lesion_sizes": _sizes}
FIGURES = {"size_plot": _size_plot}


def collect(trial) -> dict:
    return {"n_patients": len(trial.patients),
            "mean_length": float(trial.measurements["length_mm"].mean())}


SOURCES = execute.Sources("test_build:TABLES", "test_build:FIGURES", "test_build:collect")


def make_tiny_book(root: Path, data_dir: Path) -> dict:
    """chapters/ and book/ under `root`; returns the keyword arguments of `build.build`."""
    (root / "chapters").mkdir(parents=True)
    (root / "book").mkdir()
    for name, body in CHAPTERS.items():
        (root / "chapters" / f"{name}.md").write_text(HEADER + body, encoding="utf-8")
    (root / "book" / "_config.yml").write_text(CONFIG, encoding="utf-8")
    (root / "book" / "_toc.yml").write_text(TOC, encoding="utf-8")
    return {"data_dir": data_dir, "out_dir": root / "out", "jobs": 2, "pdf": False,
            "chapters_dir": root / "chapters", "book_dir": root / "book",
            "cache_dir": root / "cache", "sources": SOURCES, "echo": lambda _: None}


def set_measurement(data_dir: Path, lesion: str, visit: int, length: float) -> None:
    path = data_dir / "measurements.csv"
    lines = path.read_text(encoding="utf-8").splitlines()
    for i, line in enumerate(lines):
        cells = line.split(",")
        if cells[:2] == [lesion, str(visit)]:
            cells[2] = f"{length:g}"
            lines[i] = ",".join(cells)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def tree_bytes(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture
def tiny_book(tmp_path: Path, tiny_dataset: Path) -> dict:
    return make_tiny_book(tmp_path, tiny_dataset)


@pytest.fixture
def built_tiny(tiny_book: dict) -> dict:
    report = build.build(**tiny_book)
    assert len(report.executed) == 5, report.executed
    return tiny_book


# --------------------------------------------------------------------------------------------
# What the issue asks to show
# --------------------------------------------------------------------------------------------


def test_no_change_rebuild_executes_nothing(built_tiny: dict) -> None:
    out = built_tiny["out_dir"]
    before = tree_bytes(out)
    report = build.build(**built_tiny)
    assert report.up_to_date and report.executed == []
    assert tree_bytes(out) == before  # not even rewritten


def test_book_only_change_rebuilds_book_from_cache(built_tiny: dict) -> None:
    config = built_tiny["book_dir"] / "_config.yml"
    config.write_text(config.read_text().replace("Tiny book", "Tiny book, 2nd ed."))
    report = build.build(**built_tiny)
    assert not report.up_to_date
    assert report.executed == [] and len(report.cached) == 5
    assert "2nd ed." in (built_tiny["out_dir"] / "html" / "intro.html").read_text()


def test_changed_measurement_reaches_results_and_html(built_tiny: dict) -> None:
    out, data_dir = built_tiny["out_dir"], built_tiny["data_dir"]
    old = json.loads((out / "results.json").read_text())
    assert "17.000" in (out / "html" / "summary.html").read_text()
    set_measurement(data_dir, "P1-L1", 1, 29)  # was 20: mean length 17 -> 18.125
    report = build.build(**built_tiny)
    assert "summary" in report.executed  # the page that shows the number ran again
    new = json.loads((out / "results.json").read_text())
    assert old["mean_length"] == 17.0 and new["mean_length"] == 18.125
    html = (out / "html" / "summary.html").read_text()
    assert "18.125" in html and "17.000" not in html
    csv = (out / "supplement" / "tables" / "lesion_sizes.csv").read_text()
    assert "P1-L1,20.66666667," in csv


def test_parameter_reaches_only_chapters_that_define_it(built_tiny: dict) -> None:
    out = built_tiny["out_dir"]
    report = build.build(**{**built_tiny, "params": pages.parse_parameters(["scale=2"])})
    assert report.executed == ["summary"]
    assert "34.000" in (out / "html" / "summary.html").read_text()
    manifest = json.loads((out / "manifest.json").read_text())
    params = {p["page"]: p["parameters"] for p in manifest["pages"]}
    assert params["summary"]["scale"] == 2 and "scale" not in params["intro"]
    with pytest.raises(errors.UsageError, match="no chapter has a parameter named scael"):
        build.build(**{**built_tiny, "params": {"scael": 2}})


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
    kept = out.with_name("out.failed") / "notebooks" / "broken.ipynb"
    assert kept.is_file() and str(kept) in message
    assert not list(out.parent.glob("out.tmp-*"))


def test_failing_chapter_cli_message_and_status(built_tiny: dict, monkeypatch) -> None:
    (built_tiny["chapters_dir"] / "broken.md").write_text(HEADER + BROKEN, encoding="utf-8")
    real_build, kwargs = build.build, dict(built_tiny)

    def fake_build(*args, **kw):  # the CLI's own defaults point at the real book
        return real_build(**{**kwargs, "echo": kw["echo"]})

    monkeypatch.setattr(build, "build", fake_build)
    result = CliRunner().invoke(cli.main, ["build"])
    assert result.exit_code == 1
    assert "error: chapter 'broken' failed in cell [4]" in result.output
    assert "Traceback" not in result.output


def test_invalid_data_writes_nothing(tiny_book: dict) -> None:
    data_dir = tiny_book["data_dir"]
    set_measurement(data_dir, "P1-L1", 2, -5)
    runner = CliRunner()
    validate = runner.invoke(cli.main, ["validate", str(data_dir)])
    assert validate.exit_code == 2
    with pytest.raises(errors.InvalidData) as invalid:
        build.build(**tiny_book)
    assert str(invalid.value) == validate.output.rstrip("\n")
    root = tiny_book["out_dir"].parent
    assert sorted(p.name for p in root.iterdir()) == ["book", "chapters", "data"]
    # and through the CLI: same messages, exit status 2
    result = runner.invoke(cli.main, ["build", "--data", str(data_dir), "--out",
                                      str(root / "out"), "--cache", str(root / "cache")])
    assert result.exit_code == 2 and result.output == validate.output
    assert not (root / "out").exists() and not (root / "cache").exists()


def test_supplement_zip_holds_the_expected_files(built_tiny: dict) -> None:
    out = built_tiny["out_dir"]
    with zipfile.ZipFile(out / "supplement.zip") as archive:
        names = sorted(archive.namelist())
        assert {i.date_time for i in archive.infolist()} == {(1980, 1, 1, 0, 0, 0)}
    assert names == [
        "README.md",
        "data/adverse_events.csv", "data/lesions.csv", "data/measurements.csv",
        "data/patients.csv", "data/radiography.csv",
        "figures/size_plot.png", "figures/size_plot.svg",
        "results.json",
        "tables/lesion_sizes.csv", "tables/lesion_sizes.xlsx",
    ]
    assert tree_bytes(out / "supplement").keys() == set(names)
    import pandas as pd

    xlsx = pd.read_excel(out / "supplement" / "tables" / "lesion_sizes.xlsx")
    assert list(xlsx.columns) == ["lesion_id", "length_mm", "width_mm"]


def test_two_clean_builds_are_identical(tiny_book: dict, tmp_path: Path) -> None:
    first = build.build(**tiny_book).out_dir
    second = build.build(**{**tiny_book, "out_dir": tmp_path / "out2",
                            "cache_dir": tmp_path / "cache2"})
    assert second.executed  # really clean: nothing from the first build's cache
    for name in ["results.json", "supplement.zip"]:
        assert (first / name).read_bytes() == (second.out_dir / name).read_bytes(), name
    assert tree_bytes(first / "supplement") == tree_bytes(second.out_dir / "supplement")


def test_output_layout_and_manifest(built_tiny: dict) -> None:
    out = built_tiny["out_dir"]
    for path in ["html/index.html", "html/summary.html", "html/patient-P1.html",
                 "html/patient-P2.html", "results.json", "manifest.json", "supplement.zip",
                 "notebooks/intro.ipynb", "notebooks/patient-P2.ipynb"]:
        assert (out / path).is_file(), path
    # Sphinx rendered the executed notebooks: the download offers them, with their outputs
    source = json.loads((out / "html" / "_sources" / "patient-P2.ipynb").read_text())
    assert source["metadata"]["papermill"]["parameters"]["patient_id"] == "P2"
    patients_html = (out / "html" / "patients.html").read_text()
    assert "patient-P1.html" in patients_html and "patient-P2.html" in patients_html
    manifest = json.loads((out / "manifest.json").read_text())
    assert set(manifest["data_files"]) == {f"{t}.csv" for t in
                                          ["patients", "lesions", "measurements",
                                           "radiography", "adverse_events"]}
    assert manifest["git"].keys() == {"commit", "dirty"}
    assert {p["page"] for p in manifest["pages"]} == {
        "intro", "summary", "patients", "patient-P1", "patient-P2"}
    assert all(not p["cached"] and p["seconds"] > 0 for p in manifest["pages"])
    assert manifest["packages"]["papermill"] and manifest["started"] <= manifest["finished"]
    assert not list(out.parent.glob("out.tmp-*")) and not out.with_name("out.failed").exists()


def test_new_patient_gets_a_page(built_tiny: dict) -> None:
    data_dir = built_tiny["data_dir"]
    with (data_dir / "patients.csv").open("a") as f:
        f.write("P3,F,7,20\n")
    with (data_dir / "lesions.csv").open("a") as f:
        f.write("P3-L1,P3,hand,1.0,10\n")
    with (data_dir / "measurements.csv").open("a") as f:
        f.write("P3-L1,1,10,8\n")
    build.build(**built_tiny)
    out = built_tiny["out_dir"]
    assert "patient-P3.html" in (out / "html" / "patients.html").read_text()
    assert "Lesions of this patient: 1" in " ".join(
        (out / "html" / "patient-P3.html").read_text().split()).replace(
        '<span class="pasted-text">', "").replace("</span>", "")


def test_out_must_be_a_build_folder(tiny_book: dict, tmp_path: Path) -> None:
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "thesis.tex").write_text("years of work")
    with pytest.raises(errors.UsageError, match="not a calcinosis build"):
        build.build(**{**tiny_book, "out_dir": precious})
    with pytest.raises(errors.UsageError, match="would replace"):
        build.build(**{**tiny_book, "out_dir": tmp_path})  # holds data/ and chapters/
    assert (precious / "thesis.tex").read_text() == "years of work"


def test_cache_key_covers_every_input(tiny_book: dict) -> None:
    from calcinosis import cache

    data_dir = tiny_book["data_dir"]
    chapter = pages.Chapter.read(tiny_book["chapters_dir"] / "summary.md")
    params = {"data_dir": str(data_dir)}
    inputs = cache.Inputs.of(data_dir)
    key = cache.page_key(inputs, chapter.source, params)
    assert key == cache.page_key(cache.Inputs.of(data_dir), chapter.source, dict(params))
    assert key != cache.page_key(inputs, chapter.source + b"\n", params)
    assert key != cache.page_key(inputs, chapter.source, {**params, "scale": 2})
    (data_dir / "adverse_events.csv").write_text(
        (data_dir / "adverse_events.csv").read_text() + "\n")
    assert key != cache.page_key(cache.Inputs.of(data_dir), chapter.source, params)
    changed_env = cache.Inputs(inputs.data, inputs.package,
                               {**inputs.environment, "python": "3.99"})
    assert key != cache.page_key(changed_env, chapter.source, params)
    changed_pkg = cache.Inputs(inputs.data, {**inputs.package, "models.py": "0"},
                               inputs.environment)
    assert key != cache.page_key(changed_pkg, chapter.source, params)


def test_chapter_command_for_reviewers(built_tiny: dict, tmp_path: Path) -> None:
    review = tmp_path / "review"
    written = run_chapter("summary", {"scale": 3.0}, built_tiny["data_dir"], review,
                          chapters_dir=built_tiny["chapters_dir"],
                          book_dir=built_tiny["book_dir"],
                          cache_dir=built_tiny["cache_dir"], echo=lambda _: None)
    nb = json.loads(written["notebook"].read_text())
    assert nb["metadata"]["papermill"]["parameters"]["scale"] == 3.0
    assert "51.000" in written["html"].read_text()
    with pytest.raises(errors.UsageError, match="has no parameter"):
        run_chapter("summary", {"alpha": 1}, built_tiny["data_dir"], review,
                    chapters_dir=built_tiny["chapters_dir"], echo=lambda _: None)
    command = papermill_command("summary", "summary", Path("/d"), {"scale": 3.0},
                                built_tiny["chapters_dir"])
    assert command.endswith("papermill - summary.ipynb -k python3 -p data_dir /d -p scale 3.0")


# --------------------------------------------------------------------------------------------
# The real book (slow; `pytest -m book`)
# --------------------------------------------------------------------------------------------


@pytest.mark.book
def test_real_book(built_book: Path) -> None:
    import pandas as pd

    for path in ["html/index.html", "results.json", "manifest.json", "supplement.zip"]:
        assert (built_book / path).is_file(), path
    ids = pd.read_csv(paths.DATA_DIR / "patients.csv")["patient_id"]
    for pid in ids:
        assert (built_book / "html" / f"patient-{pid}.html").is_file()
    results = json.loads((built_book / "results.json").read_text())
    assert results and all(isinstance(v, int | float | str) for v in results.values())
    manifest = json.loads((built_book / "manifest.json").read_text())
    assert manifest["data_dir"] == str(paths.DATA_DIR)
    if not staging.pdf_missing():
        assert list((built_book / "pdf").glob("*.pdf"))
