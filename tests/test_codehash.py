"""The shipped runs' code hash follows what the code says, not where it lives."""

import importlib.util
import textwrap

from calcinosis.codehash import content_hash

SOURCE = '''
"""A module."""
from calcinosis import models
from calcinosis.data import Trial
import numpy as np


def slope(trial: Trial) -> float:
    from calcinosis.covstruct import TimeAR  # a lazy import

    return float(np.mean(models.fit(trial, TimeAR)))
'''


def _module(tmp_path, name, text):
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    spec = importlib.util.spec_from_file_location(path.stem, path)
    return importlib.util.module_from_spec(spec)  # not executed: the hash reads its file


def test_a_module_moved_and_its_imports_rewritten_keeps_its_hash(tmp_path):
    before = _module(tmp_path, "calcinosis/power.py", SOURCE)
    moved = SOURCE.replace("from calcinosis import models", "from calcinosis.stats import models")
    moved = moved.replace("calcinosis.data import", "calcinosis.data.trial import")
    moved = moved.replace("calcinosis.covstruct", "calcinosis.stats.covstruct")
    moved = moved.replace("  # a lazy import", "")
    after = _module(tmp_path, "calcinosis/simulate/power.py", moved)
    assert content_hash([before]) == content_hash([after])


def test_an_edited_statement_constant_or_docstring_changes_it(tmp_path):
    base = content_hash([_module(tmp_path, "a/m.py", SOURCE)])
    for old, new in [("np.mean", "np.median"), ("A module.", "A module!"), ("float(", "int(")]:
        edited = _module(tmp_path, f"b{len(new)}/m.py", SOURCE.replace(old, new))
        assert content_hash([edited]) != base, (old, new)


def test_an_import_of_another_package_counts(tmp_path):
    base = content_hash([_module(tmp_path, "a/m.py", SOURCE)])
    other = _module(tmp_path, "b/m.py", SOURCE.replace("import numpy as np", "import cupy as np"))
    assert content_hash([other]) != base


def test_data_files_count_byte_for_byte(tmp_path):
    facts = tmp_path / "facts.yml"
    facts.write_text("a: 1\n")
    first = content_hash([], [facts])
    facts.write_text("a: 2\n")
    assert content_hash([], [facts]) != first
