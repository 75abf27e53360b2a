"""The published per-lesion dose rule, read from the article's facts.

The Methods give 20 mg for a lesion up to 1.5 cm² and 40 mg from 1.5 to 5 cm²; larger lesions
were to be excluded, so the rule gives them no dose. A lesion of exactly 1.5 cm² falls in the
lower band ("each 1.5 cm² lesion ... 20 mg").
"""

from __future__ import annotations

from functools import cache

import yaml

from calcinosis import paths


@cache
def bands() -> tuple[tuple[float, float], ...]:
    """(upper area in cm², dose in mg) for each band of the rule, smallest first."""
    facts = yaml.safe_load(paths.FACTS_FILE.read_text(encoding="utf-8"))
    rule = facts["design"]["intervention"]["dose_rule"]
    # the facts spell the areas as "<= 1.5" and "1.5 to 5": the upper limit comes last
    return tuple((float(band["area_cm2"].split()[-1]), float(band["dose_mg"])) for band in rule)


def rule_dose(area_cm2: float) -> float | None:
    """The dose the rule gives a lesion of this area; None above the last band (excluded)."""
    for upper, dose in bands():
        if area_cm2 <= upper:
            return dose
    return None


def band_numbers() -> dict[str, float]:
    """The rule's limits and doses under the names the methods chapter glues."""
    numbers = {}
    for i, (upper, dose) in enumerate(bands(), start=1):
        numbers[f"dose_band_{i}_upper"] = upper
        numbers[f"dose_band_{i}_mg"] = dose
    return numbers
