"""Sensitivity to the choice of weights (ANALYSIS.md §8): the four estimands, truncated and
trimmed weights. The propensity specifications and the multiverse are in :mod:`analysis_lib.multiverse`,
multiple imputation of missing covariates in :mod:`analysis_lib.imputation`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .balance import effective_sample_size
from .data import MODIFIER, TREATMENT
from .effects import estimate_effect
from .mestimation import propensity_estimation
from .params import ESTIMANDS
from .weighting import PropensityModel, compute_weights

WEIGHT_SENSITIVITY_COLUMNS = ["estimand", "outcome", "subgroup", "measure", "estimate", "ci_lower", "ci_upper",
                              "p_value", "n", "effective_n", "note"]
SENSITIVITY_OUTCOMES = ("mrs_90d", "mrs_0_2", "sich")
WEIGHT_VARIANTS = (*ESTIMANDS, "ATE_truncated", "ATE_trimmed")


def weight_variants(propensity: np.ndarray, treatment: np.ndarray, truncate: tuple[float, float] = (0.01, 0.99),
                    trim: tuple[float, float] = (0.1, 0.9)) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Weights of every variant, each ``(weights, kept)`` with ``kept`` the patients retained.

    ``ATO``, ``ATE``, ``ATT``, ``ATM`` as :func:`~analysis_lib.weighting.compute_weights`;
    ``ATE_truncated``: ATE weights truncated at their 1st and 99th percentiles (R's quantile
    type 7); ``ATE_trimmed``: ATE weights of the patients whose propensity lies in [0.1, 0.9]
    (Crump et al. 2009; the propensity model is not refitted). Every vector is normalised to
    mean 1 over the patients it keeps; dropped patients get weight 0.
    """
    e = np.asarray(propensity, float)
    t = np.asarray(treatment, float)
    everyone = np.ones(e.size, bool)
    out = {est: (compute_weights(e, t, est), everyone) for est in ESTIMANDS}
    raw = compute_weights(e, t, "ATE", normalize=False)
    lo, hi = np.quantile(raw, truncate)
    w = np.clip(raw, lo, hi)
    out["ATE_truncated"] = (w / w.mean(), everyone)
    kept = (e >= trim[0]) & (e <= trim[1])
    w = np.zeros(e.size)
    w[kept] = compute_weights(e[kept], t[kept], "ATE")
    out["ATE_trimmed"] = (w, kept)
    return out


def weight_sensitivity(df: pd.DataFrame, model: PropensityModel, cutoff: float, hc_type: str = "HC0",
                       conf_level: float = 0.95, outcomes: tuple[str, ...] = SENSITIVITY_OUTCOMES,
                       treatment: str = TREATMENT, modifier: str = MODIFIER, variance: str = "robust") -> pd.DataFrame:
    """The mRS, mRS 0-2 and sICH rows of Table 2 (overall, low, high) under every weighting
    (``tables/weight_sensitivity.csv``); ``effective_n`` is Kish's ``(sum w)^2 / sum w^2`` over
    the patients of the row (outcome known, in the subgroup).

    ``model`` is the fitted propensity model whose propensities make every weighting.
    ``variance = "m_estimation"`` (the parameter of the same name) switches the ATO, ATE, ATT and
    ATM rows to the M-estimation variance of that (logistic) model; the truncated and trimmed
    weights are not smooth functions of the propensity model, so their rows keep the sandwich with
    the weights as known and say so in ``note``."""
    high_all = df[modifier].to_numpy(float) > cutoff
    rows = []
    for name, (w, kept) in weight_variants(model.propensity, df[treatment].to_numpy()).items():
        sub = df.loc[kept].reset_index(drop=True)
        ws, hs = w[kept], high_all[kept]
        ps, remark = None, ""
        if variance == "m_estimation":
            if name in ESTIMANDS:
                ps = propensity_estimation(df, model, name, treatment=treatment)
            else:
                remark = f"{hc_type} sandwich, weights as known (M-estimation needs smooth weights)"
        for outcome in outcomes:
            known = sub[outcome].notna().to_numpy()
            for h in (None, hs):
                part = estimate_effect(sub, outcome, ws, high=h, cutoff=cutoff, treatment=treatment,
                                       hc_type=hc_type, conf_level=conf_level, ps=ps)
                if remark:
                    part["note"] = [f"{n}; {remark}" if n else remark for n in part["note"]]
                for _, r in part.iterrows():
                    mask = known.copy()
                    if r["subgroup"] == "low":
                        mask &= ~hs
                    elif r["subgroup"] == "high":
                        mask &= hs
                    rows.append({"estimand": name, "outcome": outcome, **{k: r[k] for k in (
                        "subgroup", "measure", "estimate", "ci_lower", "ci_upper", "p_value", "n", "note")},
                        "effective_n": effective_sample_size(ws[mask])})
    return pd.DataFrame(rows)[WEIGHT_SENSITIVITY_COLUMNS]
