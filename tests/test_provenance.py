"""The reconstruction notice follows the data package: intact, edited, or not declared."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from calcinosis import paths
from calcinosis.cli import main
from calcinosis.data import provenance


@pytest.fixture
def bundled(tmp_path: Path) -> Path:
    out = tmp_path / "data"
    shutil.copytree(paths.DATA_DIR, out, ignore=shutil.ignore_patterns("examples", "README.md"))
    return out


def test_the_bundled_data_are_the_intact_reconstruction(bundled: Path) -> None:
    found = provenance.of(bundled)
    assert found.kind == provenance.RECONSTRUCTION and found.changed == ()
    assert "Reconstructed data" in found.notice() and "reconstructed dataset" in found.footer()


def test_an_edited_table_makes_a_modified_reconstruction(bundled: Path) -> None:
    path = bundled / "measurements.csv"
    path.write_text(path.read_text(encoding="utf-8").replace(",9.5,", ",10.0,", 1), "utf-8")
    found = provenance.of(bundled)
    assert found.kind == provenance.MODIFIED and found.changed == ("measurements.csv",)
    assert "measurements\\.csv no longer matches" in found.notice()
    assert "Reconstructed data" not in found.notice()
    assert found.built_in() == {"built_in_courses_note": "", "built_in_dose_note": ""}


def test_what_the_reconstruction_built_in_holds_while_its_tables_are_unchanged(
    bundled: Path,
) -> None:
    intact = provenance.of(bundled).built_in()
    assert all(intact.values())
    with (bundled / "adverse_events.csv").open("a", encoding="utf-8") as handle:
        handle.write("P1,3,injection-site pain,mild,yes\n")
    found = provenance.of(bundled)
    assert found.kind == provenance.MODIFIED and found.built_in() == intact


@pytest.mark.parametrize("change", ["no package", "not declared", "hashes missing"])
def test_data_that_do_not_declare_a_reconstruction_carry_no_notice(
    bundled: Path, change: str
) -> None:
    package_path = bundled / "datapackage.json"
    package = json.loads(package_path.read_text(encoding="utf-8"))
    if change == "no package":
        package_path.unlink()
    elif change == "not declared":
        package["provenance"] = {"source": "the trial's case report forms"}
        package_path.write_text(json.dumps(package), encoding="utf-8")
    else:  # declared, but nothing vouches for the files
        for resource in package["resources"]:
            resource.pop("hash")
        package_path.write_text(json.dumps(package), encoding="utf-8")
    found = provenance.of(bundled)
    if change == "hashes missing":  # never said to have changed against hashes it lacks
        assert found.kind == provenance.UNVERIFIED and found.changed == ()
        assert "no longer match" not in found.notice() and "records no hashes" in found.notice()
        assert found.built_in() == {"built_in_courses_note": "", "built_in_dose_note": ""}
    else:
        assert found.kind == provenance.UNDECLARED
        assert found.notice() == "" and found.footer() == ""


def test_the_synthetic_example_is_called_synthetic_and_its_patients_invented() -> None:
    """data/examples/updated records no hashes and declares `synthetic_example`: it is not
    said to have changed against hashes, and nothing calls it a reconstruction."""
    found = provenance.of(paths.DATA_DIR / "examples" / "updated")
    assert found.kind == provenance.SYNTHETIC
    assert "synthetic example" in found.notice() and "invented" in found.notice()
    assert "no longer match" not in found.notice() and "synthetic example" in found.footer()
    assert "invented patients" in found.sentence()
    assert found.built_in() == {"built_in_courses_note": "", "built_in_dose_note": ""}


def test_one_sentence_says_what_the_data_are(bundled: Path) -> None:
    assert "a reconstruction" in provenance.sentence(bundled)
    package_path = bundled / "datapackage.json"
    package = json.loads(package_path.read_text(encoding="utf-8"))
    package["provenance"] = {"real_data": True}
    package_path.write_text(json.dumps(package), encoding="utf-8")
    assert provenance.of(bundled).kind == provenance.REAL
    assert provenance.sentence(bundled) == (
        "These are the trial's own data, as their data package declares."
    )
    assert provenance.of(bundled).notice() == ""
    package_path.unlink()
    assert "declare no provenance" in provenance.sentence(bundled)
    assert "without a datapackage.json" in provenance.package_sentence(bundled)


def test_the_package_sentence_leaves_out_what_the_package_lacks(bundled: Path) -> None:
    package_path = bundled / "datapackage.json"
    package = json.loads(package_path.read_text(encoding="utf-8"))
    assert "licensed CC-BY-4.0." in provenance.package_sentence(bundled)  # plain text
    for key in ("title", "licenses", "provenance"):
        package.pop(key, None)
    package_path.write_text(json.dumps(package), encoding="utf-8")
    text = provenance.package_sentence(bundled)
    assert (
        text
        == "The dataset is a Frictionless tabular data package without a title, with no licence."
    )


@pytest.mark.integration
def test_reconstruct_refuses_a_folder_holding_a_dataset(bundled: Path) -> None:
    before = {p.name: p.read_bytes() for p in bundled.iterdir()}
    refused = CliRunner().invoke(main, ["reconstruct", "--out", str(bundled)])
    assert refused.exit_code != 0 and "--replace" in refused.output
    assert "Traceback" not in refused.output
    assert {p.name: p.read_bytes() for p in bundled.iterdir()} == before
    replaced = CliRunner().invoke(main, ["reconstruct", "--out", str(bundled), "--replace"])
    assert replaced.exit_code == 0, replaced.output
    assert {p.name: p.read_bytes() for p in bundled.iterdir()} == before  # deterministic
