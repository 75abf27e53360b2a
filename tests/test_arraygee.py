"""The GEE on arrays that analyses simulated trials gives what `models` (statsmodels and the
book's CR2) gives on the same trials."""

from __future__ import annotations

import numpy as np
import pytest

from calcinosis.simulate import power, simulation
from calcinosis.stats import models

COLUMN = "length_mm"


def _reference(trial, cluster: str, cov_type: str) -> models.TermTest:
    """The book's own route: statsmodels' GEE, then `models.term_test`."""
    import pandas as pd

    frame = trial.sort_values([cluster, "visit"], kind="mergesort").reset_index(drop=True)
    frame["time"] = frame["visit"] - 1.0
    covariates = pd.DataFrame(
        {"arm": frame["arm"], "time": frame["time"], "arm × time": frame["arm"] * frame["time"]}
    )
    result, converged = models.fit_design(
        frame, COLUMN, covariates, cluster, cov_struct="exchangeable", family="gaussian_log"
    )
    assert converged
    return models.term_test(result, "arm × time", cov_type)


@pytest.mark.parametrize("allocation", simulation.DESIGNS)
@pytest.mark.parametrize(("children", "dropout"), [(8, 0.1), (40, 0.1), (12, 0.6)])
def test_the_array_gee_equals_statsmodels_and_the_books_cr2(allocation, children, dropout):
    """Small and larger trials; many dropouts leave clusters of one to a few rows."""
    run = power.read()
    model, pilot = run.model(), run.pilot()
    control, effect = power.slopes(pilot, "quarter", "pilot")
    design = power.dataclasses_replace(power.Grid(), dropout=dropout).design(allocation)
    for replicate in range(3):
        rng = simulation.replicate_rng(7, allocation, children, design.visits, replicate)
        trial = simulation.simulate_trial(model, design, children, effect, rng, control)
        for name, (cluster, cov_type) in simulation.GEE.items():
            want = _reference(trial, cluster, cov_type)
            got = simulation.analyse(trial, COLUMN, allocation, (name,))
            assert got[f"{name}_beta"] == pytest.approx(want.beta, rel=1e-8)
            assert got[f"{name}_se"] == pytest.approx(want.se, rel=1e-8)
            assert got[f"{name}_p"] == pytest.approx(want.p, rel=1e-7)
            if want.df is None:
                assert np.isinf(got[f"{name}_df"])
            else:
                assert got[f"{name}_df"] == pytest.approx(want.df, rel=1e-8)
