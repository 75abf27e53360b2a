"""Compute a whole-trial analysis once per loaded trial.

Several producers of the results stage, each handed its own view of the trial
(`Trial.only`), ask for the same analysis: the sensitivity grid feeds a table, a figure, the
results mapping and the ensemble's conclusions. A loaded Trial is not changed afterwards, so an
analysis of it is kept as long as the Trial lives, shared by all its views; every caller gets
its own copy, so no caller can alter what another sees.

A remembered analysis declares the tables it reads. It runs on a view of just those, and a
caller whose own view lacks one of them is refused, as the caller's first computation would
have been: a cached answer must not hide an undeclared read.
"""

from __future__ import annotations

import copy
import functools
import weakref
from collections.abc import Callable
from typing import TypeVar

from calcinosis.data.trial import Trial, UndeclaredRead

T = TypeVar("T")


def per_trial(*reads: str) -> Callable[[Callable[..., T]], Callable[..., T]]:
    """Decorate `func(trial, *args)`, which reads the tables `reads`, so it runs once per
    loaded Trial and `args` (hashable: a patient id, say), whichever of its views asks."""

    def decorate(func: Callable[..., T]) -> Callable[..., T]:
        done: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

        @functools.wraps(func)
        def once(trial: Trial, *args) -> T:
            missing = [name for name in reads if not trial.holds(name)]
            if missing:
                raise UndeclaredRead(
                    f"{func.__qualname__} reads {', '.join(missing)}, which the caller's view "
                    "does not hold (calcinosis.report.results.PRODUCERS)"
                )
            known = done.setdefault(trial.whole, {})
            if args not in known:
                known[args] = func(trial.whole.only(reads), *args)
            return copy.deepcopy(known[args])

        def remember(trial: Trial, value: T, *args) -> None:
            """Keep `value`, computed from `trial`'s rows for `args` elsewhere (a worker
            process of the results stage), as this analysis of `trial`: callers here reuse it
            instead of computing it again."""
            done.setdefault(trial.whole, {})[args] = value

        once.remember = remember  # type: ignore[attr-defined]
        return once

    return decorate
