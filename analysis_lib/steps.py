"""Every step of the analysis as one call that returns a :class:`~analysis_lib.results.Result`:
the library computation with the study's parameters, its formatted table or figure, and its
caption and source from the registry of outputs. A notebook step is one line,
``study.table2().save()``; no parameter is passed by hand.

:class:`Steps` is mixed into :class:`~analysis_lib.study.Study` (the data, the propensity model
and the weights); :class:`Paper` holds the steps that need only the published numbers (the
audit, and the simulation study calibrated to the published Table 1). Computations that several
steps share (the sweep, Table 2, the center models, the propensity specifications ...) are made
once per study (:meth:`Steps._memo`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .audit import TEXT_PERCENTAGES, audit_findings, audit_published, audit_summary
from .augmented import augmented_rows
from .balance import BALANCE_COLUMNS, balance_table, sample_sizes
from .cutoffs import continuous_interaction, cutoff_sweep, resolve_cutoff
from .data import MODIFIER, TREATMENT, DataError
from .descriptives import mask_small_cells, mrs_distribution, patient_flow, table1
from .effects import TABLE2_COLUMNS, table2
from .figures import (
    continuous_interaction_plot,
    love_plot,
    mrs_bars,
    patient_flow_figure,
    propensity_overlap,
    simulation_figure,
    specification_curve_figure,
    subgroup_balance_plot,
    sweep_forest,
)
from .formatting import fmt_frame
from .imputation import multiple_imputation
from .multiverse import fit_specifications, multiverse_specs, propensity_specifications, run_multiverse
from .narrative import (
    audit_summary_text,
    augmented_summary,
    center_summary,
    cluster_summary,
    cutoff_choice,
    evalue_summary,
    imputation_summary,
    multiverse_summary,
    ordinal_summary,
    resampling_summary,
    simulation_summary,
    subgroup_balance_summary,
    subgroup_weights_summary,
    variance_summary,
    weights_summary,
)
from .ordinal import ordinal_shift, ordinal_sweep
from .params import DEFAULT_PS_COVARIATES, Parameters
from .published import Published, load_published, table1_beside, table2_beside, text_results_beside
from .registry import output_named
from .resample import run_resampling
from .results import Result, Skipped
from .sensitivity import center_sensitivity, cluster_robust, compare_variances, evalues, mrs_sd
from .simulation import run_simulation_study
from .specification import weight_sensitivity
from .subgroups import SUBGROUP_WEIGHTS, subgroup_balance
from .supplement import table_footnote
from .synthetic import PAPER_SEED, TrueEffect, generate_cohort
from .tables import (
    format_audit,
    format_augmented,
    format_balance,
    format_center,
    format_center_models,
    format_cluster,
    format_continuous,
    format_cutoff_selection,
    format_evalues,
    format_findings,
    format_imputation,
    format_ordinal,
    format_propensity_specifications,
    format_resampling,
    format_sample_sizes,
    format_simulation,
    format_subgroup_balance,
    format_subgroup_weights_comparison,
    format_sweep,
    format_table1,
    format_table2,
    format_variance_comparison,
    format_weight_sensitivity,
)
from .weighting import balance_variables, compute_weights, design_matrix, fit_propensity, weight_summary, weights_table


def _kind(shown) -> str | None:
    """What ``shown`` is: a ``figure``, a ``note`` (text) or a table (``None``)."""
    return "figure" if hasattr(shown, "savefig") else "note" if isinstance(shown, str) else None


def _result(params: Parameters, name: str, shown, table: pd.DataFrame | None = None, cutoff: float | None = None,
            drawn_from: pd.DataFrame | None = None, **extra) -> Result:
    """The :class:`Result` of the registered output ``name`` (the figure, the note or the table
    of that name, after what ``shown`` is), its caption from the registry (``{cutoff}`` filled),
    followed by the ``attrs["caption_note"]`` that the step left on its table (or on
    ``drawn_from``, the table a figure draws)."""
    output = output_named(name, _kind(shown))
    caption = output.caption.format(cutoff=cutoff) if "{cutoff" in output.caption else output.caption
    note = next((t.attrs["caption_note"] for t in (table, shown, drawn_from)
                 if isinstance(t, pd.DataFrame) and "caption_note" in t.attrs), None)
    if note:
        caption = f"{caption.rstrip('.')}; {note}."
    return Result(name, output.kind, shown, table, caption, params.output_dir, footnote=table_footnote(output, params.to_dict()),
                  page_size=params.page_size, **extra)


class Memo:
    """``_memo(key, compute)``: ``compute()`` once per object and key (in its ``_cache`` dict)."""

    def _memo(self, key, compute):
        if key not in self._cache:
            self._cache[key] = compute()
        return self._cache[key]


class Steps(Memo):
    """The analysis steps of a study (mixed into :class:`~analysis_lib.study.Study`, which
    provides ``params``, ``sample``, ``data``, ``propensity``, ``weights``, ``ps``, ``cutoff``,
    ``subgroup_weights`` and ``_cache``)."""

    def _result(self, name: str, shown, table: pd.DataFrame | None = None, **extra) -> Result:
        cutoff = self.cutoff if "{cutoff" in output_named(name, _kind(shown)).caption else None
        return _result(self.params, name, shown, table, cutoff, **extra)

    @property
    def published(self) -> Published:
        """The paper's printed tables (``params.published_dir``)."""
        return self._memo("published", lambda: load_published(self.params.published_dir))

    # ------------------------------------------------------------ 01 the cohort
    def patient_flow(self) -> Result:
        """Counts of the patient flow (Supplementary Figure 1), from the flow parameters and the data."""
        flow = self._memo("flow", lambda: patient_flow(self.sample, self.params.patients_screened,
                                                        self.params.patients_icas_lvo_evt))
        return self._result("patient_flow", flow, flow)

    def patient_flow_figure(self) -> Result:
        """Supplementary Figure 1."""
        flow = self.patient_flow().table
        return self._result("supplementary_figure_1_patient_flow", patient_flow_figure(flow), drawn_from=flow)

    def table1(self) -> Result:
        """Table 1 with its tests; counts below ``min_cell_size`` masked."""
        t1 = self._memo("table1", lambda: mask_small_cells(table1(self.data), self.params.min_cell_size))
        return self._result("table1", format_table1(t1), t1)

    def table1_beside_published(self) -> Result:
        return self._result("table1_beside_published", table1_beside(self.table1().table, self.published))

    # ------------------------------------------------------------ 02 weighting and balance
    def propensity_coefficients(self) -> pd.DataFrame:
        """The propensity model's coefficients (log-odds of rescue stenting)."""
        return fmt_frame(self.propensity.coefficients.rename("log-odds of rescue stenting").to_frame(), 4)

    def patient_weights(self) -> Result:
        """Patient-level propensity and weight (``private/weights.csv``, never shared); shows the
        distribution of the weights by arm."""
        summary = fmt_frame(weight_summary(self.weights, self.data[TREATMENT]), {"sum": 1})
        return self._result("weights", summary, weights_table(self.data, self.propensity, self.weights))

    def balance(self) -> Result:
        """Supplementary Table 1: balance of the propensity model's variables (:func:`covariate_balance`)."""
        full = self._memo("balance", lambda: covariate_balance(self))
        return self._result("balance", format_balance(full), full[BALANCE_COLUMNS], value=full)

    def sample_sizes(self) -> Result:
        """Effective sample size per arm, before and after weighting."""
        sizes = sample_sizes(self.data, self.weights)
        return self._result("effective_sample_size", format_sample_sizes(sizes), sizes)

    def love_plot(self) -> Result:
        return self._result("love_plot", love_plot(self.balance().table))

    def propensity_overlap(self) -> Result:
        figure = propensity_overlap(self.propensity.propensity, self.data[TREATMENT], self.weights)
        return self._result("propensity_overlap", figure)

    def subgroup_balance(self) -> Result:
        """Balance within the stenosis subgroups, every cutoff, both weightings (:func:`subgroup_balance_of`)."""
        table = self._memo("subgroup_balance", lambda: subgroup_balance_of(self, self.cutoff))
        return self._result("subgroup_balance", format_subgroup_balance(table, self.cutoff), table)

    def subgroup_balance_plot(self) -> Result:
        figure = subgroup_balance_plot(self.subgroup_balance().table, self.cutoff)
        return self._result("subgroup_balance", figure)

    def subgroup_balance_summary(self) -> Result:
        text = subgroup_balance_summary(self.subgroup_balance().table, self.cutoff, self.params.subgroup_weights)
        return self._result("subgroup_balance_summary", text)

    # ------------------------------------------------------------ 03 cutoffs
    def sweep(self) -> Result:
        """Supplementary Table 2: the cutoff sweep (:func:`sweep_of`)."""
        def compute():  # the paper's mean differences, then the common ORs of the same subgroups
            p = self.params
            odds = ordinal_sweep(self.data, self.weights, p.cutoffs(), p.conf_level, ps=self.ps,
                                 by_cutoff=sweep_weights(self))
            return sweep_of(self).merge(odds, on="cutoff", how="left", validate="one_to_one")

        table = self._memo("sweep", compute)
        return self._result("cutoff_sweep", format_sweep(table), table)

    def sweep_forest(self) -> Result:
        return self._result("cutoff_sweep_forest", sweep_forest(self.sweep().table, self.cutoff))

    def cutoff_choice(self) -> Result:
        """The cutoff the sweep selects and the cutoff Table 2, Figure 1 and Supplementary Table 3
        use, reconciled in words."""
        return self._result("cutoff_choice", cutoff_choice(self.sweep().table, self.cutoff, self.params.cutoff is not None))

    def continuous_interaction(self) -> Result:
        """The interaction per 1 % stenosis, the crossing point and the band (with their CSVs)."""
        p = self.params
        fit = self._memo("continuous", lambda: continuous_interaction(self.data, self.weights, p.hc_type,
                                                                      p.conf_level, ps=self.ps))
        return self._result("continuous_interaction", format_continuous(fit.summary, fit.crossing), fit.summary,
                            companions=(("crossing_point", fit.crossing), ("continuous_band", fit.band)), value=fit)

    def continuous_interaction_plot(self) -> Result:
        """Supplementary Figure 2."""
        fit = self.continuous_interaction().value
        figure = continuous_interaction_plot(fit.band, fit.summary["crossing_point"].iloc[0], self.cutoff,
                                             self.data[MODIFIER], self.data[TREATMENT])
        return self._result("supplementary_figure_2_continuous_interaction", figure)

    def resampling(self) -> Result:
        """The whole selection procedure under the bootstrap and the selection-adjusted test (a
        tqdm progress bar; ``bootstrap_replicates`` 0 skips it)."""
        result = self._memo("resampling", lambda: run_resampling(self))
        tables = () if result is None else tuple((k, v) for k, v in result.tables().items() if k != "cutoff_selection")
        return self._result("resampling_summary", format_resampling(result, self.sweep().table), companions=tables,
                            value=result)

    def cutoff_selection(self) -> Result | Skipped:
        result = self.resampling().value
        if result is None:
            return Skipped("Resampling skipped (bootstrap_replicates = 0).")
        return self._result("cutoff_selection", format_cutoff_selection(result.cutoff_selection),
                            result.cutoff_selection)

    def resampling_summary(self) -> Result:
        return self._result("resampling_summary", resampling_summary(self.resampling().value, self.sweep().table))

    def text_results_beside_published(self) -> Result:
        selected = self.sweep().table.query("selected")
        summary = self.continuous_interaction().table
        arms = self.sample.arm_counts()
        beside = text_results_beside(self.published, {
            "optimal_cutoff_pct": float(selected["cutoff"].iloc[0]) if len(selected) else None,
            "difference_of_ates_at_optimal_cutoff": float(selected["difference"].iloc[0]) if len(selected) else None,
            "continuous_interaction_beta_per_pct": float(summary["interaction_beta"].iloc[0]),
            "crossing_point_pct": float(summary["crossing_point"].iloc[0]),
            "patients_analysed": self.sample.n,
            "patients_mt_rs": arms["mt_rs"],
            "patients_mt_only": arms["mt_only"],
            "centers": int(self.data["center"].nunique()),
            **regimen_percentages(self.data),
        })
        return self._result("text_results_beside_published", beside)

    # ------------------------------------------------------------ 04 outcomes
    def table2(self) -> Result:
        """Table 2 at the study's cutoff (:func:`table2_of`)."""
        table = self._memo("table2", lambda: table2_of(self, self.cutoff))
        return self._result("table2", format_table2(table, self.cutoff), table)

    def table2_beside_published(self) -> Result:
        return self._result("table2_beside_published", table2_beside(self.table2().table, self.published, self.cutoff))

    def figure_1(self) -> Result:
        """Figure 1: the weighted 90-day mRS distribution (with its CSV)."""
        distribution = mrs_distribution(self.data, self.weights, self.cutoff,
                                        subgroup_weights=self.subgroup_weights(self.cutoff).weights)
        return self._result("figure_1_mrs_distribution", mrs_bars(distribution, self.cutoff),
                            companions=(("mrs_distribution", distribution),))

    def ordinal_shift(self) -> Result:
        """The common odds ratio of a lower 90-day mRS (proportional odds, ANALYSIS.md §13)."""
        p = self.params
        table = self._memo("ordinal", lambda: ordinal_shift(self.data, self.weights, self.cutoff, p.conf_level,
                                                            ps=self.ps, **self.subgroup_options(self.cutoff)))
        return self._result("ordinal_shift", format_ordinal(table, self.cutoff), table)

    def ordinal_summary(self) -> Result:
        return self._result("ordinal_summary", ordinal_summary(self.ordinal_shift().table, self.cutoff))

    def augmented(self) -> Result:
        """The augmented (doubly robust) estimate of every outcome, outcome models on the
        propensity model's variables (ANALYSIS.md §14)."""
        p = self.params

        def compute():
            design = design_matrix(self.data, p.ps_covariates, p.ps_formula)
            Z = design.to_numpy(float)
            start = self.propensity.coefficients.reindex(design.columns).to_numpy(float)  # refits start there
            return augmented_rows(self.data, Z, Z, p.estimand, p.conf_level, start=start)

        table = self._memo("augmented", compute)
        return self._result("augmented", format_augmented(table, self._overall_table2()), table)

    def augmented_summary(self) -> Result:
        return self._result("augmented_summary", augmented_summary(self.augmented().table, self._overall_table2()))

    def subgroup_weights_comparison(self) -> Result:
        """Both weightings of the subgroup rows side by side (:func:`subgroup_weights_comparison`)."""
        table = self._memo("comparison", lambda: subgroup_weights_comparison(self, self.cutoff))
        return self._result("subgroup_weights_comparison", format_subgroup_weights_comparison(table, self.cutoff),
                            table)

    def subgroup_weights_summary(self) -> Result:
        return self._result("subgroup_weights_summary", subgroup_weights_summary(self.subgroup_weights_comparison().table))

    # ------------------------------------------------------------ 05 sensitivity
    def _center(self):
        subgroup = self.subgroup_weights(self.cutoff).weights
        return self._memo("center", lambda: center_sensitivity(self.data, self.weights, self.cutoff,
                                                               conf_level=self.params.conf_level,
                                                               subgroup_weights=subgroup))

    def center_sensitivity(self) -> Result:
        """Supplementary Table 3: Table 2 with a random intercept for center."""
        center = self._center()
        return self._result("center_sensitivity", format_center(center.table, self.table2().table, self.cutoff),
                            center.table)

    def center_models(self) -> Result:
        models = self._center().models
        return self._result("center_models", format_center_models(models), models)

    def center_summary(self) -> Result:
        return self._result("center_summary", center_summary(self._center().table, self.table2().table, self.cutoff))

    def cluster_robust(self) -> Result:
        """The weighted rows with standard errors clustered by center."""
        subgroup = self.subgroup_weights(self.cutoff).weights
        table = self._memo("cluster", lambda: cluster_robust(self.data, self.weights, self.cutoff,
                                                             conf_level=self.params.conf_level,
                                                             subgroup_weights=subgroup))
        return self._result("cluster_robust", format_cluster(table, self.table2().table, self.cutoff), table)

    def cluster_summary(self) -> Result:
        return self._result("cluster_summary", cluster_summary(self.cluster_robust().table, self.table2().table))

    def evalues(self) -> Result:
        table = self._memo("evalues", lambda: evalues(self.table2().table, mrs_sd(self.data)))
        return self._result("evalues", format_evalues(table, self.cutoff), table)

    def evalue_summary(self) -> Result:
        return self._result("evalue_summary", evalue_summary(self.evalues().table, self.cutoff))

    def variance_comparison(self) -> Result | Skipped:
        """The weights as known beside M-estimation (not for CBPS: its equations are not stacked)."""
        table = self._memo("variances", lambda: compare_variances(self, self.cutoff))
        if table is None:
            return Skipped("CBPS propensity model: its estimating equations are not stacked; no M-estimation "
                           "comparison.")
        return self._result("variance_comparison", format_variance_comparison(table, self.cutoff), table)

    def variance_summary(self) -> Result | Skipped:
        comparison = self.variance_comparison()
        if isinstance(comparison, Skipped):
            return comparison
        return self._result("variance_summary", variance_summary(comparison.table))

    # ------------------------------------------------------------ 06 specification
    def _fits(self):
        p = self.params
        specs = multiverse_specs(p.ps_covariates, p.ps_formula, p.ps_method, p.multiverse_formula)
        return self._memo("fits", lambda: fit_specifications(self.data, specs, p.estimand, primary=self.propensity))

    def propensity_specifications(self) -> Result:
        """The primary, richer-formula and CBPS propensity models side by side."""
        p = self.params
        table = propensity_specifications(self._fits(), p.estimand, self.cutoff, p.hc_type, p.conf_level)
        return self._result("propensity_specifications", format_propensity_specifications(table), table)

    def weight_sensitivity(self) -> Result:
        p = self.params
        table = self._memo("weightings", lambda: weight_sensitivity(self.data, self.propensity, self.cutoff,
                                                                    p.hc_type, p.conf_level, variance=p.variance))
        return self._result("weight_sensitivity", format_weight_sensitivity(table, self.cutoff), table)

    def weights_summary(self) -> Result:
        return self._result("weights_summary", weights_summary(self.weight_sensitivity().table, self.cutoff))

    def _overall_table2(self) -> pd.DataFrame:
        """Table 2 with the overall model's weights in every row: what the imputation, which
        refits the overall model in each data set, is compared with."""
        p = self.params
        return self._memo("table2_overall", lambda: table2(self.data, self.weights, self.cutoff, p.hc_type,
                                                           p.conf_level, ps=self.ps))

    def multiple_imputation(self) -> Result | Skipped:
        """Multiple imputation of the missing covariates (Rubin's rules) beside the complete cases."""
        p = self.params
        if p.mi_imputations == 0:
            return Skipped("Multiple imputation skipped (mi_imputations = 0).")
        mi = self._memo("mi", lambda: multiple_imputation(
            self.cohort, p.ps_covariates, self.cutoff, m=p.mi_imputations, seed=p.seed, ps_formula=p.ps_formula,
            estimand=p.estimand, hc_type=p.hc_type, conf_level=p.conf_level))
        return self._result("mi_sensitivity", format_imputation(mi.table, self._overall_table2(), self.cutoff),
                            mi.table, value=mi)

    def imputation_summary(self) -> Result | Skipped:
        mi = self.multiple_imputation()
        if isinstance(mi, Skipped):
            return mi
        excluded = self.sample.n_input - self.sample.n
        return self._result("imputation_summary", imputation_summary(mi.table, self._overall_table2(), excluded))

    def specification_curve(self) -> Result:
        """The multiverse of analysis choices as a specification curve (with its CSV)."""
        curve = self._memo("curve", lambda: run_multiverse(self._fits(), self.params, self.cutoff))
        return self._result("specification_curve", specification_curve_figure(curve),
                            companions=(("specification_curve", curve),), value=curve)

    def multiverse_summary(self) -> Result:
        return self._result("multiverse_summary", multiverse_summary(self.specification_curve().value))


def regimen_percentages(df: pd.DataFrame) -> dict[str, float]:
    """The regimen percentages the Results give (audit.TEXT_PERCENTAGES), of the MT+RS patients."""
    regimens = df.loc[df[TREATMENT] == 1, "antiplatelet_regimen"] if "antiplatelet_regimen" in df else pd.Series()
    if not len(regimens):
        return {}
    return {q: 100.0 * float(np.mean([isinstance(v, str) and chosen(v) for v in regimens]))
            for q, chosen in TEXT_PERCENTAGES.items()}


@dataclass(frozen=True)
class Paper(Memo):
    """The steps that need only the published numbers: the audit of the paper's printed numbers
    and the simulation study calibrated to its Table 1."""

    params: Parameters = field(repr=False)
    published: Published = field(repr=False)
    _cache: dict = field(default_factory=dict, repr=False, compare=False)

    def audit(self) -> Result:
        """Every printed number checked against the others (:func:`~analysis_lib.audit.audit_published`)."""
        table = self._memo("audit", lambda: audit_published(self.params.published_dir, self._stenosis_reference()))
        return _result(self.params, "published_audit", format_audit(table), table)

    def _stenosis_reference(self):
        """Stenosis and overlap weights of a cohort ten times the paper's, reconstructed from its
        Table 1 (:func:`~analysis_lib.synthetic.generate_cohort`: per-arm stenosis quartiles and
        the treatment relations of Table 1; the propensity model of the paper's covariates)."""
        def compute():
            t1 = self.published.table1
            if not len(t1) or "stenosis_pct" not in set(t1["variable"]):
                return None
            cohort = generate_cohort(t1, seed=PAPER_SEED, n_mt_rs=1720, n_mt_only=1310, effect=TrueEffect("none")).data
            model = fit_propensity(cohort, DEFAULT_PS_COVARIATES)
            return (cohort[MODIFIER].to_numpy(float),
                    compute_weights(model.propensity, cohort[TREATMENT].to_numpy(), "ATO"))

        return self._memo("stenosis_reference", compute)

    def audit_findings(self) -> Result:
        """The findings a referee would write to the authors, most severe first, with counts."""
        table = self._memo("findings", lambda: audit_findings(self.audit().table, self.params.published_dir))
        return _result(self.params, "audit_findings", format_findings(table), table)

    def audit_counts(self) -> pd.DataFrame:
        """Counts of the checks by source and status."""
        return audit_summary(self.audit().table)

    def audit_summary(self) -> Result:
        return _result(self.params, "audit_summary", audit_summary_text(self.audit().table,
                                                                        self.audit_findings().table))

    def audit_problems(self) -> Result:
        """The inconsistent and explained numbers."""
        return _result(self.params, "published_audit_problems", format_audit(self.audit().table,
                                                                             ("inconsistent", "explained")))

    def audit_checks(self, statuses: tuple[str, ...]) -> pd.DataFrame:
        """The checks with these statuses, formatted."""
        return format_audit(self.audit().table, statuses)

    def simulation(self) -> Result | Skipped:
        """The simulation study (a tqdm progress bar; ``simulation_replicates`` 0 skips it)."""
        sim = self._memo("simulation", lambda: run_simulation_study(self.params, self.published.table1))
        if sim is None:
            return Skipped("Simulation skipped (simulation_replicates = 0).")
        return _result(self.params, "simulation_summary", format_simulation(sim.summary), sim.summary,
                       companions=(("simulation_replicates", sim.replicates),), value=sim)

    def simulation_figure(self) -> Result | Skipped:
        simulation = self.simulation()
        if isinstance(simulation, Skipped):
            return simulation
        return _result(self.params, "simulation_rejection_rates", simulation_figure(simulation.table))

    def simulation_summary(self) -> Result:
        simulation = self.simulation()
        text = ("The simulation was skipped." if isinstance(simulation, Skipped)
                else simulation_summary(simulation.table))
        return _result(self.params, "simulation_summary", text)


def load_paper(params: Parameters) -> Paper:
    """The published numbers of ``params.published_dir`` with the parameters."""
    return Paper(params, load_published(params.published_dir))


# ------------------------------------------------------------ the study's computations with its parameters
def covariate_balance(study) -> pd.DataFrame:
    """Balance (Supplementary Table 1) on the variables of the propensity model: the covariates,
    or the terms of ``ps_formula`` as cobalt reports them."""
    terms = balance_variables(study.data, study.params.ps_covariates, study.params.ps_formula)
    frame = pd.concat([terms, study.data[[TREATMENT]]], axis=1)
    return balance_table(frame, list(terms.columns), study.weights, estimand=study.params.estimand,
                         binary=study.params.smd_binary)


def analysis_cutoff(study) -> float:
    """The stenosis cutoff of Table 2 and Figure 1: ``params.cutoff`` when fixed, otherwise the
    cutoff selected by the sweep (ANALYSIS.md §5)."""
    p = study.params
    if p.cutoff is not None:
        return float(p.cutoff)
    sweep = cutoff_sweep(study.data, study.weights, p.cutoffs(), p.min_arm_size,
                         hc_type=p.hc_type, conf_level=p.conf_level, by_cutoff=sweep_weights(study))
    return resolve_cutoff(None, sweep, p.min_arm_size)


def sweep_weights(study, method: str | None = None) -> dict | None:
    """What :func:`~analysis_lib.cutoffs.cutoff_sweep` needs under ``within`` subgroup weights:
    for each cutoff, the weights (``None`` when not estimable), their M-estimation and the
    note; ``None`` under ``overall`` (one set of weights for every cutoff)."""
    if (method or study.params.subgroup_weights) == "overall":
        return None
    out = {}
    for cutoff in study.params.cutoffs():
        weighting = study.subgroup_weights(cutoff, method)
        out[float(cutoff)] = (weighting.weights, study.subgroup_ps(weighting), weighting.note)
    return out


def sweep_of(study):
    """The cutoff sweep of the study (Supplementary Table 2) with its parameters: weights of
    ``params.subgroup_weights``, variance of ``params.variance``."""
    p = study.params
    return cutoff_sweep(study.data, study.weights, p.cutoffs(), p.min_arm_size, hc_type=p.hc_type,
                        conf_level=p.conf_level, ps=study.ps, by_cutoff=sweep_weights(study))


def table2_of(study, cutoff: float, full: bool = False):
    """Table 2 of the study at ``cutoff``: overall rows from the overall model, subgroup rows
    from ``params.subgroup_weights``, variance from ``params.variance``."""
    p = study.params
    return table2(study.data, study.weights, cutoff, p.hc_type, p.conf_level, ps=study.ps, full=full,
                  **study.subgroup_options(cutoff))


def subgroup_balance_of(study, cutoff: float) -> pd.DataFrame:
    """Balance within the stenosis subgroups (``tables/subgroup_balance.csv``) at the cutoff of
    Table 2 and at every cutoff of the sweep, under both weightings, on the variables of the
    propensity model (ANALYSIS.md §11)."""
    p = study.params
    terms = balance_variables(study.data, p.ps_covariates, p.ps_formula)
    cutoffs = sorted(set(p.cutoffs()) | {float(cutoff)})
    weightings = [study.subgroup_weights(c, method) for c in cutoffs for method in SUBGROUP_WEIGHTS]
    return subgroup_balance(terms, study.data[TREATMENT].to_numpy(float), study.data[MODIFIER].to_numpy(float),
                            weightings, p.estimand, p.smd_binary)


def subgroup_weights_comparison(study, cutoff: float) -> pd.DataFrame:
    """Every weighted subgroup row of Table 2 under both weightings side by side: weights of the
    overall propensity model (the paper) and of one model per subgroup (ANALYSIS.md §11), with the
    variance of ``params.variance`` (``tables/subgroup_weights_comparison.csv``)."""
    p = study.params
    parts = []
    for method in SUBGROUP_WEIGHTS:
        weighting = study.subgroup_weights(cutoff, method)
        if not weighting.estimable:
            rows = table2(study.data, study.weights, cutoff, p.hc_type, p.conf_level)
        elif method == p.subgroup_weights and cutoff == study.cutoff:
            rows = study.table2().table  # the same call (table2_of), computed once
        else:
            rows = table2(study.data, study.weights, cutoff, p.hc_type, p.conf_level, ps=study.ps,
                          **study.subgroup_options(cutoff, method))
        rows = rows[(rows["analysis"] == "iptw") & (rows["subgroup"] != "overall")]
        if not weighting.estimable:
            rows = rows.assign(estimate=float("nan"), ci_lower=float("nan"), ci_upper=float("nan"),
                               p_value=float("nan"), p_interaction=float("nan"), note=weighting.note)
        parts.append(rows.drop(columns="analysis").assign(weights=method))
    out = pd.concat(parts, ignore_index=True)
    columns = ["outcome", "subgroup", "weights"] + [c for c in TABLE2_COLUMNS if c not in ("outcome", "subgroup",
                                                                                            "analysis")]
    order = {o: i for i, o in enumerate(dict.fromkeys(out["outcome"]))}
    out = out.sort_values(["outcome", "subgroup", "weights"], key=lambda c: c.map(order) if c.name == "outcome"
                          else c.map({"low": 0, "high": 1, "overall": 0, "within": 1}), kind="stable")
    return out[columns].reset_index(drop=True)


def check_subgroup_weights(study, cutoff: float) -> None:
    """Under ``within`` subgroup weights, the cutoff of Table 2 must carry a model in each
    subgroup: otherwise one line naming the subgroup and the cause (never a fall-back)."""
    if study.params.subgroup_weights != "within":
        return
    weighting = study.subgroup_weights(cutoff)
    if not weighting.estimable:
        raise DataError([f"parameter 'subgroup_weights' within, cutoff {cutoff:g} of Table 2: {weighting.note}; "
                         "choose another cutoff or subgroup_weights overall"])
