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
    r"|disappear(?:s|ed)?|(?:dis)?agree(?:s|d)?|differ(?:s|ed)?|follow(?:s|ed)?|match(?:es|ed)?"
)
# A reference to one particular lesion or patient is as specific as its ID.
DEICTIC = r"that lesion|those lesions|that patient(?!'s)|that child"
DATA_WORDS = re.compile(
    rf"\b(?:{SCHEDULE}|{QUANTIFIERS}|{NUMBER_WORDS}|{SITES}|{DIRECTIONS}|{DEICTIC})\b",
    re.IGNORECASE,
)
DIGITS = re.compile(r"\d+")

# Phrases that use a data word without a claim about the data (pattern → why); they are
# removed before a sentence is read for data words.
ALLOWED_PHRASES: dict[str, str] = {
    r"\b(?:one|an?) (?:\w+ ){0,2}per \w+": "the structure of a figure, table or model: one "
    "row, line or dot per unit, whatever the units are",
    r"\b(?:each|every) (?:of (?:these|them|the \w+)|(?:kept|measured) \w+|lesion|patient|"
    r"visit|child|analysis|choice|outcome|field|table|figure|page|chapter|cluster|assumption|cell|number|"
    r"value|member|measurement|adverse event|standard deviation|published|checkable|"
    r"reasonable|caption|conclusion|summary|trial|build|dataset|point|line|grid|sentence)"
    r"(?:'s|s)?\b": "distributive: says what is shown or done for every unit the data hold, "
    "not how many there are or what they did",
    r"\bone (?:\w+ )?(?:by one|at a time)\b|\bleav(?:e|ing) (?:out )?one \w+(?: out)?\b": (
        "how a table lists or a grid varies things"
    ),
    r"\b(?:the|a|this|that) (?:[\w-]+ )?one\b": "'one' as a pronoun",
    r"\b(?:two|three|four) (?:panels|columns|line charts|forest plots|scatter plots|decimals)\b"
    r"|^(?:two|four) panels\b": "the layout of a figure or a printed precision",
    r"\bone (?:function|template notebook|header line|model|step|visit to the next|"
    r"choice|cluster|chapter)\b": "one of the book's own things, not of the data",
    r"\b(?:how many|how often)\b": "a question, not an answer",
    r"\b95 (?:%|percent)|\b1\.96\b|\b100·|\b5–95 %": "confidence levels and the constants of "
    "a formula, method choices",
    r"\bSHA-256\b|\bUTF-8\b": "names of a hash function and an encoding",
    r"\bSupplementary Fig\. \d\b|\bTable 1\b": "the article's figure and table numbers",
    r"\bCR[23]\b": "names of sandwich estimators",
    r"\b(?:in all|over all lesions|of all lesions|all lesions together)\b": "the pooled "
    "analysis over whatever lesions the data hold",
    r"\bno change\b": "the reference value of a test",
}
ENS = (
    "how the ensemble of reconstructions is made, kept and read (its method), not what the "
    "data read here hold"
)
PLAN = (
    "the planning simulation's design, estimand and methods, or the article's uncontrolled "
    "result; every value of the run is glued"
)
# Sentence fragment → why the sentence holding it makes no claim about the data read.

ALLOWED: dict[str, str] = {
    # The ensemble and planning chapters describe methods (how members are made and
    # read; a simulation study's design) in their typed prose: reasons below
    "Many datasets print the same summaries (": ENS,
    "this chapter asks which of the book's conclusions every such": ENS,
    "A member is kept only if its dataset passes the same validat": ENS,
    "Every kept member is then analysed with the book's own funct": ENS,
    "One member took a median of": ENS,
    "Three kinds of conclusion": ENS,
    "- **Imposed by the audit**: it rests only on numbers the art": ENS,
    "That it holds in every kept member is the selection's doing,": ENS,
    "{glue:text}`ens_imposed_sentence` - **Built into the generat": ENS,
    "It gets no verdict either.": ENS,
    "A conclusion of decline holds only where the estimate falls": ENS,
    "grey bands mark the agreement threshold at both ends.": ENS,
    "Each conclusion across the ensemble: its kind, the number be": ENS,
    "{numref}`tab-pinned-sub-ensembles` recomputes them among mem": ENS,
    "Across these {glue:text}`ens_sub_n_sub_ensembles:d` sub-ensembles (the smallest ": ENS,
    "The ensemble spans only the assumptions in": ENS,
    "A member is dropped when its clinical courses cannot be cali": ENS,
    "This chapter plans one by simulation, and reports the simula": PLAN,
    "Its lesions shrank, but lesions of calcinosis may regress wi": PLAN,
    "None of these can be told apart from the injection's effect": PLAN,
    "How many children must a randomised trial enrol to detect th": PLAN,
    "The spread of true slopes between children and between a chi": PLAN,
    "Trials without effect (both arms at the control arm's change": PLAN,
    "in the within-patient design each child's lesions are split": PLAN,
    "infliximab injected into a lesion may act beyond it, which w": PLAN,
    "trials of {glue:text}`plan_children_grid` children, followed for {glue:text}`pla": PLAN,
    "A lesion's width slope shares the children's and the lesions": PLAN,
    "a lesion that resolves does so in both.": PLAN,
    "One number per child: its level does not rest on a working c": PLAN,
    "the trial succeeds only when both are significant at α (an i": PLAN,
    "- **responders**: a child responds when the summed length of": PLAN,
    "The arms are compared by Fisher's exact test (parallel) or, w": PLAN,
    "the summary slope, the co-primary and the responder analyses": PLAN,
    "Children needed per design, control-arm scenario and analysi": PLAN,
    "Beside the main target: the assurance at that size and the 1": PLAN,
    "The warnings: every analysis's Type I error at α = {glue:tex": PLAN,
    "- the same GEE with **lesions as clusters** and the robust c": PLAN,
    "a fit that fails is counted and shown, never counted as a tr": PLAN,
    "The Type I error is the same share in trials without effect,": PLAN,
    "The number of children needed is read from a probit curve of": PLAN,
    "Every cell of the main scenario (": PLAN,
    "An answer is read only from an analysis that holds its level": PLAN,
    "{glue:text}`plan_refused` Over the same sizes the summary sl": PLAN,
    "Without effect the analyses reject as follows in this design": PLAN,
    "- the **random-slope mixed model**: log(length + 1 mm) on ar": PLAN,
    "a fit with a variance component at zero (lme4's singular fit": PLAN,
    "The 1 mm lets a lesion that has resolved (0 mm) stay in the": PLAN,
    "An analysis that rejects too often is never offered as an an": PLAN,
    "The model's values come from one reconstruction of the pilot": PLAN,
    "The book's ensemble of reconstructions (": PLAN,
    "a model was fitted to each of the first": PLAN,
    "for the others it is singular (a variance estimated at zero)": PLAN,
    "The 10th percentile is the power that holds for nine in ten": PLAN,
    "Each member's power is read from its own smooth curve over t": PLAN,
    "A network drawing on": PLAN,
    "The build compares the code hash and the fingerprint of these data": PLAN,
    # What the book is and does
    "Every number, sentence, table and figure of the book is computed": "how the book works",
    "The download button at the top of each page": "how the site works",
    "The whole book can be rebuilt with other parameters": "how the book is re-run",
    "Patients appear only by study code.": "a rule the loader enforces on any data",
    "the loader refuses files with columns": "a rule the loader enforces on any data",
    "Radiographs are the measurements of this book that do not depend on calipers": "what a "
    "radiograph measures, whatever the data",
    "Clinical and radiographic size are different quantities": "what each measure measures",
    # Pointers to the chapters that check the article's summaries
    "Whether the article's summaries pin down": "points to the ensemble chapter",
    "Whether these data's answer is the article's or one reconstruction's": "points to the "
    "ensemble chapter",
    "asks whether other datasets that print the article's summaries agree": "points to the "
    "ensemble chapter",
    "checkable numbers of the article agree with their recomputation": "the counts are glued; "
    "'agree' names what they count",
    # Method definitions and explanations
    "A lesion counts as **resolved** when": "defines resolution",
    "The **onset of a decline** in length is read": "defines the decline onset",
    "The onset is the first measured visit at which the fit lies": "defines the decline onset",
    "A lesion without such a decline, or whose fall spans visits": "defines the decline onset",
    "Where the book corrects for few clusters": "names the small-sample methods",
    "With a few lesions per patient a rate is fragile": "why the per-patient intervals are "
    "corrected; what a single lesion gives is a property of the method",
    "Robust standard errors are too small when the clusters are": "a property of the method",
    "A straight line on the log scale is a strong assumption when": "a property of the model, "
    "said conditionally",
    "The vertical axis is logarithmic above 1 mm and linear below": "the figure's axis",
    "The model is the one set out in": "restates the model",
    "Exp(B) of the visit term is the factor by which": "defines Exp(B)",
    "the estimated correlation between two measurements of the same cluster": "defines the "
    "working correlation; the values are glued",
    "it compares working correlations of one model fitted": "defines QIC",
    "This chapter refits the model under each reasonable alternative": "what the chapter does",
    "QIC {cite:p}`pan2001` compares": "defines QIC (the list around it is glued)",
    "asks whether the rate differs between the groups": "what the interaction model asks",
    "Disease duration goes together with age": "why an association with duration is "
    "confounded, in any such trial",
    "A decline seen during treatment in such a design would be compatible": "says what a "
    "decline would mean in an uncontrolled design, not that one occurred",
    "Calcinosis can regress on its own.": "the natural history of calcinosis",
    "asks whether a mean printed to two decimals": "defines GRIM",
    "shows the answer for several readings of *n*": "what the GRIM table shows",
    "Adverse events by patient and severity, and how many were judged": "a table's caption",
    "In the dataset {glue:text}`n_dose_match:d` lesions received": "the counts are glued",
    "each line is one lesion": "a figure's description",
    "The statistical modules they call follow.": "the appendix's layout",
    "the percentage is 100·(Exp(B) − 1)": "defines the percentage",
    "the code cells that only prepare a page": "how the site works",
    "overstates the evidence when one child contributes": "a property of the test, said "
    "conditionally",
    "a field the data do not hold is marked so": "a table's caption",
    # The article's trial
    "It was approved by the ethics committee": "the article's trial's registration number",
}


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
    """(first line, sentence) over the chapter's prose, paragraphs joined first; a clause
    after a semicolon counts as a sentence of its own, so a claim about the data cannot hide
    behind a clause about the article."""
    out: list[tuple[int, str]] = []
    paragraph: list[tuple[int, str]] = []
    for number, line in [*prose_lines(text), (0, "")]:
        if line:
            paragraph.append((number, line))
            continue
        if paragraph:
            joined = " ".join(part for _, part in paragraph)
            masked = re.sub(r"`[^`]*`", lambda m: m.group(0).replace(".", "\0"), joined)
            for piece in re.split(r"(?<=[.!?:])\s+(?=[A-Z{*(])|(?<=;)\s+", masked):
                out.append((paragraph[0][0], piece.replace("\0", ".")))
            paragraph = []
    return out


def about_the_article(sentence: str) -> bool:
    """A sentence that cites the article or whose subject is the article describes the
    article, not the data read."""
    typed = re.sub(r"^(?:\{glue:text\}`[^`]*`\s*)+", "", sentence)  # computed sentences first
    return bool(ARTICLE_CITATION.search(sentence)) or bool(
        re.match(r"^(?:The|Its) article\b", typed)
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
        "Each lesion was X-rayed twice.": ("twice",),
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


@pytest.mark.parametrize(
    "typed",
    [  # issue 18's false sentences, as they were typed
        "Injected once a week for {glue:text}`protocol_weeks:d` weeks (the protocol).",
        "The lesions were each measured at up to {glue:text}`n_visits:d` weekly visits.",
        "The article describes an axillary lesion {cite:p}`trial2023`. The book keeps that "
        "lesion, as the article's own results do.",
        "The article names forearms and heels; the dataset follows the case descriptions.",
        "## Clinical and radiographic measures disagree",
        "Each lesion was X-rayed twice: before the first injection and after the last.",
        "A within-patient decline during the weeks of injections is compatible with an effect.",
    ],
)
def test_the_check_flags_issue_18s_typed_claims(typed):
    assert flags("old.md", f"{typed}\n", allowed={}) != []


# --------------------------------------------------------------------------------------------
# The computed sentences that replaced typed claims: true on data unlike the reconstruction
# --------------------------------------------------------------------------------------------


def _trial(tmp_path: Path, **changes: list[list[object]]):
    """The tiny dataset of conftest with some tables replaced (header and rows)."""
    from calcinosis.data import trial as data
    from conftest import TINY_DATASET, write_csv

    folder = tmp_path / "data"
    folder.mkdir(parents=True)
    for name, rows in TINY_DATASET.items():
        write_csv(folder / f"{name}.csv", changes.get(name, rows))
    return data.load_trial(folder)


def test_the_schedule_is_the_visit_numbers_the_data_hold(tmp_path: Path):
    from calcinosis.data import design

    trial = _trial(tmp_path)
    assert design.schedule_sentence(trial) == (
        "The lesions were measured at visits 1 to 3, from 2 to 3 measured visits per lesion."
    )


def test_an_irregular_schedule_with_follow_up_is_said_as_it_is(tmp_path: Path):
    from calcinosis.data import design

    rows: list[list[object]] = [["lesion_id", "visit", "length_mm", "width_mm", "dose_mg"]]
    rows += [
        [lesion, visit, 10, 5, 0 if visit > 8 else 10]
        for lesion in ("P1-L1", "P1-L2", "P2-L1")
        for visit in (1, 2, 4, 8, 16, 32)
    ]
    text = design.schedule_sentence(_trial(tmp_path, measurements=rows))
    assert text == (
        "The lesions were measured at visits 1, 2, 4, 8, 16 and 32, 6 measured visits per "
        "lesion. Injections are recorded at visits 1, 2, 4 and 8; visits 16 and 32 carried none."
    )
    assert "week" not in text


def test_sites_and_the_dose_limit_are_said_of_these_data(tmp_path: Path):
    from calcinosis.data import design

    trial = _trial(tmp_path)
    assert design.sites_sentence(trial) == (
        "The data read here name other sites than the case descriptions: elbow, knee and thigh."
    )
    assert design.over_limit_sentence(trial) == (
        "No lesion in the data read here lies above that limit."
    )
    big: list[list[object]] = [["lesion_id", "patient_id", "site", "baseline_area_cm2", "dose_mg"]]
    big += [["P1-L1", "P1", "axilla", 20.25, 40], ["P1-L2", "P1", "left forearm", 1.2, 20]]
    big.append(["P2-L1", "P2", "thigh", 4.0, 40])
    trial = _trial(tmp_path / "big", lesions=big)
    assert design.over_limit_sentence(trial) == (
        "In the data read here, 1 lesion lies above that limit: P1-L1 (axilla, 20.25 cm²). "
        "The book keeps it in every analysis."
    )
    assert design.sites_sentence(trial) == (
        "Of the 3 sites in the data read here (axilla, left forearm and thigh), 2 are named in "
        "the case descriptions."
    )


def test_radiograph_coverage_names_a_missing_final(tmp_path: Path):
    from calcinosis.stats import radiography

    rows = [
        ["lesion_id", "timepoint", "length_mm", "width_mm"],
        ["P1-L1", "baseline", 21, 16],
        ["P1-L1", "final", 0, 0],
        ["P1-L2", "baseline", 13, 10],
        ["P2-L1", "baseline", 26, 19],
        ["P2-L1", "final", 21, 16],
    ]
    assert radiography.coverage_sentence(_trial(tmp_path, radiography=rows)) == (
        "2 of the 3 lesions have a radiograph before treatment and one after it; P1-L2 has no "
        "final radiograph. 1 of the 2 lesions with a final radiograph are no longer visible on "
        "it."
    )


def test_injections_without_doses_count_listed_visits_and_say_so(tmp_path: Path):
    from calcinosis.stats import safety
    from conftest import TINY_DATASET

    rows = [row[:4] for row in TINY_DATASET["measurements"]]
    folder = tmp_path / "nodose"
    trial = _trial(folder, measurements=rows)
    text = safety.exposure_sentence(trial)
    assert "each of the 9 visits listed for a lesion" in text
    assert "(8 of them with a measurement)" in text  # P1-L2 at visit 2 was not measured
    assert int(safety.exposure(trial)["injections"].sum()) == 9


def test_the_clinical_and_radiographic_comparison_compounds_over_the_visits_held():
    from calcinosis.stats import radiography

    values = {
        "first_visit": 1,
        "n_visits": 32,
        "gee_length_pct_per_visit": -2.0,
        "gee_width_pct_per_visit": float("nan"),
        "rad_baseline_length_mean": 10.0,
        "rad_final_length_mean": 6.0,
        "rad_baseline_width_mean": 5.0,
        "rad_final_width_mean": 5.0,
    }
    text = radiography.comparison_sentence(values)
    assert text.startswith(
        "For length, the clinical change per visit, compounded over the 31 steps of the visit "
        f"number from visit 1 to visit 32, comes to {100 * (0.98**31 - 1):+.0f} %".replace("-", "−")
    )
    assert "radiographic mean changed by −40 %" in text
    assert "for width, the clinical change per visit, compounded" in text
    assert "comes to not estimable, and the radiographic mean changed by 0 %" in text  # no sign


def test_lesions_per_child_is_a_range_only_when_it_is_one(tmp_path: Path):
    from calcinosis.data import design

    assert design.lesions_per_child(_trial(tmp_path)) == "Between 1 and 2"
    lesions: list[list[object]] = [
        ["lesion_id", "patient_id", "site", "baseline_area_cm2", "dose_mg"]
    ]
    lesions += [["P1-L1", "P1", "elbow", 2.5, 10], ["P2-L1", "P2", "thigh", 4.0, 20]]
    measurements = [
        ["lesion_id", "visit", "length_mm", "width_mm", "dose_mg"],
        ["P1-L1", 1, 20, 15, 10],
        ["P2-L1", 1, 25, 18, 20],
    ]
    radiography = [
        ["lesion_id", "timepoint", "length_mm", "width_mm"],
        ["P1-L1", "baseline", 20, 15],
    ]
    trial = _trial(
        tmp_path / "even", lesions=lesions, measurements=measurements, radiography=radiography
    )
    assert design.lesions_per_child(trial) == "1"
