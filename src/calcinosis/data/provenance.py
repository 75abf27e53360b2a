"""Where the data came from, as the data package declares it, and the notice the book shows.

The bundled data are a reconstruction, and every page must say so; the authors' real data,
dropped into a folder of their own, must not be labelled one. So the label is not written into
the chapters: it follows from `datapackage.json`. A package that declares itself a
reconstruction (`provenance.reconstruction: true`) is taken as one only while its tables still
match the SHA-256 hashes it records: edited files are data derived from a reconstruction, still
not the trial's raw data, and the notice says that instead; a package that records no hashes
cannot be checked, and is never said to have changed against them. A package flagged
`provenance.synthetic_example: true` holds invented data (the walk-through in
`data/examples/updated`), and one flagged `provenance.real_data: true` declares the trial's own
data. `Provenance.sentence()` says in one plain sentence which of these the data are (the
supplement's README).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from calcinosis.markup import myst as escape_myst

REAL = "real"
RECONSTRUCTION = "reconstruction"
MODIFIED = "modified reconstruction"
UNVERIFIED = "unverified reconstruction"
SYNTHETIC = "synthetic example"
UNDECLARED = "undeclared"
# The tables each result built into the reconstruction is drawn from (Provenance.built_in).
BUILT_FROM = {
    "built_in_courses_note": ("patients.csv", "lesions.csv", "measurements.csv"),
    "built_in_dose_note": ("lesions.csv", "measurements.csv"),
}


@dataclass(frozen=True)
class Provenance:
    """What the package says of its data, and which of its tables no longer match it."""

    kind: str  # REAL, RECONSTRUCTION, MODIFIED, UNVERIFIED, SYNTHETIC or UNDECLARED
    changed: tuple[str, ...] = ()  # CSV files whose hash differs from the recorded one
    doi: str = ""

    def notice(self) -> str:
        """The warning every page shows (MyST), or "" for real data and data that declare no
        provenance."""
        if self.kind in (UNDECLARED, REAL):
            return ""
        if self.kind == SYNTHETIC:
            title = "Synthetic example"
            body = (
                "Every number on this page is computed from a **synthetic example**: its "
                "patients, lesions and measurements are invented, to show how the book handles "
                "a dataset, and are not data from any trial. Read nothing in it as evidence "
                "about infliximab."
            )
        elif self.kind == UNVERIFIED:
            title = "Declared a reconstruction"
            body = (
                "The data package declares these data a **reconstruction** of the trial data, "
                "built to agree with the summaries the article prints, but records no hashes of "
                "its files, so the book cannot check that they are still that reconstruction. "
                "They are not the trial's raw data."
            )
        elif self.kind == RECONSTRUCTION:
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
        vouched = self.kind in (RECONSTRUCTION, MODIFIED)
        return {
            name: text if vouched and not set(self.changed) & set(BUILT_FROM[name]) else ""
            for name, text in notes.items()
        }

    def footer(self) -> str:
        """One line for the site's footer (HTML), or "" for undeclared data."""
        if self.kind in (UNDECLARED, REAL):
            return ""
        if self.kind == SYNTHETIC:
            return (
                "Every number is computed from a <strong>synthetic example</strong>, "
                "not data from any trial."
            )
        what = {
            RECONSTRUCTION: "a reconstructed dataset",
            MODIFIED: "a modified reconstruction",
            UNVERIFIED: "data declared a reconstruction",
        }
        return (
            f"Every number is computed from <strong>{what[self.kind]}</strong>, "
            "not the trial's raw data."
        )

    def sentence(self) -> str:
        """What the data are, in one plain-text sentence (the supplement's README)."""
        if self.kind == REAL:
            return "These are the trial's own data, as their data package declares."
        if self.kind == RECONSTRUCTION:
            return (
                "These data are a reconstruction of the trial's data, built to agree with the "
                "summaries the article prints; they are not the trial's raw data."
            )
        if self.kind == MODIFIED:
            files = ", ".join(self.changed)
            return (
                "These data were derived from a reconstruction of the trial's data and edited "
                f"since (changed: {files}); they are neither the trial's raw data nor the "
                "reconstruction that agrees with the article."
            )
        if self.kind == UNVERIFIED:
            return (
                "These data are declared a reconstruction of the trial's data, with no hashes "
                "to check their files against; they are not the trial's raw data."
            )
        if self.kind == SYNTHETIC:
            return (
                "These data are a synthetic example: invented patients, lesions and "
                "measurements, not data from any trial."
            )
        return (
            "These data declare no provenance: no data package says whether they are real, "
            "reconstructed or synthetic, and the book does not label them."
        )


def of(data_dir: Path | str) -> Provenance:
    """The provenance of the dataset in `data_dir` (no datapackage.json: undeclared)."""
    data_dir = Path(data_dir)
    path = data_dir / "datapackage.json"
    if not path.is_file():
        return Provenance(UNDECLARED)
    package = json.loads(path.read_text(encoding="utf-8"))
    declared = package.get("provenance") or {}
    if not isinstance(declared, dict):
        return Provenance(UNDECLARED)
    doi = str(declared.get("article_doi", ""))
    if declared.get("synthetic_example") is True:
        return Provenance(SYNTHETIC, doi=doi)
    if declared.get("real_data") is True:
        return Provenance(REAL, doi=doi)
    if declared.get("reconstruction") is not True:
        return Provenance(UNDECLARED)
    resources = [r for r in package.get("resources", []) if isinstance(r, dict)]
    hashed = [r for r in resources if str(r.get("hash", "")).startswith("sha256:")]
    if not hashed:
        return Provenance(UNVERIFIED, doi=doi)
    changed = tuple(str(r.get("path", "")) for r in hashed if not _matches(data_dir, r))
    return Provenance(MODIFIED if changed else RECONSTRUCTION, changed, doi)


def sentence(data_dir: Path | str) -> str:
    """What the data in `data_dir` are, in one plain sentence: real, reconstructed, an edited
    reconstruction, synthetic or undeclared (for the supplement's README)."""
    return of(data_dir).sentence()


def package_sentence(data_dir: Path | str) -> str:
    """What the data dictionary can say of the package (plain text, as `{glue:text}` shows
    it): its title, licence and provenance note when a datapackage.json gives them, or that
    there is none."""
    path = Path(data_dir) / "datapackage.json"
    if not path.is_file():
        return (
            "This dataset comes without a datapackage.json: its tables are read with the "
            "book's own description of them, listed below."
        )
    package = json.loads(path.read_text(encoding="utf-8"))
    title = str(package.get("title", "")).strip()
    listed = package.get("licenses")
    licences = [
        str(lic.get("name", "")).strip()
        for lic in (listed if isinstance(listed, list) else [])
        if isinstance(lic, dict)
    ]
    licences = [name for name in licences if name]
    declared = package.get("provenance")
    note = str(declared.get("note", "")).strip() if isinstance(declared, dict) else ""
    text = "The dataset is a Frictionless tabular data package"
    text += f", “{title}”" if title else " without a title"
    text += f", licensed {', '.join(licences)}." if licences else ", with no licence."
    if note:
        text += f" Its provenance note reads: “{note}”"
    return text


def _matches(data_dir: Path, resource: dict) -> bool:
    """The resource's file exists and has the SHA-256 the package records."""
    recorded = str(resource.get("hash", ""))
    path = data_dir / str(resource.get("path", ""))
    if not path.is_file():
        return False
    return hashlib.sha256(path.read_bytes()).hexdigest() == recorded.removeprefix("sha256:")


def _no_longer_match(names: tuple[str, ...]) -> str:
    quoted = [escape_myst(name) for name in names]  # the names come from the data
    if len(quoted) == 1:
        return f"{quoted[0]} no longer matches"
    return f"{', '.join(quoted[:-1])} and {quoted[-1]} no longer match"
