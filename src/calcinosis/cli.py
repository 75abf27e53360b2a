"""The `calcinosis` command: thin wrappers that parse options and call the package."""

from __future__ import annotations

# First, before any other import (`signal` alone imports enum, slow on a busy machine): a
# Ctrl-C or SIGTERM is recorded from here on, then handed to `process`, which stops the
# command with it. Only when run as the program; a test importing the module keeps its own.
import _signal
import sys
from typing import Any  # noqa: E402

_EARLY: list[int] = []
_AS_PROGRAM = sys.argv[0].rsplit("/", 1)[-1].split(".")[0] in ("calcinosis", "cli")
if _AS_PROGRAM:
    for _signum in (2, 15):  # SIGINT, SIGTERM
        _signal.signal(_signum, lambda signum, frame: _EARLY.append(signum))

from pathlib import Path  # noqa: E402

from calcinosis.book import process  # noqa: E402

if _AS_PROGRAM:
    process.stop_on_signals(_EARLY)  # before any fork

import click  # noqa: E402

from calcinosis import paths  # noqa: E402
from calcinosis.errors import BuildError  # noqa: E402


class _Stoppable(click.Group):
    """A command stopped by Ctrl-C or SIGTERM ends with status 130 and one line, wherever it
    was (click's own answer is "Aborted!" and status 1)."""

    def invoke(self, ctx: click.Context):
        try:
            process.arm()
            return super().invoke(ctx)
        except KeyboardInterrupt:
            process.stopping_now()
            process.end_children()
            click.echo("stopped: by a signal, before the command finished", err=True)
            raise SystemExit(130) from None


@click.group(cls=_Stoppable, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="calcinosis")
def main() -> None:
    """Build, check and re-run the calcinosis trial book."""


@main.command()
@click.option(
    "--out",
    "out_dir",
    type=click.Path(path_type=Path),
    required=True,
    help="Folder to write the dataset into (created if missing).",
)
@click.option(
    "--seed",
    type=int,
    default=None,
    show_default="the bundled data's seed",
    help="Seed of the random parts of the reconstruction.",
)
@click.option(
    "--replace",
    is_flag=True,
    help="Overwrite the dataset files OUT already holds (other files are left alone).",
)
def reconstruct(out_dir: Path, seed: int | None, replace: bool) -> None:
    """Write the reconstructed trial dataset (not the trial's raw data) to OUT."""
    from calcinosis.errors import UsageError
    from calcinosis.simulate import reconstruct as recon

    try:
        written = recon.write_dataset(
            out_dir, seed=recon.DEFAULT_SEED if seed is None else seed, replace=replace
        )
    except UsageError as err:
        _fail(err)
    except OSError as err:
        _fail(BuildError(f"could not write {err.filename or out_dir}: {err.strerror or err}"))
    click.echo(f"wrote {len(written)} files to {out_dir}")


@main.command()
@click.argument("data_dir", type=click.Path(path_type=Path), default=paths.DATA_DIR, required=False)
def validate(data_dir: Path) -> None:
    """Check the dataset in DATA_DIR (default: the bundled data) and list every problem."""
    from calcinosis.data import limits
    from calcinosis.data import trial as data

    try:
        trial = data.load_trial(data_dir)
    except data.DataValidationError as err:
        for problem in err.problems:
            click.echo(str(problem), err=True)
        click.echo(
            f"{len(err.problems)} problem(s) found in {data_dir} "
            "(file:line: column: message; line 1 is the header)",
            err=True,
        )
        raise SystemExit(2) from None
    except Exception as err:  # a person gets a message, never a traceback
        click.echo(f"error: could not read the dataset in {data_dir}: {err}", err=True)
        raise SystemExit(2) from None
    click.echo(trial.summary())
    for note in trial.notes:  # what was accepted after a change: "Yes → yes"
        click.echo(note)
    try:
        limits.check(trial, large=False)
    except limits.TooLarge as err:  # valid data, but `build` needs --large
        click.echo(f"note: {err}")


# --- build pipeline: build, compare, chapter ------------------------------------------------

_PARAM_HELP = (
    "An analysis parameter (repeatable): correlation=exchangeable|independence|ar1, "
    "cluster=lesion|patient. It reaches every page, results.json and the supplement."
)


DATA_OPTION = click.option(
    "--data",
    "data_dir",
    type=click.Path(path_type=Path),
    default=paths.DATA_DIR,
    show_default="the bundled data/",
    help="The dataset.",
)
# The Dask runner's two options, shared by `ensemble` and `power`
SCHEDULER_OPTION = click.option(
    "--scheduler",
    default=None,
    metavar="ADDRESS",
    help="A running Dask scheduler (tcp://host:port); default: a local cluster.",
)
WORKERS_OPTION = click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=None,
    show_default="one per core",
    help="Processes of the local cluster (ignored with --scheduler).",
)
CACHE_OPTION = click.option(
    "--cache",
    "cache_dir",
    type=click.Path(path_type=Path),
    default=None,
    envvar="CALCINOSIS_CACHE",
    show_default="$CALCINOSIS_CACHE or .calcinosis-cache beside the output",
    help="Store of results and executed pages.",
)


def _fail(err: Exception) -> None:
    """Print an expected failure for a person (no traceback) and exit with its status."""
    problems = getattr(err, "problems", None)  # invalid data: exactly as `validate` lists it
    click.echo(str(err) if problems is not None else f"error: {err}", err=True)
    raise SystemExit(getattr(err, "exit_code", 1)) from None


@main.command()
@DATA_OPTION
@click.option(
    "--out",
    "out_dir",
    type=click.Path(path_type=Path),
    default=paths.BUILD_DIR,
    show_default="_build/",
    help="Output folder; replaced only by a complete build.",
)
@click.option(
    "-p", "--parameter", "parameters", multiple=True, metavar="NAME=VALUE", help=_PARAM_HELP
)
@click.option(
    "--jobs",
    "-j",
    type=click.IntRange(min=1),
    default=None,
    show_default="number of cores",
    help="Processes side by side: pages executed, figures rendered, pages Sphinx writes.",
)
@click.option(
    "--pdf/--no-pdf",
    default=False,
    show_default=True,
    help="Also build the PDF (needs latexmk and xelatex).",
)
@CACHE_OPTION
@click.option(
    "--large",
    is_flag=True,
    help="Build a trial above the size limits (rows, lesions, visits per lesion), "
    "after printing the memory it needs.",
)
@click.option(
    "--compare-to",
    type=click.Path(path_type=Path, exists=True, file_okay=False),
    default=None,
    help="An earlier build to compare with: writes compare.md and "
    "adds a 'Changes' page to the book.",
)
def build(
    data_dir: Path,
    out_dir: Path,
    parameters: tuple[str, ...],
    jobs: int | None,
    pdf: bool,
    cache_dir: Path | None,
    compare_to: Path | None,
    large: bool,
) -> None:
    """Validate the data, compute the results, execute the pages that changed, build the book
    and its supplement."""
    from calcinosis.book import build as pipeline
    from calcinosis.book.plan import parse_parameters
    from calcinosis.errors import BuildError

    try:
        pipeline.build(
            data_dir,
            out_dir,
            parse_parameters(parameters),
            jobs,
            pdf,
            cache_dir=cache_dir,
            compare_to=compare_to,
            large=large,
            echo=click.echo,
        )
    except BuildError as err:
        _fail(err)


@main.command()
@DATA_OPTION
@click.option(
    "--out",
    "out_dir",
    type=click.Path(path_type=Path),
    default=Path("supplement"),
    show_default="supplement/",
    help="Folder of the supplement, its zip inside; replaced only if an earlier run made it.",
)
@click.option(
    "-p", "--parameter", "parameters", multiple=True, metavar="NAME=VALUE", help=_PARAM_HELP
)
@CACHE_OPTION
def supplement(
    data_dir: Path, out_dir: Path, parameters: tuple[str, ...], cache_dir: Path | None
) -> None:
    """Make the supplement alone (every table and figure of the book, the results, the data
    and an index), without building the book."""
    from calcinosis.book import supplement as making
    from calcinosis.book.plan import parse_parameters
    from calcinosis.errors import BuildError, could_not_write

    try:
        making.make_alone(
            data_dir, out_dir, parse_parameters(parameters), cache_dir, echo=click.echo
        )
    except BuildError as err:
        _fail(err)
    except OSError as err:  # a full disk or read-only folder: one line naming the file
        _fail(could_not_write(err))


@main.command()
@click.argument("old_out", type=click.Path(path_type=Path, exists=True, file_okay=False))
@click.argument("new_out", type=click.Path(path_type=Path, exists=True, file_okay=False))
@click.option(
    "--md",
    "md_path",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Also write the comparison as Markdown to this file.",
)
def compare(old_out: Path, new_out: Path, md_path: Path | None) -> None:
    """List the parameters that differ, every result that changed and every audit verdict
    that flipped from OLD_OUT to NEW_OUT (two build outputs)."""
    from calcinosis.book import compare as comparing

    try:
        comparison = comparing.compare(old_out, new_out)
    except (FileNotFoundError, ValueError) as err:
        _fail(err)
    click.echo(comparison.terminal())
    if md_path:
        md_path.write_text(comparison.markdown(), encoding="utf-8")
        click.echo(f"written to {md_path}")


@main.command()
@click.argument("name")
@click.option(
    "-p",
    "--parameter",
    "parameters",
    multiple=True,
    metavar="NAME=VALUE",
    help="A parameter the chapter's parameters cell declares (repeatable), read with the "
    "type of its default: correlation and cluster reach the whole book, the chapter's own "
    "(power: alpha=0.01, effect=bound, scenario=none) its page; patient: patient_id=ID.",
)
@DATA_OPTION
@click.option(
    "--out",
    "out_dir",
    type=click.Path(path_type=Path),
    default=None,
    show_default="_review/<parameters>/",
    help="Folder of the reviewed book.",
)
@CACHE_OPTION
def chapter(
    name: str,
    parameters: tuple[str, ...],
    data_dir: Path,
    out_dir: Path | None,
    cache_dir: Path | None,
) -> None:
    """Show chapter NAME with other parameters, inside a whole book built with them (so its
    references, citations and source links resolve) in a folder named after the parameters.
    Pages that the parameters do not change come from the cache.

    NAME is a file of chapters/ without .md: index, methods, cohort, patients, patient (one
    per patient: -p patient_id=P2), gee, radiography, safety, discussion, sensitivity,
    ensemble, power, reproducibility, data-dictionary."""
    from calcinosis.book import review
    from calcinosis.book.plan import parse_parameters
    from calcinosis.errors import BuildError

    try:
        written = review.review(
            name,
            parse_parameters(parameters),
            data_dir,
            out_dir,
            cache_dir=cache_dir,
            echo=click.echo,
        )
    except BuildError as err:
        _fail(err)
    click.echo(f"page: {written}")
    click.echo(
        f"compare with the paper's analysis: calcinosis compare {paths.BUILD_DIR} "
        f"{written.parents[1]}"
    )


@main.command()
@click.option("--n", "n", type=click.IntRange(min=1), required=True, help="Members 1..N.")
@click.option(
    "--out",
    "out_dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=paths.ENSEMBLE_DIR,
    show_default="book/ensemble, the one the book reads",
    help="Folder of the ensemble; members already in it are reused.",
)
@SCHEDULER_OPTION
@WORKERS_OPTION
def ensemble(n: int, out_dir: Path, scheduler: str | None, workers: int | None) -> None:
    """Reconstruct, audit and analyse N datasets that agree with the article's summaries,
    on Dask; write the table (Parquet, CSV) and the manifest to OUT. Stopped, it keeps every
    finished member, and a second run resumes."""
    from calcinosis.book.output import check_out, exclusive
    from calcinosis.book.process import sigterm_as_interrupt
    from calcinosis.errors import UsageError
    from calcinosis.simulate import ensemble as ens
    from calcinosis.simulate.runner import TaskError

    ensemble_files = (ens.TABLE_FILE, ens.CSV_FILE, ens.MANIFEST_FILE, ens.MEMBERS_DIR)

    try:
        out_dir = check_out(out_dir, own=frozenset(ensemble_files))
        with sigterm_as_interrupt(), exclusive(out_dir):
            manifest = ens.run(n, out_dir, scheduler=scheduler, workers=workers)
    except UsageError as err:
        _fail(err)
    except KeyboardInterrupt:
        process.stopping_now()
        done = len(list(ens.member_store(out_dir).folder.glob("*.json")))
        click.echo(f"stopped: {done} members are kept in {out_dir}; run again to resume", err=True)
        raise SystemExit(130) from None
    except (TaskError, OSError) as err:
        _fail(err)
    click.echo(
        f"{manifest['n_kept']} of {n} members kept, {manifest['n_dropped']} dropped "
        f"(reasons in {out_dir / ens.MANIFEST_FILE}); computed "
        f"{manifest['timings']['this_run_computed']} in "
        f"{manifest['timings']['this_run_wall_seconds']} s"
    )


def _several(name: str, choices, help_text: str, **extra):
    """A repeatable option whose default is the default grid's (shown in --help)."""
    return click.option(
        name,
        multiple=True,
        type=click.Choice(choices) if choices else extra.pop("type"),
        show_default=extra.pop("show_default", "all" if choices else "the default grid's"),
        help=help_text,
        **extra,
    )


@main.command()
@DATA_OPTION
@click.option(
    "--out",
    "out_dir",
    type=click.Path(path_type=Path),
    required=True,
    help="Folder of the run: tasks/ (one file per finished task; a stopped run resumes "
    "from it), replicates.csv.gz, assurance.csv.gz and manifest.json. The book reads it "
    "with `-p power_dir=FOLDER` (default: the run shipped in the package).",
)
@SCHEDULER_OPTION
@WORKERS_OPTION
@_several(
    "--scenario",
    ("none", "quarter", "half"),
    "Control arm's change per visit as a share of the pilot's rate: none, a quarter, half "
    "(repeatable).",
)
@_several(
    "--design",
    ("parallel", "within"),
    "parallel: children randomised; within: each child's lesions randomised (repeatable).",
)
@_several(
    "--analysis",
    ("gee_patient", "gee_lesion", "summary", "coprimary", "responder"),
    "GEE with patient clusters (small-sample corrected), GEE with lesion clusters (robust, "
    "the pilot's), patient-level summary slope, co-primary length and width (both summary "
    "slopes significant), responders (length down 30 % at the last visit) (repeatable).",
)
@_several(
    "--effect",
    ("zero", "pilot", "bound"),
    "The injection arm's change: the control arm's (zero: Type I error), the pilot's "
    "estimate, or the bound of its 95 % CI nearest no change (repeatable).",
    show_default="all",
)
@_several(
    "--children",
    None,
    "Children in the trial, even, at least 4 (repeatable): the grid of sizes.",
    type=click.IntRange(min=4),
)
@_several(
    "--within-children",
    None,
    "Further sizes for the within-patient design alone, even, at least 4 (repeatable; "
    "default 6, where the within-patient answer lies below the common grid).",
    type=click.IntRange(min=4),
)
@click.option(
    "--dropout",
    type=click.FloatRange(0, 1, max_open=True),
    default=None,
    show_default="0.1",
    help="Share of children lost after a random visit.",
)
@click.option(
    "--missed",
    type=click.FloatRange(0, 1, max_open=True),
    default=None,
    show_default="0.05",
    help="Share of the other children's visits missed.",
)
@click.option(
    "--lesion-cap",
    type=click.IntRange(min=0),
    default=None,
    show_default="4",
    help="Most lesions a child brings (drawn from the pilot's counts); 0: no cap.",
)
@click.option(
    "--replicates",
    type=click.IntRange(min=2),
    default=None,
    show_default="1000",
    help="Simulated trials per cell, analysed by the summary slope.",
)
@click.option(
    "--gee-replicates",
    type=click.IntRange(min=0),
    default=None,
    show_default="1000",
    help="Of these, how many the patient-clustered GEE analyses too in the main scenario "
    "(200 elsewhere; the lesion-clustered GEE 200 everywhere).",
)
@click.option(
    "--alpha",
    "alphas",
    type=click.FloatRange(0, 1, min_open=True, max_open=True),
    multiple=True,
    show_default="0.05, 0.01",
    help="Levels the manifest records (any α can be read later: p-values are kept).",
)
@click.option("--seed", type=int, default=None, show_default="20261126", help="The run's seed.")
@click.option(
    "--assurance-members",
    type=click.IntRange(min=0),
    default=None,
    show_default="24",
    help="Kept members of the shipped ensemble whose fitted models give the assurance (0: none).",
)
@click.option(
    "--assurance-replicates",
    type=click.IntRange(min=2),
    default=None,
    show_default="50",
    help="Simulated trials per member, design and size.",
)
@click.option(
    "--collect",
    is_flag=True,
    help="Run nothing: write what --out's tasks/ hold, the manifest saying what is "
    "missing (to ship a run stopped before its end).",
)
def power(
    data_dir: Path,
    out_dir: Path,
    scheduler: str | None,
    workers: int | None,
    collect: bool,
    **choices,
) -> None:
    """Simulate randomised trials over a grid (design, control-arm scenario, effect,
    children) with dropout and missed visits, analyse each, and write the replicates, the
    ensemble members' assurance trials and a manifest. The book shows the run shipped in
    src/calcinosis/shipped/power/: copy replicates.csv.gz, assurance.csv.gz and
    manifest.json there to ship a new one."""
    import dataclasses

    from calcinosis.book.output import check_out, exclusive
    from calcinosis.data.trial import DataValidationError, load_trial
    from calcinosis.errors import UsageError
    from calcinosis.simulate import power as planning

    power_files = frozenset(
        {"tasks", planning.REPLICATES_FILE, planning.ASSURANCE_FILE, planning.MANIFEST_FILE}
    )

    names = {
        "scenario": "scenarios",
        "design": "designs",
        "analysis": "analyses",
        "effect": "effects",
        "alphas": "alphas",
        "within_children": "within_small",
    }
    changes: dict[str, Any] = {}
    for option, value in choices.items():
        if value is None or value == ():
            continue
        field = names.get(option, option)
        changes[field] = tuple(value) if isinstance(value, tuple) else value
    if changes.get("lesion_cap") == 0:
        changes["lesion_cap"] = None
    try:
        grid = dataclasses.replace(planning.Grid(), **changes)
        out_dir = check_out(out_dir, [data_dir], own=power_files)
        trial = load_trial(data_dir)
    except (ValueError, DataValidationError, UsageError) as err:
        _fail(err)
    try:
        with exclusive(out_dir):
            if collect:
                run = planning.collect(trial, grid, out_dir / "tasks")
            else:
                run = planning.compute(
                    trial, grid, out_dir / "tasks", scheduler=scheduler, workers=workers
                )
            planning.write(run, out_dir)
    except (OSError, UsageError, planning.runner.TaskError) as err:
        _fail(err)
    m = run.manifest
    click.echo(
        f"{m['tasks']} tasks ({m.get('computed', 0)} computed, {m.get('reused', 0)} reused, "
        f"{m['missing_tasks']} missing) in {m.get('wall_seconds', 0)} s on "
        f"{m.get('workers', 0)} workers; written to {out_dir}"
    )


if __name__ == "__main__":  # pragma: no cover
    main()
