"""Whether a dataset is the article's trial, and which of its patients is which child.

The shipped ensemble describes the article's five children; a dataset is compared with it
only when it describes them too. That is decided from what the article prints and the data
package declares, never from patient IDs: the package must not name another article, the
measured visits must follow the article's schedule, and each child the article describes
(sex, age, disease duration, number of lesions) must match exactly one patient of the data.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from calcinosis.data.trial import Trial
from calcinosis.simulate import reconstruct

AGE_TOLERANCE_YEARS = 1.0  # the article prints ages in whole years
DURATION_TOLERANCE_MONTHS = 1.0  # and disease duration in whole months


@dataclass(frozen=True)
class Match:
    """The verdict: `patients` maps the article's patient number to the data's patient ID
    when the data are the article's trial; otherwise `reason` says why they are not."""

    patients: dict[int, str]
    reason: str = ""

    @property
    def is_article(self) -> bool:
        return not self.reason


def match(trial: Trial) -> Match:
    """Whether `trial` is the article's trial (see the module doc), with its patients."""
    facts = reconstruct.load_facts()
    other = _other_article(trial, str(facts["article"]["doi"]))
    if other:
        return Match({}, other)
    visits = set(trial.measurements["visit"].astype(int))
    schedule = set(range(1, reconstruct.N_VISITS + 1))
    if not visits <= schedule or max(visits, default=0) != reconstruct.N_VISITS:
        return Match(
            {},
            f"their visits ({_span(visits)}) are not the article's {reconstruct.N_VISITS} "
            "weekly visits",
        )
    children = facts["patients"]
    if len(trial.patients) != len(children):
        return Match(
            {},
            f"they hold {len(trial.patients)} patients where the article describes {len(children)}",
        )
    lesions = trial.lesions["patient_id"].value_counts()
    found: dict[int, str] = {}
    for child in children:
        same = [
            p.patient_id
            for p in trial.patients.itertuples(index=False)
            if _describes(child, p, int(lesions.get(p.patient_id, 0)))
        ]
        if len(same) != 1 or same[0] in found.values():
            return Match(
                {},
                f"no single patient matches the article's patient {child['id']} (sex, age, "
                "disease duration and number of lesions)",
            )
        found[int(child["id"])] = str(same[0])
    return Match(found)


def _describes(child: dict, patient, n_lesions: int) -> bool:
    return (
        str(patient.sex) == str(child["sex"])
        and abs(float(patient.age_years) - float(child["age"])) <= AGE_TOLERANCE_YEARS
        and abs(float(patient.disease_duration_months) - float(child["duration_months"]))
        <= DURATION_TOLERANCE_MONTHS
        and n_lesions == int(child["lesions"])
    )


def _other_article(trial: Trial, doi: str) -> str:
    """Why the data package says these data belong to another article, or ""."""
    path = trial.data_dir / "datapackage.json"
    if not path.is_file():
        return ""
    declared = (json.loads(path.read_text(encoding="utf-8")).get("provenance") or {}).get(
        "article_doi", ""
    )
    if declared and str(declared).strip().lower() != doi.lower():
        return "their data package names another article"
    return ""


def _span(visits: set[int]) -> str:
    return f"{min(visits)} to {max(visits)}" if visits else "none"
