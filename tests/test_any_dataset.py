"""The real book built on datasets it was not written for: what each data-dependent statement
says must follow the data (tests/synthetic.py describes each dataset)."""

from __future__ import annotations

import html
import json
import re
from pathlib import Path

import pandas as pd
import pytest

import synthetic
from calcinosis.book import build

pytestmark = pytest.mark.system


def _build(root: Path, data_dir: Path) -> tuple[Path, list[str]]:
    said: list[str] = []
    build.build(data_dir, root / "out", {}, None, False, cache_dir=root / "cache", echo=said.append)
    return root / "out", said


def _text(out: Path, page: str) -> str:
    """A page's main text, tags removed and spaces collapsed."""
    raw = (out / "html" / f"{page}.html").read_text(encoding="utf-8")
    main = raw[raw.index("<main") :]
    return html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", main)))


def _chapter_pages(out: Path) -> list[str]:
    static = {"api", "references", "genindex", "search", "py-modindex"}
    return [p.stem for p in (out / "html").glob("*.html") if p.stem not in static]


@pytest.fixture(scope="module")
def larger(tmp_path_factory) -> tuple[Path, Path, list[str]]:
    root = tmp_path_factory.mktemp("larger")
    data_dir = synthetic.larger_trial(root / "data")
    return (data_dir, *_build(root, data_dir))


# the tests of the noisy book: an xdist group of their own, so that its build and the larger
# trial's run on the two workers at once
NOISY = pytest.mark.xdist_group("tests/test_any_dataset.py-noisy")


@pytest.fixture(scope="module")
def noisy(tmp_path_factory) -> tuple[Path, Path, list[str]]:
    root = tmp_path_factory.mktemp("noisy")
    data_dir = synthetic.noisy_reconstruction(root / "data")
    return (data_dir, *_build(root, data_dir))


def test_undeclared_data_are_not_called_a_reconstruction(larger) -> None:
    _, out, _ = larger
    for page in _chapter_pages(out):
        text = _text(out, page)
        assert "Reconstructed data" not in text and "reconstruction of the trial" not in text, page
    assert "reconstructed dataset" not in (out / "html" / "index.html").read_text("utf-8")
    assert "declares no provenance" in _text(out, "reproducibility")


def test_every_event_is_listed_and_counted(larger) -> None:
    _, out, _ = larger
    safety = _text(out, "safety")
    for _, _, event, _, _ in synthetic.EVENTS:
        assert event in safety
    counted = "3 adverse events were recorded in 3 of the 8 children (2 mild, 1 moderate)"
    assert counted in safety and counted in _text(out, "index")
    assert "1 judged related to treatment (1 event not assessed" in safety
    assert "No adverse event" not in safety + _text(out, "index")
    assert "upper confidence bound" not in safety  # that sentence is for zero events


def test_follow_up_visits_are_not_injections(larger) -> None:
    data_dir, out, _ = larger
    values = json.loads((out / "results.json").read_text(encoding="utf-8"))
    doses = pd.read_csv(data_dir / "measurements.csv")["dose_mg"]
    assert values["n_injections"] == int((doses > 0).sum()) == 26 * 16
    assert values["total_dose_mg"] == doses.sum()
    assert values["n_visits"] == max(synthetic.FOLLOW_UP_VISITS)
    assert values["n_lesions"] == 26 and values["n_patients"] == 8


def test_discussion_counts_the_groups_of_these_data(larger) -> None:
    data_dir, out, _ = larger
    months = pd.read_csv(data_dir / "patients.csv")["disease_duration_months"]
    short = int((months < 24).sum())
    text = _text(out, "discussion")
    assert f"{short} children had had JDM for less than 2 years and {8 - short}" in text
    assert f"{short} vs {8 - short} patients" in text


@NOISY
def test_edited_reconstruction_is_labelled_as_such(noisy) -> None:
    _, out, said = noisy
    assert any("no longer match the hashes" in line for line in said), said
    for page in _chapter_pages(out):
        text = _text(out, page)
        assert "Data derived from a reconstruction" in text, page
        assert "measurements.csv and adverse_events.csv no longer match" in text, page
        assert "Reconstructed data " not in text, page
    assert "a modified reconstruction" in (out / "html" / "index.html").read_text("utf-8")
    assert "by construction" not in _text(out, "reproducibility")


@NOISY
def test_a_severe_event_is_reported(noisy) -> None:
    _, out, _ = noisy
    safety = _text(out, "safety")
    assert (
        "1 adverse event was recorded in 1 of the 5 children (1 severe), none judged related"
        in (safety)
    )
    assert "syncope after the injection" in safety


def test_the_ensemble_chapter_says_these_are_not_the_articles_trial(larger) -> None:
    _, out, _ = larger
    text = _text(out, "ensemble")
    assert "These data are not the article" in text and "does not compare" in text
    assert "Holds in these data" not in text and "In these data" not in text
