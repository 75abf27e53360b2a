"""Whether data are the article's trial: decided by what the article prints of its children,
its schedule and the data package's article, never by patient IDs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

import synthetic
from calcinosis import paths
from calcinosis.data import trial as data
from calcinosis.simulate import article, reconstruct

TABLES = ("patients", "lesions", "measurements", "radiography", "adverse_events")


def copy_of_bundled(out: Path, change=None) -> Path:
    """The bundled data in `out`, each table passed through `change(name, frame)`."""
    shutil.copytree(paths.DATA_DIR, out, ignore=shutil.ignore_patterns("examples", "*.md"))
    for name in TABLES:
        frame = pd.read_csv(out / f"{name}.csv", dtype=str, keep_default_na=False)
        if change is not None:
            frame = change(name, frame)
        (out / f"{name}.csv").write_text(reconstruct.to_csv(frame), encoding="utf-8")
    return out


def renamed(name: str, frame: pd.DataFrame) -> pd.DataFrame:
    """Patients P1…P5 become 1001…1005 and their lesions 1001.a, 1001.b, …"""
    frame = frame.copy()
    for column in ("patient_id", "lesion_id"):
        if column in frame:
            frame[column] = frame[column].str.replace(
                r"^P(\d)(?:-L(\d))?$",
                lambda m: f"100{m[1]}" + (f".{'abcdefghi'[int(m[2]) - 1]}" if m[2] else ""),
                regex=True,
            )
    return frame


def test_the_bundled_data_are_the_articles_children():
    found = article.match(data.load_trial(paths.DATA_DIR))
    assert found.is_article and found.patients == {i: f"P{i}" for i in range(1, 6)}


def test_other_ids_for_the_same_children_are_still_the_articles_trial(tmp_path):
    trial = data.load_trial(copy_of_bundled(tmp_path / "d", renamed))
    found = article.match(trial)
    assert found.is_article and found.patients == {i: f"100{i}" for i in range(1, 6)}


def test_a_sixth_patient_is_not_the_articles_trial(tmp_path):
    def extra(name: str, frame: pd.DataFrame) -> pd.DataFrame:
        """Patient 3 again, as P6 with lesions P6-L1…"""
        if name == "adverse_events":
            return frame
        own = frame["patient_id"] == "P3" if "patient_id" in frame else None
        if own is None:
            own = frame["lesion_id"].str.startswith("P3-")
        copy = frame[own].replace(r"^P3", "P6", regex=True)
        return pd.concat([frame, copy])

    found = article.match(data.load_trial(copy_of_bundled(tmp_path / "d", extra)))
    assert not found.is_article and not found.patients
    assert "6 patients where the article describes 5" in found.reason


def test_a_child_described_otherwise_is_not_matched(tmp_path):
    def older(name: str, frame: pd.DataFrame) -> pd.DataFrame:
        if name == "patients":
            frame = frame.copy()
            frame.loc[frame["patient_id"] == "P4", "age_years"] = "15"
        return frame

    found = article.match(data.load_trial(copy_of_bundled(tmp_path / "d", older)))
    assert not found.is_article and "patient 4" in found.reason


@pytest.mark.integration
def test_another_schedule_or_another_article_is_not_the_articles_trial(tmp_path):
    larger = article.match(data.load_trial(synthetic.larger_trial(tmp_path / "larger")))
    assert not larger.is_article and "weekly visits" in larger.reason
    folder = copy_of_bundled(tmp_path / "doi")
    package = json.loads((folder / "datapackage.json").read_text(encoding="utf-8"))
    package["provenance"]["article_doi"] = "10.1000/another"
    (folder / "datapackage.json").write_text(json.dumps(package), encoding="utf-8")
    other = article.match(data.load_trial(folder))
    assert not other.is_article and "another article" in other.reason


@pytest.mark.integration
def test_conclusion_values_name_patients_by_the_article_not_by_id(tmp_path):
    from calcinosis.simulate import ensemble

    values = ensemble.conclusion_values(data.load_trial(copy_of_bundled(tmp_path / "d", renamed)))
    bundled = ensemble.conclusion_values(data.load_trial(paths.DATA_DIR))
    for name in ("rate_article1_length_pct", "decline_start_article1"):
        assert values[name] == pytest.approx(bundled[name]), name
    assert not any("1001" in name for name in values if name.startswith("rate_"))
