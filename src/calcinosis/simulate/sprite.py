"""SPRITE-style search: integer-grid samples that reproduce a printed mean and SD.

Heathers et al.'s SPRITE (Sample Parameter Reconstruction via Iterative TEchniques) starts
from values with the right sum and moves pairs of them apart or together one grid step at a
time until the standard deviation rounds to the printed one. Here each value also has its
own bounds (a final size can't exceed the baseline size; a width can't exceed its length)
and some values are pinned (the printed minimum and maximum must occur).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Target:
    """A printed summary: mean ± SD at `decimals`, on values that are multiples of `grid`."""

    mean: float
    sd: float
    decimals: int
    grid: float


def rounds_to(value: float, printed: float, decimals: int) -> bool:
    """Whether `value` prints as `printed` at `decimals` (half away from zero, as SPSS does)."""
    scale = 10**decimals
    return abs(np.floor(abs(value) * scale + 0.5) - round(abs(printed) * scale)) < 0.5


def search(
    target: Target,
    lower: np.ndarray,
    upper: np.ndarray,
    prior: np.ndarray,
    rng: np.random.Generator,
    max_steps: int = 200_000,
) -> np.ndarray:
    """Values within [lower, upper] near `prior` whose mean and sample SD print as `target`.

    Pinned values are expressed as lower == upper. Raises ValueError when no sample is found,
    which means the summary cannot come from values on this grid within these bounds.
    """
    lo = np.round(np.asarray(lower) / target.grid).astype(np.int64)
    hi = np.round(np.asarray(upper) / target.grid).astype(np.int64)
    units = np.clip(np.round(np.asarray(prior) / target.grid).astype(np.int64), lo, hi)
    n = len(units)
    total = grim_total(target, n)
    if total is None:
        raise ValueError(f"no total on a {target.grid} grid gives mean {target.mean} with n={n}")
    if not lo.sum() <= total <= hi.sum():
        raise ValueError("the mean is out of reach of the bounds")
    free = np.flatnonzero(lo < hi)
    while (gap := total - units.sum()) != 0:
        step = int(np.sign(gap))
        movable = free[(units[free] + step >= lo[free]) & (units[free] + step <= hi[free])]
        units[rng.choice(movable)] += step
    for _ in range(max_steps):
        sd = float(np.std(units * target.grid, ddof=1))
        # Stop well inside the rounding interval, so the SD does not sit on its edge.
        if abs(sd - target.sd) < 0.3 * 10**-target.decimals:
            return units * target.grid
        i, j = rng.choice(free, size=2, replace=False)
        if units[i] > units[j]:
            i, j = j, i
        # spread (i down, j up) raises the SD; gather (i up, j down) lowers it
        step = -1 if sd < target.sd else 1
        if step == 1 and units[j] - units[i] < 2:
            continue
        if lo[i] <= units[i] + step <= hi[i] and lo[j] <= units[j] - step <= hi[j]:
            units[i] += step
            units[j] -= step
    raise ValueError("no sample with this SD was found within the bounds")


def grim_total(target: Target, n: int) -> int | None:
    """The grid-unit total whose mean prints as the target mean, nearest the exact one.

    None when no total works: the GRIM test's verdict that the mean cannot come from n
    values on this grid.
    """
    exact = target.mean * n / target.grid
    for offset in sorted(range(-n, n + 1), key=abs):
        candidate = int(round(exact)) + offset
        if rounds_to(candidate * target.grid / n, target.mean, target.decimals):
            return candidate
    return None
