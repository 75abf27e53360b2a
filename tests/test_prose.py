"""Static prose makes no claim about the data (issue 18, item 3).

A chapter's typed text may describe the article (and cite it), define a method, or explain.
Anything about *the data the book reads* — a count, a schedule, a site, a direction, a
quantifier over lesions or patients, an ID — must be a computed sentence glued into the page,
because the same chapters run on data they were not written for. This test reads the typed
prose of every chapter (code cells, glue, citations, cross-references, math, labels and
directive options removed; captions, alt texts and headings kept) and flags each sentence
holding a digit, a data word or an ID. A flagged sentence passes only if it is about the article
(it cites `trial2023`, or its subject is "The article"), defines a method (it holds math), or is
in `ALLOWED` with the reason it makes no claim about these data.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest

CHAPTERS = Path(__file__).resolve().parents[1] / "chapters"
ARTICLE_CITATION = re.compile(r"\{cite:[pt]\}`[^`]*\btrial2023\b[^`]*`")

# Words that state something about the data when typed: schedules, quantifiers, number
# words, body sites and directions of change.
SCHEDULE = r"weekly|daily|monthly|weeks?|once|twice|thrice"
QUANTIFIERS = r"all|each|every|no|none|most|many|several|few|both|only|never|always"
NUMBER_WORDS = r"one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|dozens?"
SITES = (
    r"axill(?:a|ary)|elbows?|forearms?|hands?|feet|foot|heels?|soles?|thighs?|pelvi(?:s|c)"
    r"|knees?|shoulders?|buttocks?"
)
DIRECTIONS = (
    r"f[ae]ll(?:s|ing)?|declin(?:e|es|ed|ing)|gr[eo]w(?:s|n|ing)?|grew|r[io]se(?:s|n)?|rising"
    r"|shr[ai]nk(?:s|ing)?|shrunk|increas(?:e|es|ed|ing)|decreas(?:e|es|ed|ing)|vanish(?:ed|es)?"
    r"|disappear(?:s|ed)?|(?:dis)?agree(?:s|d)?|differ(?:s|ed)?"
)
DATA_WORDS = re.compile(
    rf"\b(?:{SCHEDULE}|{QUANTIFIERS}|{NUMBER_WORDS}|{SITES}|{DIRECTIONS})\b", re.IGNORECASE
)
DIGITS = re.compile(r"\d+")

# Phrases that use a data word without a claim about the data (pattern → why); they are
# removed before a sentence is read for data words.
ALLOWED_PHRASES: dict[str, str] = {
    r"\b(?:one|an?) (?:\w+ ){0,2}per \w+": "the structure of a figure, table or model: one "
    "row, line or dot per unit, whatever the units are",
    r"\b(?:each|every) (?:of (?:these|them|the \w+)|lesion|patient|visit|child|analysis|choice"
    r"|outcome|field|table|figure|page|chapter|cluster|assumption|cell|number|value|member"
    r"|measurement|adverse event|standard deviation|published|checkable|reasonable|caption"
    r"|conclusion|summary|trial|build|dataset)(?:'s|s)?\b": "distributive: says what is shown or "
    "done for every unit the data hold, not how many there are or what they did",
    r"\bone (?:\w+ )?(?:by one|at a time)\b": "how a table lists or a grid varies things",
    r"\b95 (?:%|percent)": "the confidence level, a method choice",
    r"\bSHA-256\b": "the name of a hash function",
    r"\bSupplementary Fig\. \d\b": "the article's figure numbers",
    r"\bCR[23]\b": "names of sandwich estimators",
    r"\b(?:in all|over all lesions|of all lesions|all lesions together)\b": "the pooled "
    "analysis over whatever lesions the data hold",
    r"\bno change\b": "the reference value of a test",
}
# Sentence fragment → why the sentence holding it makes no claim about the data read.
ALLOWED: dict[str, str] = {}


@dataclass(frozen=True)
class Flag:
    chapter: str
    line: int
    sentence: str
    words: tuple[str, ...]

    def __str__(self) -> str:
        return f"{self.chapter}:{self.line}: {self.sentence!r} ({', '.join(self.words)})"


def prose_lines(text: str) -> list[tuple[int, str]]:
    """(line number, typed prose) of a Jupytext MyST chapter: front matter, code cells,
    math, raw blocks and directive options dropped; captions, alt texts and headings kept."""
    out: list[tuple[int, str]] = []
    lines = text.splitlines()
    skip_until: str | None = None
    if lines and lines[0] == "---":
        skip_until = "---"
        lines[0] = ""
    for number, line in enumerate(lines, 1):
        stripped = line.strip()
        if skip_until is not None:
            if stripped == skip_until:
                skip_until = None
            continue
        fence = re.match(r"^(`{3,}|:{3,})\s*(\{[^}]*\})?\s*(.*)$", stripped)
        if fence:
            marks, directive, argument = fence.groups()
            if directive in {"{code-cell}", "{math}", "{eval-rst}", "{bibliography}"} or (
                marks.startswith("`") and directive is None and argument
            ):
                skip_until = marks  # a block without prose: skip to its closing fence
            elif directive in {"{table}", "{rubric}", "{admonition}"}:
                out.append((number, argument))  # the caption or title is prose
            continue
        option = re.match(r"^:(\w[\w-]*):\s*(.*)$", stripped)
        if option:
            if option.group(1) == "alt":
                out.append((number, option.group(2)))
            continue
        if re.match(r"^\([\w-]+\)=$", stripped):
            continue  # a label
        out.append((number, stripped.lstrip("#").strip()))
    return out


def _without_markup(sentence: str) -> str:
    """The words a reader sees typed: roles (glue, citations, references), inline math and
    code removed."""
    sentence = re.sub(r"\{[\w:-]+\}`[^`]*`", " ", sentence)
    sentence = re.sub(r"`[^`]*`", " ", sentence)
    sentence = re.sub(r"\$[^$]*\$", " ", sentence)
    return sentence


def sentences(text: str) -> list[tuple[int, str]]:
    """(first line, sentence) over the chapter's prose, paragraphs joined first."""
    out: list[tuple[int, str]] = []
    paragraph: list[tuple[int, str]] = []
    for number, line in [*prose_lines(text), (0, "")]:
        if line:
            paragraph.append((number, line))
            continue
        if paragraph:
            joined = " ".join(part for _, part in paragraph)
            masked = re.sub(r"`[^`]*`", lambda m: m.group(0).replace(".", "\0"), joined)
            for piece in re.split(r"(?<=[.!?:;])\s+(?=[A-Z{*(])", masked):
                out.append((paragraph[0][0], piece.replace("\0", ".")))
            paragraph = []
    return out


def about_the_article(sentence: str) -> bool:
    """A sentence that cites the article or whose subject is the article describes the
    article, not the data read."""
    return bool(ARTICLE_CITATION.search(sentence)) or bool(
        re.match(r"^(?:The|Its) article\b", sentence)
    )


def flags(name: str, text: str, allowed: dict[str, str] | None = None) -> list[Flag]:
    """Sentences of one chapter that type a claim about the data."""
    allowed = ALLOWED if allowed is None else allowed
    out = []
    for line, sentence in sentences(text):
        if about_the_article(sentence) or "$" in sentence:
            continue
        typed = _without_markup(sentence)
        for phrase in ALLOWED_PHRASES:
            typed = re.sub(phrase, " ", typed, flags=re.IGNORECASE)
        words = [*DIGITS.findall(typed), *DATA_WORDS.findall(typed)]
        if not words or any(fragment in sentence for fragment in allowed):
            continue
        out.append(Flag(name, line, " ".join(sentence.split()), tuple(words)))
    return out


def test_every_chapter_types_no_claim_about_the_data():
    found = [
        flag
        for path in sorted(CHAPTERS.glob("*.md"))
        for flag in flags(path.name, path.read_text(encoding="utf-8"))
    ]
    assert not found, "typed claims about the data (compute them, or allow them):\n" + "\n".join(
        map(str, found)
    )


def test_the_allow_list_names_only_sentences_that_exist():
    text = " ".join(
        " ".join(sentence.split())
        for path in CHAPTERS.glob("*.md")
        for _, sentence in sentences(path.read_text(encoding="utf-8"))
    )
    assert [fragment for fragment in ALLOWED if fragment not in text] == []


BAD = """\
---
kernelspec: {name: python3}
---

# Results

```{code-cell} ipython3
n = 5  # code is not prose
```

Each lesion was X-rayed twice. The dataset holds 18 lesions of patient P2.
Most lesions on the forearm fell. The size is {glue:text}`n_lesions:d` lesions.

:::{table} Lesions of patient P1.
:name: tab-x
:::

```{glue:figure} fig
:alt: Lines that decline steadily.

Caption.
```
"""


def test_the_check_flags_typed_claims_about_the_data():
    found = {flag.sentence: flag.words for flag in flags("bad.md", BAD, allowed={})}
    assert found == {
        "Each lesion was X-rayed twice.": ("Each", "twice"),
        "The dataset holds 18 lesions of patient P2.": ("18", "2"),
        "Most lesions on the forearm fell.": ("Most", "forearm", "fell"),
        "Lesions of patient P1.": ("1",),
        "Lines that decline steadily.": ("decline",),
    }


@pytest.mark.parametrize(
    "sentence",
    [
        "The size is {glue:text}`n_lesions:d` lesions.",  # computed
        "The trial treated five children {cite:p}`trial2023`.",  # the article, cited
        "The article reports that one lesion could be measured twice.",  # the article
        "The change per visit is $100\\,(e^{\\beta_1} - 1)$ percent.",  # a definition
        "See {numref}`tab-dose-rule` and {ref}`methods-2`.",  # references only
        "Every word is fine here.",  # allowed below
    ],
)
def test_the_check_lets_through_what_makes_no_claim(sentence):
    allowed = {"Every word is fine": "a test"}
    assert flags("good.md", f"Prose.\n\n{sentence}\n", allowed=allowed) == []


def test_an_allowed_fragment_lets_its_sentence_through_and_no_other():
    text = "Each lesion was X-rayed twice. Each lesion grew.\n"
    found = flags("x.md", text, allowed={"X-rayed twice": "a test"})
    assert [flag.sentence for flag in found] == ["Each lesion grew."]
