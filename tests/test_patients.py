"""Per-patient pages and rates, and the duration analyses of the discussion built on them."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from calcinosis import data, discussion, formatting, patients
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
    for rate in (page.rate_length, page.rate_width):
        assert not rate.estimable and np.isnan(rate.pct_per_visit) and "one lesion" in rate.reason
    assert page.course["n_resolved"] == 1 and page.course["median_decline_start"] is None


def test_unknown_patient(trial):
    with pytest.raises(KeyError, match="P9"):
        patients.patient_page(trial, "P9")


@pytest.mark.parametrize(
    "sizes,expected",
    [
        ([5, 5, 5, 4, 3, 3, 2], 4),  # plateau, then steady decline
        ([5, 4, 5, 5, 4, 3], 5),  # a rise resets the start
        ([5, 5, 5], None),  # never falls
        ([5, 6, 7], None),  # only rises
        ([5], None),  # one measured visit
        ([10, 10, 9, 8, 7, 6.5, 6, 6.5], 3),  # one +0.5 mm re-measurement at the end is noise
        ([10, 10, 9, 8, 8.5, 7, 6], 3),  # … and in the middle
        ([10, 10, 9, 8, 9, 7, 6], 6),  # +1 mm is a rise: the decline starts again after it
        ([10, 9.5, 10, 10, 9, 8], 5),  # a dip back to the old level is no start
        ([4, 3, 2, 0, 0.5, 0], 2),  # a vanished lesion read at 0.5 mm once
    ],
)
def test_decline_start(sizes, expected):
    visits = pd.Series(range(1, len(sizes) + 1))
    assert patients.decline_start(visits, pd.Series(sizes, dtype=float)) == expected


def test_decline_start_across_a_gap_is_unknown():
    visits = pd.Series([1, 2, 5, 6])
    assert patients.decline_start(visits, pd.Series([5.0, 5.0, 4.0, 3.0])) is None


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
    assert set(sentences) == {"patient_sentence", "decline_sentence", "rate_sentence"}
    info = page.patient
    sex = {"F": "girl", "M": "boy"}[str(info["sex"])]
    assert sentences["patient_sentence"].startswith(
        f"A {info['age_years']:g}-year-old {sex} who had lived with JDM for 18 months, "
        "treated for 9 lesion(s) at: "
    )
    for site in page.lesions["site"].unique():
        assert site in sentences["patient_sentence"]
    start = page.course["median_decline_start"]
    assert f"at visit {start:g}." in sentences["decline_sentence"]
    rate = sentences["rate_sentence"]
    assert formatting.signed_pct(page.rate_length.pct_per_visit) + " per visit in length" in rate
    assert formatting.signed_pct(page.rate_width.pct_per_visit) + " per visit in width" in rate
    assert formatting.p_phrase(page.rate_length.p) in rate and "−" in rate


def test_lesions_without_a_decline_start_are_named_not_dropped():
    lesions = pd.DataFrame(
        {"lesion_id": ["A", "B", "C"], "decline_start_visit": pd.array([4, None, 6], "Int64")}
    )
    text = patients.decline_sentence(lesions)
    assert "median of the 2 lesions with one, at visit 5." in text
    assert "No such visit can be named for B" in text


def test_one_definition_of_resolved():
    assert patients.is_resolved(0.0, 0.0)
    assert not patients.is_resolved(0.0, 1.5)  # a length of 0 alone is not resolved


def test_page_sentences_of_a_patient_without_a_rate(trial):
    sentences = patients.page_sentences(patients.patient_page(trial, "P2"))
    assert sentences["decline_sentence"].startswith("No visit at which a steady decline")
    assert "P2-L1" in sentences["decline_sentence"]
    assert sentences["rate_sentence"].startswith("No rate can be fitted to this patient alone")
    assert "one lesion" in sentences["rate_sentence"]
    assert sentences["rate_sentence"].count("one lesion") == 1  # one reason, not one per outcome
