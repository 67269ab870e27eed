"""The analysis sample with its propensity model and weights: the common start of every
notebook after the cohort description (ANALYSIS.md §1-§2)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .data import TREATMENT, AnalysisSample, analysis_sample, load_cohort
from .params import Parameters
from .weighting import PropensityModel, compute_weights, fit_propensity


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


def load_study(params: Parameters) -> Study:
    """Read and validate ``params.data_path``, build the complete-case sample, fit the
    propensity model on ``params.ps_covariates`` and compute ``params.estimand`` weights
    normalised to mean 1."""
    cohort = load_cohort(params.data_path)
    sample = analysis_sample(cohort, params.ps_covariates)
    model = fit_propensity(sample.data, params.ps_covariates)
    weights = compute_weights(model.propensity, sample.data[TREATMENT].to_numpy(), params.estimand)
    return Study(params=params, cohort=cohort, sample=sample, propensity=model, weights=weights)


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
