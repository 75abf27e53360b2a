"""The `calcinosis` command: thin wrappers that parse options and call the package."""

from __future__ import annotations

from pathlib import Path

import click

from calcinosis import paths


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Build, check and re-run the calcinosis trial book."""


@main.command()
@click.option("--out", "out_dir", type=click.Path(path_type=Path), required=True,
              help="Folder to write the dataset into (created; must not hold a dataset).")
@click.option("--seed", type=int, default=None, show_default="the bundled data's seed",
              help="Seed of the random parts of the reconstruction.")
def reconstruct(out_dir: Path, seed: int | None) -> None:
    """Write the reconstructed trial dataset (not the trial's raw data) to OUT."""
    from calcinosis import reconstruct as recon

    written = recon.write_dataset(out_dir, seed=recon.DEFAULT_SEED if seed is None else seed)
    click.echo(f"wrote {len(written)} files to {out_dir}")


@main.command()
@click.argument("data_dir", type=click.Path(path_type=Path), default=paths.DATA_DIR,
                required=False)
def validate(data_dir: Path) -> None:
    """Check the dataset in DATA_DIR (default: the bundled data) and list every problem."""
    from calcinosis import data

    try:
        trial = data.load_trial(data_dir)
    except data.DataValidationError as err:
        for problem in err.problems:
            click.echo(str(problem), err=True)
        click.echo(f"{len(err.problems)} problem(s) found in {data_dir} "
                   "(file:line: column: message; line 1 is the header)", err=True)
        raise SystemExit(2) from None
    except Exception as err:  # a person gets a message, never a traceback
        click.echo(f"error: could not read the dataset in {data_dir}: {err}", err=True)
        raise SystemExit(2) from None
    click.echo(trial.summary())


if __name__ == "__main__":  # pragma: no cover
    main()
