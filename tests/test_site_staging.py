"""What the staging gives the site, without building it: the repository setting, the downloads,
the copyright year, the notebooks a reader downloads, and the workspace sync."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml

from calcinosis import paths, software
from calcinosis.book import portable, staging

REAL_CONFIG = yaml.safe_load((paths.BOOK_DIR / "_config.yml").read_text(encoding="utf-8"))


def staged_config(tmp_path: Path, config: dict, **kwargs) -> dict:
    """Stage a book of two chapters and two patient pages with `config`; its staged config."""
    book = tmp_path / "book"
    book.mkdir()
    (book / "_config.yml").write_text(yaml.safe_dump(config), encoding="utf-8")
    (book / "_toc.yml").write_text(
        "format: jb-book\nroot: intro\nchapters:\n- file: patients\n", encoding="utf-8"
    )
    sources = {}
    for name in ("intro", "patients", "patient-P1", "patient-P2"):
        sources[name] = tmp_path / f"{name}.md"
        sources[name].write_text(f"# {name}\n", encoding="utf-8")
    staging.stage_book(book, sources, tmp_path / "stage", **kwargs)
    return yaml.safe_load((tmp_path / "stage" / "_config.yml").read_text(encoding="utf-8"))


def test_the_real_book_has_no_repository_url() -> None:
    """The placeholder repository is gone: buttons appear only once a real URL is set."""
    assert not REAL_CONFIG["repository"]["url"]
    assert "calcinosis-book/calcinosis-book" not in (paths.BOOK_DIR / "_config.yml").read_text()


def test_no_repository_url_turns_every_repository_button_off(tmp_path: Path) -> None:
    config = staged_config(tmp_path, REAL_CONFIG)
    assert "repository" not in config and "launch_buttons" not in config
    html = config["html"]
    assert not any(html[k] for k in ("use_repository_button", "use_issues_button"))
    assert config["sphinx"]["config"]["calcinosis_repository_pages"] == []


def test_a_repository_url_keeps_the_buttons_and_binder_only_on_chapters(tmp_path: Path) -> None:
    url = "https://github.com/someone/calcinosis"
    config = staged_config(tmp_path, {**REAL_CONFIG, "repository": {"url": url}})
    assert config["repository"]["url"] == url
    assert config["html"]["use_repository_button"] and config["html"]["use_issues_button"]
    assert config["launch_buttons"]["binderhub_url"]
    # the patient pages are made from chapters/patient.md: the repository holds no such file
    assert config["sphinx"]["config"]["calcinosis_repository_pages"] == ["intro", "patients"]


def test_downloads_name_the_pdf_only_when_it_is_built(tmp_path: Path) -> None:
    assert staging.site_downloads(paths.BOOK_DIR, pdf=False) == {
        "supplement": "downloads/supplement.zip"
    }
    with_pdf = staging.site_downloads(paths.BOOK_DIR, pdf=True)
    target = REAL_CONFIG["latex"]["latex_documents"]["targetname"]
    assert with_pdf["pdf"] == f"downloads/{Path(target).stem}.pdf"
    config = staged_config(tmp_path, REAL_CONFIG, downloads=with_pdf)
    assert config["sphinx"]["config"]["calcinosis_downloads"] == with_pdf


def test_a_book_without_the_extension_gets_none_of_its_settings(tmp_path: Path) -> None:
    """Sphinx fails a -W build on a setting no extension declares."""
    config = staged_config(tmp_path, {"title": "t"}, downloads={"supplement": "s.zip"})
    assert "calcinosis_downloads" not in config.get("sphinx", {}).get("config", {})


def test_publishing_a_missing_download_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "supplement.zip").write_bytes(b"zip")
    downloads = {"supplement": "downloads/supplement.zip", "pdf": "downloads/book.pdf"}
    folders = {"supplement": tmp_path, "pdf": tmp_path / "pdf"}
    with pytest.raises(staging.BuildError, match="book.pdf"):
        staging.publish_downloads(downloads, folders, tmp_path / "html")
    del downloads["pdf"]
    staging.publish_downloads(downloads, folders, tmp_path / "html")
    assert (tmp_path / "html" / "downloads" / "supplement.zip").read_bytes() == b"zip"


def test_copyright_year_comes_from_the_sources_not_the_clock(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")  # 2023-11-14
    assert staged_config(tmp_path, REAL_CONFIG)["copyright"] == "2023"
    monkeypatch.delenv("SOURCE_DATE_EPOCH")
    commit_time = software._git(paths.ROOT, "log", "-1", "--format=%ct")
    if commit_time is None:
        pytest.skip("not a git checkout")
    year = software.source_date().year
    assert year == software.datetime.fromtimestamp(int(commit_time), software.UTC).year


def executed_notebook(path: Path, build_dir: Path) -> Path:
    """A notebook as papermill leaves it in a build: absolute output path, build parameters."""
    params = {"results_dir": "results", "correlation": "exchangeable"}
    nb = {
        "cells": [
            {
                "cell_type": "code",
                "id": "9f2c41aa",
                "metadata": {
                    "tags": ["parameters"],
                    "execution": {"iopub.status.idle": "2026-11-26T04:59:18.082189Z"},
                    "papermill": {"duration": 0.0086, "status": "completed"},
                },
                "outputs": [],
                "source": 'data_dir = "../data"\nresults_dir = ""\n',
            },
            {
                "cell_type": "code",
                "metadata": {"tags": ["injected-parameters"]},
                "outputs": [],
                "source": '# Parameters\nresults_dir = "results"\ncorrelation = "exchangeable"\n',
            },
        ],
        "metadata": {
            "papermill": {
                "parameters": params,
                "output_path": str(build_dir / "notebooks" / path.name),
                "input_path": {"cells": []},
                "start_time": "2026-11-26T04:59:17.866556+00:00",
                "duration": 0.29,
            }
        },
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    path.write_text(json.dumps(nb), encoding="utf-8")
    return path


def test_downloaded_notebooks_run_from_the_repository_root(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    build_dir = tmp_path / "cache" / "builds" / "out.tmp-1"
    notebook = executed_notebook(tmp_path / "gee.ipynb", build_dir)
    portable.make_portable(notebook, root / "data", root)
    text = notebook.read_text(encoding="utf-8")
    assert str(tmp_path) not in text
    nb = json.loads(text)
    params = nb["metadata"]["papermill"]["parameters"]
    assert params == {"results_dir": "", "correlation": "exchangeable", "data_dir": "data"}
    namespace: dict = {}
    for cell in nb["cells"]:  # the parameters cell, then the injected one, as a kernel runs them
        exec(cell["source"], namespace)
    assert (namespace["data_dir"], namespace["results_dir"]) == ("data", "")
    assert os.path.normpath(root / namespace["data_dir"]) == str(root / "data")


def test_downloaded_notebooks_carry_no_time_of_their_run(tmp_path: Path) -> None:
    """Random cell ids and timestamps would make two builds of the same inputs differ."""
    notebook = executed_notebook(tmp_path / "gee.ipynb", tmp_path / "build")
    portable.make_portable(notebook, tmp_path / "data", tmp_path)
    nb = json.loads(notebook.read_text(encoding="utf-8"))
    assert [cell["id"] for cell in nb["cells"]] == ["cell-0", "cell-1"]
    assert not {"start_time", "duration"} & set(nb["metadata"]["papermill"])
    first = nb["cells"][0]["metadata"]
    assert "execution" not in first and first["papermill"] == {"status": "completed"}


def test_sync_reports_what_changed(tmp_path: Path) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    (src / "_static").mkdir(parents=True)
    (src / "page.md").write_text("a")
    (src / "_static" / "site.css").write_text("a")
    assert sorted(staging.sync_tree(src, dst)) == [Path("_static/site.css"), Path("page.md")]
    assert staging.sync_tree(src, dst) == []
    (src / "_static" / "site.css").write_text("b")
    assert staging.sync_tree(src, dst) == [Path("_static/site.css")]
