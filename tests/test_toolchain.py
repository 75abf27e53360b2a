"""CI must not pass by skipping: the tools the book, PDF, browser and R tests need are there.

Outside CI the suite skips a test whose tool is missing (a laptop without TeX can still run the
rest); in CI (`CI` set, as `.ci/run` is run) the same absence is a failure.
"""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

TOOLS = ("xelatex", "latexmk", "pdftotext", "Rscript")


@pytest.mark.skipif(not os.environ.get("CI"), reason="only enforced in CI")
def test_ci_has_every_tool_the_suite_needs():
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if not os.access("/usr/bin/chromium", os.X_OK):
        missing.append("/usr/bin/chromium")
    assert not missing, f"missing in CI: {missing}; .ci/install-system-deps should install them"
    geepack = subprocess.run(["Rscript", "-e", "library(geepack)"], capture_output=True)
    assert geepack.returncode == 0, geepack.stderr.decode()
