"""Every figure of the book: one function per figure, named after its label in the book.

Each function takes the validated `Trial` (and the parameters, where the main model is
drawn), draws with the book's theme and returns the matplotlib Figure. The analysis comes from
the statistical modules; these functions only lay it out. `render` turns a figure into the
bytes the results stage keeps; `render_all` does it for many figures side by side.
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable

import matplotlib as mpl
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from calcinosis.data.trial import Trial
from calcinosis.report import theme

OUTCOMES = ("length", "width")


def _outcome_axes(nrows: int = 1, height_ratio: float = 0.45, sharey: bool = False):
    theme.apply()
    fig, axes = plt.subplots(
        nrows,
        2,
        figsize=theme.figsize(height_ratio * nrows),
        sharey=sharey,
        squeeze=False,
        layout="constrained",
    )
    return fig, axes


def long_measurements(trial: Trial, patient_id: str | None = None) -> pd.DataFrame:
    """Measured visits as long rows: lesion_id, patient_id, visit, outcome, size."""
    meas = trial.measurements
    if patient_id is not None:
        meas = meas[meas["patient_id"] == patient_id]
    long = meas.melt(
        id_vars=["lesion_id", "patient_id", "visit"],
        value_vars=[f"{o}_mm" for o in OUTCOMES],
        var_name="outcome",
        value_name="size",
    )
    long["outcome"] = long["outcome"].map(theme.outcome_key)
    return long.dropna(subset=["size"])


LESION_MARKERS = ("o", "s", "^", "D")


def _draw_trajectories(
    ax,
    long: pd.DataFrame,
    colour_by: str,
    palette: dict,
    alpha: float = 1.0,
    lw: float = 1.2,
    marker: str | None = "o",
    markers: dict | None = None,
) -> None:
    for key, rows in long.groupby("lesion_id", sort=True):
        rows = rows.sort_values("visit")
        shape = markers.get(key, marker) if markers else marker
        ax.plot(
            rows["visit"],
            rows["size"],
            color=palette[rows[colour_by].iloc[0]],
            alpha=alpha,
            lw=lw,
            marker=shape,
            ms=3.5 if shape else 0,
            label=key,
        )


def _visit_axis(ax, n_visits: int) -> None:
    ax.set_xlabel("Visit (weekly injection)")
    ticks = [1, *range(4, n_visits + 1, 4)]
    if n_visits not in ticks:
        ticks.append(n_visits)
    ax.set_xticks(ticks)
    ax.set_xlim(0.5, n_visits + 0.5)


# --------------------------------------------------------------------------------------------
# Cohort
# --------------------------------------------------------------------------------------------


def fig_lesion_map(trial: Trial) -> Figure:
    """Where the lesions are: one row per body site, one dot per lesion sized by its area."""
    theme.apply()
    lesions = trial.lesions.copy()
    colours = theme.patient_colours(trial.patients["patient_id"])
    order = lesions.groupby("site")["patient_id"].min().sort_values().index.tolist()
    fig, ax = plt.subplots(figsize=theme.figsize(0.5), layout="constrained")
    y = {site: i for i, site in enumerate(order)}
    offsets = lesions.groupby("site").cumcount()
    for (_, lesion), k in zip(lesions.iterrows(), offsets, strict=True):
        ax.scatter(
            k + 1,
            y[lesion["site"]],
            s=40 + 60 * np.sqrt(lesion["baseline_area_cm2"]),
            color=colours[lesion["patient_id"]],
            edgecolor="black",
            linewidth=0.5,
            zorder=3,
        )
    ax.set_yticks(range(len(order)), order)
    ax.invert_yaxis()
    ax.set_xlabel("Lesions at the site (count)")
    ax.set_xlim(0.3, offsets.max() + 1.7)
    ax.xaxis.set_major_locator(plt.MaxNLocator(integer=True))
    handles = [
        plt.Line2D(
            [],
            [],
            marker="o",
            ls="",
            color=c,
            markeredgecolor="black",
            markeredgewidth=0.5,
            label=pid,
        )
        for pid, c in colours.items()
    ]
    if _names_patients(colours):
        ax.legend(handles=handles, title="Patient", loc="lower right")
    ax.set_title(
        "Injected lesions by body site (dot area grows with lesion area)", fontsize="medium"
    )
    return fig


# --------------------------------------------------------------------------------------------
# Clinical course
# --------------------------------------------------------------------------------------------


def fig_supplementary_trajectories(trial: Trial) -> Figure:
    """The paper's Supplementary Fig. 1: every lesion's length and width at every visit."""
    return draw_supplementary_trajectories(
        long_measurements(trial),
        sorted(trial.patients["patient_id"]),
        int(trial.measurements["visit"].max()),
    )


# The supplementary figure's fixed layout, in inches: a registry's figure has a row per patient,
# and a layout engine's cost grows faster than its rows (constrained layout weighed each
# axes against its neighbours: 100 rows took minutes), so rows and margins are set here.
SUPPLEMENTARY_ROW_IN = 0.28 * theme.WIDTH_IN  # each row's height, gap included
SUPPLEMENTARY_GAP = 0.165  # of a row, between rows: the row below's tick labels need none
# Agg draws no image of 2**16 pixels or more: beyond this height (500 patients would take
# 910 in, 136 500 pixels at theme.DPI) the rows are made lower to fit.
SUPPLEMENTARY_MAX_HEIGHT_IN = 60_000 / theme.DPI
SUPPLEMENTARY_MARGINS_IN = {"left": 0.85, "right": 0.1, "top": 0.35, "bottom": 0.55}
SUPPLEMENTARY_COLUMN_GAP_IN = 0.95  # the right column's two-line label and tick labels


def draw_supplementary_trajectories(long: pd.DataFrame, patients: list, n_visits: int) -> Figure:
    """`fig_supplementary_trajectories` from the measurements in long form: what a rendering
    process is sent (`render_all`); a row per patient, so at registry size it is the largest
    figure of the book, and its cost grows with its rows alone (a fixed layout, the
    measurements split by patient once)."""
    theme.apply()
    colours = theme.patient_colours(patients)
    margins = SUPPLEMENTARY_MARGINS_IN
    width = theme.WIDTH_IN
    room = SUPPLEMENTARY_MAX_HEIGHT_IN - margins["top"] - margins["bottom"]
    row_in = min(SUPPLEMENTARY_ROW_IN, room / max(1, len(patients)))
    height = len(patients) * row_in + margins["top"] + margins["bottom"]
    fig, axes = _two_columns(
        len(patients),
        (width, height),
        margins,
        SUPPLEMENTARY_COLUMN_GAP_IN,
        hspace=SUPPLEMENTARY_GAP / (1 - SUPPLEMENTARY_GAP),
    )
    parts = dict(tuple(long.groupby(["patient_id", "outcome"], sort=False)))
    for row, pid in enumerate(patients):
        for col, outcome in enumerate(OUTCOMES):
            ax = axes[row, col]
            part = parts.get((pid, outcome), long.iloc[:0])
            _draw_trajectories(ax, part, "patient_id", colours, lw=1.0)
            ax.set_ylim(bottom=0)
            ax.set_ylabel(f"{pid}\n{theme.OUTCOME_LABELS[outcome]}", fontsize="small")
            if row == 0:
                ax.set_title(theme.OUTCOME_LABELS[outcome])
            # one visit axis for all rows, labelled on the last: set on each rather than
            # shared, as sharing costs time in the square of the rows (100 rows at 20 ×)
            _visit_axis(ax, n_visits)
            if row < len(patients) - 1:
                ax.set_xlabel("")
                ax.tick_params(labelbottom=False)
    return fig


def fig_patient_trajectories(trial: Trial, patient_id: str) -> Figure:
    """One patient's lesions: length and width at each measured visit, one line per lesion."""
    from calcinosis.stats import patients as patients_mod

    page = patients_mod.patient_page(trial, patient_id)
    return draw_patient_trajectories(page.trajectories, int(trial.measurements["visit"].max()))


# A patient's figure has a fixed layout, in inches: a registry draws hundreds of them, and the
# layout engine was a quarter of each one's cost. The legend below is taken in by the crop.
PATIENT_MARGINS_IN = {"left": 0.6, "right": 0.05, "top": 0.3, "bottom": 0.62}
PATIENT_COLUMN_GAP_IN = 0.55  # the right panel's axis label


def draw_patient_trajectories(trajectories: pd.DataFrame, n_visits: int) -> Figure:
    """`fig_patient_trajectories` from the patient's trajectories alone: what a worker
    process is sent (`calcinosis.report.results`), so it never refits the patient's models."""
    long = trajectories.dropna(subset=["size"])
    long = long.assign(outcome=long["outcome"].map(theme.outcome_key))
    lesion_ids = sorted(long["lesion_id"].unique())
    # Colour and marker together keep lesions apart when there are more than the palette has.
    colours = {lid: theme.PALETTE[i % len(theme.PALETTE)] for i, lid in enumerate(lesion_ids)}
    markers = {
        lid: LESION_MARKERS[i // len(theme.PALETTE) % len(LESION_MARKERS)]
        for i, lid in enumerate(lesion_ids)
    }
    theme.apply()
    width, height = theme.figsize(0.5)
    margins = PATIENT_MARGINS_IN
    fig, axes = _two_columns(1, (width, height), margins, PATIENT_COLUMN_GAP_IN, sharey=True)
    for ax, outcome in zip(axes[0], OUTCOMES, strict=True):
        part = long[long["outcome"] == outcome]
        _draw_trajectories(ax, part, "lesion_id", colours, markers=markers)
        ax.set_title(theme.OUTCOME_LABELS[outcome])
        ax.set_ylabel("Size (mm)")
        ax.set_ylim(bottom=0)
        _visit_axis(ax, n_visits)
    if len(lesion_ids) > 1:
        # Below both panels, so the legend never hides a line.
        handles, labels = axes[0, 0].get_legend_handles_labels()
        fig.legend(
            handles,
            labels,
            title="Lesion",
            fontsize="x-small",
            title_fontsize="small",
            ncol=min(len(lesion_ids), 6),
            loc="upper center",
            bbox_to_anchor=(0.5, 0.0),
        )
    return fig


def _two_columns(rows: int, size: tuple[float, float], margins: dict, gap_in: float, **extra):
    """A figure of `rows` × 2 axes placed in inches (its margins and the gap between the
    columns), not by constrained layout, whose cost grows with the axes and which gives up at
    registry size. `hspace` goes to the grid; anything else to `plt.subplots`."""
    width, height = size
    column_in = (width - margins["left"] - margins["right"] - gap_in) / 2
    grid = {
        "left": margins["left"] / width,
        "right": 1 - margins["right"] / width,
        "bottom": margins["bottom"] / height,
        "top": 1 - margins["top"] / height,
        "wspace": gap_in / column_in,
    }
    if "hspace" in extra:
        grid["hspace"] = extra.pop("hspace")
    return plt.subplots(
        rows, 2, figsize=size, squeeze=False, layout="none", gridspec_kw=grid, **extra
    )


def fig_patient_rates(trial: Trial, params=None) -> Figure:
    """Each patient's fitted change per visit (%) with its 95 % CI, length and width, beside
    the main GEE over all lesions (`params`: its correlation and cluster level)."""
    from calcinosis.stats import models
    from calcinosis.stats import patients as patients_mod

    rates = patients_mod.patient_rates(trial)
    rates["outcome"] = rates["outcome"].map(theme.outcome_key)
    fig, axes = _outcome_axes(height_ratio=0.5, sharey=True)
    for ax, outcome in zip(axes[0], OUTCOMES, strict=True):
        part = rates[rates["outcome"] == outcome].sort_values("patient_id")
        ok = part[part["estimable"].astype(bool)]
        y = np.arange(len(part))
        pos = dict(zip(part["patient_id"], y, strict=True))
        yy = [pos[p] for p in ok["patient_id"]]
        ax.errorbar(
            ok["pct_per_visit"],
            yy,
            xerr=[ok["pct_per_visit"] - ok["ci_low"], ok["ci_high"] - ok["pct_per_visit"]],
            fmt="o",
            color=theme.OUTCOME_COLOURS[outcome],
            capsize=3,
        )
        for pid in part.loc[~part["estimable"].astype(bool), "patient_id"]:
            ax.annotate(
                "not estimable",
                (0, pos[pid]),
                xytext=(4, 0),
                textcoords="offset points",
                va="center",
                fontsize="small",
                color=theme.OKABE_ITO["grey"],
            )
        overall, _ = models.primary_or_reason(trial, outcome, params)
        if overall is not None:  # a main model that cannot be estimated draws no line
            ax.axvline(
                overall.pct_per_visit,
                color=theme.REFERENCE,
                ls="--",
                lw=1,
                label="all lesions (GEE)",
            )
        ax.axvline(0, color=theme.OKABE_ITO["grey"], lw=0.8)
        ax.set_yticks(y, part["patient_id"])
        ax.set_title(theme.OUTCOME_LABELS[outcome].replace(" (mm)", ""))
        ax.set_xlabel("Change per visit (%)")
    axes[0, 0].invert_yaxis()
    if axes[0, 0].get_legend_handles_labels()[0]:
        axes[0, 0].legend(loc="lower left", fontsize="small")
    return fig


# --------------------------------------------------------------------------------------------
# GEE
# --------------------------------------------------------------------------------------------


def fig_gee_curve(trial: Trial, params=None) -> Figure:
    """The population curve of the main GEE, with its 95 % band, over every lesion
    (`params`: the model's working correlation and cluster level)."""
    from calcinosis.stats import models

    long = long_measurements(trial)
    fig, axes = _outcome_axes(height_ratio=0.55)
    n_visits = int(trial.measurements["visit"].max())
    grey = {pid: theme.OKABE_ITO["grey"] for pid in long["patient_id"].unique()}
    for ax, outcome in zip(axes[0], OUTCOMES, strict=True):
        _draw_trajectories(
            ax,
            long[long["outcome"] == outcome],
            "patient_id",
            grey,
            alpha=0.45,
            lw=0.8,
            marker=None,
        )
        fit, reason = models.primary_or_reason(trial, outcome, params)
        if fit is None:
            _not_estimable_note(ax, reason)
        else:
            curve = fit.fitted_curve()
            colour = theme.OUTCOME_COLOURS[outcome]
            ax.fill_between(
                curve["visit"], curve["ci_low"], curve["ci_high"], color=colour, alpha=0.25, lw=0
            )
            ax.plot(curve["visit"], curve["fitted"], color=colour, lw=2.5, label="GEE fit")
        ax.set_title(theme.OUTCOME_LABELS[outcome])
        ax.set_ylabel("Size (mm)")
        ax.set_yscale("symlog", linthresh=1)
        ax.set_yticks([0, 1, 2, 5, 10, 20, 50])
        ax.yaxis.set_major_formatter(mpl.ticker.FuncFormatter(lambda v, _: f"{v:g}"))
        ax.yaxis.set_minor_locator(mpl.ticker.NullLocator())
        _visit_axis(ax, n_visits)
    handles = [plt.Line2D([], [], color=theme.OKABE_ITO["grey"], label="one lesion")]
    if any(ax.lines[-1:] and ax.lines[-1].get_label() == "GEE fit" for ax in axes[0]):
        handles.append(
            plt.Line2D([], [], color=theme.REFERENCE, lw=2.5, label="population mean (GEE)")
        )
    axes[0, 0].legend(handles=handles, loc="lower left", fontsize="small")
    return fig


def _not_estimable_note(ax, reason: str) -> None:
    """Say in the panel that the model could not be estimated, and why (no curve is drawn)."""
    from calcinosis.report.gee_sentences import not_estimable_text

    ax.text(
        0.5,
        0.5,
        textwrap.fill(f"GEE {not_estimable_text(reason)}", 40),
        transform=ax.transAxes,
        ha="center",
        va="center",
        fontsize="small",
        color=theme.OKABE_ITO["grey"],
        bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.8},
    )


def fig_gee_checks(trial: Trial, params=None) -> Figure:
    """Model checks of the main GEE (`params` as for `fig_gee_curve`): observed mean per visit
    against the fit (top), residuals by visit (bottom)."""
    from calcinosis.stats import models

    long = long_measurements(trial)
    fig, axes = _outcome_axes(nrows=2, height_ratio=0.42)
    n_visits = int(trial.measurements["visit"].max())
    for col, outcome in enumerate(OUTCOMES):
        fit, reason = models.primary_or_reason(trial, outcome, params)
        if fit is None:  # no fit: nothing to check against
            for ax in axes[:, col]:
                _not_estimable_note(ax, reason)
            axes[0, col].set_title(theme.OUTCOME_LABELS[outcome])
            continue
        curve = fit.fitted_curve().set_index("visit")["fitted"]
        part = long[long["outcome"] == outcome].copy()
        part["fitted"] = part["visit"].map(curve)
        part["residual"] = (part["size"] - part["fitted"]) / np.sqrt(fit.scale)
        colour = theme.OUTCOME_COLOURS[outcome]
        means = part.groupby("visit")["size"].agg(["mean", "sem"]).reset_index()
        top, bottom = axes[0, col], axes[1, col]
        top.errorbar(
            means["visit"],
            means["mean"],
            yerr=1.96 * means["sem"].fillna(0),
            fmt="o",
            color=colour,
            ms=4,
            capsize=2,
            label="observed mean ± 1.96 SE",
        )
        top.plot(curve.index, curve.values, color=theme.REFERENCE, lw=1.5, label="GEE fit")
        top.set_title(theme.OUTCOME_LABELS[outcome])
        top.set_ylabel("Mean size (mm)")
        _visit_axis(top, n_visits)
        # matplotlib's own boxplot: seaborn 0.13's passes an argument matplotlib 3.11 deprecates
        by_visit = part.groupby("visit")["residual"]
        bottom.boxplot(
            [g.to_numpy() for _, g in by_visit],
            positions=list(by_visit.groups),
            widths=0.6,
            patch_artist=True,
            manage_ticks=False,
            boxprops={"facecolor": colour, "alpha": 0.6, "linewidth": 0.8},
            medianprops={"color": theme.REFERENCE, "linewidth": 0.8},
            whiskerprops={"linewidth": 0.8},
            capprops={"linewidth": 0.8},
            flierprops={"markersize": 2},
        )
        bottom.axhline(0, color=theme.REFERENCE, lw=1)
        bottom.set_ylabel("Pearson residual")
        _visit_axis(bottom, n_visits)
    if axes[0, 0].get_legend_handles_labels()[0]:
        axes[0, 0].legend(fontsize="x-small", loc="upper right")
    return fig


# --------------------------------------------------------------------------------------------
# Radiography
# --------------------------------------------------------------------------------------------


def fig_radiography_paired(trial: Trial) -> Figure:
    """The paper's Supplementary Fig. 2: each lesion's radiographic size before and after."""
    rad = trial.radiography.merge(trial.lesions[["lesion_id", "patient_id"]], on="lesion_id")
    colours = theme.patient_colours(trial.patients["patient_id"])
    order = {"baseline": 0, "final": 1}
    rad = rad[rad["timepoint"].isin(order)].assign(x=lambda d: d["timepoint"].map(order))
    fig, axes = _outcome_axes(height_ratio=0.6, sharey=True)
    for ax, outcome in zip(axes[0], OUTCOMES, strict=True):
        for _, rows in rad.groupby("lesion_id", sort=True):
            rows = rows.sort_values("x")
            ax.plot(
                rows["x"],
                rows[f"{outcome}_mm"],
                color=colours[rows["patient_id"].iloc[0]],
                marker="o",
                ms=4,
                lw=1,
                alpha=0.85,
            )
        means = rad.groupby("x")[f"{outcome}_mm"].mean()
        ax.plot(means.index, means.values, color=theme.REFERENCE, lw=3, marker="D", ms=7, zorder=5)
        ax.set_xticks([0, 1], ["Before\n(visit 1)", "After\n(week 16)"])
        ax.set_xlim(-0.3, 1.3)
        ax.set_title(theme.OUTCOME_LABELS[outcome])
        ax.set_ylabel("Radiographic size (mm)")
        ax.set_ylim(bottom=-0.5)
    handles = [plt.Line2D([], [], color=c, marker="o", label=pid) for pid, c in colours.items()]
    handles = handles if _names_patients(colours) else []
    handles.append(plt.Line2D([], [], color=theme.REFERENCE, lw=3, marker="D", label="mean"))
    axes[0, 1].legend(handles=handles, fontsize="small", loc="upper right")
    return fig


def _names_patients(colours: dict) -> bool:
    """Whether a legend names each patient: only while each has a colour of its own. A
    registry's colours repeat, and a legend of hundreds of patients took the layout minutes
    (the radiography figure 985 s at 100 ×, under load)."""
    return len(colours) <= len(theme.PALETTE)


# --------------------------------------------------------------------------------------------
# Discussion and sensitivity
# --------------------------------------------------------------------------------------------


def fig_duration_response(trial: Trial) -> Figure:
    """Each patient's change per visit against disease duration, length and width."""
    from calcinosis.stats import discussion

    rates = discussion.duration_rates(trial)
    colours = theme.patient_colours(trial.patients["patient_id"])
    fig, axes = _outcome_axes(height_ratio=0.55, sharey=True)
    for ax, outcome in zip(axes[0], OUTCOMES, strict=True):
        part = rates[rates[f"{outcome}_estimable"].astype(bool)]
        for _, row in part.iterrows():
            est = row[f"{outcome}_pct_per_visit"]
            ax.errorbar(
                row["disease_duration_months"],
                est,
                yerr=[[est - row[f"{outcome}_ci_low"]], [row[f"{outcome}_ci_high"] - est]],
                fmt="o",
                color=colours[row["patient_id"]],
                capsize=3,
                ms=6,
            )
            ax.annotate(
                row["patient_id"],
                (row["disease_duration_months"], est),
                xytext=(6, 3),
                textcoords="offset points",
                fontsize="small",
            )
        for _, row in rates[~rates[f"{outcome}_estimable"].astype(bool)].iterrows():
            ax.annotate(
                f"{row['patient_id']}: no rate",
                (row["disease_duration_months"], 0),
                xytext=(0, 8),
                textcoords="offset points",
                fontsize="x-small",
                color=theme.OKABE_ITO["grey"],
                ha="center",
            )
        ax.axhline(0, color=theme.OKABE_ITO["grey"], lw=0.8)
        ax.set_title(theme.OUTCOME_LABELS[outcome].replace(" (mm)", ""))
        ax.set_xlabel("Disease duration (months)")
        ax.set_ylabel("Change per visit (%)")
    return fig


def _forest_positions(part: pd.DataFrame) -> tuple[np.ndarray, list[tuple[float, str, bool]]]:
    """y of each grid row, leaving a heading row above each factor's group."""
    ys, ticks, y = [], [], 0.0
    previous = None
    for factor, choice in zip(part["factor"], part["choice"], strict=True):
        if factor != previous:
            ticks.append((y, str(factor).capitalize(), True))
            y += 1
            previous = factor
        ys.append(y)
        ticks.append((y, str(choice), False))
        y += 1
    return np.array(ys), ticks


def fig_sensitivity_forest(trial: Trial) -> Figure:
    """Forest plot of the sensitivity grid: change per visit (%) under each analysis choice."""
    from calcinosis.stats import sensitivity

    grid = sensitivity.grid(trial)
    grid["outcome"] = grid["outcome"].map(theme.outcome_key)
    theme.apply()
    first = grid[grid["outcome"] == OUTCOMES[0]].reset_index(drop=True)
    _, ticks = _forest_positions(first)
    fig, axes = plt.subplots(
        1,
        2,
        figsize=theme.figsize(0.1 + 0.042 * len(ticks)),
        sharey=True,
        layout="constrained",
        squeeze=False,
    )
    for ax, outcome in zip(axes[0], OUTCOMES, strict=True):
        part = grid[grid["outcome"] == outcome].reset_index(drop=True)
        y, _ = _forest_positions(part)
        colour = theme.OUTCOME_COLOURS[outcome]
        primary = part["is_primary"].astype(bool).to_numpy()
        # inside the panel from its left edge, so the words never run into the row labels
        edge = mpl.transforms.blended_transform_factory(ax.transAxes, ax.transData)
        for i in np.flatnonzero(part["pct_per_visit"].isna().to_numpy()):
            ax.text(
                0.02,
                y[i],
                "not estimable",
                transform=edge,
                ha="left",
                va="center",
                fontsize="x-small",
                color=theme.OKABE_ITO["grey"],
            )
        lo = (part["pct_per_visit"] - part["ci_low"]).to_numpy()
        hi = (part["ci_high"] - part["pct_per_visit"]).to_numpy()
        ax.errorbar(
            part["pct_per_visit"], y, xerr=[lo, hi], fmt="none", ecolor=colour, capsize=2, lw=1
        )
        ax.scatter(
            part["pct_per_visit"],
            y,
            color=np.where(primary, theme.REFERENCE, colour),
            marker="o",
            s=np.where(primary, 40, 18),
            zorder=3,
        )
        ax.axvline(0, color=theme.OKABE_ITO["grey"], lw=0.8)
        ref = part.loc[primary, "pct_per_visit"]
        if len(ref):
            ax.axvline(float(ref.iloc[0]), color=theme.REFERENCE, lw=0.8, ls="--")
        ax.set_title(theme.OUTCOME_LABELS[outcome].replace(" (mm)", ""))
        ax.grid(axis="y", visible=False)
    fig.supxlabel("Change per visit (%), 95 % CI", fontsize="medium")
    axes[0, 0].set_yticks([t[0] for t in ticks], [t[1] for t in ticks], fontsize="x-small")
    for label, (_, _, heading) in zip(axes[0, 0].get_yticklabels(), ticks, strict=True):
        if heading:
            label.set_fontweight("bold")
    axes[0, 0].invert_yaxis()
    return fig


def fig_sensitivity_influence(trial: Trial) -> Figure:
    """Influence plot: each patient's one-step change in the time coefficient on deletion,
    in robust SEs, patients ordered by it; the patients refitted exactly are filled."""
    from calcinosis.stats import sensitivity

    table = sensitivity.influence_table(trial)
    fig, axes = _outcome_axes(height_ratio=0.5, sharey=True)
    for ax, outcome in zip(axes[0], OUTCOMES, strict=True):
        part = table[table["outcome"] == outcome].sort_values(
            ["change_std", "patient_id"], kind="mergesort"
        )
        ax.set_title(theme.OUTCOME_LABELS[outcome].replace(" (mm)", ""))
        ax.axhline(0, color=theme.OKABE_ITO["grey"], lw=0.8)
        ax.set_xticks([])
        if part.empty:
            ax.text(0.5, 0.5, "not estimable", transform=ax.transAxes, ha="center")
            continue
        colour = theme.OUTCOME_COLOURS[outcome]
        refitted = part["patient_id"].isin(sensitivity.refitted_patients(trial, outcome))
        x = np.arange(len(part))
        ax.scatter(
            x,
            part["change_std"],
            s=18,
            color=np.where(refitted, colour, "white"),
            edgecolors=colour,
            zorder=3,
        )
        labelled = part[refitted.to_numpy()] if len(part) > 12 else part
        for i, row in zip(x[part.index.isin(labelled.index)], labelled.itertuples(), strict=True):
            ax.annotate(
                str(row.patient_id),
                (i, row.change_std),
                xytext=(0, 4),
                textcoords="offset points",
                ha="center",
                fontsize="x-small",
            )
    fig.supxlabel("Patients, ordered by the change their deletion makes", fontsize="medium")
    axes[0, 0].set_ylabel("Change in the time coefficient\non deletion (robust SEs)")
    return fig


# Figure 9.1's text (pt) and, in lines of that text, each row's bar and the gap after it
PINNED_TEXT_PT = 9
PINNED_BAR_LINES, PINNED_GAP_LINES = 0.9, 0.5
PINNED_WRAP = 56  # characters of a conclusion per line at NARROW_WIDTH_IN


def fig_pinned(verdicts: pd.DataFrame) -> Figure:
    """Per conclusion of the book: the share of the ensemble's members in which it holds,
    coloured by its kind and verdict; a diamond says whether it holds in the data, drawn
    only when the data are the article's trial. Each conclusion is written above its bar,
    across the figure, and the figure is drawn narrow (`theme.NARROW_WIDTH_IN`): beside the
    bars, the labels left the bars little room and were about 5 px high on a phone."""
    from calcinosis.simulate import pinned

    theme.apply()
    labels = [textwrap.fill(claim, PINNED_WRAP) for claim in verdicts["claim"]]
    lines = np.array([label.count("\n") + 1 for label in labels], dtype=float)
    row = lines + PINNED_BAR_LINES + PINNED_GAP_LINES
    tops = np.concatenate([[0.0], np.cumsum(row)[:-1]])
    y = tops + lines + PINNED_BAR_LINES / 2  # each bar's centre, under its label
    height_lines = float(row.sum())
    line_in = 1.3 * PINNED_TEXT_PT / 72
    fig, ax = plt.subplots(
        figsize=(theme.NARROW_WIDTH_IN, height_lines * line_in + 1.0), layout="constrained"
    )
    colour_of = {
        pinned.IMPOSED: theme.OKABE_ITO["grey"],
        pinned.BUILT_IN: theme.OKABE_ITO["reddish_purple"],
        pinned.HOLDS: theme.OKABE_ITO["blue"],
        pinned.FAILS: theme.OKABE_ITO["blue"],
        pinned.LEFT_OPEN: theme.OKABE_ITO["orange"],
    }
    legend = {
        pinned.IMPOSED: pinned.IMPOSED,
        pinned.BUILT_IN: pinned.BUILT_IN,
        pinned.HOLDS: "open, pinned down",
        pinned.LEFT_OPEN: pinned.LEFT_OPEN,
    }
    key = np.where(verdicts["basis"] == pinned.OPEN, verdicts["verdict"], verdicts["basis"])
    colours = [colour_of.get(k, theme.OKABE_ITO["grey"]) for k in key]
    share = 100 * verdicts["share_holding"].to_numpy(float)
    ax.barh(y, share, color=colours, height=PINNED_BAR_LINES)
    band = 100 * (1 - pinned.AGREEMENT)
    for lo, hi in ((0, band), (100 - band, 100)):
        ax.axvspan(lo, hi, color=theme.OKABE_ITO["grey"], alpha=0.25, lw=0)
    compared = verdicts["holds_in_data"].notna().to_numpy(bool)
    holds = verdicts["holds_in_data"].fillna(False).to_numpy(bool)
    ax.scatter(
        np.where(holds, 100, 0)[compared],
        y[compared],
        marker="D",
        s=22,
        color=theme.REFERENCE,
        zorder=3,
    )
    left = mpl.transforms.blended_transform_factory(ax.transAxes, ax.transData)
    for top, label in zip(tops, labels, strict=True):
        ax.text(0, top, label, transform=left, va="top", fontsize=PINNED_TEXT_PT)
    ax.set_yticks([])
    ax.set_ylim(height_lines - PINNED_GAP_LINES + 0.2, -0.2)
    ax.set_xlim(-3, 103)
    ax.tick_params(axis="x", labelsize=PINNED_TEXT_PT)
    ax.set_xlabel(
        "Kept members in which the conclusion holds (%)"
        + ("\n◆ = in the data (100: holds)" if compared.any() else ""),
        fontsize=PINNED_TEXT_PT,
    )
    handles = [
        mpl.patches.Patch(color=colour_of[k], label=label)
        for k, label in legend.items()
        if k in set(key) or (k == pinned.HOLDS and pinned.FAILS in set(key))
    ]
    ax.legend(
        handles=handles,
        loc="lower center",
        bbox_to_anchor=(0.5, 1.0),
        ncol=2,
        fontsize=PINNED_TEXT_PT,
        frameon=False,
    )
    ax.grid(axis="y", visible=False)
    return fig


def fig_power_curves(curves: dict, alpha: float, target: float, labels: dict) -> Figure:
    """Power (left) and Type I error (right) against children, one colour per analysis
    (`curves`: `power_report.curves`, `labels`: analysis → legend text): points ±1.96
    Monte-Carlo SE, lines the smooth probit curves; the target power and α as lines."""
    theme.apply()
    fig, (left, right) = plt.subplots(1, 2, figsize=theme.figsize(0.45), layout="constrained")
    for colour, (analysis, part) in zip(theme.PALETTE, curves.items(), strict=False):
        n = part["children"]
        left.errorbar(
            n,
            part["power"],
            yerr=1.96 * part["mcse"],
            color=colour,
            ls="none",
            marker="o",
            ms=3,
            capsize=2,
            label=labels[analysis],
        )
        left.plot(n, part["smooth"], color=colour, lw=1)
        right.errorbar(
            n,
            part["type1"],
            yerr=1.96 * part["type1_mcse"],
            color=colour,
            marker="s",
            ms=3,
            capsize=2,
            lw=0.8,
        )
    left.axhline(target, color=theme.OKABE_ITO["grey"], lw=0.8, ls=":")
    right.axhline(alpha, color=theme.OKABE_ITO["grey"], lw=0.8, ls=":")
    sizes = sorted({int(n) for part in curves.values() for n in part["children"]})
    for ax, title in ((left, "With the effect"), (right, "Without effect (Type I error)")):
        ax.set_xscale("log")
        ax.set_xticks(sizes, [str(n) for n in sizes])  # plain labels, not 10^k mathtext
        ax.minorticks_off()
        ax.set_xlabel("Children in the trial")
        ax.set_title(title)
    left.set_ylabel("Share of trials rejecting")
    left.set_ylim(0, 1.02)
    right.set_ylim(0, None)
    handles, names = left.get_legend_handles_labels()
    fig.legend(handles, names, loc="outside lower center", ncols=1, fontsize="x-small")
    return fig


SVG_SALT = "calcinosis"  # fixed ids inside SVG files: same figure, same bytes


def render_all(
    jobs: list[tuple[Callable[..., Figure], tuple]], workers: int = 1, pdf: bool = True
) -> list:
    """Draw and render each (function, arguments) job, in order, side by side in `workers`
    processes (`calcinosis.report.pool`); `pdf`: as in `render`."""
    from calcinosis.report.pool import side_by_side

    return side_by_side([(draw_and_render, (func, args, pdf)) for func, args in jobs], workers)


def draw_and_render(func: Callable[..., Figure], args: tuple, pdf: bool = True):
    """`render(func(*args))`: a job a worker process can be sent, the figure drawn there."""
    return render(func(*args), pdf=pdf)


def render(fig: Figure, pdf: bool = True):
    """Render once and close: PNG (the web page's), SVG (the supplement's) and, when `pdf`,
    PDF (the book PDF's: vector; a build without the PDF need not draw it), all without
    dates or random ids."""
    import io

    from calcinosis.report.sections import Figure as Rendered

    formats = [("png", {"Software": None}), ("svg", {"Date": None})]
    if pdf:
        formats.append(("pdf", {"CreationDate": None, "Producer": None, "Creator": None}))
    out = {}
    try:
        with mpl.rc_context({"svg.hashsalt": SVG_SALT}):
            # Lay out and crop once: with bbox_inches="tight" each format drew the figure
            # twice and ran the layout again, most of the cost of a patient's page. The layout
            # needs text sizes, not pixels: drawn without rendering, so only the formats paint.
            fig.draw_without_rendering()
            box = fig.get_tightbbox().padded(mpl.rcParams["savefig.pad_inches"])
            fig.set_layout_engine("none")
            for fmt, metadata in formats:
                buffer = io.BytesIO()
                fig.savefig(buffer, format=fmt, dpi=theme.DPI, bbox_inches=box, metadata=metadata)
                out[fmt] = buffer.getvalue()
    finally:
        plt.close(fig)
    return Rendered(png=out["png"], svg=out["svg"], pdf=out.get("pdf", b""))
