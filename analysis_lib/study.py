"""The analysis sample with its propensity model and weights: the common start of every
notebook after the cohort description (ANALYSIS.md §1-§2)."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import pandas as pd

from .balance import BALANCE_COLUMNS, balance_table, sample_sizes
from .cutoffs import cutoff_sweep, resolve_cutoff
from .data import MODIFIER, TREATMENT, AnalysisSample, DataError, analysis_sample, load_cohort
from .effects import TABLE2_COLUMNS, table2
from .mestimation import propensity_estimation
from .params import Parameters
from .results import TableResult
from .subgroups import SUBGROUP_WEIGHTS, overall_weights, subgroup_balance, within_weights
from .tables import (
    format_balance,
    format_sample_sizes,
    format_subgroup_balance,
    format_subgroup_weights_comparison,
    format_sweep,
    format_table2,
)
from .weighting import PropensityModel, balance_variables, compute_weights, fit_propensity, ps_variables


@dataclass(frozen=True)
class Study:
    """Validated cohort, analysis sample, propensity model and normalised weights."""

    params: Parameters = field(repr=False)
    cohort: pd.DataFrame = field(repr=False)
    sample: AnalysisSample
    propensity: PropensityModel
    weights: np.ndarray = field(repr=False)
    _subgroup_cache: dict = field(default_factory=dict, repr=False, compare=False)

    @property
    def data(self) -> pd.DataFrame:
        """The analysis-sample rows (aligned with ``weights``)."""
        return self.sample.data

    @cached_property
    def ps(self):
        """What the M-estimation variance needs of the propensity model
        (:func:`~analysis_lib.mestimation.propensity_estimation`) when ``params.variance`` is
        ``m_estimation``; ``None`` for the paper's robust variance. Passed as ``ps=`` to the
        effect models, it switches their covariance."""
        if self.params.variance != "m_estimation":
            return None
        return self.ps_estimation()

    def ps_estimation(self):
        """:func:`~analysis_lib.mestimation.propensity_estimation` of this study, whatever
        ``params.variance`` says (for the side-by-side comparison)."""
        return propensity_estimation(self.data, self.propensity, self.params.estimand)

    def subgroup_weights(self, cutoff: float, method: str | None = None):
        """:class:`~analysis_lib.subgroups.SubgroupWeights` of the subgroup rows at ``cutoff``:
        the overall model's weights, or one propensity model per subgroup
        (``params.subgroup_weights``, or ``method``). Computed once per cutoff."""
        method = method or self.params.subgroup_weights
        key = (float(cutoff), method)
        if key not in self._subgroup_cache:
            p = self.params
            self._subgroup_cache[key] = (
                overall_weights(self.weights, self.propensity.propensity, cutoff, p.estimand) if method == "overall"
                else within_weights(self.data, cutoff, p.ps_covariates, p.ps_formula, p.ps_method, p.estimand))
        return self._subgroup_cache[key]

    def subgroup_ps(self, weighting, variance: str | None = None):
        """The M-estimation of the propensity model behind ``weighting`` (a
        :class:`~analysis_lib.subgroups.SubgroupWeights`) when the variance is ``m_estimation``
        (``params.variance`` or ``variance``), else ``None``."""
        if (variance or self.params.variance) != "m_estimation" or not weighting.estimable:
            return None
        if weighting.method == "overall":
            return self.ps_estimation() if variance else self.ps
        return weighting.estimation(self.data[TREATMENT].to_numpy(float))

    # ------------------------------------------------------------ steps as result objects
    @cached_property
    def cutoff(self) -> float:
        """The stenosis cutoff of Table 2 and Figure 1 (:func:`analysis_cutoff`)."""
        return analysis_cutoff(self)

    def _result(self, name: str, table: pd.DataFrame, formatted: pd.DataFrame, caption: str) -> TableResult:
        return TableResult(name, table, formatted, caption, self.params.output_dir)

    def balance(self) -> TableResult:
        """Supplementary Table 1: balance of the propensity model's variables (:func:`covariate_balance`)."""
        full = covariate_balance(self)
        return self._result("balance", full[BALANCE_COLUMNS], format_balance(full),
                            "Supplementary Table 1. Covariate balance before and after weighting.")

    def sample_sizes(self) -> TableResult:
        """Effective sample size per arm, before and after weighting."""
        sizes = sample_sizes(self.data, self.weights)
        return self._result("effective_sample_size", sizes, format_sample_sizes(sizes),
                            "Effective sample size per arm.")

    def subgroup_balance(self) -> TableResult:
        """Balance within the stenosis subgroups, every cutoff, both weightings (:func:`subgroup_balance_of`)."""
        table = subgroup_balance_of(self, self.cutoff)
        return self._result("subgroup_balance", table, format_subgroup_balance(table, self.cutoff),
                            f"Covariate balance within the stenosis subgroups at {self.cutoff:g}%.")

    def sweep(self) -> TableResult:
        """Supplementary Table 2: the cutoff sweep (:func:`sweep_of`)."""
        table = sweep_of(self)
        return self._result("cutoff_sweep", table, format_sweep(table), "Supplementary Table 2. Treatment effect "
                            "on the 90-day mRS below and above each stenosis cutoff.")

    def table2(self) -> TableResult:
        """Table 2 at the study's cutoff (:func:`table2_of`)."""
        table = table2_of(self, self.cutoff)
        return self._result("table2", table, format_table2(table, self.cutoff),
                            "Table 2. Effect of rescue stenting on outcomes.")

    def subgroup_weights_comparison(self) -> TableResult:
        """Both weightings of the subgroup rows side by side (:func:`subgroup_weights_comparison`)."""
        table = subgroup_weights_comparison(self, self.cutoff)
        return self._result("subgroup_weights_comparison", table,
                            format_subgroup_weights_comparison(table, self.cutoff),
                            "Subgroup effects with the overall model's weights and with one propensity model per "
                            "subgroup.")

    def subgroup_options(self, cutoff: float, method: str | None = None, variance: str | None = None) -> dict:
        """Keyword arguments of the effect functions for the subgroup rows at ``cutoff``."""
        weighting = self.subgroup_weights(cutoff, method)
        return {"subgroup_weights": weighting.weights, "subgroup_ps": self.subgroup_ps(weighting, variance)}


def load_sample(params: Parameters, cohort: pd.DataFrame | None = None) -> AnalysisSample:
    """The complete-case analysis sample of ``params.data_path`` (or of a validated ``cohort``),
    complete on the treatment, the stenosis and the propensity variables."""
    cohort = load_cohort(params.data_path, params.data_cache, params.column_map) if cohort is None else cohort
    return analysis_sample(cohort, ps_variables(params.ps_covariates, params.ps_formula))


def load_study(params: Parameters, cohort: pd.DataFrame | None = None) -> Study:
    """Read and validate ``params.data_path`` (or take an already validated ``cohort``), build the
    complete-case sample on the propensity variables, fit the propensity model
    (``ps_covariates`` or ``ps_formula``; ``ps_method``) and compute ``params.estimand`` weights
    normalised to mean 1."""
    cohort = load_cohort(params.data_path, params.data_cache, params.column_map) if cohort is None else cohort
    sample = load_sample(params, cohort)
    check_design(sample, params)
    model = fit_propensity(sample.data, params.ps_covariates, formula=params.ps_formula,
                           method=params.ps_method, estimand=params.estimand)
    weights = compute_weights(model.propensity, sample.data[TREATMENT].to_numpy(), params.estimand)
    return Study(params=params, cohort=cohort, sample=sample, propensity=model, weights=weights)


def check_design(sample: AnalysisSample, params: Parameters) -> None:
    """Refuse, before any analysis, data that cannot answer the paper's question, every reason
    in one line (:class:`~analysis_lib.data.DataError`): the flow-diagram counts below the
    registry file, no patient analysed, a stenosis degree that does not vary, or a 90-day mRS
    (the primary outcome) that no arm can support: the continuous model ``mrs ~ t * stenosis``
    needs, in each arm, known outcomes at two or more stenosis degrees."""
    problems = []
    if params.patients_icas_lvo_evt < sample.n_input:
        problems.append(f"parameter 'patients_icas_lvo_evt': {params.patients_icas_lvo_evt} is fewer than the "
                        f"{sample.n_input} patients of the registry file (the flow diagram counts them among it)")
    d = sample.data
    if d.empty:
        problems.append(f"analysis sample: none of the {sample.n_input} patients is complete on the treatment, "
                        "the stenosis and the propensity covariates (see validate)")
        raise DataError(problems)
    stenosis = d[MODIFIER]
    if stenosis.nunique() < 2:
        problems.append(f"{MODIFIER}: all {len(d)} patients of the analysis sample have {stenosis.iloc[0]:g} % "
                        "stenosis; effect modification by the stenosis degree needs varying degrees")
    known = d["mrs_90d"].notna()
    if not known.any():
        problems.append(f"mrs_90d: none of the {len(d)} patients of the analysis sample has a known 90-day mRS, "
                        "the primary outcome (Table 2, the cutoff sweep and the continuous model need it)")
    else:
        for arm, label in ((1, "MT+RS"), (0, "MT only")):
            levels = stenosis[known & (d[TREATMENT] == arm)].nunique()
            if levels < 2 and stenosis.nunique() >= 2:
                problems.append(f"mrs_90d: the {label} arm has a known 90-day mRS at {levels} stenosis degree(s); "
                                "the continuous model needs two or more in each arm")
    if problems:
        raise DataError(problems)


def covariate_balance(study: Study) -> pd.DataFrame:
    """Balance (Supplementary Table 1) on the variables of the propensity model: the covariates,
    or the terms of ``ps_formula`` as cobalt reports them."""
    terms = balance_variables(study.data, study.params.ps_covariates, study.params.ps_formula)
    frame = pd.concat([terms, study.data[[TREATMENT]]], axis=1)
    return balance_table(frame, list(terms.columns), study.weights, estimand=study.params.estimand,
                         binary=study.params.smd_binary)


def analysis_cutoff(study: Study) -> float:
    """The stenosis cutoff of Table 2 and Figure 1: ``params.cutoff`` when fixed, otherwise the
    cutoff selected by the sweep (ANALYSIS.md §5)."""
    p = study.params
    if p.cutoff is not None:
        return float(p.cutoff)
    sweep = cutoff_sweep(study.data, study.weights, p.cutoffs(), p.min_arm_size,
                         hc_type=p.hc_type, conf_level=p.conf_level, by_cutoff=sweep_weights(study))
    return resolve_cutoff(None, sweep, p.min_arm_size)


def sweep_weights(study: Study, method: str | None = None) -> dict | None:
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


def sweep_of(study: Study):
    """The cutoff sweep of the study (Supplementary Table 2) with its parameters: weights of
    ``params.subgroup_weights``, variance of ``params.variance``."""
    p = study.params
    return cutoff_sweep(study.data, study.weights, p.cutoffs(), p.min_arm_size, hc_type=p.hc_type,
                        conf_level=p.conf_level, ps=study.ps, by_cutoff=sweep_weights(study))


def table2_of(study: Study, cutoff: float, full: bool = False):
    """Table 2 of the study at ``cutoff``: overall rows from the overall model, subgroup rows
    from ``params.subgroup_weights``, variance from ``params.variance``."""
    p = study.params
    return table2(study.data, study.weights, cutoff, p.hc_type, p.conf_level, ps=study.ps, full=full,
                  **study.subgroup_options(cutoff))


def subgroup_balance_of(study: Study, cutoff: float) -> pd.DataFrame:
    """Balance within the stenosis subgroups (``tables/subgroup_balance.csv``) at the cutoff of
    Table 2 and at every cutoff of the sweep, under both weightings, on the variables of the
    propensity model (ANALYSIS.md §11)."""
    p = study.params
    terms = balance_variables(study.data, p.ps_covariates, p.ps_formula)
    cutoffs = sorted(set(p.cutoffs()) | {float(cutoff)})
    weightings = [study.subgroup_weights(c, method) for c in cutoffs for method in SUBGROUP_WEIGHTS]
    return subgroup_balance(terms, study.data[TREATMENT].to_numpy(float), study.data[MODIFIER].to_numpy(float),
                            weightings, p.estimand, p.smd_binary)


def subgroup_weights_comparison(study: Study, cutoff: float) -> pd.DataFrame:
    """Every weighted subgroup row of Table 2 under both weightings side by side: weights of the
    overall propensity model (the paper) and of one model per subgroup (ANALYSIS.md §11), with the
    variance of ``params.variance`` (``tables/subgroup_weights_comparison.csv``)."""
    p = study.params
    parts = []
    for method in SUBGROUP_WEIGHTS:
        weighting = study.subgroup_weights(cutoff, method)
        if weighting.estimable:
            rows = table2(study.data, study.weights, cutoff, p.hc_type, p.conf_level, ps=study.ps,
                          **study.subgroup_options(cutoff, method))
            rows = rows[(rows["analysis"] == "iptw") & (rows["subgroup"] != "overall")]
        else:
            rows = table2(study.data, study.weights, cutoff, p.hc_type, p.conf_level)
            rows = rows[(rows["analysis"] == "iptw") & (rows["subgroup"] != "overall")]
            rows = rows.assign(estimate=np.nan, ci_lower=np.nan, ci_upper=np.nan, p_value=np.nan,
                               p_interaction=np.nan, note=weighting.note)
        parts.append(rows.drop(columns="analysis").assign(weights=method))
    out = pd.concat(parts, ignore_index=True)
    columns = ["outcome", "subgroup", "weights"] + [c for c in TABLE2_COLUMNS if c not in ("outcome", "subgroup",
                                                                                            "analysis")]
    order = {o: i for i, o in enumerate(dict.fromkeys(out["outcome"]))}
    out = out.sort_values(["outcome", "subgroup", "weights"], key=lambda c: c.map(order) if c.name == "outcome"
                          else c.map({"low": 0, "high": 1, "overall": 0, "within": 1}), kind="stable")
    return out[columns].reset_index(drop=True)


def check_subgroup_weights(study: Study, cutoff: float) -> None:
    """Under ``within`` subgroup weights, the cutoff of Table 2 must carry a model in each
    subgroup: otherwise one line naming the subgroup and the cause (never a fall-back)."""
    if study.params.subgroup_weights != "within":
        return
    weighting = study.subgroup_weights(cutoff)
    if not weighting.estimable:
        raise DataError([f"parameter 'subgroup_weights' within, cutoff {cutoff:g} of Table 2: {weighting.note}; "
                         "choose another cutoff or subgroup_weights overall"])
