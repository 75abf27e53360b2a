"""The analysis choices a reviewer may change: one definition, used by the results stage, the
chapters' parameters cells (a test checks their defaults against these) and the CLI."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields

# Working correlations and cluster levels the GEE can take (`calcinosis.stats.models` uses these
# too).
COV_STRUCTS = ("exchangeable", "independence", "ar1")
CLUSTERS = {"lesion": "lesion_id", "patient": "patient_id"}


@dataclass(frozen=True)
class Parameters:
    """Working correlation and cluster level of the main GEE (the paper's: exchangeable,
    lesion). Every number, table, figure and sentence that shows the main model follows them."""

    correlation: str = "exchangeable"
    cluster: str = "lesion"

    def __post_init__(self) -> None:
        for name, allowed in CHOICES.items():
            value = getattr(self, name)
            if value not in allowed:
                raise ValueError(f"parameter {name}={value!r} is not one of: " + ", ".join(allowed))

    @classmethod
    def of(cls, values: Mapping[str, object] | None = None) -> Parameters:
        """From NAME -> value; an unknown name is an error that lists the known ones."""
        values = dict(values or {})
        unknown = sorted(set(values) - set(NAMES))
        if unknown:
            raise ValueError(
                f"no parameter named {', '.join(unknown)} (parameters: {', '.join(NAMES)})"
            )
        return cls(**{k: str(v) for k, v in values.items()})

    def as_dict(self) -> dict[str, str]:
        return asdict(self)

    def changed(self) -> dict[str, str]:
        """The parameters that differ from the paper's analysis."""
        default = Parameters()
        return {k: v for k, v in self.as_dict().items() if getattr(default, k) != v}

    def slug(self) -> str:
        """A folder name for these parameters: 'default' or 'cluster-patient_correlation-ar1'."""
        changed = self.changed()
        return "_".join(f"{k}-{v}" for k, v in sorted(changed.items())) or "default"


CHOICES: dict[str, tuple[str, ...]] = {"correlation": COV_STRUCTS, "cluster": tuple(CLUSTERS)}
NAMES = tuple(f.name for f in fields(Parameters))
