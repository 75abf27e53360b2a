"""Where things live: the one place that knows the repository layout."""

from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
ROOT = PACKAGE_DIR.parents[1]
DATA_DIR = ROOT / "data"
CHAPTERS_DIR = ROOT / "chapters"
BOOK_DIR = ROOT / "book"
BUILD_DIR = ROOT / "_build"
FACTS_FILE = PACKAGE_DIR / "published_facts.yml"
SHARED_FACTS_FILE = ROOT.parent / "shared" / "paper" / "published-facts.yml"
