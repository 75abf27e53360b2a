"""`calcinosis compare`: results that changed and audit verdicts that flipped."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from click.testing import CliRunner

from calcinosis import build, cli, compare
from test_build import make_tiny_book, set_measurement

CLAIMS = {"claims": [
    {"name": "gee_length_pct_per_visit", "value": -2.66, "decimals": 2, "relation": "="},
    {"name": "gee_length_p", "value": 0.05, "decimals": 2, "relation": "<"},
    {"name": "n_patients", "value": 5, "decimals": 0, "relation": "="},
]}


def fake_out(root: Path, results: dict, claims: dict | None = CLAIMS) -> Path:
    """An output folder with what compare reads: results.json and the data's claims."""
    (root / "supplement" / "data").mkdir(parents=True)
    (root / "results.json").write_text(json.dumps(results), encoding="utf-8")
    if claims is not None:
        (root / "supplement" / "data" / "published.yml").write_text(yaml.safe_dump(claims))
    return root


OLD = {"n_patients": 5, "gee_length_pct_per_visit": -2.661, "gee_length_p": 0.01,
       "mean_length": 12.5, "dropped": 1.0, "method": "GEE"}
NEW = {"n_patients": 6, "gee_length_pct_per_visit": -2.3, "gee_length_p": 0.04,
       "mean_length": 12.5, "added": 3, "method": "GEE"}


def test_changes_and_flips() -> None:
    result = compare.compare_results(OLD, NEW, CLAIMS["claims"], CLAIMS["claims"])
    changes = {c.name: (c.old, c.new, c.delta) for c in result.changes}
    assert changes == {
        "added": (None, 3, "added"),
        "dropped": (1.0, None, "removed"),
        "gee_length_pct_per_visit": (-2.661, -2.3, "+0.361 (+13.6%)"),
        "gee_length_p": (0.01, 0.04, "+0.03 (+300.0%)"),
        "n_patients": (5, 6, "+1 (+20.0%)"),
    }
    flips = {f.name: (f.claim, f.old, f.new) for f in result.flips}
    # -2.661 rounds to the published -2.66, -2.3 does not; p stays below 0.05
    assert flips == {"gee_length_pct_per_visit": ("= -2.66", "agrees", "differs"),
                     "n_patients": ("= 5", "agrees", "differs")}
    assert result.n_results == 7


def test_no_change() -> None:
    result = compare.compare_results(OLD, dict(OLD), [], [])
    assert result.empty
    assert "No result changed" in result.markdown()


def test_string_results_are_verdicts() -> None:
    result = compare.compare_results({"audit_n": "reproduced"}, {"audit_n": "not reproduced"},
                                     [], [])
    assert [(f.name, f.old, f.new) for f in result.flips] == [
        ("audit_n", "reproduced", "not reproduced")]


def test_cli_prints_table_and_writes_markdown(tmp_path: Path) -> None:
    old = fake_out(tmp_path / "old", OLD)
    new = fake_out(tmp_path / "new", NEW)
    result = CliRunner().invoke(cli.main, ["compare", str(old), str(new)])
    assert result.exit_code == 0, result.output
    assert "5 of 7 results changed, 2 audit verdicts flipped" in result.output
    assert "n_patients" in result.output and "+1 (+20.0%)" in result.output
    md = (new / "compare.md").read_text()
    assert "| n_patients | 5 | 6 | +1 (+20.0%) |" in md
    assert "| gee_length_pct_per_visit | = -2.66 | agrees | differs |" in md
    other = tmp_path / "cmp.md"
    assert CliRunner().invoke(cli.main, ["compare", str(old), str(new), "--md",
                                         str(other)]).exit_code == 0
    assert other.read_text() == md


def test_cli_refuses_a_folder_that_is_not_a_build(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    new = fake_out(tmp_path / "new", NEW)
    result = CliRunner().invoke(cli.main, ["compare", str(tmp_path / "a"), str(new)])
    assert result.exit_code == 1 and "holds no results.json" in result.output


def test_build_on_updated_data_reports_the_known_change(tmp_path: Path,
                                                        tiny_dataset: Path) -> None:
    kwargs = make_tiny_book(tmp_path, tiny_dataset)
    old = build.build(**{**kwargs, "out_dir": tmp_path / "old"}).out_dir
    set_measurement(tiny_dataset, "P1-L1", 1, 29)  # mean length 17 -> 18.125
    new = build.build(**{**kwargs, "out_dir": tmp_path / "new", "compare_to": old}).out_dir
    md = (new / "compare.md").read_text()
    assert "| mean_length | 17 | 18.125 | +1.125 (+6.6%) |" in md
    assert "1 of 2 results changed" in md
    page = (new / "html" / "changes.html").read_text()
    assert "mean_length" in page and "18.125" in page
    standalone = compare.compare(old, new)
    assert [(c.name, c.old, c.new) for c in standalone.changes] == [
        ("mean_length", 17.0, 18.125)]
