"""Every registered figure draws from the bundled data in the book's theme."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from calcinosis import figures, glue, paths, theme  # noqa: E402
from calcinosis.data import load_trial  # noqa: E402


@pytest.fixture(scope="module")
def trial():
    return load_trial(paths.DATA_DIR)


@pytest.mark.parametrize("name", sorted(figures.FIGURES))
def test_registered_figure_draws(trial, name: str) -> None:
    fig = figures.FIGURES[name](trial)
    try:
        assert isinstance(fig, Figure)
        assert fig.axes and all(ax.has_data() for ax in fig.axes if ax.get_visible())
        width, _ = fig.get_size_inches()
        assert width == pytest.approx(theme.WIDTH_IN), "figures are drawn at text width"
        assert glue.png(fig)[:8] == b"\x89PNG\r\n\x1a\n"
    finally:
        plt.close(fig)


def test_registry_names_are_the_function_names() -> None:
    for name, func in figures.FIGURES.items():
        assert name == func.__name__ and name.startswith("fig_")


@pytest.mark.parametrize("patient_id", ["P1", "P2"])
def test_patient_figure(trial, patient_id: str) -> None:
    fig = figures.fig_patient_trajectories(trial, patient_id)
    lines = [line for ax in fig.axes for line in ax.get_lines()]
    n_lesions = int((trial.lesions["patient_id"] == patient_id).sum())
    assert len(lines) == 2 * n_lesions  # one line per lesion and outcome
    plt.close(fig)


def test_palette_is_okabe_ito_and_distinct() -> None:
    assert len(set(theme.PALETTE)) == len(theme.PALETTE)
    assert set(theme.PALETTE) <= set(theme.OKABE_ITO.values())
    colours = theme.patient_colours(["P2", "P1"])
    assert colours["P1"] == theme.PALETTE[0]
