"""Content-addressed store of build products: the results stage's sections and executed pages.

Jupyter Book's own cache keys on code cells only, so a changed data file leaves old numbers on
the page. Our keys are SHA-256 over everything a product depends on: for a producer's sections,
the bytes of the data files it reads, the parameters (when it uses them), the `calcinosis`
package's source and the locked environment; for a page, its recipe (chapter bytes,
parameters, page code, environment) and the digests of the sections it shows. A hit is
therefore safe to reuse; anything else is made again.

Every entry records the SHA-256 of its bytes, the key it was stored under and what it holds
(the page, the producer): an entry that does not match (truncated, edited, swapped with
another, planted) is treated as missing, so it is made again with a warning, never published.
Entries are data (JSON, notebooks), never pickles: loading one runs nothing.

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
from functools import cache as memoize
from importlib import metadata
from pathlib import Path

from calcinosis import paths

CACHE_VERSION = "3"  # bump to invalidate every entry when the key's meaning changes
ENV_VAR = "CALCINOSIS_CACHE"
DEFAULT_NAME = ".calcinosis-cache"
LOCK_FILE = paths.ROOT / "requirements.lock"


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


def hash_tree(files: list[Path], root: Path) -> dict[str, str]:
    """{path relative to root (POSIX): sha256 of its bytes}."""
    return {p.relative_to(root).as_posix(): sha256_file(p) for p in files}


def package_files() -> list[Path]:
    """The source files of the installed `calcinosis` package (bytecode excluded)."""
    return sorted(
        p
        for p in paths.PACKAGE_DIR.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"
    )


@memoize
def environment() -> dict[str, object]:
    """The locked environment as it is installed: Python, lock file and every distribution."""
    installed = sorted(
        {
            f"{d.metadata['Name']}=={d.version}"
            for d in metadata.distributions()
            if d.metadata["Name"]
        }
    )
    return {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "requirements_lock_sha256": sha256_file(LOCK_FILE) if LOCK_FILE.is_file() else None,
        "installed_sha256": sha256_bytes("\n".join(installed).encode("utf-8")),
    }


@memoize
def package_hash() -> str:
    """One hash of every source file of the `calcinosis` package."""
    return sha256_json(hash_tree(package_files(), paths.PACKAGE_DIR))


def default_dir(out_dir: Path) -> Path:
    """$CALCINOSIS_CACHE, else `.calcinosis-cache` beside the output folder."""
    env = os.environ.get(ENV_VAR)
    return Path(env).resolve() if env else Path(out_dir).resolve().parent / DEFAULT_NAME


class Store:
    """Files stored under their key: `<root>/<kind>/<key[:2]>/<key><suffix>` plus `.json` meta."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.warnings: list[str] = []  # entries found corrupt or not what they claim: made again

    def path(self, kind: str, key: str, suffix: str) -> Path:
        return self.root / kind / key[:2] / f"{key}{suffix}"

    def get(self, kind: str, key: str, suffix: str, holds: dict | None = None) -> Path | None:
        """The stored file, or None when there is no complete, intact entry stored under `key`
        holding what `holds` names (`{"page": "patient-P1"}`): an entry whose record names
        another key or content (swapped, planted) is made again, with a warning."""
        path = self.path(kind, key, suffix)
        if not (path.is_file() and self._meta_path(path).is_file()):
            return None
        meta = self.meta(kind, key, suffix)
        if meta.get("sha256") != sha256_file(path):
            self.reject(path, "did not match its checksum")
            return None
        if meta.get("key") != key:
            self.reject(path, f"was stored under another key ({str(meta.get('key'))[:12]})")
            return None
        for field, expected in (holds or {}).items():
            if meta.get(field) != expected:
                self.reject(path, f"holds {field} {meta.get(field)!r}, not {expected!r}")
                return None
        return path

    def reject(self, path: Path, why: str) -> None:
        """Note an entry that is not used: it is made again, and the build says so."""
        self.warnings.append(f"the cache entry {path} {why}; made again")

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
        meta = {**meta, "key": key, "sha256": sha256_file(path)}
        _atomic_write(self._meta_path(path), json.dumps(meta, indent=2, sort_keys=True))
        return path

    def get_text(self, kind: str, key: str, suffix: str, holds: dict | None = None) -> str | None:
        path = self.get(kind, key, suffix, holds)
        return path.read_text(encoding="utf-8") if path else None

    def put_text(self, kind: str, key: str, suffix: str, text: str, meta: dict) -> None:
        fd, tmp = tempfile.mkstemp(prefix="calcinosis-")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(text)
            self.put(kind, key, suffix, Path(tmp), meta)
        finally:
            Path(tmp).unlink(missing_ok=True)

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
