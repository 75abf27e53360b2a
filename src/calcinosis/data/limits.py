"""How big a trial the build takes on, and how much memory its analysis may use.

The analyses grow faster than the data: the GEE's working correlation and its small-sample
corrections work on every pair of visits within a cluster, so a patient with 5 000
measurements costs 12.5 million pairs per fit, and a build fits dozens. A trial beyond the
limits below is refused before anything runs, in one line that names the file and what is too
big; `calcinosis build --large` goes on, after printing an estimate of the memory it needs.
Either way the results stage's worker has a ceiling on its address space (`cap_memory`), so a
runaway analysis ends as a MemoryError that names the trial's size, not as a dead pool.
"""

from __future__ import annotations

import os
import resource
from dataclasses import dataclass

from calcinosis.data.trial import Trial
from calcinosis.errors import UsageError

# A definitive trial: 60 patients with 12 lesions each is 720 lesions; two years of weekly
# visits is 104; 60 x 12 lesions x 32 weekly visits (23 040 rows) stays under the row limit.
MAX_MEASUREMENT_ROWS = 30_000
MAX_LESIONS = 1_000
MAX_VISITS_PER_LESION = 104

GB = 1024**3
# The estimate: what a worker holds before any analysis (Python, numpy, pandas, statsmodels,
# matplotlib), per measurement row, and per pair of visits within one patient (the largest
# cluster the book fits). Calibrated on the bundled trial and larger generated ones (README).
BASE_BYTES = 0.5 * GB
BYTES_PER_ROW = 60_000
BYTES_PER_PAIR = 40
# The worker's address-space ceiling: what it has mapped when it starts (libraries, thread
# stacks: more on a machine with many cores) plus twice the analysis's estimate, and never less
# than the floor above that, which the bundled trial stays far below.
HEADROOM = 2.0
FLOOR_BYTES = 4 * GB
MEMORY_VARIABLE = "CALCINOSIS_WORKER_MEMORY_GB"


@dataclass(frozen=True)
class Size:
    """What makes a trial costly to analyse."""

    rows: int  # measurement rows
    lesions: int
    visits_per_lesion: int  # the most rows any one lesion has
    pairs: int  # pairs of rows within a patient, summed over patients

    @classmethod
    def of(cls, trial: Trial) -> Size:
        m = trial.measurements
        per_lesion = m.groupby("lesion_id", observed=True).size()
        patient = m["lesion_id"].map(trial.lesions.set_index("lesion_id")["patient_id"])
        per_patient = patient.value_counts()
        return cls(
            rows=len(m),
            lesions=len(trial.lesions),
            visits_per_lesion=int(per_lesion.max()) if len(per_lesion) else 0,
            pairs=int((per_patient * (per_patient - 1) // 2).sum()),
        )

    def excess(self) -> list[str]:
        """Each limit this trial is above, in words naming the file."""
        checks = (
            ("measurements.csv", self.rows, MAX_MEASUREMENT_ROWS, "rows"),
            ("lesions.csv", self.lesions, MAX_LESIONS, "lesions"),
            (
                "measurements.csv",
                self.visits_per_lesion,
                MAX_VISITS_PER_LESION,
                "visits of one lesion",
            ),
        )
        return [
            f"{file}: {count} {what}, above the limit of {limit}"
            for file, count, limit, what in checks
            if count > limit
        ]

    def memory_estimate(self) -> float:
        """Bytes the results stage's worker is expected to reach (a rough model, see above)."""
        return BASE_BYTES + BYTES_PER_ROW * self.rows + BYTES_PER_PAIR * self.pairs

    def memory_ceiling(self, mapped: int = 0) -> int:
        """The worker's address-space limit, given the bytes it has `mapped` already: room
        above the estimate, within the machine. `CALCINOSIS_WORKER_MEMORY_GB` sets it instead
        (a test; a machine whose libraries reserve more address space)."""
        chosen = os.environ.get(MEMORY_VARIABLE, "").strip()
        if chosen:
            return int(float(chosen) * GB)
        room = max(FLOOR_BYTES, HEADROOM * (self.memory_estimate() - BASE_BYTES))
        return int(mapped + min(room, max(FLOOR_BYTES, _physical_memory())))

    def describe(self) -> str:
        return (
            f"{self.rows} measurement rows, {self.lesions} lesions, up to "
            f"{self.visits_per_lesion} visits per lesion"
        )


class TooLarge(UsageError):
    """The trial is above the size limits and `--large` was not given."""


class OutOfMemory(Exception):
    """An analysis reached the worker's memory ceiling; the message names the trial's size."""


def check(trial: Trial, large: bool) -> str:
    """Refuse a trial above the limits (TooLarge, one line), unless `large`: then the line
    to print, with the memory estimate. Empty for a trial within the limits."""
    size = Size.of(trial)
    excess = size.excess()
    if not excess:
        return ""
    if not large:
        raise TooLarge(
            f"{'; '.join(excess)}: too big to build by default (about "
            f"{size.memory_estimate() / GB:.1f} GB of memory); `calcinosis build --large` "
            "goes on"
        )
    return (
        f"large trial ({'; '.join(excess)}): the analysis needs about "
        f"{size.memory_estimate() / GB:.1f} GB of memory"
    )


def cap_memory(trial: Trial) -> int:
    """Limit this process's address space (RLIMIT_AS) to the trial's ceiling, so an analysis
    that needs more raises MemoryError instead of exhausting the machine; its children (the
    figure workers) inherit the limit. Returns the ceiling in bytes (0 where the platform has
    no such limit)."""
    import psutil

    ceiling = Size.of(trial).memory_ceiling(psutil.Process().memory_info().vms)
    try:
        _, hard = resource.getrlimit(resource.RLIMIT_AS)
        if hard != resource.RLIM_INFINITY:
            ceiling = min(ceiling, hard)
        resource.setrlimit(resource.RLIMIT_AS, (ceiling, hard))
    except (ValueError, OSError):
        return 0
    return ceiling


def out_of_memory(trial: Trial, ceiling: int) -> OutOfMemory:
    size = Size.of(trial)
    return OutOfMemory(
        f"the analysis needed more than the worker's {ceiling / GB:.1f} GB of memory "
        f"(measurements.csv: {size.describe()}): the trial is too big for this machine"
    )


def _physical_memory() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError):
        return FLOOR_BYTES
