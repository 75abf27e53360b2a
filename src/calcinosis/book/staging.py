"""The Jupyter Book from the executed notebooks: stage book/ with the pages its toc names, run
jupyter-book on it (HTML, and the PDF when asked), and check beforehand what the PDF needs."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import yaml

from calcinosis import paths, software
from calcinosis.book.plan import TEMPLATE
from calcinosis.book.process import WORKER_ENV, Echo, children_end_when_stopped, die_with_parent
from calcinosis.errors import BuildError

PATIENTS_PAGE = "patients"  # the patient template's pages become sections of this page in the toc
CHANGES_PAGE = "changes"  # the comparison with an earlier build, when asked for
EXTENSION = "calcinosis_sphinx"  # the book's Sphinx extension (book/_ext/calcinosis_sphinx.py)


def stage_book(
    book_dir: Path,
    sources: dict[str, Path],
    stage: Path,
    extra_pages: dict[str, str] | None = None,
    warnings: list[str] | None = None,
    downloads: dict[str, str] | None = None,
    footer: str = "",
    provenance: str = "",
) -> list[str]:
    """A flat source folder: book/* + the pages the toc names (`sources`: page name -> executed
    notebook or static .md), the patient pages as sections of `patients`, and
    `execute_notebooks: 'off'`; `downloads` (see `site_downloads`) are the files the home page
    links, and `footer` (HTML, the data's provenance) is added to the site's footer and
    `provenance` (the same in one plain sentence) to the PDF's title page. Returns the staged
    page names."""
    warnings = warnings if warnings is not None else []
    if not (book_dir / "_toc.yml").is_file() or not (book_dir / "_config.yml").is_file():
        raise BuildError(f"{book_dir} needs _toc.yml and _config.yml to build a book")
    shutil.copytree(
        book_dir, stage, ignore=shutil.ignore_patterns("_build", ".*", "*.ipynb", "__pycache__")
    )
    toc = yaml.safe_load((stage / "_toc.yml").read_text(encoding="utf-8"))
    patient_pages = [p for p in sources if p.startswith(f"{TEMPLATE}-")]
    if patient_pages and not _add_sections(toc, PATIENTS_PAGE, patient_pages):
        warnings.append(
            f"book/_toc.yml has no '- file: {PATIENTS_PAGE}' entry: the patient "
            "pages are executed but not in the book"
        )
    for name, text in (extra_pages or {}).items():
        (stage / f"{name}.md").write_text(text, encoding="utf-8")
        _append_page(toc, name)
    staged = []
    for ref in _toc_files(toc):
        if ref in sources:
            for stale in stage.glob(f"{ref}.*"):  # one file per page, or Sphinx picks one
                stale.unlink()
            shutil.copyfile(sources[ref], stage / f"{ref}{sources[ref].suffix}")
            staged.append(ref)
        elif not any(stage.glob(f"{ref}.*")):
            raise BuildError(
                f"book/_toc.yml lists '{ref}' but there is no chapters/{ref}.md "
                "(nor a file of that name in book/)"
            )
    for name in sources:
        if (
            name not in staged
            and sources[name].suffix == ".ipynb"
            and not name.startswith(f"{TEMPLATE}-")
        ):
            warnings.append(f"chapter '{name}' is not in book/_toc.yml, so not in the book")
    (stage / "_toc.yml").write_text(yaml.safe_dump(toc, sort_keys=False), encoding="utf-8")
    config = yaml.safe_load((stage / "_config.yml").read_text(encoding="utf-8")) or {}
    config.setdefault("execute", {})["execute_notebooks"] = "off"
    config["only_build_toc_files"] = True
    if footer:
        html = config.setdefault("html", {})
        html["extra_footer"] = html.get("extra_footer", "") + f"<p>{footer}</p>\n"
    config["copyright"] = str(software.source_date().year)
    # the repository holds the chapters, not the pages made from the patient template
    chapters = [p for p in staged if not p.startswith(f"{TEMPLATE}-")]
    repository = _repository_buttons(config)
    sphinx = config.setdefault("sphinx", {})
    if EXTENSION in (sphinx.get("local_extensions") or {}):  # its settings, read by it alone
        settings = sphinx.setdefault("config", {})
        settings["calcinosis_repository_pages"] = chapters if repository else []
        settings["calcinosis_downloads"] = downloads or {}
        settings["calcinosis_provenance"] = provenance
    (stage / "_config.yml").write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return staged


def _repository_buttons(config: dict) -> bool:
    """Repository, issue, edit and Binder buttons only when `repository.url` is set (the one
    setting; Jupyter Book refuses the buttons without it). True when they are on."""
    if str((config.get("repository") or {}).get("url") or "").strip():
        return True
    config.pop("repository", None)
    config.pop("launch_buttons", None)
    html = config.setdefault("html", {})
    for button in ("use_repository_button", "use_issues_button", "use_edit_page_button"):
        html[button] = False
    return False


DOWNLOADS_DIR = "downloads"  # in the site: the book's PDF and the supplement


def site_downloads(book_dir: Path, pdf: bool) -> dict[str, str]:
    """The files the site offers, by kind, at their paths relative to the site's root: the
    supplement always, the PDF (named as the book's LaTeX target) when it is built."""
    files = {"supplement": f"{DOWNLOADS_DIR}/supplement.zip"}
    if pdf:
        files["pdf"] = f"{DOWNLOADS_DIR}/{pdf_name(book_dir)}"
    return files


def pdf_name(book_dir: Path) -> str:
    """The PDF's file name: the `latex_documents.targetname` of the book's config, as .pdf."""
    config = _book_config(book_dir)
    target = ((config.get("latex") or {}).get("latex_documents") or {}).get("targetname")
    return Path(target or "book.tex").with_suffix(".pdf").name


def _book_config(book_dir: Path) -> dict:
    path = Path(book_dir) / "_config.yml"
    return (yaml.safe_load(path.read_text(encoding="utf-8")) or {}) if path.is_file() else {}


def _toc_files(node: object) -> list[str]:
    """Every `root`/`file` the toc names, in order."""
    found: list[str] = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("root", "file") and isinstance(value, str):
                found.append(
                    str(Path(value).with_suffix(""))
                    if Path(value).suffix in (".md", ".ipynb")
                    else value
                )
            else:
                found += _toc_files(value)
    elif isinstance(node, list):
        for item in node:
            found += _toc_files(item)
    return found


def _add_sections(node: object, parent: str, pages: list[str]) -> bool:
    if isinstance(node, dict):
        if node.get("file") in (parent, f"{parent}.md", f"{parent}.ipynb"):
            node.setdefault("sections", []).extend({"file": p} for p in pages)
            return True
        return any(_add_sections(v, parent, pages) for v in node.values())
    if isinstance(node, list):
        return any(_add_sections(v, parent, pages) for v in node)
    return False


def _append_page(toc: dict, name: str) -> None:
    if "parts" in toc:
        toc["parts"].append({"caption": "Changes", "chapters": [{"file": name}]})
    else:
        toc.setdefault("chapters", []).append({"file": name})


# LaTeX packages the PDF needs beyond a basic TeX Live, with the Debian package holding each:
# Sphinx's xelatex setup always; jupyterBook.cls (sphinx-jupyterbook-latex) only when the
# book's config leaves `latex.use_jupyterbook_latex` on (the default).
PDF_LATEX_PACKAGES = {"fontspec.sty": "texlive-latex-recommended"}
JB_LATEX_PACKAGES = {
    "bbm.sty": "texlive-fonts-extra",
    "pgfplots.sty": "texlive-pictures",
    "changepage.sty": "texlive-latex-extra",
}


def pdf_missing(book_dir: Path = paths.BOOK_DIR) -> list[str]:
    """What the PDF build of the book in `book_dir` lacks on this machine (empty: it can run)."""
    missing = [
        f"{tool} (not on PATH)"
        for tool in ("latexmk", "xelatex", "kpsewhich")
        if shutil.which(tool) is None
    ]
    if missing:
        return missing
    needed = dict(PDF_LATEX_PACKAGES)
    if (_book_config(book_dir).get("latex") or {}).get("use_jupyterbook_latex", True):
        needed.update(JB_LATEX_PACKAGES)
    done = subprocess.run(["kpsewhich", *needed], capture_output=True, text=True, check=False)
    found = {Path(line).name for line in done.stdout.splitlines()}
    return [f"{sty} (Debian: {deb})" for sty, deb in needed.items() if sty not in found]


def jupyter_book_command(jobs: int = 1) -> list[str]:
    """jupyter-book, with Sphinx reading and writing pages in `jobs` processes."""
    return [sys.executable, "-m", "calcinosis.book.jupyter_book", str(jobs)]


def build_book(
    book_dir: Path,
    sources: dict[str, Path],
    tmp: Path,
    pdf: bool,
    comparison,
    warnings: list[str],
    echo: Echo,
    workspace: Path,
    footer: str = "",
    jobs: int = 1,
    provenance: str = "",
) -> dict:
    """Run jupyter-book (HTML, and PDF side by side when asked) on the staged sources.

    The HTML is built in `workspace`, kept between builds of one output folder: the staged
    sources are synced into it so that unchanged pages keep their files and times, and Sphinx
    reads and writes again only the pages that changed. A failed build empties it, so the
    next one starts clean (and shows every warning again).
    """
    extra = {}
    if comparison is not None and not comparison.empty:
        extra[CHANGES_PAGE] = "# Changes from the previous build\n\n" + comparison.markdown()
    stage = tmp / "_source"
    downloads = site_downloads(book_dir, pdf)
    stage_book(book_dir, sources, stage, extra, warnings, downloads, footer, provenance)
    for warning in warnings:
        echo(f"warning: {warning}")
    builders = ["html"] + (["pdflatex"] if pdf else [])
    echo("building the book with jupyter-book: HTML" + (", and the PDF (xelatex)" if pdf else ""))
    logs = tmp / "logs"
    logs.mkdir(exist_ok=True)
    env = {**os.environ, **WORKER_ENV}
    lock = _lock(workspace)
    changed = sync_tree(stage, workspace / "_source")
    # Sphinx rereads a page whose source changed, but writes nothing, not even _static, when
    # no page did: a changed stylesheet, script, template or extension rebuilds every page
    rebuild_all = any(p.parent != Path(".") or p.suffix not in (".md", ".ipynb") for p in changed)
    source = {"html": workspace / "_source", "pdflatex": stage}
    output = {"html": workspace / "_out", "pdflatex": tmp / "_jb-pdflatex"}
    procs, started = {}, time.perf_counter()
    for builder in builders:
        log = (logs / f"jupyter-book-{builder}.log").open("w", encoding="utf-8")
        cmd = [
            *jupyter_book_command(jobs if builder == "html" else 1),
            "build",
            str(source[builder]),
            "--path-output",
            str(output[builder]),
            "-W",
            "--keep-going",
            "--builder",
            builder,
            *(["--all"] if builder == "html" and rebuild_all else []),
        ]
        procs[builder] = (
            subprocess.Popen(
                cmd,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=tmp,
                preexec_fn=die_with_parent,
            ),
            log,
        )
    seconds = {}
    for builder, (proc, log) in procs.items():
        with children_end_when_stopped():
            proc.wait()
        log.close()
        seconds[builder] = round(time.perf_counter() - started, 3)
        if proc.returncode != 0:
            for other, _ in procs.values():
                other.kill()
            shutil.rmtree(workspace / "_out", ignore_errors=True)
            lock.close()
            raise BookFailed(builder, logs / f"jupyter-book-{builder}.log")
        echo(f"  {builder:<28} built    {seconds[builder]:6.1f} s")
    shutil.copytree(workspace / "_out" / "_build" / "html", tmp / "html")
    lock.close()
    if pdf:
        latex = tmp / "_jb-pdflatex" / "_build" / "latex"
        # the book's PDF has its .tex beside it (the figures' PDFs there have none)
        found = sorted(p for p in latex.glob("*.pdf") if p.with_suffix(".tex").is_file())
        if not found:
            raise BookFailed("pdflatex", logs / "jupyter-book-pdflatex.log")
        (tmp / "pdf").mkdir()
        for path in found:
            shutil.move(path, tmp / "pdf" / path.name)
            # LaTeX's source and log: where a table or a line does not fit (overfull boxes)
            for suffix in (".tex", ".log"):
                shutil.move(path.with_suffix(suffix), logs / f"latex-{path.stem}{suffix}")
    publish_downloads(downloads, {"pdf": tmp / "pdf", "supplement": tmp}, tmp / "html")
    for builder in builders:
        shutil.rmtree(tmp / f"_jb-{builder}", ignore_errors=True)
    shutil.rmtree(stage, ignore_errors=True)
    return seconds


def publish_downloads(downloads: dict[str, str], folders: dict[str, Path], html: Path) -> None:
    """Copy each download (found by name in its kind's folder) to its place in the site."""
    for kind, target in downloads.items():
        source = folders[kind] / Path(target).name
        if not source.is_file():
            raise BuildError(f"the site links {target}, but the build made no {source}")
        (html / target).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, html / target)


def _lock(workspace: Path):
    """Hold the workspace for this build (two builds of one output folder wait in turn)."""
    import fcntl

    workspace.mkdir(parents=True, exist_ok=True)
    handle = (workspace / ".lock").open("w")
    fcntl.flock(handle, fcntl.LOCK_EX)
    return handle


def sync_tree(src: Path, dst: Path) -> list[Path]:
    """Make `dst` hold exactly `src`'s files; a file whose bytes are unchanged is not touched
    (Sphinx decides by modification time what to read again). Returns the relative paths
    written or removed."""
    wanted = {p.relative_to(src) for p in src.rglob("*") if p.is_file()}
    changed = []
    for rel in sorted(wanted):
        new, old = src / rel, dst / rel
        if old.is_file() and old.read_bytes() == new.read_bytes():
            continue
        old.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(new, old)
        changed.append(rel)
    for path in sorted(dst.rglob("*"), reverse=True):
        if path.is_file() and path.relative_to(dst) not in wanted:
            path.unlink()
            changed.append(path.relative_to(dst))
        elif path.is_dir() and not any(path.iterdir()):
            path.rmdir()
    return changed


class BookFailed(BuildError):
    """jupyter-book (Sphinx) failed: the warnings that made it fail, and the log."""

    def __init__(self, builder: str, log: Path) -> None:
        self.log = log
        text = log.read_text(encoding="utf-8", errors="replace") if log.is_file() else ""
        lines = [
            line
            for line in text.splitlines()
            if "WARNING" in line or "ERROR" in line or "Error" in line
        ]
        shown = "\n".join(f"  {line}" for line in lines[:20]) or text[-2000:]
        super().__init__(f"jupyter-book ({builder}) failed:\n{shown}")
