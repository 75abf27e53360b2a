"""Per-patient pages and rates, and the duration analyses of the discussion built on them."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

import trials
from calcinosis import formatting
from calcinosis.data import trial as data
from calcinosis.stats import discussion, patients
from stats_fixtures import data_trial


@pytest.fixture(scope="module")
def trial():
    return data_trial()


def test_patient_page_of_patient_1(trial):
    page = patients.patient_page(trial, "P1")
    assert page.patient["disease_duration_months"] == 18
    assert len(page.lesions) == 9 and page.course["n_lesions"] == 9
    assert {
        "lesion_id",
        "site",
        "first_visit",
        "last_visit",
        "length_first",
        "length_last",
        "length_change_mm",
        "length_change_pct",
        "width_first",
        "width_last",
        "width_change_mm",
        "width_change_pct",
        "resolved",
        "decline_start_visit",
    } <= set(page.lesions.columns)
    assert page.lesions["decline_start_visit"].dtype == "Int64"
    assert list(page.trajectories.columns) == ["lesion_id", "visit", "outcome", "size"]
    assert len(page.trajectories) == 9 * 16 * 2
    # nine lesions measured at the same visits: Satterthwaite df equal G − 1 = 8
    assert page.rate_length.estimable and page.rate_length.reference == "Satterthwaite t(8.00)"
    assert page.rate_length.ci_low < page.rate_length.pct_per_visit < page.rate_length.ci_high


def test_first_to_last_change(trial):
    lesion = patients.patient_page(trial, "P1").lesions.set_index("lesion_id").loc["P1-L1"]
    assert (lesion["length_first"], lesion["length_last"]) == (9.5, 5.0)
    assert lesion["length_change_mm"] == -4.5
    assert lesion["length_change_pct"] == pytest.approx(-4.5 / 9.5 * 100)


def test_patient_2_is_not_estimable_but_resolved(trial):
    """One lesion, measured at visits 1 and 16 only, gone by the last."""
    page = patients.patient_page(trial, "P2")
    lesion = page.lesions.iloc[0]
    assert (lesion["first_visit"], lesion["last_visit"]) == (1, 16)
    assert lesion["resolved"] and lesion["length_change_pct"] == -100
    assert pd.isna(lesion["decline_start_visit"])  # the fall spans unmeasured visits
    assert lesion["decline_note"] == patients.UNSEEN_ONSET
    for rate in (page.rate_length, page.rate_width):
        assert not rate.estimable and np.isnan(rate.pct_per_visit) and "one lesion" in rate.reason
    assert page.course["n_resolved"] == 1 and page.course["median_decline_start"] is None


def test_unknown_patient(trial):
    with pytest.raises(KeyError, match="P9"):
        patients.patient_page(trial, "P9")


@pytest.mark.parametrize(
    "sizes,expected",
    [
        ([5, 5, 5, 4, 3, 3, 2], 4),  # plateau, then a decline
        ([5, 4, 5, 5, 4, 2.5], 5),  # a dip back to the old level is no onset
        ([5, 5, 5], None),  # flat
        ([5, 6, 8], None),  # grows
        ([5], None),  # one measured visit
        ([10, 10, 9, 8, 7, 6.5, 6, 6.5], 3),  # a +0.5 mm re-measurement at the end is noise
        ([10, 10, 9, 8, 9, 7, 6], 3),  # … and +1 mm in the middle too
        ([10, 10, 10, 9.5, 9.5, 9.5], None),  # falls, but by less than noise could
        ([4, 3, 2, 0, 0.5, 0], 2),  # a vanished lesion read at 0.5 mm once
    ],
)
def test_decline_start(sizes, expected):
    visits = pd.Series(range(1, len(sizes) + 1))
    assert patients.decline_start(visits, pd.Series(sizes, dtype=float)) == expected


def _noisy(true: np.ndarray, rng: np.random.Generator) -> pd.Series:
    """±1 mm rater noise on the 0.5 mm caliper grid."""
    return pd.Series(true + rng.choice([-1.0, -0.5, 0.0, 0.5, 1.0], size=len(true)))


def test_a_decline_by_visit_9_under_later_noise_starts_by_visit_9():
    """Issue 18's lesion: 19.5 mm falling to 17.5 mm by visit 9, then ±1 mm of noise to
    visit 24 (the old rule reported the last noise spike, visit 23)."""
    visits = np.arange(1, 25)
    true = np.interp(visits, [1, 5, 9, 24], [19.5, 19.5, 17.5, 17.5])
    for seed in range(50):
        sizes = pd.Series(true)
        sizes[9:] = _noisy(true[9:], np.random.default_rng(seed)).to_numpy()
        onset = patients.decline_start(pd.Series(visits), sizes)
        assert onset is not None and 5 < onset <= 9, (seed, onset)


def test_a_known_onset_is_found_under_noise():
    """Flat at 15 mm to visit 8, then 0.5 mm less per visit to visit 20, all read with ±1 mm
    of noise: the onset found lies near the true one."""
    visits = np.arange(1, 21)
    true = np.where(visits <= 8, 15.0, 15.0 - 0.5 * (visits - 8))
    found = [
        patients.decline_start(pd.Series(visits), _noisy(true, np.random.default_rng(seed)))
        for seed in range(100)
    ]
    assert None not in found
    assert np.median(found) == pytest.approx(8, abs=3)
    assert max(found) <= 14  # by then the lesion is 3 mm smaller


@pytest.mark.parametrize("trend,most", [(0.0, 0.05), (0.3, 0.0)])  # flat; growing 0.3 mm a visit
def test_flat_and_growing_lesions_under_noise_have_no_onset(trend, most):
    """Noise alone rarely makes an onset (the share `MIN_SHIFT_MM` is set for), growth never."""
    visits = np.arange(1, 17)
    true = 12.0 + trend * (visits - 1)
    found = [
        patients.decline_start(pd.Series(visits), _noisy(true, np.random.default_rng(seed)))
        for seed in range(200)
    ]
    assert sum(onset is not None for onset in found) <= most * len(found)


def test_a_growing_lesion_is_said_to_grow():
    visits = pd.Series([1, 2, 3, 4])
    assert patients.decline_onset(visits, pd.Series([5.0, 6, 7, 8])) == (None, patients.GREW)


def test_an_irregular_schedule_gives_visit_numbers_as_they_are():
    visits = pd.Series([1, 2, 4, 8, 16, 32])
    assert patients.decline_start(visits, pd.Series([20.0, 20, 20, 17, 14, 12])) == 8


def test_a_fall_across_listed_unmeasured_visits_has_no_known_onset():
    visits = pd.Series([1, 2, 3, 4, 5, 6])
    sizes = pd.Series([5.0, 5.0, np.nan, np.nan, 3.0, 2.0])
    assert patients.decline_onset(visits, sizes) == (None, patients.UNSEEN_ONSET)
    # the same sizes on a schedule that never listed visits 3 and 4: an onset at 5
    measured = sizes.dropna().reset_index(drop=True)
    assert patients.decline_start(pd.Series([1, 2, 5, 6]), measured) == 5


def test_patient_rates_table(trial):
    rates = patients.patient_rates(trial)
    assert len(rates) == 10
    assert {
        "patient_id",
        "outcome",
        "disease_duration_months",
        "pct_per_visit",
        "ci_low",
        "ci_high",
        "estimable",
    } <= set(rates.columns)
    assert rates.loc[~rates["estimable"], "patient_id"].unique().tolist() == ["P2"]


def test_patient_with_one_visit_per_lesion_is_not_estimable(tiny_dataset):
    trial = data.load_trial(tiny_dataset)
    rates = patients.patient_rates(trial).set_index(["patient_id", "outcome"])
    assert not rates.loc[("P2", "length"), "estimable"]  # a single lesion
    page = patients.patient_page(trial, "P1")
    assert page.lesions.set_index("lesion_id").loc["P1-L2", "resolved"]


# ---- discussion: response against disease duration -----------------------------------------


def test_duration_rates(trial):
    table = discussion.duration_rates(trial)
    assert table["duration_group"].tolist() == ["< 24 months"] * 2 + ["≥ 24 months"] * 3
    assert {"length_pct_per_visit", "width_pct_per_visit", "length_ci_low"} <= set(table.columns)
    short = table.loc[table["patient_id"] == "P1", "length_pct_per_visit"].item()
    longer = table.loc[table["duration_group"] == "≥ 24 months", "length_pct_per_visit"]
    assert (short < longer).all()  # faster decline with shorter disease, as the paper says


@pytest.mark.parametrize("outcome", ["length", "width"])
def test_interaction_model_is_labelled_exploratory(trial, outcome):
    table = discussion.interaction_model(trial, outcome)
    assert len(table) == 4 and table["term"].iloc[-1].startswith("time (visit − 1) ×")
    assert {"B", "SE", "CI low", "CI high", "p"} <= set(table.columns)
    assert table["note"].str.contains("exploratory").all()
    assert (table["reason"] == "").all() and table["B"].notna().all()  # estimated


# ---- the sentences of a patient's page ------------------------------------------------------


def test_page_sentences_of_an_estimable_patient(trial):
    page = patients.patient_page(trial, "P1")
    sentences = patients.page_sentences(page)
    assert set(sentences) == {
        "patient_sentence",
        "course_sentence",
        "decline_sentence",
        "rate_sentence",
    }
    info = page.patient
    sex = {"F": "girl", "M": "boy"}[str(info["sex"])]
    assert sentences["patient_sentence"].startswith(
        f"A {info['age_years']:g}-year-old {sex} who had lived with JDM for 18 months, "
        "treated for 9 lesions at: "
    )
    for site in page.lesions["site"].unique():
        assert site in sentences["patient_sentence"]
    start = page.course["median_decline_start"]
    assert (
        f"began at visit {start:g} in the median of the 9 lesions" in sentences["decline_sentence"]
    )
    rate = sentences["rate_sentence"]
    assert formatting.signed_pct(page.rate_length.pct_per_visit) + " per visit in length" in rate
    assert formatting.signed_pct(page.rate_width.pct_per_visit) + " per visit in width" in rate
    assert formatting.p_phrase(page.rate_length.p) in rate and "−" in rate


def test_lesions_without_a_decline_start_are_named_not_dropped():
    lesions = pd.DataFrame(
        {
            "lesion_id": ["A", "B", "C", "D"],
            "decline_start_visit": pd.array([4, None, 6, None], "Int64"),
            "decline_note": ["", "its length fell by no more than reading noise", "", "x"],
        }
    )
    text = patients.decline_sentence(lesions)
    assert "began at visit 5 in the median of the 2 lesions with one (visits 4 to 6)." in text
    assert (
        "No clear onset of a decline for B: its length fell by no more than reading noise." in text
    )
    assert "No clear onset of a decline for D: x." in text


def test_one_definition_of_resolved():
    assert patients.is_resolved(0.0, 0.0)
    assert not patients.is_resolved(0.0, 1.5)  # a length of 0 alone is not resolved


def test_page_sentences_of_a_patient_without_a_rate(trial):
    sentences = patients.page_sentences(patients.patient_page(trial, "P2"))
    assert sentences["decline_sentence"].startswith("No clear onset of a decline for P2-L1")
    assert "P2-L1" in sentences["decline_sentence"]
    assert sentences["rate_sentence"].startswith("No rate can be fitted to this patient alone")
    assert "one lesion" in sentences["rate_sentence"]
    assert sentences["rate_sentence"].count("one lesion") == 1  # one reason, not one per outcome


@pytest.mark.parametrize("age,article", [(8, "An"), (11, "An"), (18, "An"), (5, "A"), (80, "An")])
def test_an_age_takes_its_article(age, article):
    assert patients._a(age) == article


@pytest.mark.parametrize(
    ("n", "gone", "sentence"),
    [
        (5, 0, "Of this patient's 5 lesions, none had gone by the last measurement."),
        (5, 2, "Of this patient's 5 lesions, 2 had gone by the last measurement."),
        (3, 3, "Of this patient's 3 lesions, all had gone by the last measurement."),
        (1, 0, "This patient's one lesion had not gone by the last measurement."),
        (1, 1, "This patient's one lesion had gone by the last measurement."),
    ],
)
def test_course_sentence_says_counts_in_words(n, gone, sentence):
    """Seen on a generated trial: "0 had gone", "5 lesion(s)" (issue 22)."""
    assert patients.course_sentence({"n_lesions": n, "n_resolved": gone}) == sentence


def test_lesion_spread_uses_true_minus_signs(trial):
    sentence = patients.lesion_spread_sentence(trial)
    assert "between \u2212" in sentence and "-" not in sentence.split("between")[1].split("from")[0]


def _per_patient_changes(trial) -> pd.DataFrame:
    """`lesion_courses` patient by patient: what the linear `lesion_changes` must agree with."""
    courses = pd.concat(
        [patients.lesion_courses(trial, pid) for pid in trial.patients["patient_id"].astype(str)]
    )
    return courses.set_index("lesion_id")[["length_change_pct", "resolved"]]


def test_lesion_changes_agree_with_the_lesion_courses(trial, tmp_path):
    """On the bundled data, a generated trial of 6 patients and 46 lesions, and that trial
    with one diameter unread at some lesions' last visits and a zero at a first visit."""
    generated = data.load_trial(trials.write_trial(26, tmp_path / "s26"))
    rows = generated.measurements.copy()
    last = rows.groupby("lesion_id")["visit"].transform("max") == rows["visit"]
    rows.loc[last & (rows.index % 3 == 0), "width_mm"] = np.nan
    rows.loc[last & (rows.index % 3 == 1), ["length_mm", "width_mm"]] = 0.0
    growing = rows.loc[last & (rows.index % 3 == 2) & (rows["length_mm"] > 0), "lesion_id"]
    rows.loc[(rows["lesion_id"] == growing.iloc[0]).idxmax(), "length_mm"] = 0.0
    edited = dataclasses.replace(generated, measurements=rows)
    for each in (trial, generated, edited):
        ours, theirs = patients.lesion_changes(each), _per_patient_changes(each)
        assert ours.index.tolist() == theirs.index.tolist()
        assert np.array_equal(
            ours["length_change_pct"].to_numpy(float),
            theirs["length_change_pct"].to_numpy(float),
            equal_nan=True,
        )
        assert ours["resolved"].tolist() == theirs["resolved"].tolist()
    edits = patients.lesion_changes(edited)
    assert edits["resolved"].sum() > 0 and np.isnan(edits.at[growing.iloc[0], "length_change_pct"])
