"""The results stage: every number, sentence, table and figure the book shows, computed once
for given data and parameters, in named sections.

Each producer below declares the data tables it reads; it is handed a view of the trial that
holds only those (reading another one raises), so its declared inputs are its real inputs and
the build can keep its sections until one of them changes. Producers marked `derived` read the
values of the others (the audit compares them with the paper; one comparison of clinical and
radiographic change compounds the GEE) instead of fitting anything again.

The analysis modules are imported inside the producers: the build's own process needs only
this registry, and starts in a fraction of the time.

Names are stable: they are the keys of `results.json` and the file names of the supplement,
whose README lists each section's tables and figures.
"""

from __future__ import annotations

import platform
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from calcinosis import paths
from calcinosis.names import slug
from calcinosis.params import Parameters
from calcinosis.report.sections import Section, Table

if TYPE_CHECKING:
    import pandas as pd

    from calcinosis.data.trial import Trial

CLINICAL = ("patients", "lesions", "measurements")
GEE_DECIMALS = {
    "B": 4,
    "SE": 4,
    "CI low": 4,
    "CI high": 4,
    "Wald χ²": 2,
    "p": 4,
    "Exp(B)": 4,
    "Exp(B) CI low": 4,
    "Exp(B) CI high": 4,
}
GEE_FIELDS = (
    "pct_per_visit",
    "pct_ci_low",
    "pct_ci_high",
    "beta",
    "se",
    "ci_low",
    "ci_high",
    "wald_chi2",
    "p",
    "exp_b",
    "exp_b_ci_low",
    "exp_b_ci_high",
    "intercept",
    "working_correlation",
    "scale",
    "qic",
    "n_obs",
    "n_lesions",
    "n_patients",
)
OUTCOMES = ("length", "width")


@dataclass(frozen=True)
class Inputs:
    """What a producer is given: its view of the trial, the parameters, and (derived
    producers only) the values of every other section."""

    trial: Trial
    params: Parameters
    values: dict
    workers: int = 1  # processes a producer may render many figures in (`figures.render_all`)
    pdf: bool = True  # whether the build needs PDFs of the figures a producer draws per patient


@dataclass(frozen=True)
class Producer:
    name: str
    reads: tuple[str, ...]
    make: Callable[[Inputs], Iterable[Section]]
    uses_parameters: bool = False
    derived: bool = False
    # Files outside the dataset the producer reads (the shipped ensemble): their hashes are
    # part of its cache key.
    files: tuple[Path, ...] = ()
    # Draws a figure per patient, and their PDFs only for a build that makes the book's PDF
    # (`Inputs.pdf`): whether it did is part of its cache key.
    pdf_per_patient: bool = False
    # States the commit of the code (the software section): the commit is part of its cache
    # key, so a commit that changes no package file still shows in a rebuild.
    records_commit: bool = False
    # Computed in a process of its own beside the other producers (a build with two or more
    # processes): a registry's patients are as much work as all the rest together.
    apart: bool = False


# --------------------------------------------------------------------------------------------
# Producers, in the order of the book
# --------------------------------------------------------------------------------------------


def design(inp: Inputs) -> Iterable[Section]:
    from calcinosis.data import design as trial_design

    trial = inp.trial
    measured = trial.measurements[["length_mm", "width_mm"]].notna().any(axis=1)
    section = Section("design")
    section.add(
        {
            "n_patients": len(trial.patients),
            "n_lesions": len(trial.lesions),
            "n_visits": int(trial.measurements["visit"].max()),
            "first_visit": int(trial.measurements["visit"].min()),
            "n_observations": int(measured.sum()),
            "protocol_weeks": protocol_weeks(),
            "article_n_patients": article_patients(),
            "schedule_sentence": trial_design.schedule_sentence(trial),
        }
    )
    yield section


def protocol_weeks() -> int:
    """The weeks of injections the article's protocol planned ("weekly for 16 weeks"): the
    design, not the data, which may hold follow-up visits or missed ones."""
    from calcinosis.simulate.reconstruct import load_facts

    schedule = load_facts()["design"]["intervention"]["schedule"]
    weeks = re.search(r"(\d+) weeks", schedule)
    if weeks is None:
        raise ValueError(f"the facts' schedule names no weeks: {schedule!r}")
    return int(weeks.group(1))


def article_patients() -> int:
    """How many children the article's trial enrolled (the design, not the data)."""
    from calcinosis.simulate.reconstruct import load_facts

    return int(load_facts()["design"]["patients"])


def methods(inp: Inputs) -> Iterable[Section]:
    from calcinosis.data import design, dose
    from calcinosis.report import tables
    from calcinosis.stats import patients

    section = Section("methods")
    section.add(
        {
            "decline_noise_mm": patients.NOISE_MM,
            "decline_noise_range_mm": 2 * patients.NOISE_MM,
            "decline_step_mm": patients.ONSET_STEP_MM,
            "decline_shift_mm": patients.MIN_SHIFT_MM,
        }
    )
    section.add(tables.dose_rule_counts(inp.trial))
    section.add({"over_limit_sentence": design.over_limit_sentence(inp.trial)})
    section.add(dose.band_numbers())
    section.tables["tab_dose_rule"] = Table(
        tables.tab_dose_rule(inp.trial),
        {"Area (cm²)": 2, "Dose given (mg)": 0, "Dose by rule (mg)": 0},
    )
    yield section


def cohort(inp: Inputs) -> Iterable[Section]:
    from calcinosis.data import design
    from calcinosis.report import figures, tables

    trial = inp.trial
    section = Section("cohort")
    section.add(tables.cohort_numbers(trial), prefix="cohort_")
    section.add(
        {
            "cohort_sites_sentence": design.sites_sentence(trial),
            "cohort_lesions_per_child": design.lesions_per_child(trial),
        }
    )
    section.tables["tab_baseline_patients"] = Table(
        tables.tab_baseline_patients(trial),
        {"Age (years)": 0, "Disease duration (months)": 0, "Total lesion area (cm²)": 2},
    )
    section.tables["tab_baseline_lesions"] = Table(tables.tab_baseline_lesions(trial), 1)
    section.figures["fig_lesion_map"] = figures.render(figures.fig_lesion_map(trial))
    yield section


def gee(inp: Inputs) -> Iterable[Section]:
    """The main model under the page's parameters; a fit the data cannot support is said to be
    "not estimable" with its reason (its values are missing, never a number) and the build goes
    on. With few clusters the page leads with the small-sample corrected test
    (`calcinosis.report.gee_sentences`)."""
    from calcinosis.report import figures, gee_sentences, tables
    from calcinosis.stats import models, patients

    trial, params = inp.trial, inp.params
    plural = {"lesion": "lesions", "patient": "patients"}[params.cluster]
    section = Section("gee")
    section.add(
        {
            "gee_correlation": params.correlation,
            "gee_cluster": params.cluster,
            "gee_cluster_plural": plural,
            "gee_correlation_phrase": models.CORRELATION_PHRASES[params.correlation],
            "lesion_spread_sentence": patients.lesion_spread_sentence(trial),
        }
    )
    fits = {}
    for outcome in OUTCOMES:
        fit, reason = models.primary_or_reason(trial, outcome, params)
        fits[outcome] = fit
        corrected, corrected_reason = gee_sentences.corrected_fit(trial, outcome, params)
        section.add(
            {f: None if fit is None else getattr(fit, f) for f in GEE_FIELDS},
            prefix=f"gee_{outcome}_",
        )
        section.add(
            {
                "estimable": fit is not None,
                "reason": reason,
                "small_sample_p": None if corrected is None else corrected.p,
                "small_sample_df": None
                if corrected is None or corrected.ref_df is None
                else corrected.ref_df[1],
                "small_sample_reason": corrected_reason,
                "sentence": gee_sentences.outcome_sentence(
                    fit, reason, corrected, corrected_reason
                ),
                "headline": gee_sentences.headline(fit, reason, corrected),
            },
            prefix=f"gee_{outcome}_",
        )
        section.tables[f"tab_gee_{outcome}"] = Table(
            tables.tab_gee(trial, outcome, params), GEE_DECIMALS
        )
    n_clusters = models.cluster_count(trial, params.cluster)
    section.add(
        {
            "gee_n_clusters": n_clusters,
            "gee_leads_with_correction": gee_sentences.leads_with_correction(n_clusters),
            "gee_lead_reason_sentence": gee_sentences.lead_reason_sentence(n_clusters, plural)
            if any(fit is not None for fit in fits.values())
            else "",
            "gee_correlation_sentence": gee_sentences.correlation_sentence(fits),
        }
    )
    section.tables["tab_gee_summary"] = Table(tables.tab_gee_summary(trial, params), 2)
    section.figures["fig_gee_curve"] = figures.render(figures.fig_gee_curve(trial, params))
    section.figures["fig_gee_checks"] = figures.render(figures.fig_gee_checks(trial, params))
    yield section


def patient_sections(inp: Inputs) -> Iterable[Section]:
    """The overview of all patients, one section per patient, and the discussion's
    duration analysis (it reuses the per-patient rates).

    Each patient's page (fits, tables, sentences, figure) is made from a trial of that
    patient's rows alone, in the stage's worker processes beside the others: the work grows
    linearly with patients. The pages made there are remembered here
    (`patients.patient_page`), so the overview and the discussion fit nothing again."""
    from calcinosis.report import figures, tables
    from calcinosis.report.pool import side_by_side
    from calcinosis.stats import patients

    trial = inp.trial
    ids = trial.patients["patient_id"].astype(str).tolist()
    n_visits = int(trial.measurements["visit"].max())
    everyone = (figures.long_measurements(trial), sorted(ids), n_visits)
    made = side_by_side(  # the largest first, so that it does not finish last
        [(figures.draw_and_render, (figures.draw_supplementary_trajectories, everyone, inp.pdf))]
        + [
            (_patient, (trial.data_dir, rows, patient_id, n_visits, inp.pdf))
            for patient_id, rows in zip(ids, _one_by_one(trial, ids), strict=True)
        ],
        inp.workers,
    )
    supplementary = made.pop(0)
    for patient_id, (page, _) in zip(ids, made, strict=True):
        patients.patient_page.remember(trial, page, patient_id)  # type: ignore[attr-defined]
    overview = Section("patients")
    overview.add({"sparse_lesions_sentence": patients.sparse_lesions_sentence(trial)})
    overview.tables["tab_patient_rates"] = Table(tables.tab_patient_rates(trial), 2)
    overview.figures["fig_patient_rates"] = figures.render(
        figures.fig_patient_rates(trial, inp.params)
    )
    overview.figures["fig_supplementary_trajectories"] = supplementary
    yield overview
    for _, section in made:
        yield section
    yield _discussion(trial)


def _one_by_one(trial: Trial, ids: list[str]) -> Iterable[dict[str, pd.DataFrame]]:
    """For each patient of `ids`, the patient's rows of the patients, lesions and
    measurements tables (a measurement's patient is its lesion's): the tables split once
    rather than filtered for each patient, sent to a worker process as frames (`_own_trial`)."""
    import numpy as np

    patient_of = trial.lesions.set_index("lesion_id")["patient_id"]
    rows = {
        "patients": trial.patients.groupby("patient_id", sort=False).indices,
        "lesions": trial.lesions.groupby("patient_id", sort=False).indices,
        "measurements": trial.measurements.groupby(
            trial.measurements["lesion_id"].map(patient_of), sort=False
        ).indices,
    }
    none = np.array([], dtype=int)
    for patient_id in ids:
        yield {
            name: getattr(trial, name).iloc[at.get(patient_id, none)] for name, at in rows.items()
        }


def _own_trial(data_dir: Path, rows: dict[str, pd.DataFrame]) -> Trial:
    """A trial of one patient's rows (`_one_by_one`), holding those tables alone."""
    import pandas as pd

    from calcinosis.data.trial import Trial

    unread = {"radiography": pd.DataFrame(), "adverse_events": pd.DataFrame()}
    return Trial(data_dir, **rows, **unread).only(tuple(rows))


def _patient(
    data_dir: Path, rows: dict[str, pd.DataFrame], patient_id: str, n_visits: int, pdf: bool
) -> tuple[object, Section]:
    """A patient's page (`patients.patient_page`) and section, from the patient's `rows`
    alone (`_one_by_one`): run in a worker process, figure included."""
    from calcinosis.report import figures, tables
    from calcinosis.stats import patients

    one = _own_trial(data_dir, rows)
    page = patients.patient_page(one, patient_id)
    section = Section(f"patient_{slug(patient_id)}", scope=slug(patient_id))
    info = page.patient
    section.add(
        {
            "patient_id": patient_id,
            "age": info["age_years"],
            "duration": info["disease_duration_months"],
        }
    )
    section.add({f"course_{k}": v for k, v in page.course.items()})
    for outcome, rate in (("length", page.rate_length), ("width", page.rate_width)):
        section.add(
            {
                f"rate_{outcome}_{k}": getattr(rate, k)
                for k in ("pct_per_visit", "ci_low", "ci_high", "p")
            }
        )
    section.add(patients.page_sentences(page))
    section.tables["tab_patient_lesions"] = Table(tables.tab_patient_lesions(one, patient_id), 1)
    section.tables["tab_patient_rate"] = Table(tables.tab_patient_rate(one, patient_id), 2)
    section.figures["fig_patient_trajectories"] = figures.render(
        figures.draw_patient_trajectories(page.trajectories, n_visits), pdf=pdf
    )
    return page, section


def _discussion(trial: Trial) -> Section:
    from calcinosis.report import figures, tables
    from calcinosis.stats import discussion

    section = Section("discussion")
    for outcome in OUTCOMES:
        table = discussion.interaction_model(trial, outcome).set_index("term")
        row = table.iloc[-1]  # the time × duration interaction
        section.add(
            {
                "beta": row["B"],
                "p": row["p"],
                "pct_effect": row["pct_per_visit_effect"],
                "reason": row["reason"],
            },
            prefix=f"interaction_{outcome}_",
        )
        section.tables[f"tab_interaction_{outcome}"] = Table(
            tables.tab_interaction(trial, outcome), GEE_DECIMALS
        )
    short, long = discussion.group_sizes(trial)
    section.add(
        {
            "interaction_note": tables.interaction_note(trial),
            "n_duration_short": short,
            "duration_cut_years": discussion.DURATION_CUT_MONTHS / 12,
            "n_duration_long": long,
            "duration_points_sentence": discussion.points_sentence(trial),
        }
    )
    section.tables["tab_duration_rates"] = Table(
        tables.tab_duration_rates(trial), {"Disease duration (months)": 0}
    )
    section.figures["fig_duration_response"] = figures.render(figures.fig_duration_response(trial))
    return section


def radiography_section(inp: Inputs) -> Iterable[Section]:
    from calcinosis.report import figures, tables
    from calcinosis.stats import radiography

    trial = inp.trial
    section = Section("radiography")
    for row in radiography.summary(trial).itertuples(index=False):
        section.add(
            {stat: getattr(row, stat) for stat in ("n", "mean", "sd", "min", "max")},
            prefix=f"rad_{row.timepoint}_{row.outcome}_",
        )
    for row in radiography.paired_tests(trial).itertuples(index=False):
        section.add(
            {
                "wilcoxon_statistic": row.statistic,
                "wilcoxon_p": row.p,
                "rank_biserial": row.rank_biserial,
                "median_change_mm": row.median_change_mm,
                "n_nonzero_change": row.n_nonzero,
            },
            prefix=f"rad_{row.outcome}_",
        )
    section.add({"rad_n_resolved": radiography.n_resolved(trial)})
    section.add({"rad_coverage_sentence": radiography.coverage_sentence(trial)})
    section.add(radiography.sentences(trial))
    section.tables["tab_radiography_summary"] = Table(tables.tab_radiography_summary(trial), 2)
    section.tables["tab_radiography_tests"] = Table(tables.tab_radiography_tests(trial), 2)
    section.tables["tab_radiography_lesions"] = Table(tables.tab_radiography_lesions(trial), 1)
    section.figures["fig_radiography_paired"] = figures.render(
        figures.fig_radiography_paired(trial)
    )
    yield section


def clinical_vs_radiographic(inp: Inputs) -> Iterable[Section]:
    """The GEE's change per visit compounded over the follow-up, beside the change of the
    radiographic mean (the paper reports both without comparing them)."""
    from calcinosis.stats import radiography

    values = inp.values
    section = Section("clinical_vs_radiographic")
    for outcome in OUTCOMES:
        intervals = int(values["n_visits"]) - 1
        pct = values[f"gee_{outcome}_pct_per_visit"]
        base, final = (values[f"rad_{t}_{outcome}_mean"] for t in ("baseline", "final"))
        section.add(
            {
                "intervals": intervals,
                "compounded_pct": 100 * ((1 + pct / 100) ** intervals - 1)
                if isinstance(pct, float)
                else None,
                "radiographic_pct": 100 * (final / base - 1)
                if isinstance(base, float) and base
                else None,
            },
            prefix=f"cvr_{outcome}_",
        )
    section.add({"cvr_sentence": radiography.comparison_sentence(values)})
    yield section


def safety_section(inp: Inputs) -> Iterable[Section]:
    from calcinosis.report import tables
    from calcinosis.stats import safety

    trial = inp.trial
    events, exposure = safety.adverse_events(trial), safety.exposure(trial)
    listing = safety.event_list(trial)
    section = Section("safety")
    section.add(
        {
            "n_adverse_events": int(events["total"].sum()),
            "n_adverse_events_related": int(events["related"].sum()),
            "n_injections": int(exposure["injections"].sum()),
            "total_dose_mg": float(exposure["total_dose_mg"].sum()),
            "exposure_sentence": safety.exposure_sentence(trial),
        }
    )
    section.add(safety.sentences(events, listing))
    section.tables["tab_adverse_events"] = Table(tables.tab_adverse_events(trial), 0)
    section.tables["tab_adverse_event_list"] = Table(listing, 0)
    section.tables["tab_exposure"] = Table(tables.tab_exposure(trial), 0)
    yield section


def sensitivity_section(inp: Inputs) -> Iterable[Section]:
    from calcinosis.report import figures, tables
    from calcinosis.stats import sensitivity

    trial = inp.trial
    grid = sensitivity.grid(trial)
    significant, estimated = sensitivity.significant_share(grid)
    section = Section("sensitivity")
    section.add(
        {
            "sens_n_analyses": len(sensitivity.distinct(grid)),
            "sens_n_estimated": estimated,
            "sens_n_significant": significant,
        }
    )
    for outcome, rows in grid.groupby("outcome"):
        section.add({f"sens_{outcome}_p_max": sensitivity.estimable(rows)["p"].max()})
    section.add(tables.sensitivity_summary(trial), prefix="sens_")
    section.add(sensitivity.sentences(trial), prefix="sens_")
    small = sensitivity.small_sample_numbers(trial)
    section.add(small, prefix="sens_")
    section.add({"small_sample_sentence": sensitivity.small_sample_sentence(small)}, prefix="sens_")
    grid_table = tables.tab_sensitivity(trial)
    section.tables["tab_sensitivity"] = Table(
        grid_table, 2, shown=tables.sensitivity_as_printed(grid_table)
    )
    section.figures["fig_sensitivity_forest"] = figures.render(
        figures.fig_sensitivity_forest(trial)
    )
    section.figures["fig_sensitivity_influence"] = figures.render(
        figures.fig_sensitivity_influence(trial)
    )
    section.add({"sens_leave_out_method": sensitivity.leave_out_method()})
    yield section


def pinned_section(inp: Inputs) -> Iterable[Section]:
    """Each conclusion of the book across the shipped ensemble, of its kind and with its
    verdict; the sub-ensembles; what the design cannot show; and, only when the data are the
    article's trial, the data beside it (chapters/ensemble.md)."""
    import pandas as pd

    from calcinosis.report import figures, tables
    from calcinosis.simulate import article, ensemble, pinned

    section = Section("pinned")
    shipped = pinned.load()
    manifest = shipped.manifest if shipped else {}
    stale = pinned.stale_message()
    section.add(
        {
            "ens_n_members": manifest.get("n_members", 0),
            "ens_n_kept": manifest.get("n_kept", 0),
            "ens_n_dropped": manifest.get("n_dropped", 0),
            "ens_agreement_pct": 100 * pinned.AGREEMENT,
            "ens_code_hash": manifest.get("code_hash", "")[:12],
            "ens_member_seconds": manifest.get("timings", {}).get("member_seconds_median", 0.0),
            "ens_warning": stale,
            "ens_status": (
                f"Warning: {stale}"
                if stale
                else "The shipped ensemble was made with the code of this book."
                if shipped
                else "No ensemble is shipped with this book: run `calcinosis ensemble`."
            ),
        }
    )
    found = article.match(inp.trial)
    data = ensemble.conclusion_values(inp.trial) if found.is_article else None
    wide = shipped.wide() if shipped else pd.DataFrame()
    verdicts = pinned.verdicts(wide, data)
    if not shipped:
        verdicts["verdict"] = "no ensemble"
    shares = pinned.sub_ensemble_shares(wide, shipped.table, data) if shipped else pd.DataFrame()
    section.add(tables.pinned_numbers(verdicts), prefix="ens_")
    section.add(pinned.sub_ensemble_numbers(shares), prefix="ens_")
    section.add(pinned.design_numbers(), prefix="ens_")
    section.add(pinned.sentences(verdicts, found), prefix="ens_")
    section.tables["tab_pinned"] = Table(
        tables.tab_pinned(verdicts), shown=tables.pinned_as_printed(verdicts)
    )
    section.tables["tab_pinned_sub_ensembles"] = Table(
        tables.tab_pinned_sub_ensembles(shares, verdicts)
    )
    section.tables["tab_ensemble_assumptions"] = Table(tables.tab_ensemble_assumptions())
    section.tables["tab_ensemble_dropped"] = Table(tables.tab_ensemble_dropped(manifest), 0)
    section.tables["tab_ensemble_kept_by_grid"] = Table(
        tables.tab_ensemble_kept_by_grid(shipped.table if shipped else pd.DataFrame()),
        {"Clinical grid (mm)": 1, "Members": 0, "Kept": 0, "Kept (%)": 0},
    )
    section.figures["fig_pinned"] = figures.render(figures.fig_pinned(verdicts))
    yield section


def power_section(inp: Inputs) -> Iterable[Section]:
    """The shipped power run (`calcinosis power`) at the planning chapter's default
    parameters: how it was made, its model, whether it still describes this code and these
    data, and its answer (a page with other parameters builds the same section for them:
    `calcinosis.report.power_report.section`)."""
    from calcinosis.report import power_report
    from calcinosis.simulate import power

    run = power.read()
    stale = _stale_sentence(power.staleness(run, inp.trial))
    yield power_report.section(run, power_report.Choice(), stale)


def _stale_sentence(reasons: list[str]) -> str:
    if not reasons:
        return ""
    return (
        "The shipped power result is stale: "
        + "; ".join(reasons)
        + ". Run `calcinosis power --out DIR` and ship DIR's manifest.json, "
        "replicates.csv.gz and assurance.csv.gz in src/calcinosis/shipped/power/."
    )


def audit_section(inp: Inputs) -> Iterable[Section]:
    from calcinosis.report import tables
    from calcinosis.simulate import audit

    trial = inp.trial
    claims = tables.tab_claims_audit(trial, inp.values)
    section = Section("audit")
    verdicts = claims["Verdict"]
    section.add(
        {
            "audit_n_claims": int(len(verdicts)),
            "audit_n_match": int((verdicts == "match").sum()),
            "audit_n_differ": int((verdicts != "match").sum()),
        }
    )
    section.add(audit.sentences(inp.values["data_provenance"], verdicts))
    section.tables["tab_claims_audit"] = Table(
        claims, {"Published": 2, "Recomputed": 4, "Recomputed, rounded as published": 2}
    )
    section.tables["tab_grim_overview"] = Table(tables.tab_grim_overview(trial))
    section.tables["tab_grim"] = Table(tables.tab_grim(trial))
    section.tables["tab_grimmer"] = Table(tables.tab_grimmer(trial))
    section.tables["tab_sd_feasibility"] = Table(tables.tab_sd_feasibility(trial), 2)
    yield section


def data_package(inp: Inputs) -> Iterable[Section]:
    from calcinosis.data import provenance
    from calcinosis.report import tables

    declared = provenance.of(inp.trial.data_dir)
    origin = Section("provenance")
    origin.add(
        {
            "data_provenance": declared.kind,
            "data_notice": declared.notice(),
            "data_footer": declared.footer(),
            "data_sentence": declared.sentence(),
        }
    )
    yield origin
    built_in = Section("built_in")
    built_in.add(declared.built_in())
    yield built_in
    section = Section("data_package")
    section.add({"dp_sentence": provenance.package_sentence(inp.trial.data_dir)})
    section.tables["tab_data_dictionary"] = Table(tables.tab_data_dictionary(inp.trial))
    yield section
    files = Section("data_files")
    files.tables["tab_data_files"] = Table(tables.tab_data_files(inp.trial), 0)
    yield files


def software(inp: Inputs) -> Iterable[Section]:
    from calcinosis.report import tables
    from calcinosis.software import short_commit

    section = Section("software")
    section.add({"commit": short_commit(), "python_version": platform.python_version()})
    section.tables["tab_versions"] = Table(tables.tab_versions(inp.trial))
    yield section


DATA_FILES = (
    "patients",
    "lesions",
    "measurements",
    "radiography",
    "adverse_events",
    "published",
    "datapackage",
)
PRODUCERS: tuple[Producer, ...] = (
    Producer("design", CLINICAL, design),
    Producer("methods", ("lesions",), methods),
    Producer("cohort", (*CLINICAL, "radiography"), cohort),
    Producer("gee", CLINICAL, gee, uses_parameters=True),
    Producer(
        "patients",
        CLINICAL,
        patient_sections,
        uses_parameters=True,
        pdf_per_patient=True,
        apart=True,
    ),
    Producer("radiography", ("patients", "lesions", "radiography"), radiography_section),
    Producer("safety", (*CLINICAL, "adverse_events"), safety_section),
    Producer("sensitivity", CLINICAL, sensitivity_section),
    Producer(
        "power",
        CLINICAL,
        power_section,
        files=tuple(
            paths.PACKAGE_DIR / "shipped" / "power" / f
            for f in ("manifest.json", "replicates.csv.gz", "assurance.csv.gz")
        ),
    ),
    Producer("data_package", DATA_FILES, data_package),
    Producer("software", (), software, records_commit=True),
    Producer("clinical_vs_radiographic", (), clinical_vs_radiographic, derived=True),
    Producer("audit", ("published",), audit_section, derived=True),
    Producer(
        "pinned",
        (*CLINICAL, "radiography", "datapackage"),
        pinned_section,
        files=(
            *(paths.ENSEMBLE_DIR / f for f in ("ensemble.parquet", "manifest.json")),
            # the planning chapter's run, whose Type I error the chapter quotes
            *(
                paths.PACKAGE_DIR / "shipped" / "power" / f
                for f in ("manifest.json", "replicates.csv")
            ),
        ),
    ),
)


def run(
    producer: Producer,
    trial: Trial,
    params: Parameters,
    values: dict | None = None,
    workers: int = 1,
    pdf: bool = True,
) -> list[Section]:
    """One producer's sections, on the view of `trial` it declared."""
    view = trial.only(producer.reads)
    return list(producer.make(Inputs(view, params, dict(values or {}), workers, pdf)))


def compute(
    trial: Trial, params: Parameters | None = None, producers: tuple[Producer, ...] = PRODUCERS
) -> dict[str, Section]:
    """Every section, in one process (a reviewer's notebook, the tests)."""
    params = params or Parameters()
    sections: dict[str, Section] = {}
    for producer in sorted(producers, key=lambda p: p.derived):
        values = all_values(sections.values()) if producer.derived else None
        for section in run(producer, trial, params, values):
            sections[section.name] = section
    return sections


def all_values(sections: Iterable[Section]) -> dict:
    """{global name: value} over `sections` (what results.json holds)."""
    out = {}
    for section in sections:
        for name, value in section.values.items():
            out[section.value_name(name)] = value
    return out


def describe(sections: Iterable[Section]) -> dict[str, dict]:
    """Per section: its digest and the global names of what it holds (sections.json)."""
    return {
        s.name: {
            "digest": s.digest(),
            "scope": s.scope,
            "values": sorted(s.value_name(n) for n in s.values),
            "tables": sorted(s.item_name(n) for n in s.tables),
            "figures": sorted(s.item_name(n) for n in s.figures),
        }
        for s in sections
    }
