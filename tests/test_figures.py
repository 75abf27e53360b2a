"""Every figure function draws from the bundled data in the book's theme, and renders once to
PNG and SVG bytes that do not change from run to run."""

from __future__ import annotations

import inspect

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from calcinosis import paths
from calcinosis.data.trial import load_trial  # noqa: E402
from calcinosis.params import Parameters  # noqa: E402
from calcinosis.report import figures, sections, theme  # noqa: E402

FIGURE_FUNCTIONS = sorted(
    name
    for name, func in inspect.getmembers(figures, inspect.isfunction)
    if name.startswith("fig_") and func.__module__ == figures.__name__
)


# figures drawn narrow to be legible on a phone (theme.NARROW_WIDTH_IN)
NARROW_FIGURES = {"fig_pinned"}


@pytest.fixture(scope="module")
def trial():
    return load_trial(paths.DATA_DIR)


def _shipped_inputs(name: str, trial) -> tuple | None:
    """The arguments of the figures drawn from a shipped run (the ensemble, the power
    simulation) rather than from the trial, built as their producers build them."""
    from calcinosis.simulate import ensemble, pinned, power

    if name == "fig_pinned":
        return (pinned.verdicts(pinned.load().wide(), ensemble.conclusion_values(trial)),)
    if name == "fig_power_curves":
        from calcinosis.report import power_report

        choice = power_report.Choice()
        curves = power_report.curves(power.read(), choice)
        return (curves, choice.alpha, choice.target_power, power.ANALYSIS_LABELS)
    return None


def _call(name: str, trial, **extra) -> Figure:
    func = getattr(figures, name)
    shipped = _shipped_inputs(name, trial)
    if shipped is not None:
        return func(*shipped)
    kwargs = {}
    for arg in list(inspect.signature(func).parameters)[1:]:
        if arg == "patient_id":
            kwargs[arg] = extra.get(arg, "P1")
        elif arg == "params":
            kwargs[arg] = extra.get(arg, Parameters())
        else:
            raise AssertionError(f"{name}: no test argument for {arg!r}")
    return func(trial, **kwargs)


def test_there_are_figure_functions() -> None:
    assert {
        "fig_gee_curve",
        "fig_gee_checks",
        "fig_patient_trajectories",
        "fig_sensitivity_forest",
    } <= set(FIGURE_FUNCTIONS)


@pytest.mark.integration
@pytest.mark.parametrize("name", FIGURE_FUNCTIONS)
def test_figure_draws_and_renders(trial, name: str) -> None:
    fig = _call(name, trial)
    assert isinstance(fig, Figure)
    assert fig.axes and all(ax.has_data() for ax in fig.axes if ax.get_visible())
    width, _ = fig.get_size_inches()
    narrow = name in NARROW_FIGURES
    expected = theme.NARROW_WIDTH_IN if narrow else theme.WIDTH_IN
    assert width == pytest.approx(expected), "figures are drawn at text width (or narrow)"
    rendered = figures.render(fig)
    assert isinstance(rendered, sections.Figure)
    assert rendered.png[:8] == b"\x89PNG\r\n\x1a\n"
    assert b"<svg" in rendered.svg[:1000]
    assert not plt.fignum_exists(fig.number), "render closes the figure"


@pytest.mark.integration
def test_render_is_byte_identical_across_runs(trial) -> None:
    first = figures.render(figures.fig_gee_curve(trial))
    second = figures.render(figures.fig_gee_curve(trial))
    assert first == second  # no dates, no random ids: equal figures, equal digests


@pytest.mark.integration
def test_rendering_side_by_side_gives_the_same_bytes(trial) -> None:
    """A registry's patient figures are rendered in worker processes: the same bytes, in the
    same order, as one after another here, and the same as `fig_patient_trajectories`."""
    from calcinosis.stats import patients

    n_visits = int(trial.measurements["visit"].max())
    ids = [str(p) for p in trial.patients["patient_id"]] * 2  # enough jobs for two workers
    jobs = [
        (
            figures.draw_patient_trajectories,
            (patients.patient_page(trial, p).trajectories, n_visits),
        )
        for p in ids
    ]
    apart = figures.render_all(jobs, workers=2)
    assert apart == figures.render_all(jobs, workers=1)
    assert apart[0] == figures.render(figures.fig_patient_trajectories(trial, ids[0]))


@pytest.mark.integration
def test_main_model_figures_follow_the_parameters(trial) -> None:
    def fitted(fig: Figure) -> np.ndarray:
        lines = [
            line for ax in fig.axes for line in ax.get_lines() if line.get_label() == "GEE fit"
        ]
        plt.close(fig)
        assert len(lines) == 2  # one per outcome
        return np.concatenate([line.get_ydata() for line in lines])

    default = fitted(figures.fig_gee_curve(trial))
    assert np.allclose(default, fitted(figures.fig_gee_curve(trial, Parameters())))
    other = fitted(figures.fig_gee_curve(trial, Parameters(correlation="independence")))
    assert default.shape == other.shape and not np.allclose(default, other)
    checks = figures.fig_gee_checks(trial, Parameters(correlation="ar1"))
    assert figures.render(checks) != figures.render(figures.fig_gee_checks(trial))


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


@pytest.mark.integration
def test_not_estimable_rows_of_the_forest_plot_overlap_no_label(tiny_dataset) -> None:
    """The tiny trial's two patients leave some rows not estimable; their words sit inside
    the panel and cross none of the row labels."""
    fig = figures.fig_sensitivity_forest(load_trial(tiny_dataset))
    renderer = fig.canvas.get_renderer()
    fig.draw(renderer)
    words = [
        text.get_window_extent(renderer)
        for ax in fig.axes
        for text in ax.texts
        if text.get_text() == "not estimable"
    ]
    assert words, "the tiny trial should have rows that cannot be estimated"
    labels = [label.get_window_extent(renderer) for label in fig.axes[0].get_yticklabels()]
    for word in words:
        assert not any(word.overlaps(label) for label in labels if label.width > 0)
    plt.close(fig)


@pytest.mark.integration
def test_pinned_figure_labels_overlap_nothing_and_read_on_a_phone(trial) -> None:
    """Figure 9.1 writes each conclusion above its bar: no label overlaps another, a bar or
    a diamond, and every text is at least 9 pt in a figure drawn at NARROW_WIDTH_IN (about
    10 CSS px on a 390 px phone; the browser test measures it on the page)."""
    fig = _call("fig_pinned", trial)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    (ax,) = fig.axes
    labels = [t.get_window_extent(renderer) for t in ax.texts]
    assert len(labels) == len(_shipped_inputs("fig_pinned", trial)[0])
    marks = [b.get_window_extent(renderer) for b in ax.patches if b.get_width() > 0]
    marks += [
        matplotlib.transforms.Bbox.from_bounds(x - 3, y - 3, 6, 6)
        for c in ax.collections
        for x, y in c.get_offset_transform().transform(c.get_offsets())
    ]
    bars = [m for m in marks if m.height < 0.9 * ax.get_window_extent(renderer).height]
    for i, label in enumerate(labels):
        assert not any(label.overlaps(other) for other in labels[i + 1 :]), ax.texts[i]
        assert not any(label.overlaps(bar) for bar in bars), ax.texts[i]
        assert label.x1 <= fig.bbox.x1, ax.texts[i]
    texts = [t for t in fig.findobj(matplotlib.text.Text) if t.get_visible() and t.get_text()]
    assert min(t.get_fontsize() for t in texts) >= 9
    plt.close(fig)
