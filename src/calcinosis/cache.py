"""Content-addressed store of executed notebooks and other build products.

Jupyter Book's own cache keys on code cells only, so a changed data file leaves old numbers on
the page. Our key is a SHA-256 over everything an executed page depends on: the chapter's
source bytes, its parameters, the bytes of every data file, every file of the `calcinosis`
package, the locked environment (requirements.lock and the installed distributions) and the
Python version. A hit is therefore always safe to reuse; anything else executes again.

The store lives outside the build output (which is swapped whole at the end of a build), and
every write goes to a temporary file first and is renamed into place, so a crash never leaves
a half-written entry.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import tempfile
from dataclasses import dataclass
from functools import cache as memoize
from importlib import metadata
from pathlib import Path

from calcinosis import paths

CACHE_VERSION = "1"  # bump to invalidate every entry when the key's meaning changes
ENV_VAR = "CALCINOSIS_CACHE"
DEFAULT_NAME = ".calcinosis-cache"
LOCK_FILE = paths.ROOT / "requirements.lock"
# Folders of a data directory that are not part of its dataset (example datasets of their own).
_NOT_DATA = frozenset({"examples", "__pycache__", ".ipynb_checkpoints"})


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def sha256_json(value: object) -> str:
    """Hash of a JSON-serialisable value, independent of dict order."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return sha256_bytes(text.encode("utf-8"))


def data_files(data_dir: Path) -> list[Path]:
    """Every file of the dataset in `data_dir`, sorted; skips hidden files and `examples/`."""
    found = []
    for path in sorted(Path(data_dir).rglob("*")):
        parts = path.relative_to(data_dir).parts
        if any(p.startswith(".") or p in _NOT_DATA for p in parts) or not path.is_file():
            continue
        found.append(path)
    return found


def hash_tree(files: list[Path], root: Path) -> dict[str, str]:
    """{path relative to root (POSIX): sha256 of its bytes}."""
    return {p.relative_to(root).as_posix(): sha256_file(p) for p in files}


def package_files() -> list[Path]:
    """The source files of the installed `calcinosis` package (bytecode excluded)."""
    return sorted(p for p in paths.PACKAGE_DIR.rglob("*")
                  if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc")


@memoize
def environment() -> dict[str, object]:
    """The locked environment as it is installed: Python, lock file and every distribution."""
    installed = sorted({f"{d.metadata['Name']}=={d.version}" for d in metadata.distributions()
                        if d.metadata["Name"]})
    return {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "requirements_lock_sha256": sha256_file(LOCK_FILE) if LOCK_FILE.is_file() else None,
        "installed_sha256": sha256_bytes("\n".join(installed).encode("utf-8")),
    }


@dataclass(frozen=True)
class Inputs:
    """Fingerprints of everything a page depends on besides its own source and parameters."""

    data: dict[str, str]
    package: dict[str, str]
    environment: dict[str, object]

    @classmethod
    def of(cls, data_dir: Path) -> Inputs:
        return cls(data=hash_tree(data_files(data_dir), data_dir),
                   package=hash_tree(package_files(), paths.PACKAGE_DIR),
                   environment=environment())

    def key(self, kind: str, **extra: object) -> str:
        """The cache key of a product of `kind` built from these inputs and `extra`."""
        return sha256_json({"version": CACHE_VERSION, "kind": kind, "data": self.data,
                            "package": self.package, "environment": self.environment,
                            **extra})


def page_key(inputs: Inputs, source: bytes, parameters: dict[str, object]) -> str:
    """Key of one executed page: chapter source bytes + parameters + all shared inputs."""
    return inputs.key("page", source=sha256_bytes(source), parameters=parameters)


def default_dir(out_dir: Path) -> Path:
    """$CALCINOSIS_CACHE, else `.calcinosis-cache` beside the output folder."""
    env = os.environ.get(ENV_VAR)
    return Path(env).resolve() if env else Path(out_dir).resolve().parent / DEFAULT_NAME


class Store:
    """Files stored under their key: `<root>/<kind>/<key[:2]>/<key><suffix>` plus `.json` meta."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def path(self, kind: str, key: str, suffix: str) -> Path:
        return self.root / kind / key[:2] / f"{key}{suffix}"

    def get(self, kind: str, key: str, suffix: str) -> Path | None:
        """The stored file, or None when there is no complete entry."""
        path = self.path(kind, key, suffix)
        return path if path.is_file() and self._meta_path(path).is_file() else None

    def meta(self, kind: str, key: str, suffix: str) -> dict:
        path = self._meta_path(self.path(kind, key, suffix))
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}

    def put(self, kind: str, key: str, suffix: str, source: Path, meta: dict) -> Path:
        """Copy `source` into the store atomically (file first, then its meta marks it done)."""
        path = self.path(kind, key, suffix)
        path.parent.mkdir(parents=True, exist_ok=True)
        _atomic_copy(source, path)
        _atomic_write(self._meta_path(path), json.dumps(meta, indent=2, sort_keys=True))
        return path

    @staticmethod
    def _meta_path(path: Path) -> Path:
        return path.with_name(path.name + ".json")


def _atomic_copy(source: Path, target: Path) -> None:
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
    os.close(fd)
    try:
        shutil.copyfile(source, tmp)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _atomic_write(target: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
