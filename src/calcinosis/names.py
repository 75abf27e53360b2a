"""How an id from the data (a patient's, a site's) becomes part of a name: of a value in
`results.json`, a page, a file. Kept apart from the results' types (`calcinosis.report.sections`) so
that the simulations, which name their values the same way, need nothing above them.
"""

from __future__ import annotations

import hashlib
import re


def slug(identifier: str) -> str:
    """A name part made of letters, digits and '-' only, for ids used in names and files.

    Ids that would collide or come out empty get a short hash of the original id.
    """
    text = re.sub(r"[^A-Za-z0-9]+", "-", str(identifier)).strip("-")
    if text != str(identifier) or not text:
        text = f"{text}-{hashlib.sha256(str(identifier).encode()).hexdigest()[:8]}".lstrip("-")
    return text
