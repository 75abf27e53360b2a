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
