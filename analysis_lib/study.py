"""The analysis sample with its propensity model and weights: the common start of every
notebook after the cohort description (ANALYSIS.md §1-§2)."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import pandas as pd

from .data import MODIFIER, TREATMENT, AnalysisSample, DataError, analysis_sample, load_cohort
from .params import Parameters
from .weighting import PropensityModel, balance_variables, compute_weights, fit_propensity, ps_variables


@dataclass(frozen=True)
class Study:
    """Validated cohort, analysis sample, propensity model and normalised weights."""

    params: Parameters = field(repr=False)
    cohort: pd.DataFrame = field(repr=False)
    sample: AnalysisSample
    propensity: PropensityModel
    weights: np.ndarray = field(repr=False)

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
        from .mestimation import propensity_estimation

        return propensity_estimation(self.data, self.propensity, self.params.estimand)


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
    from .balance import balance_table

    terms = balance_variables(study.data, study.params.ps_covariates, study.params.ps_formula)
    frame = pd.concat([terms, study.data[[TREATMENT]]], axis=1)
    return balance_table(frame, list(terms.columns), study.weights, estimand=study.params.estimand,
                         binary=study.params.smd_binary)


def analysis_cutoff(study: Study) -> float:
    """The stenosis cutoff of Table 2 and Figure 1: ``params.cutoff`` when fixed, otherwise the
    cutoff selected by the sweep (ANALYSIS.md §5)."""
    from .cutoffs import cutoff_sweep, resolve_cutoff

    p = study.params
    if p.cutoff is not None:
        return float(p.cutoff)
    sweep = cutoff_sweep(study.data, study.weights, p.cutoffs(), p.min_arm_size,
                         hc_type=p.hc_type, conf_level=p.conf_level)
    return resolve_cutoff(None, sweep, p.min_arm_size)
