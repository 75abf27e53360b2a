"""The cache stores data, not code (issue 21.15): sections as JSON that read back exactly as
they were computed, no pickle load anywhere, and every entry checked on read against the key
it was stored under and what it holds; a planted or swapped entry is made again, with a
warning."""

from __future__ import annotations

import ast
import json
import math
import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from calcinosis import paths
from calcinosis.book import cache, stored_sections
from calcinosis.book.results_stage import SUFFIX, run_stage
from calcinosis.params import Parameters
from calcinosis.report import results
from calcinosis.report.sections import Figure, Section, Table


def a_section() -> Section:
    """Every kind of column the results hold (the bundled data's tables have these dtypes)."""
    frame = pd.DataFrame(
        {
            "float": [1.5, math.nan, -0.0],
            "int": np.array([1, 2, 3], dtype="int64"),
            "flag": [True, False, True],
            "nullable_float": pd.array([0.25, None, 2.0], dtype="Float64"),
            "nullable_int": pd.array([4, None, 6], dtype="Int64"),
            "text": pd.array(["a", None, "c"], dtype="str"),
            "mixed": pd.Series([1.0, math.nan, "not estimable"], dtype=object),
        }
    )
    return Section(
        "gee",
        {"n": 18, "p": 0.0017, "sentence": "Lesions shrank.", "unknown": None},
        {
            "tab": Table(frame, {"float": 1}),
            "empty": Table(frame.iloc[0:0], 2),
            "printed": Table(frame, 2, shown=frame.astype(str)),
        },
        {"fig": Figure(b"\x89PNG bytes", b"<svg/>", b"%PDF")},
        scope="",
    )


def test_sections_read_back_exactly_as_computed() -> None:
    section = a_section()
    text = stored_sections.dumps([section], "k" * 64, "gee")
    [back] = stored_sections.loads(text, "k" * 64, "gee")
    assert back.digest() == section.digest()
    assert back.values == section.values and back.figures == section.figures
    for name, table in section.tables.items():
        pd.testing.assert_frame_equal(back.tables[name].frame, table.frame, check_exact=True)
        assert back.tables[name].decimals == table.decimals
        assert (back.tables[name].shown is None) == (table.shown is None)
        if table.shown is not None:
            pd.testing.assert_frame_equal(back.tables[name].shown, table.shown, check_exact=True)


def test_a_document_of_another_key_or_producer_is_refused() -> None:
    text = stored_sections.dumps([a_section()], "a" * 64, "gee")
    with pytest.raises(stored_sections.Mismatch, match="another key|stored under"):
        stored_sections.loads(text, "b" * 64, "gee")
    with pytest.raises(stored_sections.Mismatch, match="producer 'gee'"):
        stored_sections.loads(text, "a" * 64, "safety")


def test_no_pickle_load_anywhere_in_the_package() -> None:
    """Not in the cache, nor anywhere a build reads files (multiprocessing's own transport
    between the build and its workers is not a file anyone can plant)."""
    for path in paths.PACKAGE_DIR.rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and node.attr in ("load", "loads"):
                owner = node.value
                assert not (isinstance(owner, ast.Name) and owner.id == "pickle"), path
            if isinstance(node, ast.Import | ast.ImportFrom):
                names = [a.name for a in node.names] + [getattr(node, "module", None) or ""]
                assert "pickle" not in names, f"{path} imports pickle"


def test_a_swapped_entry_is_refused_with_a_warning(tmp_path: Path) -> None:
    """Two pages' notebooks swapped together with their records: each names another key and
    another page, so neither is used."""
    store = cache.Store(tmp_path)
    for page, key in (("patient-P1", "1" * 64), ("patient-P2", "2" * 64)):
        store.put_text("notebooks", key, ".ipynb", f'{{"title": "{page}"}}', {"page": page})
    one, two = (
        store.path("notebooks", "1" * 64, ".ipynb"),
        store.path("notebooks", "2" * 64, ".ipynb"),
    )
    for suffix in ("", ".json"):
        a, b = Path(f"{one}{suffix}"), Path(f"{two}{suffix}")
        a_bytes = a.read_bytes()
        a.write_bytes(b.read_bytes())
        b.write_bytes(a_bytes)
    assert store.get("notebooks", "1" * 64, ".ipynb", {"page": "patient-P1"}) is None
    assert store.get("notebooks", "2" * 64, ".ipynb", {"page": "patient-P2"}) is None
    assert len(store.warnings) == 2 and "stored under another key" in store.warnings[0]
    # a record rewritten to the right key still names the page it holds
    meta = json.loads(Path(f"{one}.json").read_text())
    Path(f"{one}.json").write_text(json.dumps({**meta, "key": "1" * 64}))
    assert store.get("notebooks", "1" * 64, ".ipynb", {"page": "patient-P1"}) is None
    assert "holds page 'patient-P2', not 'patient-P1'" in store.warnings[-1]


# --- the results stage, on the tiny dataset, with two cheap producers ------------------------


@pytest.fixture
def stage(tiny_dataset: Path, tmp_path: Path):
    chosen = [p for p in results.PRODUCERS if p.name in ("design", "software")]
    store = cache.Store(tmp_path / "cache")

    def run():
        return run_stage(tiny_dataset, Parameters(), store, lambda line: None, producers=chosen)

    return run, store


def test_a_producer_apart_runs_beside_the_others_with_the_same_sections(tiny_dataset, tmp_path):
    """With two processes the producer marked `apart` (the patients') is computed in a
    process of its own beside the others: the same sections as in one process."""
    chosen = [p for p in results.PRODUCERS if p.name in ("design", "patients")]
    assert [p.apart for p in chosen] == [False, True]
    made = {
        workers: run_stage(
            tiny_dataset,
            Parameters(),
            cache.Store(tmp_path / f"cache-{workers}"),
            lambda line: None,
            producers=chosen,
            workers=workers,
        ).digests
        for workers in (1, 2)
    }
    assert made[1] == made[2] and "patients" in made[2]


def entries(store: cache.Store) -> dict[str, Path]:
    """Each producer's sections entry, by producer."""
    found = {}
    for path in (store.root / "sections").rglob(f"*{SUFFIX}"):
        if not path.name.endswith(".json.json"):
            meta = json.loads(Path(f"{path}.json").read_text())
            found[meta["producer"]] = path
    return found


def test_a_planted_entry_whose_checksum_matches_runs_nothing(stage, tmp_path: Path) -> None:
    run, store = stage
    first = run()
    planted = tmp_path / "planted-ran"

    class Payload:
        def __reduce__(self):
            return (Path.touch, (planted,))

    entry = entries(store)["design"]
    entry.write_bytes(pickle.dumps(Payload()))
    meta_path = Path(f"{entry}.json")
    meta = json.loads(meta_path.read_text())
    meta_path.write_text(json.dumps({**meta, "sha256": cache.sha256_file(entry)}))
    again = run()
    assert not planted.exists()
    assert again.producers["design"]["cached"] is False  # made again
    assert again.producers["software"]["cached"] is True
    assert any("design" in w and "made again" in w for w in store.warnings)
    assert again.digests == first.digests


def test_two_producers_entries_swapped_are_made_again(stage) -> None:
    run, store = stage
    first = run()
    found = entries(store)
    for suffix in ("", ".json"):  # the entries and their records, swapped together
        a, b = Path(f"{found['design']}{suffix}"), Path(f"{found['software']}{suffix}")
        a_bytes = a.read_bytes()
        a.write_bytes(b.read_bytes())
        b.write_bytes(a_bytes)
    again = run()
    assert not any(r["cached"] for r in again.producers.values())
    assert len(store.warnings) == 2
    assert again.digests == first.digests


@pytest.mark.integration  # the patients producer's fits and figures: seconds, not a unit's
def test_patients_figures_in_pdf_only_for_a_pdf_build(tiny_dataset: Path, tmp_path: Path):
    """The per-patient figures are drawn in PDF only when the build makes the book's PDF, SVG
    and PNG always; which was drawn is part of the patients producer's key, so neither build
    is handed the other's sections."""
    chosen = [p for p in results.PRODUCERS if p.name == "patients"]
    store = cache.Store(tmp_path / "cache")

    def run(pdf: bool):
        return run_stage(
            tiny_dataset, Parameters(), store, lambda line: None, producers=chosen, pdf=pdf
        )

    html, book = run(False), run(True)
    assert not html.producers["patients"]["cached"] and not book.producers["patients"]["cached"]
    assert html.producers["patients"]["key"] != book.producers["patients"]["key"]
    for stage, with_pdf in ((html, False), (book, True)):
        drawn = [f for s in stage.sections for f in s.figures.values()]
        assert len(drawn) >= 4  # the overview's, Supplementary Fig. 1, one per patient
        assert all(f.png and f.svg for f in drawn)
        per_patient = [
            f
            for s in stage.sections
            for name, f in s.figures.items()
            if s.scope or name == "fig_supplementary_trajectories"
        ]
        assert per_patient and all(bool(f.pdf) == with_pdf for f in per_patient)
    again = run(False)
    assert again.producers["patients"]["cached"]
    assert again.digests == html.digests


def test_the_software_section_is_made_again_after_a_commit(monkeypatch) -> None:
    """The software section states the commit; a commit that changes no package file (a test,
    the README) must still show in a rebuild, so only that producer's key follows it."""
    from calcinosis.book.results_stage import producer_key

    producers = {p.name: p for p in results.PRODUCERS}
    keys = {}
    for commit in ("aaaaaaaaaa", "bbbbbbbbbb"):
        monkeypatch.setenv("CALCINOSIS_COMMIT", commit)
        keys[commit] = {
            name: producer_key(producers[name], {}, Parameters(), None)
            for name in ("software", "safety")
        }
    assert keys["aaaaaaaaaa"]["software"] != keys["bbbbbbbbbb"]["software"]
    assert keys["aaaaaaaaaa"]["safety"] == keys["bbbbbbbbbb"]["safety"]
