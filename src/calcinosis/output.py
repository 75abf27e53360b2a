"""What a build writes beside the book, and how it replaces the last one: results.json and
the supplement, the manifest, the atomic swap into `<out>`, and `<out>.failed/` when it fails."""

from __future__ import annotations

import ctypes
import json
import os
import shutil
import sys
import time
import zipfile
from pathlib import Path

from calcinosis import cache, manifest
from calcinosis.errors import BuildError
from calcinosis.execute import ChapterFailed, PageRun
from calcinosis.pages import Page
from calcinosis.staging import BookFailed


def write_supplement(store: cache.Store, key: str, tmp: Path) -> dict:
    """Unpack the supplement, write its results.json beside the book too, zip it."""
    from calcinosis import supplement

    parts = store.get("supplement", key, ".zip")
    dest = tmp / "supplement"
    with zipfile.ZipFile(parts) as archive:
        archive.extractall(dest)
    (tmp / "supplement-parts.zip").unlink(missing_ok=True)
    text = (dest / "results.json").read_text(encoding="utf-8")
    (tmp / "results.json").write_text(text, encoding="utf-8")
    supplement.write_zip(dest, tmp / "supplement.zip")
    return json.loads(text)


def write_manifest(tmp: Path, started: str, t0: float, build_key: str, data_dir: Path,
                   inputs: cache.Inputs, pages: list[Page], runs: list[PageRun],
                   supplement_run: dict, book_files: dict, params: dict, jobs: int, pdf: bool,
                   compare_to: Path | None, book_seconds: dict, n_results: int) -> None:
    chapters = {p.chapter.name: cache.sha256_bytes(p.chapter.source) for p in pages}
    manifest.write(tmp / "manifest.json", {
        "build_key": build_key,
        "started": started,
        "finished": manifest.now(),
        "seconds": round(time.perf_counter() - t0, 3),
        "command": sys.argv,
        "data_dir": str(data_dir),
        "data_files": inputs.data,
        "parameters": params,
        "chapters": chapters,
        "book_files": book_files,
        "package_files": inputs.package,
        "environment": inputs.environment,
        "packages": manifest.package_versions(),
        "git": manifest.git_state(),
        "jobs": jobs,
        "pdf": pdf,
        "compare_to": str(compare_to) if compare_to else None,
        "pages": [r.record() for r in runs],
        "supplement": supplement_run,
        "book_seconds": book_seconds,
        "n_results": n_results,
    })


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
    """Keep the failed notebook and the logs in `<out>.failed/` and point the message there."""
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
        err.args = (f"{err.args[0]}\n  kept for inspection: "
                    + ", ".join(str(k) for k in kept),)


def remove_stale_temps(out_dir: Path) -> None:
    """Temporary folders of builds whose process is gone."""
    for path in out_dir.parent.glob(f"{out_dir.name}.tmp-*"):
        pid = path.name.rsplit("-", 1)[-1]
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            shutil.rmtree(path, ignore_errors=True)
        except PermissionError:
            pass
