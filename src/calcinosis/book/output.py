"""Where a command writes and how a build finishes: the rule every command that writes follows
(a folder of its own, one command at a time), the manifest, the atomic swap into `<out>`,
and the kept failure (notebook and logs) when it fails."""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

from calcinosis import paths, software
from calcinosis.book import manifest
from calcinosis.errors import BuildError, UsageError

MARKER = ".calcinosis-build"  # in every output folder a command made: only those are replaced


def check_out(
    out_dir: Path,
    protected: Sequence[Path] = (),
    *,
    own: frozenset[str] = frozenset(),
    flag: str = "--out",
) -> Path:
    """The absolute `out_dir` a command may write, or one line saying why not.

    A command writes only a folder of its own: a new or empty one, one an earlier run marked
    with `MARKER`, or (for a command that adds to its folder: `power`, `ensemble`) one that
    holds nothing but the names in `own`. Never a symbolic link, a file, the repository, the
    working folder or a folder holding `protected` paths (the data, the cache, the chapters).
    """
    given = Path(out_dir)
    if given.is_symlink():
        raise UsageError(f"{flag} {given} is a symbolic link; choose a folder of its own")
    out_dir = given.resolve()
    for path in [paths.ROOT, Path.cwd(), *protected]:
        path = Path(path).resolve()
        if path == out_dir or out_dir in path.parents:
            raise UsageError(f"{flag} {out_dir} would replace {path}; choose a folder of its own")
    if not out_dir.exists():
        return out_dir
    if not out_dir.is_dir():
        raise UsageError(f"{flag} {out_dir} exists and is not a folder; choose a folder")
    foreign = sorted(p.name for p in out_dir.iterdir() if p.name not in own | {MARKER})
    if foreign and not (out_dir / MARKER).is_file():
        raise UsageError(
            f"{flag} {out_dir} holds files this command did not make ({_some(foreign)}); "
            "choose a new or empty folder"
        )
    return out_dir


def _some(names: list[str]) -> str:
    return ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")


def mark(folder: Path, command: str) -> None:
    """Mark `folder` as made by `command`, so a later run may replace or add to it."""
    (folder / MARKER).write_text(f"made by calcinosis {command}; replaced only by another\n")


@contextlib.contextmanager
def exclusive(out_dir: Path) -> Iterator[None]:
    """One command at a time per output folder, whatever cache each uses: a lock file beside
    `out_dir` (`.<name>.lock`, kept: removing it would race with the next command)."""
    import fcntl

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    with (out_dir.parent / f".{out_dir.name}.lock").open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise UsageError(
                f"another calcinosis command is writing {out_dir}; wait for it, "
                "or choose another --out"
            ) from None
        yield


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
    from calcinosis.book.execute import ChapterFailed
    from calcinosis.book.staging import BookFailed

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
