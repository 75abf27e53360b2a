"""Compute a whole-trial analysis once per loaded trial.

One page, or the supplement, asks for the same analysis several times: the sensitivity grid
feeds a table, a figure and the results mapping. A loaded Trial is not changed afterwards, so
an analysis of it can be kept as long as the Trial lives; every caller gets its own copy, so no
caller can alter what another sees.
"""

from __future__ import annotations

import copy
import functools
import weakref
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def per_trial(func: Callable[..., T]) -> Callable[..., T]:
    """Decorate `func(trial)` so it runs once per Trial object."""
    done: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

    @functools.wraps(func)
    def once(trial) -> T:
        if trial not in done:
            done[trial] = func(trial)
        return copy.deepcopy(done[trial])

    return once
