"""`manifest.json`: what a build was made from (inputs, parameters, versions, git state) and
how it went (times, per-page execution time and cache hit), so every output traces back."""

from __future__ import annotations

import json
import subprocess
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

from calcinosis import paths

KEY_PACKAGES = ("calcinosis", "jupyter-book", "sphinx", "myst-nb", "papermill", "jupytext",
                "nbclient", "ipykernel", "numpy", "pandas", "scipy", "statsmodels",
                "matplotlib", "seaborn", "pandera", "openpyxl")


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def git_state(root: Path = paths.ROOT) -> dict[str, object]:
    """Commit of the working tree and whether it has uncommitted changes (None: not a repo)."""
    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(["git", "-C", str(root), *args], capture_output=True,
                                  text=True, timeout=20, check=False)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return done.stdout if done.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no")
    return {"commit": commit.strip() if commit else None,
            "dirty": None if status is None else bool(status.strip())}


def package_versions() -> dict[str, str]:
    """Versions of the packages that shape the book (the full set is hashed in the cache key)."""
    versions = {}
    for name in KEY_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def write(path: Path, manifest: dict) -> None:
    path.write_text(json.dumps(manifest, indent=2, sort_keys=False) + "\n", encoding="utf-8")


def read(path: Path) -> dict:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
