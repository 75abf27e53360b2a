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
