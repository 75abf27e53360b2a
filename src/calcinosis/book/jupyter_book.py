"""jupyter-book's command line, with Sphinx reading and writing pages in parallel where the
book's extensions allow it.

jupyter-book 1's `build_sphinx` takes Sphinx's `jobs`, but its command line never sets it.
Sphinx then reads serially, with a warning (an error under -W), when an extension does not
declare itself safe for parallel work: here it reads serially without the warning, so a book
with such an extension still builds. sphinx-multitoc-numbering, which jupyter-book always
loads, declares nothing, though all it does is replace how section numbers are assigned,
which Sphinx runs in the main process after the parallel reads are merged: it is declared
safe here.

A build killed outright (SIGKILL) takes this process with it (its parent-death signal), and
this process takes Sphinx's forked workers.

    python -m calcinosis.book.jupyter_book JOBS build SOURCE ...
"""

from __future__ import annotations

import functools
import sys


def main() -> None:
    from calcinosis.book.process import forks_die_with_this_process

    # The build gives this process a parent-death signal; Sphinx's forked workers get their
    # own, so that none outlives a build killed outright (blocked on a pipe, for ever).
    forks_die_with_this_process()
    import jupyter_book.sphinx
    import sphinx_multitoc_numbering
    from jupyter_book.cli.main import main as command_line
    from sphinx.application import Sphinx

    jobs = int(sys.argv.pop(1))
    jupyter_book.sphinx.build_sphinx = functools.partial(
        jupyter_book.sphinx.build_sphinx, jobs=jobs
    )
    setup = sphinx_multitoc_numbering.setup

    def parallel_safe_setup(app: Sphinx) -> dict:
        setup(app)
        return {"parallel_read_safe": True, "parallel_write_safe": True}

    def parallel_allowed(app: Sphinx, typ: str) -> bool:
        return all(getattr(ext, f"parallel_{typ}_safe", None) for ext in app.extensions.values())

    sphinx_multitoc_numbering.setup = parallel_safe_setup
    Sphinx.is_parallel_allowed = parallel_allowed  # type: ignore[method-assign,assignment]
    command_line()


if __name__ == "__main__":
    main()
