// The sidebar toggles of the article header do nothing under pydata-sphinx-theme 0.17 with
// sphinx-book-theme 1.3: both themes bind their click handlers with document.querySelector,
// that is to the first .primary-toggle / .secondary-toggle of the page, the navbar's, which
// sphinx-book-theme hides (pydata-sphinx-theme#2451, sphinx-book-theme#991). So the phone
// menu never opens and the desktop sidebar never collapses. Each other toggle hands its click
// to the bound one, which opens the dialog on a phone and collapses the sidebar on a desktop.
document.addEventListener("DOMContentLoaded", () => {
  for (const kind of ["primary", "secondary"]) {
    const [bound, ...others] = document.querySelectorAll(`.${kind}-toggle`);
    for (const button of others) {
      button.addEventListener("click", (event) => {
        event.preventDefault();
        event.stopPropagation();
        bound.click();
      });
    }
  }
});
