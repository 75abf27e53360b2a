"""`calcinosis compare`: parameters that differ, results that changed, audit verdicts that
flipped, read from two output folders (made here by hand: only the files compare reads)."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from click.testing import CliRunner

from calcinosis import cli
from calcinosis.book import compare

CLAIMS = {
    "claims": [
        {"name": "gee_length_pct_per_visit", "value": -2.66, "decimals": 2, "relation": "="},
        {"name": "gee_length_p", "value": 0.05, "decimals": 2, "relation": "<"},
        {"name": "n_patients", "value": 5, "decimals": 0, "relation": "="},
    ]
}
PAPER = {"correlation": "exchangeable", "cluster": "lesion"}


def fake_out(
    root: Path, results: dict, claims: dict | None = CLAIMS, parameters: dict | None = PAPER
) -> Path:
    """An output folder with what compare reads: results.json, the parameters and the data's
    claims in the supplement."""
    (root / "supplement" / "data").mkdir(parents=True)
    (root / "results.json").write_text(json.dumps(results), encoding="utf-8")
    if parameters is not None:
        (root / "supplement" / "parameters.json").write_text(
            json.dumps(parameters), encoding="utf-8"
        )
    if claims is not None:
        (root / "supplement" / "data" / "published.yml").write_text(yaml.safe_dump(claims))
    return root


OLD = {
    "n_patients": 5,
    "gee_length_pct_per_visit": -2.661,
    "gee_length_p": 0.01,
    "mean_length": 12.5,
    "dropped": 1.0,
    "method": "GEE",
}
NEW = {
    "n_patients": 6,
    "gee_length_pct_per_visit": -2.3,
    "gee_length_p": 0.04,
    "mean_length": 12.5,
    "added": 3,
    "method": "GEE",
}


def test_changes_and_flips() -> None:
    result = compare.compare_results(OLD, NEW, CLAIMS["claims"], CLAIMS["claims"])
    changes = {c.name: (c.old, c.new, c.delta) for c in result.changes}
    assert changes == {
        "added": (None, 3, "added"),
        "dropped": (1.0, None, "removed"),
        "gee_length_pct_per_visit": (-2.661, -2.3, "+0.361 (+13.6 %)"),
        "gee_length_p": (0.01, 0.04, "+0.03 (+300 %)"),
        "n_patients": (5, 6, "+1 (+20 %)"),
    }
    flips = {f.name: (f.claim, f.old, f.new) for f in result.flips}
    # -2.661 rounds to the published -2.66, -2.3 does not; p stays below 0.05
    assert flips == {
        "gee_length_pct_per_visit": ("= -2.66", "agrees", "differs"),
        "n_patients": ("= 5", "agrees", "differs"),
    }
    assert result.n_results == 7
    assert result.parameters == []  # compare_results knows nothing of parameters


def test_no_change() -> None:
    result = compare.compare_results(OLD, dict(OLD), [], [])
    assert result.empty
    assert "No result changed" in result.markdown()


def test_string_results_are_verdicts() -> None:
    result = compare.compare_results(
        {"audit_n": "reproduced"}, {"audit_n": "not reproduced"}, [], []
    )
    assert [(f.name, f.old, f.new) for f in result.flips] == [
        ("audit_n", "reproduced", "not reproduced")
    ]


def test_load_parameters(tmp_path: Path) -> None:
    with_params = fake_out(
        tmp_path / "a", OLD, parameters={"correlation": "ar1", "cluster": "lesion"}
    )
    assert compare.load_parameters(with_params) == {"correlation": "ar1", "cluster": "lesion"}
    assert compare.load_parameters(fake_out(tmp_path / "b", OLD, parameters=None)) == {}


def test_parameter_differences_come_first(tmp_path: Path) -> None:
    old = fake_out(tmp_path / "old", OLD)
    new = fake_out(tmp_path / "new", NEW, parameters={**PAPER, "correlation": "independence"})
    result = compare.compare(old, new)
    assert [(c.name, c.old, c.new) for c in result.parameters] == [
        ("correlation", "exchangeable", "independence")
    ]
    assert not result.empty
    md = result.markdown()
    assert md.splitlines()[0].endswith(
        "1 parameters differ, 5 of 7 results changed, 2 audit verdicts flipped."
    )
    assert "| correlation | exchangeable | independence |" in md
    assert (
        md.index("## Parameters that differ")
        < md.index("## Results that changed")
        < md.index("## Audit verdicts that flipped")
    )
    text = result.terminal()
    assert text.index("correlation") < text.index("n_patients")


def test_only_the_parameters_differ(tmp_path: Path) -> None:
    old = fake_out(tmp_path / "old", OLD)
    new = fake_out(tmp_path / "new", OLD, parameters={**PAPER, "cluster": "patient"})
    result = compare.compare(old, new)
    assert not result.empty and not result.changes and not result.flips
    assert [c.name for c in result.parameters] == ["cluster"]
    assert compare.compare(old, fake_out(tmp_path / "same", OLD)).empty


def test_cli_prints_and_writes_markdown_only_when_asked(tmp_path: Path) -> None:
    old = fake_out(tmp_path / "old", OLD)
    new = fake_out(tmp_path / "new", NEW, parameters={**PAPER, "cluster": "patient"})
    before = sorted(tmp_path.rglob("*"))
    result = CliRunner().invoke(cli.main, ["compare", str(old), str(new)])
    assert result.exit_code == 0, result.output
    assert "1 parameters differ, 5 of 7 results changed, 2 audit verdicts flipped" in result.output
    assert "n_patients" in result.output and "+1 (+20 %)" in result.output
    lines = result.output.splitlines()
    cluster = next(line for line in lines if line.startswith("cluster"))
    assert cluster.split() == ["cluster", "lesion", "patient"]
    assert sorted(tmp_path.rglob("*")) == before, "compare wrote a file without --md"

    md_path = tmp_path / "cmp.md"
    result = CliRunner().invoke(cli.main, ["compare", str(old), str(new), "--md", str(md_path)])
    assert result.exit_code == 0, result.output
    md = md_path.read_text(encoding="utf-8")
    assert md == compare.compare(old, new).markdown()
    assert "| n_patients | 5 | 6 | +1 (+20 %) |" in md
    assert "| gee_length_pct_per_visit | = -2.66 | agrees | differs |" in md
    assert "| cluster | lesion | patient |" in md
    assert sorted(tmp_path.rglob("*")) == sorted([*before, md_path])


def test_cli_refuses_a_folder_that_is_not_a_build(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    new = fake_out(tmp_path / "new", NEW)
    result = CliRunner().invoke(cli.main, ["compare", str(tmp_path / "a"), str(new)])
    assert result.exit_code == 1 and "holds no results.json" in result.output
