"""Where the data came from, as the data package declares it, and the notice the book shows.

The bundled data are a reconstruction, and every page must say so; the authors' real data,
dropped into the same folder, must not be labelled one. So the label is not written into the
chapters: it follows from `datapackage.json`. A package that declares itself a reconstruction
(`provenance.reconstruction: true`) is taken as one only while its tables still match the
SHA-256 hashes it records: edited files are data derived from a reconstruction, still not the
trial's raw data, and the notice says that instead.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from calcinosis.markup import myst as escape_myst

RECONSTRUCTION = "reconstruction"
MODIFIED = "modified reconstruction"
UNDECLARED = "undeclared"
# The tables each result built into the reconstruction is drawn from (Provenance.built_in).
BUILT_FROM = {
    "built_in_courses_note": ("patients.csv", "lesions.csv", "measurements.csv"),
    "built_in_dose_note": ("lesions.csv", "measurements.csv"),
}


@dataclass(frozen=True)
class Provenance:
    """What the package says of its data, and which of its tables no longer match it."""

    kind: str  # RECONSTRUCTION, MODIFIED or UNDECLARED
    changed: tuple[str, ...] = ()  # CSV files whose hash differs from the recorded one
    doi: str = ""

    def notice(self) -> str:
        """The warning every page shows (MyST), or "" for data that declare no provenance."""
        if self.kind == UNDECLARED:
            return ""
        if self.kind == RECONSTRUCTION:
            title = "Reconstructed data"
            body = (
                "Every number on this page is computed from a **reconstruction** of the trial "
                "data, built to agree with the summaries the article prints; the per-lesion "
                "measurements were never published ({ref}`reproducibility`). The analysis is "
                "real; the data are not the trial's: read the results as a demonstration of "
                "the analysis, not as evidence about infliximab."
            )
        else:
            title = "Data derived from a reconstruction"
            body = (
                "The data package declares these data a **reconstruction** of the trial data, "
                f"but {_no_longer_match(self.changed)} the hashes it records: they were "
                "changed after the reconstruction was made. They are not the trial's raw data, "
                "and they are no longer the reconstruction that agrees with the article."
            )
        return f":::{{admonition}} {title}\n:class: warning\n\n{body}\n:::\n"

    def built_in(self) -> dict[str, str]:
        """Sentences set beside results the reconstruction reproduces by design (empty for
        any other data): the courses were drawn from the article's case descriptions, and
        the doses from its rule, so agreeing with the article there is no finding. Each holds
        while the tables it is about still match the package's hashes (an added adverse event
        leaves the courses as they were drawn)."""
        notes = {
            "built_in_courses_note": (
                "The reconstruction drew each patient's course, including when the decline "
                "begins and which patients shrink faster, from the article's description of "
                "the cases (data/README.md), and these courses are as it drew them: they "
                "agree with the article by design, and are not a finding."
            ),
            "built_in_dose_note": (
                "The reconstruction set every dose by the published rule, and these doses "
                "are as it set them, so the agreement is by design."
            ),
        }
        return {
            name: text
            if self.kind != UNDECLARED and not set(self.changed) & set(BUILT_FROM[name])
            else ""
            for name, text in notes.items()
        }

    def footer(self) -> str:
        """One line for the site's footer (HTML), or "" for undeclared data."""
        if self.kind == UNDECLARED:
            return ""
        what = {RECONSTRUCTION: "a reconstructed dataset", MODIFIED: "a modified reconstruction"}
        return (
            f"Every number is computed from <strong>{what[self.kind]}</strong>, "
            "not the trial's raw data."
        )


def of(data_dir: Path | str) -> Provenance:
    """The provenance of the dataset in `data_dir` (no datapackage.json: undeclared)."""
    data_dir = Path(data_dir)
    path = data_dir / "datapackage.json"
    if not path.is_file():
        return Provenance(UNDECLARED)
    package = json.loads(path.read_text(encoding="utf-8"))
    declared = package.get("provenance") or {}
    if declared.get("reconstruction") is not True:
        return Provenance(UNDECLARED)
    doi = str(declared.get("article_doi", ""))
    changed = tuple(
        resource.get("path", "")
        for resource in package.get("resources", [])
        if not _matches(data_dir, resource)
    )
    return Provenance(MODIFIED if changed else RECONSTRUCTION, changed, doi)


def _matches(data_dir: Path, resource: dict) -> bool:
    """The resource's file exists and has the SHA-256 the package records (none recorded:
    the package cannot vouch for the file, so it does not match)."""
    recorded = str(resource.get("hash", ""))
    path = data_dir / str(resource.get("path", ""))
    if not recorded.startswith("sha256:") or not path.is_file():
        return False
    return hashlib.sha256(path.read_bytes()).hexdigest() == recorded.removeprefix("sha256:")


def _no_longer_match(names: tuple[str, ...]) -> str:
    quoted = [escape_myst(name) for name in names]  # the names come from the data
    if len(quoted) == 1:
        return f"{quoted[0]} no longer matches"
    return f"{', '.join(quoted[:-1])} and {quoted[-1]} no longer match"
