"""Parameters wherever they are offered (issue 22.4): every chapter declares its own in its
parameters cell; `calcinosis chapter NAME -p` accepts exactly those, read with the type of the
declared default, and says in one line what exists when given anything else; a downloaded
notebook keeps its data folder when papermill runs it again with -p."""

from __future__ import annotations

import re

import pytest
from click.testing import CliRunner

from calcinosis import paths
from calcinosis.book import chapter_params
from calcinosis.book.plan import read_chapters
from calcinosis.book.portable import with_defaults
from calcinosis.cli import main
from calcinosis.errors import UsageError
from calcinosis.params import NAMES

CHAPTERS = {c.name: c for c in read_chapters(paths.CHAPTERS_DIR)}


@pytest.mark.parametrize("name", sorted(n for n, c in CHAPTERS.items() if not c.static))
def test_every_executed_chapter_declares_its_parameters(name: str) -> None:
    declared = chapter_params.declared(CHAPTERS[name])
    assert list(declared) == list(CHAPTERS[name].parameters)  # one source: the cell
    assert {"data_dir", "results_dir"} <= set(declared)
    offered = chapter_params.offered(CHAPTERS[name])
    analysis, own = chapter_params.split(CHAPTERS[name], {k: str(v) for k, v in offered.items()})
    assert set(analysis) == set(offered) & set(NAMES)
    assert set(own) == set(offered) - set(NAMES)


def test_the_chapter_command_names_every_executed_chapter() -> None:
    """Its help lists the chapters it takes (it once left out the ensemble and the planning
    chapters, the two a reviewer most wants to re-run)."""
    named = set(re.findall(r"[\w-]+", CliRunner().invoke(main, ["chapter", "--help"]).output))
    missing = [n for n, c in CHAPTERS.items() if not c.static and n not in named]
    assert not missing, missing


def test_values_are_read_with_the_type_of_their_default() -> None:
    typed = chapter_params.typed
    assert typed("alpha", "0.01", 0.05) == 0.01 and isinstance(typed("alpha", "1", 0.05), float)
    assert typed("effect_sizes", "[-2.0]", [-1.0]) == [-2.0]
    assert typed("effect_sizes", "[-2, -1]", [-1.0]) == [-2.0, -1.0]
    assert typed("effect_sizes", "[-2.0]", None) == [-2.0]  # None: any literal
    assert typed("lesions_per_patient", "3", None) == 3
    assert typed("design", "parallel", None) == "parallel"
    assert typed("visits", "16", 8) == 16
    assert typed("exact", "no", True) is False
    assert typed("scenario", "pessimistic", "pilot") == "pessimistic"
    for text, default, says in (
        ("abc", 0.05, "is not a number"),
        ("nan", 0.05, "is not a number"),
        ("1e400", 0.05, "not finite"),
        ("2.5", 8, "not a whole number"),
        ("[-2.0", [-1.0], "is not a list of numbers"),
        ("[-2.0", None, "not a Python literal"),
        ("['a']", [-1.0], "is not a list of numbers"),
        ("maybe", True, "is not true or false"),
    ):
        with pytest.raises(UsageError, match=says) as raised:
            typed("p", text, default)
        assert "\n" not in str(raised.value)


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["gee", "-p", "alpha=0.01"], "chapter 'gee' has no parameter alpha (its parameters: "),
        (["power", "-p", "alpha=abc"], "parameter alpha: 'abc' is not a number"),
        (["power", "-p", "data_dir=data"], "data_dir is set by the command (--data)"),
        (["gee", "-p", "patient_id=P1"], "chapter 'gee' has no parameter patient_id"),
        (["nosuch"], "no chapter 'nosuch' (chapters: "),
    ],
)
def test_the_chapter_command_refuses_in_one_line(args: list[str], says: str) -> None:
    result = CliRunner().invoke(main, ["chapter", *args])
    assert result.exit_code == 2, result.output
    assert result.output.count("\n") == 1 and says in result.output, result.output
    assert "Traceback" not in result.output


def test_the_power_chapter_offers_its_own_parameters() -> None:
    offered = chapter_params.offered(CHAPTERS["power"])
    assert {"correlation", "cluster", "alpha"} <= set(offered)
    analysis, own = chapter_params.split(CHAPTERS["power"], {"alpha": "0.01", "cluster": "patient"})
    assert analysis == {"cluster": "patient"} and own == {"alpha": 0.01}


def test_a_parameters_cell_takes_the_build_values_as_defaults() -> None:
    cell = (
        'data_dir = "../data"\n'
        'results_dir = ""  # the build sets it\n'
        "effect_sizes = None  # % per visit; None: the pilot's (é)\n"
        "grid = [1,\n        2]\n"
    )
    source = with_defaults(
        cell, {"data_dir": "data", "results_dir": "", "effect_sizes": [-2.0], "grid": [3]}
    )
    assert source == (
        'data_dir = "data"\n'
        'results_dir = ""  # the build sets it\n'
        "effect_sizes = [-2.0]  # % per visit; None: the pilot's (é)\n"
        "grid = [3]\n"
    )
    namespace: dict = {}
    exec(source, namespace)
    assert namespace["data_dir"] == "data" and namespace["effect_sizes"] == [-2.0]
