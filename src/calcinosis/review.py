"""One chapter with other parameters, for reviewers: executed with the same parameters, cache
and checks as the build, rendered as a one-page book, and the same run as a plain papermill
command."""

from __future__ import annotations

import concurrent.futures as cf
import os
import shutil
import subprocess
from pathlib import Path

import yaml

from calcinosis import cache, manifest, paths
from calcinosis.errors import BuildError, UsageError
from calcinosis.execute import KERNEL, WORKER_ENV, ChapterFailed, Echo, execute_page, init_worker
from calcinosis.pages import TEMPLATE, Chapter, Page, load_valid
from calcinosis.staging import jupyter_book_command

REVIEW_DIR = paths.ROOT / "_review"


def run_chapter(name: str, params: dict, data_dir: Path = paths.DATA_DIR,
                out_dir: Path = REVIEW_DIR, *, chapters_dir: Path = paths.CHAPTERS_DIR,
                book_dir: Path = paths.BOOK_DIR, cache_dir: Path | None = None,
                html: bool = True, echo: Echo = print) -> dict[str, Path]:
    """Execute one chapter with `params` into `<out>/<page>.ipynb` (+ `<out>/html/`).

    Same parameters, cache and checks as `build`; the patient template takes `patient_id`
    (default: the first patient).
    """
    data_dir, out_dir = Path(data_dir).resolve(), Path(out_dir).resolve()
    chapters_dir = Path(chapters_dir).resolve()
    path = chapters_dir / f"{name}.md"
    if not path.is_file():
        names = ", ".join(sorted(p.stem for p in chapters_dir.glob("*.md"))) or "none"
        raise UsageError(f"no chapter '{name}' in {chapters_dir} (chapters: {names})")
    chapter = Chapter.read(path)
    unknown = sorted(set(params) - set(chapter.parameters))
    if "data_dir" in params:
        raise UsageError("give the data folder with --data, not -p data_dir=...")
    if unknown:
        raise UsageError(f"chapter '{name}' has no parameter {', '.join(unknown)} "
                         f"(its parameters: {', '.join(chapter.parameters)})")
    trial = load_valid(data_dir)
    parameters = {"data_dir": str(data_dir), **params}
    page_name = name
    if name == TEMPLATE:
        ids = [str(p) for p in trial.patients["patient_id"]]
        pid = str(params.get("patient_id", ids[0]))
        if pid not in ids:
            raise UsageError(f"patient_id {pid!r} is not in the data ({', '.join(ids)})")
        parameters["patient_id"] = pid
        page_name = f"{TEMPLATE}-{pid}"
    inputs = cache.Inputs.of(data_dir)
    page = Page(page_name, chapter, parameters,
                cache.page_key(inputs, chapter.source, parameters))
    store = cache.Store(Path(cache_dir).resolve() if cache_dir else cache.default_dir(out_dir))
    out_dir.mkdir(parents=True, exist_ok=True)
    notebook = out_dir / f"{page_name}.ipynb"
    hit = store.get("notebooks", page.key, ".ipynb")
    if hit:
        shutil.copyfile(hit, notebook)
        echo(f"{page_name}: cached (same chapter, parameters, data and code as before)")
    else:
        log = out_dir / f"{page_name}.kernel.log"
        with cf.ProcessPoolExecutor(max_workers=1, initializer=init_worker,
                                    initargs=(str(log),)) as pool:
            outcome = pool.submit(execute_page, chapter.source, path.suffix.lstrip("."),
                                  parameters, str(notebook),
                                  str(out_dir / f".work-{page_name}")).result()
        shutil.rmtree(out_dir / f".work-{page_name}", ignore_errors=True)
        if not outcome["ok"]:
            err = ChapterFailed(page, outcome, notebook)
            raise BuildError(f"{err}\n  executed notebook kept at {notebook}")
        store.put("notebooks", page.key, ".ipynb", notebook,
                  {"page": page_name, "chapter": name, "parameters": parameters,
                   "seconds": outcome["seconds"], "created": manifest.now()})
        echo(f"{page_name}: executed in {outcome['seconds']:.1f} s")
    written = {"notebook": notebook}
    if html:
        written["html"] = _page_html(book_dir, page_name, notebook, out_dir)
    return written


def _page_html(book_dir: Path, page_name: str, notebook: Path, out_dir: Path) -> Path:
    """A one-page book of the executed notebook (glue and theme as in the book)."""
    stage = out_dir / f".stage-{page_name}"
    shutil.rmtree(stage, ignore_errors=True)
    if Path(book_dir).is_dir():
        shutil.copytree(book_dir, stage, ignore=shutil.ignore_patterns(
            "_build", ".*", "*.ipynb", "*.md", "_toc.yml", "__pycache__"))
    stage.mkdir(parents=True, exist_ok=True)
    config_path = stage / "_config.yml"
    config = (yaml.safe_load(config_path.read_text(encoding="utf-8")) or {}
              if config_path.is_file() else {"title": page_name})
    config.setdefault("execute", {})["execute_notebooks"] = "off"
    config["only_build_toc_files"] = True
    config_path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    (stage / "_toc.yml").write_text(yaml.safe_dump({"format": "jb-book", "root": page_name}),
                                    encoding="utf-8")
    shutil.copyfile(notebook, stage / f"{page_name}.ipynb")
    log = out_dir / f"{page_name}.jupyter-book.log"
    with log.open("w", encoding="utf-8") as handle:
        done = subprocess.run([*jupyter_book_command(), "build", str(stage), "--path-output",
                               str(stage / "_out")], stdout=handle, stderr=subprocess.STDOUT,
                              env={**os.environ, **WORKER_ENV}, check=False)
    if done.returncode != 0:
        raise BuildError(f"jupyter-book could not render {page_name}; see {log}")
    target = out_dir / "html"
    shutil.rmtree(target, ignore_errors=True)
    shutil.move(stage / "_out" / "_build" / "html", target)
    shutil.rmtree(stage, ignore_errors=True)
    return target / f"{page_name}.html"


def papermill_command(name: str, page: str, data_dir: Path, params: dict,
                      chapters_dir: Path = paths.CHAPTERS_DIR, cwd: Path | None = None) -> str:
    """The same run as a plain shell pipeline (jupytext converts, papermill executes), to be
    run in `cwd` (default: the current folder)."""
    import shlex

    args = [f"-p data_dir {shlex.quote(str(data_dir))}"]
    args += [f"-p {k} {shlex.quote(str(v))}" for k, v in params.items()]
    source = Path(chapters_dir).resolve() / f"{name}.md"
    try:
        source = source.relative_to((cwd or Path.cwd()).resolve())
    except ValueError:
        pass
    return (f"jupytext --to ipynb --output - {shlex.quote(str(source))} | "
            f"MPLBACKEND=Agg papermill - {shlex.quote(page)}.ipynb -k {KERNEL} "
            + " ".join(args))
