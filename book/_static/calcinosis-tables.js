// A wide table scrolls inside its box, and on a phone the box ends at the screen's edge with
// no sign that more columns follow. Mark each box whose table is wider than it, so the
// stylesheet can say so above the table; marks follow the window's size.
function calcinosisMarkScrollingTables() {
  for (const box of document.querySelectorAll(".bd-article .pst-scrollable-table-container")) {
    box.classList.toggle("calcinosis-scrolls", box.scrollWidth > box.clientWidth + 1);
  }
}
document.addEventListener("DOMContentLoaded", calcinosisMarkScrollingTables);
window.addEventListener("resize", calcinosisMarkScrollingTables);

// A figure drawn at a page's text width shows its smallest labels at about 5 px on a phone.
// Where its box is narrower than the width at which that text reads (LEGIBLE_PX for a label
// of SMALLEST_PT, the smallest type `calcinosis.theme` draws; the PNGs are FIGURE_DPI), the
// image keeps that width and its box scrolls sideways, with a cue, as wide tables do.
const FIGURE_DPI = 150;
const SMALLEST_PT = 7;
const LEGIBLE_PX = 9;
function calcinosisLegibleFigures() {
  for (const img of document.querySelectorAll(".bd-article figure img")) {
    if (!img.naturalWidth) continue;
    const legible = Math.ceil(((img.naturalWidth / FIGURE_DPI) * 72 * LEGIBLE_PX) / SMALLEST_PT);
    const box = img.closest("figure");
    const narrow = box.clientWidth < legible;
    img.style.width = narrow ? `${legible}px` : "";
    box.classList.toggle("calcinosis-figure-scrolls", narrow);
  }
}
window.addEventListener("load", calcinosisLegibleFigures);
window.addEventListener("resize", calcinosisLegibleFigures);
