"""The build's errors: each carries a message for a person and the CLI's exit status."""

from __future__ import annotations

from pathlib import Path


class BuildError(Exception):
    """An expected failure with a message for a person; `exit_code` for the CLI."""

    exit_code = 1


class UsageError(BuildError):
    exit_code = 2


class InvalidData(BuildError):
    """The data failed validation; nothing was written."""

    exit_code = 2

    def __init__(self, data_dir: Path, problems: list) -> None:
        self.problems = list(problems)
        lines = [str(p) for p in self.problems]
        lines.append(
            f"{len(self.problems)} problem(s) found in {data_dir} "
            "(file:line: column: message; line 1 is the header)"
        )
        super().__init__("\n".join(lines))


def could_not_write(err: OSError) -> BuildError:
    """One line for an operating-system error while writing (full disk, read-only folder, no
    permission) that names the file. `shutil.Error` carries a list of (source, destination,
    reason) instead of a file name: its first failed file is named, and how many others."""
    import shutil

    if isinstance(err, shutil.Error) and err.args and isinstance(err.args[0], list):
        failures = [f for f in err.args[0] if isinstance(f, tuple) and len(f) == 3]
        if failures:
            _, destination, why = failures[0]
            others = len(failures) - 1
            more = f" (and {others} other file{'s' * (others > 1)})" if others else ""
            reason = str(why).split("] ", 1)[-1]  # "[Errno 28] No space left on device"
            return BuildError(f"could not write {destination}: {reason}{more}")
    where = f" {err.filename}" if err.filename else ""
    return BuildError(f"could not write{where}: {err.strerror or err}")
