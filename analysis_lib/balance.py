"""Covariate balance before and after weighting (ANALYSIS.md §3, Supplementary Table 1).

Standardised mean differences follow cobalt's conventions: the denominator comes from the
*unweighted* groups, so that weighting changes only the numerator; it is the pooled SD for the
ATE, ATO and ATM and the treated group's SD for the ATT (``s.d.denom``). The paper standardises
every covariate, binary ones included (cobalt does so only on request: ``binary = "std"``);
``binary="raw"`` gives cobalt's default, the difference in proportions.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .data import TREATMENT

THRESHOLD = 0.1


def is_binary(x: np.ndarray) -> bool:
    """A covariate is binary when its non-missing values are exactly {0, 1} (cobalt's rule).
    (Linear time: no sorting, which matters at registry scale.)"""
    x = np.asarray(x, float)
    x = x[~np.isnan(x)]
    zero, one = x == 0, x == 1
    return bool(np.all(zero | one) and zero.any() and one.any())


def weighted_mean(x: np.ndarray, w: np.ndarray) -> float:
    return float(np.sum(w * x) / np.sum(w))


def weighted_variance(x: np.ndarray, w: np.ndarray, binary: bool) -> float:
    """Weighted variance as cobalt's ``col.w.v``.

    Binary: ``p (1 - p)`` with ``p`` the weighted mean. Continuous: with normalised weights
    ``v = w / sum(w)``, ``sum v (x - m)^2 / (1 - sum v^2)`` (reliability weights; with unit
    weights this is the usual ``n - 1`` sample variance).
    """
    m = weighted_mean(x, w)
    if binary:
        return m * (1 - m)
    v = w / w.sum()
    dof = 1 - np.sum(v ** 2)
    return float(np.sum(v * (x - m) ** 2) / dof) if dof > 0 else float("nan")  # one patient: undefined


def smd(x: np.ndarray, t: np.ndarray, w: np.ndarray | None = None, estimand: str = "ATO",
        binary: str = "std") -> float:
    """Standardised mean difference (treated minus control), with cobalt's conventions.

    ``(m1 - m0) / s`` where the means ``m`` are weighted by ``w`` (or not) and the
    denominator ``s`` always comes from the *unweighted* groups (``s.d.denom``): the pooled
    ``sqrt((s1^2 + s0^2) / 2)`` for the ATE, ATO and ATM, the treated group's ``s1`` for the
    ATT. Variances are ``p (1 - p)`` for binary covariates and the ``n - 1`` sample variance
    otherwise (ANALYSIS.md §3). ``binary="raw"`` reports binary covariates as the raw difference
    in proportions (cobalt's default; the paper standardises them, ``"std"``). A zero
    difference gives 0 even when the denominator is 0.

    Examples
    --------
    >>> smd(np.array([0., 1., 1., 1.]), np.array([0, 0, 1, 1]))
    1.414213562373095
    >>> smd(np.array([0., 1., 1., 1.]), np.array([0, 0, 1, 1]), binary="raw")
    0.5
    """
    return CovariateArms.of(x, t).smd(split_by_arm(w, t), estimand, binary)


def variance_ratio(x: np.ndarray, t: np.ndarray, w: np.ndarray | None = None) -> float:
    """Treated over control (weighted) variance, continuous covariates only (as cobalt's
    ``bal.tab``; NaN for binary covariates, where the ratio carries no extra information)."""
    return CovariateArms.of(x, t).variance_ratio(split_by_arm(w, t))


@dataclass(frozen=True)
class CovariateArms:
    """One covariate split by treatment arm, with what all its SMDs and variance ratios share
    (whether it is binary or constant, the unweighted arm variances): :func:`smd` and
    :func:`variance_ratio` of one covariate under several weightings, which split and scan it
    once. The weights are given split by arm (:func:`split_by_arm`), so that covariates of
    the same rows share the split."""

    x1: np.ndarray = field(repr=False)
    x0: np.ndarray = field(repr=False)
    binary: bool
    constant: bool
    var1: float
    var0: float

    @classmethod
    def of(cls, x: np.ndarray, t: np.ndarray) -> "CovariateArms":
        x = np.asarray(x, float)
        t = np.asarray(t, float)
        return cls.from_arms(x[t == 1], x[t == 0], is_binary(x), bool(x.size == 0 or np.ptp(x) == 0))

    @classmethod
    def from_arms(cls, x1: np.ndarray, x0: np.ndarray, binary: bool | None = None,
                  constant: bool | None = None) -> "CovariateArms":
        """From the covariate's values in each arm. ``binary`` (:func:`is_binary`) and
        ``constant`` (one value, or no patient) are of both arms together; computed here unless
        the caller knows them (:func:`~analysis_lib.subgroups.subgroup_balance` finds them for
        all covariates at once)."""
        x1, x0 = np.asarray(x1, float), np.asarray(x0, float)
        if binary is None or constant is None:
            x = np.concatenate([x1, x0])
            binary = is_binary(x) if binary is None else binary
            constant = bool(x.size == 0 or np.ptp(x) == 0) if constant is None else constant
        with np.errstate(invalid="ignore", divide="ignore"):  # an empty arm: NaN, reported by the SMD
            var1, var0 = (weighted_variance(a, np.ones_like(a), binary) for a in (x1, x0))
        return cls(x1=x1, x0=x0, binary=binary, constant=constant, var1=var1, var0=var0)

    def smd(self, arm_weights: tuple[np.ndarray, np.ndarray] | None = None, estimand: str = "ATO",
            binary: str = "std") -> float:
        """:func:`smd` with the weights of each arm (None: unweighted)."""
        w1, w0 = arm_weights or (np.ones_like(self.x1), np.ones_like(self.x0))
        diff = weighted_mean(self.x1, w1) - weighted_mean(self.x0, w0)
        if self.binary and binary == "raw":
            return float(diff)
        if binary not in ("std", "raw"):
            raise ValueError(f"binary must be 'std' or 'raw', got {binary!r}")
        denom = np.sqrt(self.var1) if estimand == "ATT" else np.sqrt((self.var1 + self.var0) / 2)
        if not np.isfinite(denom):  # an arm of one patient: its SD is undefined
            return float("nan")
        if diff == 0 or (denom == 0 and self.constant):  # a constant covariate: no imbalance (cobalt: 0)
            return 0.0
        return float(diff / denom) if denom > 0 else float(np.sign(diff) * np.inf)

    def variance_ratio(self, arm_weights: tuple[np.ndarray, np.ndarray] | None = None) -> float:
        """:func:`variance_ratio` with the weights of each arm (None: unweighted)."""
        if self.binary:
            return float("nan")
        w1, w0 = arm_weights or (np.ones_like(self.x1), np.ones_like(self.x0))
        v1 = weighted_variance(self.x1, w1, binary=False)
        v0 = weighted_variance(self.x0, w0, binary=False)
        if v0 > 0:
            return float(v1 / v0)
        return float("inf") if v1 > 0 else float("nan")  # a constant control group (R: v1 / 0 = Inf, 0 / 0 = NaN)


def split_by_arm(w: np.ndarray | None, t: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """``(w[t == 1], w[t == 0])``, the weights as :class:`CovariateArms` takes them."""
    if w is None:
        return None
    w, t = np.asarray(w, float), np.asarray(t, float)
    return w[t == 1], w[t == 0]


def effective_sample_size(w: np.ndarray) -> float:
    """Kish's effective sample size ``(sum w)^2 / sum w^2``."""
    w = np.asarray(w, float)
    return float(w.sum() ** 2 / np.sum(w ** 2))


BALANCE_COLUMNS = ["covariate", "smd_unweighted", "smd_weighted",
                   "variance_ratio_unweighted", "variance_ratio_weighted"]


def balance_table(df: pd.DataFrame, covariates: tuple[str, ...] | list[str], weights: np.ndarray,
                  treatment: str = TREATMENT, threshold: float = THRESHOLD, estimand: str = "ATO",
                  binary: str = "std") -> pd.DataFrame:
    """Balance of each covariate before and after weighting (Supplementary Table 1).

    Parameters
    ----------
    df : DataFrame
        Analysis sample.
    covariates : sequence of str
        Covariates to assess (by default the propensity covariates).
    weights : array
        Balancing weights aligned with ``df``.
    estimand, binary : str
        The SMD conventions of :func:`smd` (cobalt's ``s.d.denom`` by estimand; ``binary``
        ``"std"`` or ``"raw"``).

    Returns
    -------
    DataFrame
        The columns of ``tables/balance.csv`` (covariate, smd_unweighted, smd_weighted,
        variance_ratio_unweighted, variance_ratio_weighted) followed by ``type``
        (Binary/Contin.), weighted and unweighted means per arm and the verdict, as cobalt's
        ``bal.tab`` prints it.
    """
    t = df[treatment].to_numpy(float)
    w = np.asarray(weights, float)
    rows = []
    arm_weights = split_by_arm(w, t)
    for c in covariates:
        arms = CovariateArms.of(df[c].to_numpy(float), t)
        s_w = arms.smd(arm_weights, estimand, binary)
        rows.append({
            "covariate": c,
            "smd_unweighted": arms.smd(None, estimand, binary),
            "smd_weighted": s_w,
            "variance_ratio_unweighted": arms.variance_ratio(),
            "variance_ratio_weighted": arms.variance_ratio(arm_weights),
            "type": "Binary" if arms.binary else "Contin.",
            "mean_mt_rs_unweighted": float(arms.x1.mean()),
            "mean_mt_only_unweighted": float(arms.x0.mean()),
            "mean_mt_rs_weighted": weighted_mean(arms.x1, arm_weights[0]),
            "mean_mt_only_weighted": weighted_mean(arms.x0, arm_weights[1]),
            "balanced": (f"Balanced, <{threshold:g}" if abs(s_w) < threshold
                         else f"Not Balanced, >{threshold:g}"),
        })
    return pd.DataFrame(rows)


def sample_sizes(df: pd.DataFrame, weights: np.ndarray, treatment: str = TREATMENT) -> pd.DataFrame:
    """Effective sample size per arm (``arm``, ``n``, ``ess_unweighted``, ``ess_weighted``)."""
    t = df[treatment].to_numpy(float)
    w = np.asarray(weights, float)
    rows = []
    for label, arm in (("MT only", 0.0), ("MT+RS", 1.0)):
        mask = t == arm
        rows.append({"arm": label, "n": int(mask.sum()),
                     "ess_unweighted": float(mask.sum()),
                     "ess_weighted": effective_sample_size(w[mask])})
    return pd.DataFrame(rows)
