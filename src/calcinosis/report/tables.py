"""Every table of the book: one function per table, named after its label in the book.

Each function takes the validated `Trial` and returns a DataFrame with reader-facing column
names and raw (unrounded) numbers; rounding happens only when a table is printed
(`calcinosis.report.sections.Table`) so the supplement's CSV files keep full precision. The
analyses come from the statistical modules; these functions select, join and name. The
results stage (`calcinosis.report.results`) calls them, once per build.
"""

from __future__ import annotations

import hashlib
import json
import platform
from pathlib import Path

import pandas as pd

from calcinosis.data import dose
from calcinosis.data.trial import Trial
from calcinosis.labels import readable

OUTCOME_NAMES = {"length_mm": "Length", "width_mm": "Width", "length": "Length", "width": "Width"}

# --------------------------------------------------------------------------------------------
# Methods and cohort
# --------------------------------------------------------------------------------------------


def tab_dose_rule(trial: Trial) -> pd.DataFrame:
    """Each lesion's baseline area, the dose given and the dose the published rule implies."""
    les = trial.lesions.sort_values("lesion_id")
    expected = [dose.rule_dose(a) for a in les["baseline_area_cm2"]]
    flag = [
        "outside the rule: larger than 5 cm² (exclusion criterion)"
        if e is None
        else ("matches the rule" if d == e else f"differs: the rule gives {e:g} mg")
        for d, e in zip(les["dose_mg"], expected, strict=True)
    ]
    return pd.DataFrame(
        {
            "Lesion": les["lesion_id"].astype(str).to_numpy(),
            "Site": les["site"].to_numpy(),
            "Area (cm²)": les["baseline_area_cm2"].to_numpy(),
            "Dose given (mg)": les["dose_mg"].to_numpy(),
            "Dose by rule (mg)": pd.array(expected, dtype="Float64"),
            "Check": flag,
        }
    )


def dose_rule_counts(trial: Trial) -> dict[str, int]:
    """How many lesions match the rule, get another dose, or exceed the 5 cm² limit."""
    check = tab_dose_rule(trial)["Check"]
    return {
        "n_dose_match": int((check == "matches the rule").sum()),
        "n_dose_differs": int(check.str.startswith("differs").sum()),
        "n_dose_over_limit": int(check.str.startswith("outside").sum()),
    }


def tab_baseline_patients(trial: Trial) -> pd.DataFrame:
    """One row per patient: sex, age, disease duration, lesions and where they are."""
    les = trial.lesions.groupby("patient_id").agg(
        lesions=("lesion_id", "size"),
        sites=("site", lambda s: ", ".join(dict.fromkeys(s))),
        area=("baseline_area_cm2", "sum"),
    )
    pat = trial.patients.set_index("patient_id").join(les).reset_index()
    return pd.DataFrame(
        {
            "Patient": pat["patient_id"].astype(str),
            "Sex": pat["sex"],
            "Age (years)": pat["age_years"],
            "Disease duration (months)": pat["disease_duration_months"],
            "Lesions": pat["lesions"].astype("int64"),
            "Sites": pat["sites"],
            "Total lesion area (cm²)": pat["area"],
        }
    )


def cohort_numbers(trial: Trial) -> dict[str, float]:
    """The cohort described in numbers for prose: ranges of age and duration, sexes, sites."""
    pat, les = trial.patients, trial.lesions
    per_patient = les.groupby("patient_id").size()
    return {
        "age_min": float(pat["age_years"].min()),
        "age_max": float(pat["age_years"].max()),
        "duration_min": float(pat["disease_duration_months"].min()),
        "duration_max": float(pat["disease_duration_months"].max()),
        "n_female": int((pat["sex"] == "F").sum()),
        "n_male": int((pat["sex"] == "M").sum()),
        "lesions_per_patient_min": int(per_patient.min()),
        "lesions_per_patient_max": int(per_patient.max()),
        "n_sites": int(les["site"].nunique()),
        "area_median": float(les["baseline_area_cm2"].median()),
        "area_min": float(les["baseline_area_cm2"].min()),
        "area_max": float(les["baseline_area_cm2"].max()),
    }


def tab_baseline_lesions(trial: Trial) -> pd.DataFrame:
    """One row per lesion: site, area, first measured clinical size, baseline radiograph."""
    meas = trial.measurements.dropna(subset=["length_mm", "width_mm"], how="all")
    first = meas.sort_values("visit").groupby("lesion_id").first()
    rad = trial.radiography[trial.radiography["timepoint"] == "baseline"].set_index("lesion_id")
    les = trial.lesions.set_index("lesion_id").sort_index()
    return pd.DataFrame(
        {
            "Lesion": les.index.astype(str),
            "Patient": les["patient_id"].astype(str).to_numpy(),
            "Site": les["site"].to_numpy(),
            "Area (cm²)": les["baseline_area_cm2"].to_numpy(),
            "Clinical length (mm)": first["length_mm"].reindex(les.index).to_numpy(),
            "Clinical width (mm)": first["width_mm"].reindex(les.index).to_numpy(),
            "X-ray length (mm)": rad["length_mm"].reindex(les.index).to_numpy(),
            "X-ray width (mm)": rad["width_mm"].reindex(les.index).to_numpy(),
        }
    )


# --------------------------------------------------------------------------------------------
# Patients
# --------------------------------------------------------------------------------------------


def _rates_frame(rates: pd.DataFrame) -> pd.DataFrame:
    out = pd.DataFrame(
        {
            "Outcome": rates["outcome"].map(OUTCOME_NAMES).to_numpy(),
            "Change per visit (%)": rates["pct_per_visit"].to_numpy(),
            "95 % CI low": rates["ci_low"].to_numpy(),
            "95 % CI high": rates["ci_high"].to_numpy(),
            "p": rates["p"].to_numpy(),
        }
    )
    if "estimable" in rates:
        reason = rates["reason"] if "reason" in rates else ""
        out["Note"] = [
            ("" if ok else str(r))
            for ok, r in zip(rates["estimable"].astype(bool), reason, strict=True)
        ]
    return out


def tab_patient_rates(trial: Trial) -> pd.DataFrame:
    """Each patient's fitted change per visit (%) for length and width, with 95 % CI."""
    from calcinosis.stats import patients

    rates = patients.patient_rates(trial).sort_values(["patient_id", "outcome"])
    out = _rates_frame(rates)
    out.insert(0, "Patient", rates["patient_id"].astype(str).to_numpy())
    return out


def tab_patient_lesions(trial: Trial, patient_id: str) -> pd.DataFrame:
    """One patient's lesions: first and last size, change, and whether it resolved."""
    from calcinosis.stats import patients

    lesions = patients.patient_page(trial, patient_id).lesions
    rename = {
        "lesion_id": "Lesion",
        "site": "Site",
        "first_visit": "First visit",
        "last_visit": "Last visit",
        "length_first": "Length first (mm)",
        "length_last": "Length last (mm)",
        "length_change_pct": "Length change (%)",
        "width_first": "Width first (mm)",
        "width_last": "Width last (mm)",
        "width_change_pct": "Width change (%)",
        "resolved": "Resolved",
        "decline_start_visit": "Decline onset (visit)",
    }
    keep = [c for c in rename if c in lesions.columns]
    out = lesions[keep].rename(columns=rename).reset_index(drop=True)
    if "Lesion" in out:
        out["Lesion"] = out["Lesion"].astype(str)
    return out


def tab_patient_rate(trial: Trial, patient_id: str) -> pd.DataFrame:
    """One patient's fitted change per visit for length and width."""
    from calcinosis.stats import patients

    page = patients.patient_page(trial, patient_id)
    rows = []
    for outcome, rate in (("length", page.rate_length), ("width", page.rate_width)):
        row = dict(vars(rate))
        row["outcome"] = outcome
        rows.append(row)
    return _rates_frame(pd.DataFrame(rows))


# --------------------------------------------------------------------------------------------
# GEE
# --------------------------------------------------------------------------------------------


def tab_gee(trial: Trial, outcome: str, params=None) -> pd.DataFrame:
    """SPSS-style parameter estimates of the main GEE for one outcome (the paper's Table 1),
    with the working correlation and cluster level of `params`; a model that cannot be
    estimated keeps its rows, blank, with the reason in a note."""
    from calcinosis.report import gee_sentences
    from calcinosis.stats import models

    fit, reason = models.primary_or_reason(trial, outcome, params)
    if fit is None:
        columns = ["B", "SE", "CI low", "CI high", "Wald χ²", "df", "p", "Exp(B)"]
        columns += ["Exp(B) CI low", "Exp(B) CI high"]
        blank = pd.DataFrame(
            float("nan"), index=pd.Index([models.INTERCEPT, models.TIME_TERM]), columns=columns
        )
        blank["Note"] = gee_sentences.not_estimable_text(reason)
        return readable(blank.rename_axis("term").reset_index())
    table = fit.parameter_table()
    return readable(table if isinstance(table.index, pd.RangeIndex) else table.reset_index())


def tab_gee_summary(trial: Trial, params=None) -> pd.DataFrame:
    """The two main models side by side: change per visit, CI, p, sample and correlation (a
    model that cannot be estimated: its numbers blank and the reason in the note)."""
    from calcinosis.report import gee_sentences
    from calcinosis.stats import models

    nan = float("nan")
    rows = []
    for outcome in ("length", "width"):
        fit, reason = models.primary_or_reason(trial, outcome, params)
        rows.append(
            {
                "Outcome": OUTCOME_NAMES[outcome],
                "Change per visit (%)": nan if fit is None else fit.pct_per_visit,
                "95 % CI low": nan if fit is None else fit.pct_ci_low,
                "95 % CI high": nan if fit is None else fit.pct_ci_high,
                "Wald χ²": nan if fit is None else fit.wald_chi2,
                "p": nan if fit is None else fit.p,
                "Observations": None if fit is None else int(fit.n_obs),
                "Lesions": None if fit is None else int(fit.n_lesions),
                "Patients": None if fit is None else int(fit.n_patients),
                "Working correlation": nan if fit is None else fit.working_correlation,
                "QIC": None if fit is None else fit.qic,
                "Note": "" if fit is not None else gee_sentences.not_estimable_text(reason),
            }
        )
    out = pd.DataFrame(rows)
    for column in ("Observations", "Lesions", "Patients"):
        out[column] = out[column].astype("Int64")
    return out if (out["Note"] != "").any() else out.drop(columns="Note")


# --------------------------------------------------------------------------------------------
# Radiography, safety, discussion, sensitivity
# --------------------------------------------------------------------------------------------


def tab_radiography_summary(trial: Trial) -> pd.DataFrame:
    """Radiographic size before and after: mean ± SD (min–max), as the paper reports it."""
    from calcinosis.stats import radiography

    return readable(radiography.summary(trial))


def tab_radiography_tests(trial: Trial) -> pd.DataFrame:
    """Paired tests of the radiographic change (before vs after) for length and width."""
    from calcinosis.stats import radiography

    return readable(radiography.paired_tests(trial))


def tab_radiography_lesions(trial: Trial) -> pd.DataFrame:
    """Each lesion's radiographic size before and after treatment."""
    from calcinosis.stats import radiography

    return readable(radiography.per_lesion(trial))


def tab_adverse_events(trial: Trial) -> pd.DataFrame:
    """Adverse events by patient (empty when none were recorded)."""
    from calcinosis.stats import safety

    return readable(safety.adverse_events(trial))


def tab_exposure(trial: Trial) -> pd.DataFrame:
    """Treatment exposure: injections and infliximab given, by patient."""
    from calcinosis.stats import safety

    return readable(safety.exposure(trial))


def tab_duration_rates(trial: Trial) -> pd.DataFrame:
    """Each patient's change per visit beside the disease duration."""
    from calcinosis.stats import discussion

    wide = discussion.duration_rates(trial)
    rows = []
    for outcome in ("length", "width"):
        part = wide[["patient_id", "disease_duration_months", "duration_group"]].copy()
        part.insert(3, "outcome", OUTCOME_NAMES[outcome])
        for what in ("pct_per_visit", "ci_low", "ci_high", "estimable"):
            part[what] = wide[f"{outcome}_{what}"]
        rows.append(part)
    long = pd.concat(rows, ignore_index=True).sort_values(["patient_id", "outcome"], kind="stable")
    long["estimable"] = long["estimable"].astype(bool)
    return readable(long.reset_index(drop=True))


def tab_interaction(trial: Trial, outcome: str) -> pd.DataFrame:
    """Exploratory GEE with a visit × disease-duration interaction for one outcome (a model
    that cannot be estimated: its numbers blank and the reason in a note)."""
    from calcinosis.report import gee_sentences
    from calcinosis.stats import discussion

    table = discussion.interaction_model(trial, outcome)
    reasons = table["reason"].map(lambda r: gee_sentences.not_estimable_text(r) if r else "")
    table = table.drop(columns=["note", "pct_per_visit_effect", "reason"])
    if (reasons != "").any():
        table["Note"] = reasons
    return readable(table)


def interaction_note(trial: Trial) -> str:
    """The caveat the interaction model carries (one for both outcomes), and for which outcome
    it cannot be estimated, and why."""
    from calcinosis.report import gee_sentences
    from calcinosis.stats import discussion

    note = str(discussion.interaction_model(trial, "length")["note"].iloc[0])
    for outcome in ("length", "width"):
        reason = str(discussion.interaction_model(trial, outcome)["reason"].iloc[0])
        if reason:
            note += f"; for {outcome} the model is {gee_sentences.not_estimable_text(reason)}"
    return note


def tab_sensitivity(trial: Trial) -> pd.DataFrame:
    """The sensitivity grid: change per visit under each analysis choice."""
    from calcinosis.stats import sensitivity

    grid = sensitivity.grid(trial)
    return pd.DataFrame(
        {
            "Outcome": grid["outcome"].map(OUTCOME_NAMES),
            "Factor": grid["factor"],
            "Choice": grid["choice"],
            "Change per visit (%)": grid["pct_per_visit"],
            "95 % CI low": grid["ci_low"],
            "95 % CI high": grid["ci_high"],
            "p": grid["p"],
            "Reference": grid["reference"].fillna(""),
            "QIC": grid["qic"],
            "Primary": grid["is_primary"].astype(bool),
            "Note": grid["note"].fillna(""),
        }
    )


PRIMARY_MARK = " (primary)"


def sensitivity_as_printed(table: pd.DataFrame) -> pd.DataFrame:
    """`tab_sensitivity` as the book prints it, narrow enough for a desk browser's text column
    (Table 8.1 was cut at 1 400 px): a row's note follows its choice after a dash, and the
    primary model is marked in its choice, instead of two columns of their own (the
    supplement keeps both)."""
    shown = table.drop(columns=["Primary", "Note"])
    shown["Choice"] = [
        choice + (PRIMARY_MARK if primary else "") + (f" — {note}" if note else "")
        for choice, primary, note in zip(
            table["Choice"], table["Primary"], table["Note"], strict=True
        )
    ]
    return shown


# --------------------------------------------------------------------------------------------
# Reproducibility
# --------------------------------------------------------------------------------------------


def sensitivity_summary(trial: Trial) -> dict[str, object]:
    """What the grid says in numbers and words, per outcome and over distinct analyses (the
    primary model, repeated as each factor's reference, counts once): how many were run, how
    many are estimable, how many exclude no change, the range of the estimates, and which
    choices give an interval that includes zero or no estimate."""
    from calcinosis.stats import sensitivity

    grid = sensitivity.distinct(sensitivity.grid(trial))
    out: dict[str, object] = {}
    for outcome, part in grid.groupby("outcome"):
        ok = sensitivity.estimable(part)
        excludes_zero = (ok["ci_high"] < 0) | (ok["ci_low"] > 0)
        crossing = ok.loc[~excludes_zero]
        missing = part.loc[part["pct_per_visit"].isna()]
        out.update(
            {
                f"{outcome}_n": int(len(part)),
                f"{outcome}_n_estimable": int(len(ok)),
                f"{outcome}_n_decrease": int((ok["ci_high"] < 0).sum()),
                f"{outcome}_n_increase": int((ok["ci_low"] > 0).sum()),
                f"{outcome}_n_crossing": int(len(crossing)),
                f"{outcome}_n_not_estimable": int(len(missing)),
                f"{outcome}_min": float(ok["pct_per_visit"].min()) if len(ok) else None,
                f"{outcome}_max": float(ok["pct_per_visit"].max()) if len(ok) else None,
                f"{outcome}_crossing": _choices(crossing),
                f"{outcome}_not_estimable": _choices(missing),
            }
        )
    return out


# --------------------------------------------------------------------------------------------
# What the summaries pin down (the ensemble)
# --------------------------------------------------------------------------------------------


def pinned_numbers(verdicts: pd.DataFrame) -> dict[str, object]:
    """Counts and lists of conclusions by kind and verdict, and each conclusion's verdict and
    share."""
    from calcinosis.simulate import pinned

    basis, verdict = verdicts["basis"], verdicts["verdict"]
    pinned_down = verdict.isin([pinned.HOLDS, pinned.FAILS])
    out: dict[str, object] = {
        "n_conclusions": int(len(verdicts)),
        "n_imposed": int((basis == pinned.IMPOSED).sum()),
        "n_built_in": int((basis == pinned.BUILT_IN).sum()),
        "n_open": int((basis == pinned.OPEN).sum()),
        "n_pinned": int(pinned_down.sum()),
        "n_left_open": int((verdict == pinned.LEFT_OPEN).sum()),
        "pinned_list": _claims(verdicts[pinned_down], with_verdict=True),
        "left_open_list": _claims(verdicts[verdict == pinned.LEFT_OPEN]),
    }
    for row in verdicts.itertuples(index=False):
        out[f"{row.conclusion}_verdict"] = row.verdict
        out[f"{row.conclusion}_basis"] = row.basis
        out[f"{row.conclusion}_share_pct"] = 100 * row.share_holding
    return out


def _claims(verdicts: pd.DataFrame, with_verdict: bool = False) -> str:
    """The claims as one run of text (with the verdict: whether each holds or fails)."""
    said = [
        claim + (f" ({verdict.split(': ')[-1]})" if with_verdict else "")
        for claim, verdict in zip(verdicts["claim"], verdicts["verdict"], strict=True)
    ]
    return "; ".join(said) or "none"


def _number(value: float, kind: str) -> str:
    """A conclusion's number as printed: p-values as everywhere in the book, the rest with
    the decimals their kind needs."""
    from calcinosis.formatting import fixed, p_text

    if pd.isna(value):
        return "–"
    if kind == "p":
        return p_text(value)
    decimals = {"share": 2, "visit": 1, "count": 0, "change": 1}.get(kind, 2)
    return fixed(value, decimals)


def tab_pinned(verdicts: pd.DataFrame) -> pd.DataFrame:
    """Each conclusion: its kind, its number's median and 5 % and 95 % quantiles over the
    ensemble, the share of members where it holds, the verdict; and, when the data are the
    article's trial (`holds_in_data` set), its number there, whether it holds and whether
    that agrees. Numbers as numbers (`pinned_as_printed` prints each in its kind's format)."""
    table = pd.DataFrame(
        {
            "Conclusion": verdicts["claim"].to_numpy(),
            "Kind": verdicts["basis"].to_numpy(),
            "Number": verdicts["label"].to_numpy(),
            "Ensemble median": verdicts["ensemble_median"].astype(float).to_numpy(),
            "Ensemble 5 %": verdicts["ensemble_p5"].astype(float).to_numpy(),
            "Ensemble 95 %": verdicts["ensemble_p95"].astype(float).to_numpy(),
            "Members where it holds (%)": 100 * verdicts["share_holding"].astype(float).to_numpy(),
            "Verdict": verdicts["verdict"].to_numpy(),
        }
    )
    if len(verdicts) and verdicts["holds_in_data"].notna().any():
        table["In these data"] = verdicts["value_in_data"].astype(float).to_numpy()
        table["Holds in these data"] = verdicts["holds_in_data"].astype(bool).to_numpy()
        table["Agrees with the verdict"] = [v or "–" for v in verdicts["data_agree"]]
    return table


PINNED_NUMBERS = ("Ensemble median", "Ensemble 5 %", "Ensemble 95 %", "In these data")


def pinned_as_printed(verdicts: pd.DataFrame) -> pd.DataFrame:
    """`tab_pinned` as the book prints it: each row's numbers in the format of its kind (a
    p-value as everywhere in the book, a share with 2 decimals, a visit with 1)."""
    shown = tab_pinned(verdicts).astype(object)
    for column in PINNED_NUMBERS:
        if column in shown:
            shown[column] = [
                _number(v, k) for v, k in zip(shown[column], verdicts["kind"], strict=True)
            ]
    shown["Members where it holds (%)"] = [
        _number(v, "count") for v in shown["Members where it holds (%)"]
    ]
    if "Holds in these data" in shown:
        shown["Holds in these data"] = ["yes" if v else "no" for v in shown["Holds in these data"]]
    return shown


def tab_pinned_sub_ensembles(shares: pd.DataFrame, verdicts: pd.DataFrame) -> pd.DataFrame:
    """Per conclusion not imposed by the audit: the share of members where it holds in all
    kept members, per ruler grid and per half of the noise range (members in the heading),
    its lowest and highest share when each range is halved in turn, and whether an open
    conclusion keeps its verdict in every sub-ensemble."""
    from calcinosis.simulate import pinned

    if shares.empty:
        return pd.DataFrame(columns=["Conclusion", "Kind"])
    claims = verdicts.set_index("conclusion")["claim"]
    rows = []
    for name, part in shares.groupby("conclusion", sort=False):
        row = {"Conclusion": claims[name], "Kind": part["basis"].iloc[0]}
        for sub in part[part["group"] != "range halved"].itertuples(index=False):
            row[f"{sub.sub_ensemble} (n = {sub.n_members})"] = _number(
                100 * sub.share_holding, "count"
            )
        halved = 100 * part.loc[part["group"] == "range halved", "share_holding"]
        row["Ranges halved one at a time (%)"] = (
            f"{_number(halved.min(), 'count')} to {_number(halved.max(), 'count')}"
        )
        row["Same verdict in every sub-ensemble"] = (
            ("yes" if part["verdict"].nunique() == 1 else "no")
            if row["Kind"] == pinned.OPEN
            else "–"
        )
        rows.append(row)
    return pd.DataFrame(rows)


def tab_ensemble_assumptions() -> pd.DataFrame:
    """What varies between the ensemble's members, its range, and the bundled data's value."""
    from calcinosis.simulate import ensemble, reconstruct

    bundled = reconstruct.Assumptions().as_dict()
    return pd.DataFrame(
        [
            {
                "Assumption": a.name,
                "What it sets": a.meaning,
                "Range in the ensemble": a.range,
                "Bundled reconstruction": str(bundled[a.name]),
            }
            for a in ensemble.ASSUMPTIONS
        ]
    )


def tab_ensemble_kept_by_grid(table: pd.DataFrame) -> pd.DataFrame:
    """Members kept and dropped per clinical ruler grid: the assumption that decides most
    often whether a reconstruction can print the article's numbers."""
    members = table.drop_duplicates("key")
    if members.empty:
        return pd.DataFrame(columns=["Clinical grid (mm)", "Members", "Kept", "Kept (%)"])
    grouped = members.groupby("clinical_grid_mm")["kept"]
    return pd.DataFrame(
        {
            "Clinical grid (mm)": grouped.size().index,
            "Members": grouped.size().to_numpy(),
            "Kept": grouped.sum().astype(int).to_numpy(),
            "Kept (%)": (100 * grouped.mean()).to_numpy(),
        }
    )


def tab_ensemble_dropped(manifest: dict) -> pd.DataFrame:
    """Members dropped, counted by reason (numbers in the reasons blanked out)."""
    import re

    reasons = pd.Series(list(manifest.get("dropped", {}).values()), dtype=str)
    kinds = reasons.map(lambda r: re.sub(r"-?\d+(\.\d+)?", "…", r))
    counts = kinds.value_counts().sort_index()
    return pd.DataFrame({"Reason": counts.index, "Members": counts.to_numpy()})


def _choices(rows: pd.DataFrame) -> str:
    return "; ".join(f"{f}: {c}" for f, c in zip(rows["factor"], rows["choice"], strict=True)) or (
        "none"
    )


def tab_claims_audit(trial: Trial, values: dict) -> pd.DataFrame:
    """Each published claim beside its recomputed value (from `values`, the results of the
    other sections), and whether they agree."""
    from calcinosis.simulate import audit

    return readable(audit.claims_audit(trial, values=values), first=["Verdict"])


def tab_grim_overview(trial: Trial) -> pd.DataFrame:
    """GRIM and GRIMMER at a glance: for each published summary and candidate n, on which
    measurement grid (mm) the mean and the SD could both arise."""
    from calcinosis.simulate import audit

    table = audit.grimmer_table(audit.load_claims(trial.data_dir))
    verdict = (
        table["grim_consistent"]
        .map({True: "mean", False: ""})
        .str.cat(table["grimmer_consistent"].map({True: " + SD", False: ""}))
    )
    verdict = verdict.str.strip(" +").replace("", "neither").replace("SD", "SD only")
    wide = table.assign(verdict=verdict).pivot(
        index=["quantity", "n"], columns="grid", values="verdict"
    )
    wide.columns = [f"Grid {g:g} mm" for g in wide.columns]
    return readable(wide.reset_index())


def tab_grim(trial: Trial) -> pd.DataFrame:
    """GRIM: can each published mean arise from n values on the measurement grid?"""
    from calcinosis.simulate import audit

    return readable(audit.grim_table(audit.load_claims(trial.data_dir)))


def tab_grimmer(trial: Trial) -> pd.DataFrame:
    """GRIMMER: the same question for the published standard deviations."""
    from calcinosis.simulate import audit

    return readable(audit.grimmer_table(audit.load_claims(trial.data_dir)))


def tab_sd_feasibility(trial: Trial) -> pd.DataFrame:
    """Whether each published SD is attainable given the mean, range and n."""
    from calcinosis.simulate import audit

    return readable(audit.sd_feasibility(audit.load_claims(trial.data_dir)))


def tab_data_files(trial: Trial) -> pd.DataFrame:
    """The run's inputs: each file of the dataset with its rows and SHA-256."""
    from calcinosis.data.trial import data_rows, dataset_files

    rows = []
    for path in dataset_files(trial.data_dir).values():
        data = path.read_bytes()
        lines = data_rows(path) if path.suffix == ".csv" else None
        rows.append(
            {
                "File": path.name,
                "Data rows": lines,
                "Bytes": len(data),
                "SHA-256": hashlib.sha256(data).hexdigest(),
            }
        )
    out = pd.DataFrame(rows)
    out["Data rows"] = out["Data rows"].astype("Int64")
    return out


def tab_versions(trial: Trial) -> pd.DataFrame:
    """Python and the versions of the packages that compute and typeset the book."""
    from calcinosis import software

    rows = [{"Software": "Python", "Version": platform.python_version()}]
    rows += [
        {"Software": name, "Version": version}
        for name, version in software.package_versions().items()
    ]
    return pd.DataFrame(rows)


def tab_data_dictionary(trial: Trial) -> pd.DataFrame:
    """Every field of every table, from data/datapackage.json: type, unit, meaning, rules."""
    package = _data_package(trial.data_dir)
    rows = []
    for resource in package["resources"]:
        present = _columns(trial, resource["name"])
        for field in resource["schema"]["fields"]:
            constraints = field.get("constraints", {})
            rules = []
            if present is not None and field["name"] not in present:
                rules.append("not in these data")
            elif constraints.get("required"):
                rules.append("required")
            if "enum" in constraints:
                rules.append("one of " + ", ".join(map(str, constraints["enum"])))
            for key, word in (("minimum", "≥"), ("exclusiveMinimum", ">"), ("maximum", "≤")):
                if key in constraints:
                    rules.append(f"{word} {constraints[key]}")
            rows.append(
                {
                    "Table": resource["name"],
                    "Field": field["name"],
                    "Type": field.get("type", ""),
                    "Unit": field.get("unit", ""),
                    "Description": field.get("description", ""),
                    "Rules": "; ".join(rules),
                }
            )
    return pd.DataFrame(rows)


def _columns(trial: Trial, table: str) -> set[str] | None:
    """The columns `table` has in these data (None when this view cannot read it)."""
    from calcinosis.data import schema

    if table not in schema.TABLES or not trial.holds(table):
        return None
    return set(getattr(trial, table).columns)


def _data_package(data_dir: Path | str) -> dict:
    """The dataset's datapackage.json; without one (it is optional), the package's own
    description of the tables, with no title or provenance."""
    from calcinosis.data import schema

    path = Path(data_dir) / "datapackage.json"
    if path.is_file():
        return json.loads(path.read_text("utf-8"))
    return {"resources": schema.datapackage({})["resources"]}


# --------------------------------------------------------------------------------------------
# Planning a definitive trial (from the shipped power run, not the trial)
# --------------------------------------------------------------------------------------------


def tab_power_assumptions(rows: list[tuple[str, str, str]]) -> pd.DataFrame:
    """The simulation model's assumptions with their values and sources."""
    return pd.DataFrame(rows, columns=["Assumption", "Value", "Source"])
