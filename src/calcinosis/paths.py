"""Where things live: the one place that knows the repository layout."""

from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
ROOT = PACKAGE_DIR.parents[1]
DATA_DIR = ROOT / "data"
CHAPTERS_DIR = ROOT / "chapters"
BOOK_DIR = ROOT / "book"
BUILD_DIR = ROOT / "_build"
# The shipped ensemble of reconstructions (derived from the code, not the authors' data/).
ENSEMBLE_DIR = BOOK_DIR / "ensemble"
FACTS_FILE = PACKAGE_DIR / "published_facts.yml"
SHARED_FACTS_FILE = ROOT.parent / "shared" / "paper" / "published-facts.yml"
