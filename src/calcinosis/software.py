"""The software a result was computed with: package versions and the git state of the code."""

from __future__ import annotations

import os
import subprocess
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

from calcinosis import paths

KEY_PACKAGES = (
    "calcinosis",
    "jupyter-book",
    "sphinx",
    "myst-nb",
    "papermill",
    "jupytext",
    "nbclient",
    "ipykernel",
    "numpy",
    "pandas",
    "scipy",
    "statsmodels",
    "matplotlib",
    "seaborn",
    "pandera",
    "openpyxl",
)


def git_state(root: Path = paths.ROOT) -> dict[str, object]:
    """Commit of the working tree and whether it has uncommitted changes (None: not a repo).

    `CALCINOSIS_COMMIT` stands in for the commit where there is no .git (an exported tarball).
    """
    if os.environ.get("CALCINOSIS_COMMIT"):
        return {"commit": os.environ["CALCINOSIS_COMMIT"], "dirty": None}
    commit = _git(root, "rev-parse", "HEAD")
    status = _git(root, "status", "--porcelain", "--untracked-files=no")
    return {
        "commit": commit.strip() if commit else None,
        "dirty": None if status is None else bool(status.strip()),
    }


def source_date(root: Path = paths.ROOT) -> datetime:
    """When the sources were made, for dates a build prints (the copyright year): the
    `SOURCE_DATE_EPOCH` of reproducible builds, else the date of the git commit, else now
    (the only answer that differs between two builds of the same inputs)."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH", "").strip()
    if not epoch:
        epoch = (_git(root, "log", "-1", "--format=%ct") or "").strip()
    if epoch.isdigit():
        return datetime.fromtimestamp(int(epoch), tz=UTC)
    return datetime.now(tz=UTC)


def _git(root: Path, *args: str) -> str | None:
    """The output of a git command in `root`; None where git or the repository is missing."""
    try:
        done = subprocess.run(
            ["git", "-C", str(root), *args],
            capture_output=True,
            text=True,
            timeout=20,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout if done.returncode == 0 else None


def short_commit() -> str:
    """'0e0673a1b2' or '0e0673a1b2+dirty', 'unknown' outside a repository."""
    state = git_state()
    commit = str(state["commit"] or "unknown")
    return commit[:10] + ("+dirty" if state["dirty"] else "")


def package_versions(names: tuple[str, ...] = KEY_PACKAGES) -> dict[str, str]:
    """Versions of the packages `names` that are installed (by default those that shape the
    book; the full set is hashed in the cache key)."""
    versions = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions
