"""Set-up files agree: one source of versions, the README's commands are the ones CI runs."""

from __future__ import annotations

import re
import subprocess
import sys

from calcinosis import paths

ROOT = paths.ROOT


def test_environment_yml_mirrors_the_lock_file(tmp_path):
    expected = subprocess.run(
        [sys.executable, str(ROOT / ".ci" / "sync-environment"), "--print"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert (ROOT / "environment.yml").read_text() == expected


def test_lock_pins_jupyter_book_below_2():
    lock = (ROOT / "requirements.lock").read_text()
    version = re.search(r"^jupyter-book==(\d+)\.", lock, re.M)
    assert version and int(version[1]) < 2
    assert "jupyter-book>=1.0.4,<2" in (ROOT / "pyproject.toml").read_text()


def test_readme_has_exactly_the_two_setup_commands_and_ci_runs_the_test_one():
    readme = (ROOT / "README.md").read_text()
    setup = readme.split("## Set up", 1)[1].split("\n## ", 1)[0]
    commands = re.findall(r"^\s*(make \w+)\s*$", setup, re.M)
    assert commands == ["make book", "make test"]
    assert "make test" in (ROOT / ".ci" / "run").read_text()
