"""`calcinosis compare`: parameters that differ, results that changed, audit verdicts that
flipped, read from two output folders (made here by hand: only the files compare reads)."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from click.testing import CliRunner
from docutils import nodes

from calcinosis import cli
from calcinosis.book import compare
from myst_reading import assert_plain, doctree, read_tables, seen

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
        "gee_length_pct_per_visit": (-2.661, -2.3, "+0.361 points"),
        "gee_length_p": (0.01, 0.04, "p 0.0100 → 0.0400"),
        "n_patients": (5, 6, "+1 (+20 %)"),
    }
    flips = {f.name: (f.claim, f.old, f.new) for f in result.flips}
    # -2.661 rounds to the published -2.66, -2.3 does not; p stays below 0.05
    assert flips == {
        "gee_length_pct_per_visit": ("= -2.66", "agrees", "differs"),
        "n_patients": ("= 5", "agrees", "differs"),
    }
    assert result.n_results == 7 and result.n_claims == 3
    assert result.parameters == []  # compare_results knows nothing of parameters


def test_no_change() -> None:
    result = compare.compare_results(OLD, dict(OLD), [], [])
    assert result.empty
    assert "No result changed" in result.markdown()


def test_sentences_are_not_verdicts() -> None:
    """A claim's verdict is counted once, as a claim; the sentences saying it are sentences."""
    old = {**OLD, "audit_n": "reproduced", "gee_length_p_text": "p = 0.0100"}
    new = {**NEW, "audit_n": "not reproduced", "gee_length_p_text": "p = 0.0400"}
    result = compare.compare_results(old, new, CLAIMS["claims"], CLAIMS["claims"])
    assert [f.name for f in result.flips] == ["gee_length_pct_per_visit", "n_patients"]
    assert [c.name for c in result.sentences] == ["audit_n", "gee_length_p_text"]
    assert "audit_n" not in [c.name for c in result.numbers]
    assert result.summary().endswith(
        "7 of 9 results changed (5 numbers, 2 sentences), 2 of 3 published claims changed verdict"
    )


def test_changes_read_as_their_kind() -> None:
    """p-values as p, percentages in points, and no relative change past ×10."""
    assert compare.Change("sens_length_p_max", 2e-9, 0.0117).delta == "p < 0.0001 → 0.0117"
    assert compare.Change("gee_width_pct_ci_low", -3.2, -1.0).delta == "+2.2 points"
    assert compare.Change("n_rows", 0.001, 5860.0).delta == "+5860"
    assert compare.Change("n_rows", 10, 12).delta == "+2 (+20 %)"


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
        "1 parameters differ, 5 of 7 results changed (5 numbers, 0 sentences), "
        "2 of 3 published claims changed verdict."
    )
    assert ["correlation", "exchangeable", "independence"] in read_tables(md)[0]
    assert (
        md.index("## Parameters that differ")
        < md.index("## Published claims whose verdict changed")
        < md.index("## Numbers that changed")
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
    assert "1 parameters differ, 5 of 7 results changed" in result.output
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
    rows = [row for table in read_tables(md) for row in table]
    assert ["n_patients", "5", "6", "+1 (+20 %)"] in rows
    assert ["gee_length_pct_per_visit", "= -2.66", "-2.661", "-2.3", "agrees → differs"] in rows
    assert ["cluster", "lesion", "patient"] in rows
    assert sorted(tmp_path.rglob("*")) == sorted([*before, md_path])


def test_cli_refuses_a_folder_that_is_not_a_build(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    new = fake_out(tmp_path / "new", NEW)
    result = CliRunner().invoke(cli.main, ["compare", str(tmp_path / "a"), str(new)])
    assert result.exit_code == 1 and "holds no results.json" in result.output


HOSTILE = {
    "site_script": "<script>alert(1)</script>",
    "site_img": "<img src=x onerror=alert(2)>",
    "site_download": "{download}`../../secret.txt`",
    "site_image": "![x](../../img.png)",
    "site_math": "$\\input{/etc/hostname}$",
    "site_pipe": "a | b",
    "notice": ":::{warning}\nThe data are a reconstruction.\n:::\n" + "long line " * 40,
    "escape": "\x1b[2J\x1b[31mred",
}


def test_any_value_is_text_and_long_ones_are_folded() -> None:
    old = {name: f"old {text}" for name, text in HOSTILE.items()}
    new = {name: f"new {text}" for name, text in HOSTILE.items()}
    result = compare.compare_results(old, new, [], [])
    md = result.markdown()
    tree = doctree(md)
    [sentences] = read_tables(md)
    assert len(sentences) == 1 + len(HOSTILE), "one row per value, none broken apart"
    for row in sentences[1:]:
        assert len(row) == 3
    folded = list(tree.findall(nodes.admonition))
    assert [n["classes"] for n in folded] == [["dropdown"], ["dropdown"]]  # notice: old, new
    assert "notice: old" in folded[0].astext()
    data = [*tree.findall(nodes.entry), *(p for n in folded for p in n.findall(nodes.paragraph))]
    for node in data:  # what holds data: table cells and the folds' text
        holder = nodes.document(tree.settings, tree.reporter)
        holder += node.deepcopy()
        assert_plain(holder)
    text = seen(doctree(md))
    for value in HOSTILE.values():
        for line in value.splitlines():
            if line.strip():
                assert markup_visible(line.strip()) in text


def markup_visible(line: str) -> str:
    from calcinosis.markup import visible

    return visible(line)


def test_terminal_lines_fit_and_show_no_control_character() -> None:
    old = {name: f"old {text}" for name, text in HOSTILE.items()}
    new = {**{name: f"new {text}" for name, text in HOSTILE.items()}, "x_p": 0.5}
    text = compare.compare_results({**old, "x_p": 2e-9}, new, [], []).terminal()
    assert max(len(line) for line in text.splitlines()) <= compare.WIDTH
    assert "\x1b" not in text and "\\x1b[31m" in text
    assert "p < 0.0001 → 0.5000" in text
    assert "long line long line" in text  # the long value in full, wrapped under its row
