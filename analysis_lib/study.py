"""The study: the analysis sample with its propensity model and weights (ANALYSIS.md §1-§2), the
common start of every notebook on the data; its methods are the analysis steps (:mod:`.steps`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import pandas as pd

from .data import MODIFIER, TREATMENT, AnalysisSample, DataError, analysis_sample, load_cohort, read_cohort_cache
from .mestimation import propensity_estimation
from .params import Parameters
from .steps import Steps, analysis_cutoff
from .subgroups import overall_weights, within_weights
from .weighting import PropensityModel, compute_weights, fit_propensity, ps_variables


@dataclass(frozen=True)
class Study(Steps):
    """Validated cohort and analysis sample with its propensity model and normalised weights
    (fitted when a step first needs them: the cohort description does not); every analysis step
    is one of its methods (:class:`~analysis_lib.steps.Steps`)."""

    params: Parameters = field(repr=False)
    cohort: pd.DataFrame = field(repr=False)
    sample: AnalysisSample
    _cache: dict = field(default_factory=dict, repr=False, compare=False)

    def __repr__(self) -> str:
        return (f"Study({self.sample!r}, {self.propensity!r}; stenosis subgroups <= {self.cutoff:g} % and "
                f"> {self.cutoff:g} %; {self.data['center'].nunique()} centers)")

    @cached_property
    def propensity(self) -> PropensityModel:
        """The propensity model (``ps_covariates`` or ``ps_formula``; ``ps_method``)."""
        p = self.params
        return fit_propensity(self.data, p.ps_covariates, formula=p.ps_formula, method=p.ps_method,
                              estimand=p.estimand)

    @cached_property
    def weights(self) -> np.ndarray:
        """``params.estimand`` weights normalised to mean 1 (aligned with ``data``)."""
        return compute_weights(self.propensity.propensity, self.data[TREATMENT].to_numpy(), self.params.estimand)

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
        p = self.params
        return self._memo(("subgroup weights", float(cutoff), method), lambda: (
            overall_weights(self.weights, self.propensity.propensity, cutoff, p.estimand) if method == "overall"
            else within_weights(self.data, cutoff, p.ps_covariates, p.ps_formula, p.ps_method, p.estimand,
                                start=self.propensity.coefficients)))

    def subgroup_ps(self, weighting, variance: str | None = None):
        """The M-estimation of the propensity model behind ``weighting`` (a
        :class:`~analysis_lib.subgroups.SubgroupWeights`) when the variance is ``m_estimation``
        (``params.variance`` or ``variance``), else ``None``."""
        if (variance or self.params.variance) != "m_estimation" or not weighting.estimable:
            return None
        if weighting.method == "overall":
            return self.ps_estimation() if variance else self.ps
        return weighting.estimation(self.data[TREATMENT].to_numpy(float))

    @cached_property
    def cutoff(self) -> float:
        """The stenosis cutoff of Table 2 and Figure 1 (:func:`~analysis_lib.steps.analysis_cutoff`)."""
        return analysis_cutoff(self)

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
    complete-case sample on the propensity variables and check the design (:func:`check_design`).
    The propensity model and the weights are fitted when first used."""
    stored = read_cohort_cache(params.data_path, params.data_cache) if cohort is None else None
    if stored is not None:
        cohort = stored["cohort"]
    elif cohort is None:  # no cache of this file: read and validate it
        cohort = load_cohort(params.data_path, None, params.column_map)
    cached = (stored or {}).get("sample")
    sample = cached[1] if cached is not None and cached[0] == sample_key(params) else load_sample(params, cohort)
    check_design(sample, params)
    study = Study(params=params, cohort=cohort, sample=sample)
    fitted = (stored or {}).get("propensity")
    if fitted is not None and fitted[0] == propensity_key(params):
        study.__dict__["propensity"] = fitted[1]  # the build's fit of the same model on the same rows
    return study


def sample_key(params: Parameters) -> tuple:
    """What the analysis sample depends on besides the data (the build stores it with the cohort
    under this key)."""
    return tuple(ps_variables(params.ps_covariates, params.ps_formula))


def propensity_key(params: Parameters) -> tuple:
    """What the study's propensity model depends on besides the data (the build stores its fit
    beside the cohort under this key: :func:`~analysis_lib.data.write_fitted_cache`)."""
    return (tuple(params.ps_covariates), params.ps_formula, params.ps_method, params.estimand)


def check_design(sample: AnalysisSample, params: Parameters) -> None:
    """Refuse, before any analysis, data that cannot answer the paper's question, every reason
    in one line (:class:`~analysis_lib.data.DataError`): no patient analysed, a stenosis degree
    that does not vary, or a 90-day mRS (the primary outcome) that no arm can support: the continuous model ``mrs ~ t * stenosis``
    needs, in each arm, known outcomes at two or more stenosis degrees."""
    problems = []
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
