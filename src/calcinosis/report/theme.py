"""The book's one look: a seaborn theme and a colour-blind-safe palette.

Every figure function calls `apply()` first, so a figure looks the same in the book, in the
PDF and in the supplement. The palette is Okabe & Ito's (2008), distinguishable under the
common colour-vision deficiencies; the sizes are chosen to stay legible when a figure is
printed at the text width of an A4 page (about 16 cm).
"""

from __future__ import annotations

import matplotlib as mpl
import seaborn as sns

# Okabe-Ito, without the black (kept for text and reference lines) and the pale yellow
# (too light on white paper).
OKABE_ITO = {
    "orange": "#E69F00",
    "sky_blue": "#56B4E9",
    "bluish_green": "#009E73",
    "blue": "#0072B2",
    "vermillion": "#D55E00",
    "reddish_purple": "#CC79A7",
    "yellow": "#F0E442",
    "grey": "#999999",
}
PALETTE: list[str] = [
    OKABE_ITO[k]
    for k in ("blue", "orange", "bluish_green", "vermillion", "reddish_purple", "sky_blue", "grey")
]
OUTCOME_COLOURS = {"length": OKABE_ITO["blue"], "width": OKABE_ITO["vermillion"]}
OUTCOME_LABELS = {"length": "Length (mm)", "width": "Width (mm)"}
REFERENCE = "#000000"

WIDTH_IN = 6.5  # one column of the book's text at print size
# A figure read on a phone: drawn narrower, so that shown at a phone's width (about 340 CSS px)
# its 9 pt labels are still about 10 px; it prints at this width, centred.
NARROW_WIDTH_IN = 4.4
DPI = 150  # PNG resolution of the glued figures (the PDF needs raster: jupyter-book#1429)


def outcome_key(outcome: str) -> str:
    """'length' or 'width' from either spelling the package uses ('length_mm' or 'length')."""
    return str(outcome).removesuffix("_mm")


def patient_colours(patient_ids) -> dict[str, str]:
    """A fixed colour per patient, in study-code order, so patients look alike across pages."""
    return {pid: PALETTE[i % len(PALETTE)] for i, pid in enumerate(sorted(patient_ids))}


def apply() -> None:
    """Set the book's seaborn theme and matplotlib defaults (idempotent)."""
    sns.set_theme(
        context="paper",
        style="whitegrid",
        palette=PALETTE,
        font_scale=1.25,
        rc={
            "figure.dpi": DPI,
            "savefig.dpi": DPI,
            "savefig.bbox": "tight",
            "axes.titleweight": "bold",
            "axes.spines.top": False,
            "axes.spines.right": False,
            "legend.frameon": False,
            "svg.fonttype": "none",
            # labels carry data (sites, ids): text, never mathtext ("$" in a site is a "$")
            "text.parse_math": False,
        },
    )
    mpl.rcParams["axes.prop_cycle"] = mpl.cycler(color=PALETTE)


def figsize(height_ratio: float = 0.6, width: float = WIDTH_IN) -> tuple[float, float]:
    """Figure size in inches for a figure of the text width and the given aspect."""
    return (width, width * height_ratio)
