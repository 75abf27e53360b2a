"""The book's table and figure numbers and captions, read from `_toc.yml` and the chapters.

Sphinx numbers tables and figures per chapter (`numfig`), in reading order, over the chapters
of the numbered parts; a patient's page is a section of the patients chapter, once per
patient. The same count over the sources gives each table and figure of the supplement its
number in the book without building the book (`calcinosis supplement` makes it alone).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import yaml

from calcinosis.book.plan import TEMPLATE
from calcinosis.book.staging import PATIENTS_PAGE

# a captioned table (its caption on the directive's line, the glued table inside) or figure
# (the glued figure's name on the directive's line, its caption after the options)
_TABLE = re.compile(r"^:::\{table\} (?P<caption>.+?)\n(?P<body>.*?)^:::$", re.M | re.S)
_GLUED_TABLE = re.compile(r"```\{glue:md\} (\w+)")
_FIGURE = re.compile(r"^```\{glue:figure\} (?P<name>\w+)\n(?P<body>.*?)^```$", re.M | re.S)
_ROLE = re.compile(r"\{([\w:-]+)\}`([^`]*)`")
# the caption's link to the code that made the item: kept apart from the caption's words
_MADE_BY = re.compile(r"\s*Made by \{source\}`([^`]*)`\.?")
_SECTION = re.compile(r"^\(([\w-]+)\)=\s*\n#+\s+(.+?)\s*$", re.M)


@dataclass(frozen=True)
class Item:
    kind: str  # "Table" or "Figure"
    number: str  # "2.2"
    name: str  # the item's name in the results and the supplement (tab_x, fig_y_P1)
    caption: str  # in words: no label, role or module name
    source: str = ""  # the function that made it (calcinosis.report.tables.tab_x), when named

    @property
    def label(self) -> str:
        return f"{self.kind} {self.number}"


def numbered_items(
    chapters: dict[str, Path], toc_path: Path, patients: list[str], values: dict | None = None
) -> list[Item]:
    """Every numbered table and figure of the book, in order. `chapters`: each page's
    Jupytext file by name; `patients`: the name suffixes (slugs) of the patient pages, in the
    book's order; `values` (results.json) fill the captions' glued text."""
    toc = yaml.safe_load(toc_path.read_text(encoding="utf-8")) or {}
    sections = {
        label: title
        for path in chapters.values()
        if path.is_file()
        for label, title in _SECTION.findall(path.read_text(encoding="utf-8"))
    }
    items: list[Item] = []
    chapter = 0
    for part in toc.get("parts", []):
        if not part.get("numbered"):
            continue
        for entry in part.get("chapters", []):
            chapter += 1
            page = Path(str(entry.get("file", ""))).with_suffix("").as_posix()
            pages = [(page, "", "")]
            if page == PATIENTS_PAGE:  # the template's captions say "this patient": which
                pages += [(TEMPLATE, f"_{slug}", f" Patient {slug}.") for slug in patients]
            counts = {"Table": 0, "Figure": 0}
            for source, suffix, whose in pages:
                path = chapters.get(source)
                if path is None or not path.is_file():
                    continue
                text = path.read_text(encoding="utf-8")
                for kind, name, caption in _captioned(text):
                    counts[kind] += 1
                    words, source = _words(caption, values or {}, sections)
                    number = f"{chapter}.{counts[kind]}"
                    items.append(Item(kind, number, name + suffix, words + whose, source))
    return items


def _captioned(text: str) -> list[tuple[str, str, str]]:
    """(kind, glued name, caption) of each captioned table and figure of a chapter, in order."""
    found = []
    for match in _TABLE.finditer(text):
        glued = _GLUED_TABLE.search(match.group("body"))
        if glued:
            found.append((match.start(), "Table", glued.group(1), match.group("caption")))
    for match in _FIGURE.finditer(text):
        lines = [ln for ln in match.group("body").splitlines() if not ln.startswith(":")]
        found.append((match.start(), "Figure", match.group("name"), " ".join(lines)))
    return [(kind, name, caption) for _, kind, name, caption in sorted(found)]


def _words(caption: str, values: dict, sections: dict[str, str]) -> tuple[str, str]:
    """The caption in words, and the function named by its "Made by" link ("" if none): a
    glued value as its value, a reference to a section as that section's title, another
    role as its target."""
    made_by = _MADE_BY.search(caption)
    caption = _MADE_BY.sub("", caption)

    def text(match: re.Match) -> str:
        role, target = match.group(1), match.group(2)
        if role == "glue:text":
            return str(values.get(target.split(":")[0], target))
        if role == "ref" and target in sections:
            return f"see “{sections[target]}”"
        return target

    return " ".join(_ROLE.sub(text, caption).split()), made_by.group(1) if made_by else ""
