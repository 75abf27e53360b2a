"""Every command that writes owns its folder (issue 21, items 1-3): a folder holding anything
else, a clone's root, a symbolic link or a file is refused in one line with nothing touched;
`reconstruct` never writes through a link; one command at a time per output folder, whatever
cache each uses. The refusals come before any analysis, so these tests are fast."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from calcinosis import paths
from calcinosis.book.output import MARKER, check_out, exclusive
from calcinosis.cli import main
from calcinosis.errors import UsageError


def tree(folder: Path) -> dict[str, bytes | str]:
    """Every entry under `folder` (links as their target, not followed) with its bytes."""
    found: dict[str, bytes | str] = {}
    for path in sorted(folder.rglob("*")):
        key = path.relative_to(folder).as_posix()
        if path.is_symlink():
            found[key] = "-> " + os.readlink(path)
        elif path.is_file():
            found[key] = path.read_bytes()
        else:
            found[key] = "dir"
    return found


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.output


def refused_in_one_line(code: int, output: str, *words: str) -> None:
    assert code != 0, output
    assert "Traceback" not in output
    lines = output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), output
    for word in words:
        assert word in lines[0], output


@pytest.fixture
def study(tmp_path: Path) -> Path:
    """An author's folder: the data in study/data beside files of their own, and a clone."""
    study = tmp_path / "study"
    shutil.copytree(paths.DATA_DIR, study / "data", ignore=shutil.ignore_patterns("examples"))
    (study / "data" / "NOTES.txt").write_text("my notes\n")
    (study / "plan.docx").write_bytes(b"PK a plan")
    (study / "fo4").mkdir()
    (study / "fo4" / "report.zip").write_bytes(b"PK an unrelated zip")
    (study / ".git").mkdir()
    (study / "src").mkdir()
    return study


@pytest.mark.parametrize("command", ["supplement", "build", "chapter"])
def test_a_folder_with_other_files_or_a_clone_is_refused(study, monkeypatch, command) -> None:
    before = tree(study)
    monkeypatch.chdir(study)
    prefix = ["chapter", "gee"] if command == "chapter" else [command]
    for out, why in ((".", "would replace"), (str(study), "would replace")):
        code, output = run(*prefix, "--data", "data", "--out", out, "--cache", "/tmp/files-c")
        refused_in_one_line(code, output, why)
    other = study.parent / "other"  # the data elsewhere: the folder holds others' files
    shutil.copytree(study / "data", other)
    monkeypatch.chdir(study.parent)
    code, output = run(*prefix, "--data", str(other), "--out", str(study))
    refused_in_one_line(code, output, "did not make", ".git, data, fo4 and 2 more")
    assert tree(study) == before


@pytest.mark.parametrize("command", ["supplement", "build"])
def test_an_out_that_is_a_file_or_a_link_is_refused(tmp_path: Path, command) -> None:
    (tmp_path / "report.zip").write_bytes(b"PK")
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "elsewhere")
    before = tree(tmp_path)
    code, output = run(command, "--out", str(tmp_path / "report.zip"))
    refused_in_one_line(code, output, "not a folder")
    code, output = run(command, "--out", str(tmp_path / "link"))
    refused_in_one_line(code, output, "symbolic link")
    assert tree(tmp_path) == before


def test_power_and_ensemble_write_only_a_folder_of_their_own(tmp_path: Path) -> None:
    (tmp_path / "thesis.tex").write_text("years of work")
    before = tree(tmp_path)
    refused_in_one_line(*run("power", "--out", str(tmp_path)), "did not make", "thesis.tex")
    refused_in_one_line(
        *run("ensemble", "--n", "1", "--out", str(tmp_path)), "did not make", "thesis.tex"
    )
    assert tree(tmp_path) == before
    own = tmp_path / "run"
    own.mkdir()
    (own / "manifest.json").write_text("{}")
    (own / "tasks").mkdir()
    assert check_out(own, own=frozenset({"tasks", "manifest.json"})) == own.resolve()


def test_a_marked_folder_is_the_tools_own(tmp_path: Path) -> None:
    (tmp_path / MARKER).write_text("made by calcinosis build\n")
    (tmp_path / "anything").write_text("x")
    assert check_out(tmp_path) == tmp_path.resolve()
    with pytest.raises(UsageError, match="would replace"):
        check_out(tmp_path, [tmp_path / "data"])


@pytest.mark.integration
def test_reconstruct_never_writes_through_a_link(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    target = outside / "precious.csv"
    target.write_text("someone's file\n")
    out = tmp_path / "out"
    out.mkdir()
    (out / "patients.csv").symlink_to(outside / "missing.csv")  # dangling
    before = tree(tmp_path)
    refused_in_one_line(*run("reconstruct", "--out", str(out)), "patients.csv", "symbolic link")
    assert tree(tmp_path) == before and not (outside / "missing.csv").exists()
    (out / "patients.csv").unlink()
    (out / "lesions.csv").symlink_to(target)
    before = tree(tmp_path)
    refused_in_one_line(*run("reconstruct", "--out", str(out), "--replace"), "lesions.csv")
    assert tree(tmp_path) == before


@pytest.mark.integration
def test_reconstruct_into_a_file_or_a_link_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("x")
    (tmp_path / "a-link").symlink_to(tmp_path / "nowhere")
    before = tree(tmp_path)
    refused_in_one_line(*run("reconstruct", "--out", str(tmp_path / "a-file")), "not a folder")
    refused_in_one_line(*run("reconstruct", "--out", str(tmp_path / "a-link")), "symbolic link")
    assert tree(tmp_path) == before


def test_one_command_per_folder_whatever_the_cache(tmp_path: Path, monkeypatch) -> None:
    out = tmp_path / "out"
    for cache in ("cache-a", "cache-b"):
        with exclusive(out.resolve()):  # another command, with its own cache, holds it
            code, output = run("supplement", "--out", str(out), "--cache", str(tmp_path / cache))
            refused_in_one_line(code, output, "another calcinosis command is writing")
    assert not out.exists() and not (tmp_path / "cache-a").exists()
