"""How a build finishes: the manifest, the atomic swap into `<out>`, and the kept failure
(notebook and logs) when it fails."""

from __future__ import annotations

import ctypes
import os
import shutil
import sys
from pathlib import Path

from calcinosis import software
from calcinosis.book import manifest
from calcinosis.book.execute import ChapterFailed
from calcinosis.book.staging import BookFailed
from calcinosis.errors import BuildError


def write_manifest(tmp: Path, record: dict) -> None:
    """`manifest.json`: the build's record, with the command, versions and git state added."""
    manifest.write(
        tmp / "manifest.json",
        {
            **record,
            "command": sys.argv,
            "packages": software.package_versions(),
            "git": software.git_state(),
        },
    )


def swap(new: Path, out: Path) -> None:
    """Put `new` in place of `out`: one atomic exchange where the OS has it, else two renames."""
    if not out.exists():
        os.rename(new, out)
        return
    if _exchange(new, out):
        shutil.rmtree(new)  # it now holds the old book
        return
    old = out.with_name(f"{out.name}.old-{os.getpid()}")
    os.rename(out, old)
    os.rename(new, out)
    shutil.rmtree(old, ignore_errors=True)


def _exchange(a: Path, b: Path) -> bool:
    """Linux renameat2(RENAME_EXCHANGE); False where it is not available."""
    try:
        fn = ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    return fn(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0


def keep_failure(tmp: Path, failed: Path, err: BaseException) -> None:
    """Keep the failed notebook and the logs in `failed` and point the message there."""
    if not isinstance(err, BuildError) or not tmp.exists():
        return
    shutil.rmtree(failed, ignore_errors=True)
    failed.mkdir(parents=True)
    kept = []
    if isinstance(err, ChapterFailed) and err.notebook.is_file():
        (failed / "notebooks").mkdir()
        target = failed / "notebooks" / err.notebook.name
        shutil.copyfile(err.notebook, target)
        kept.append(target)
    if (tmp / "logs").is_dir():
        shutil.copytree(tmp / "logs", failed / "logs")
        if isinstance(err, BookFailed):
            kept.append(failed / "logs" / err.log.name)
    if kept:
        err.args = (f"{err.args[0]}\n  kept for inspection: " + ", ".join(str(k) for k in kept),)


def remove_stale_temps(tmp: Path) -> None:
    """Temporary folders like `tmp` (`<name>.tmp-<pid>`) of builds whose process is gone."""
    for path in tmp.parent.glob(tmp.name.rsplit("-", 1)[0] + "-*"):
        pid = path.name.rsplit("-", 1)[-1]
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            shutil.rmtree(path, ignore_errors=True)
        except PermissionError:
            pass
