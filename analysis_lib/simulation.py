"""Operating characteristics of the whole procedure (ANALYSIS.md §8): a simulation study on
cohorts from the synthetic generator with known truth.

Each replicate draws a cohort of the published size (mRS cut at cutpoints common to both arms
and depending on pre-treatment prognosis only, so that the known potential outcomes give the
total effect and "no effect" is a sharp null), runs the primary analysis (propensity model, overlap
weights, subgroup ATEs at the fixed cutoff, the sweep and its selection) and the
selection-adjusted test, and compares with the truth it knows. Every replicate has its own seed
(a child of ``SeedSequence(seed)``), so results are identical whether replicates run in one
process, on all local cores, or on a Dask cluster.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures import as_completed as done
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import pandas as pd

from .cutoffs import continuous_interaction
from .data import derive_outcomes
from .effects import estimate_effect, fit_cells
from .mestimation import propensity_estimation
from .numerics import wald
from .outputs import interactive
from .params import DEFAULT_PS_COVARIATES
from .resample import observed, prepare, wild_null_test
from .subgroups import overall_weights, within_weights
from .synthetic import CalibrationTargets, TrueEffect, generate_cohort, table1_targets
from .weighting import PropensityError, compute_weights, fit_propensity


@dataclass(frozen=True)
class Scenario:
    """A truth of the simulation: the treatment effect, the cutoff a sweep should find (if any)
    and the strength of confounding that differs between the stenosis subgroups
    (:func:`~analysis_lib.synthetic.generate_cohort`'s ``subgroup_confounding``)."""

    effect: TrueEffect
    true_cutoff: float | None = None
    subgroup_confounding: float = 0.0


SCENARIOS: dict[str, Scenario] = {
    "no effect modification": Scenario(TrueEffect("none")),
    "step at 75%": Scenario(TrueEffect("step", crossing=75.0, step=1.0), true_cutoff=75.0),
    "linear, crossing at 70%": Scenario(TrueEffect("linear", crossing=70.0, slope=0.1), true_cutoff=70.0),
    # no effect at all, but NIHSS goes with stenosis in opposite directions in the two arms: the
    # overall model balances NIHSS in the whole cohort, not within the subgroups
    "confounding differs by subgroup": Scenario(TrueEffect("none"), subgroup_confounding=0.6),
}
WEIGHTINGS = ("overall", "within")
_SINGLE_THREADED = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


@dataclass(frozen=True)
class SimulationSettings:
    """What one replicate does (picklable, sent to every worker)."""

    table1_published: pd.DataFrame = field(repr=False)
    cutoff: float = 75.0
    cutoffs: tuple[float, ...] = (40.0, 45.0, 50.0, 55.0, 60.0, 65.0, 70.0, 75.0, 80.0, 85.0, 90.0)
    min_arm_size: int = 10
    estimand: str = "ATO"
    hc_type: str = "HC0"
    null_replicates: int = 199
    ps_covariates: tuple[str, ...] = DEFAULT_PS_COVARIATES
    subgroup_weights: str = "overall"  # the weights of the sweep and of the selection-adjusted test
    n_mt_rs: int = 172    # cohort size per arm (the paper's by default)
    n_mt_only: int = 131

    @property
    def targets(self) -> CalibrationTargets:
        return CalibrationTargets(table1_targets(self.table1_published))


def replicate_seed(seed: int, scenario_index: int, replicate: int) -> int:
    """The generator seed of one replicate: independent of where and in which order it runs."""
    return int(np.random.SeedSequence([seed, scenario_index, replicate]).generate_state(1)[0])


def simulated_cohort(settings: SimulationSettings, scenario: str, replicate: int, seed: int,
                     targets: CalibrationTargets | None = None) -> tuple[pd.DataFrame, np.ndarray]:
    """One replicate's cohort (its own seed, :func:`replicate_seed`) with the derived outcomes, and
    every patient's individual effect on the mRS, ``Y(1) - Y(0)``, which the generator knows."""
    truth = SCENARIOS[scenario]
    cohort = generate_cohort(targets or settings.targets,
                             seed=replicate_seed(seed, list(SCENARIOS).index(scenario), replicate),
                             effect=truth.effect, mrs_calibration="common", mediators_in_outcome=False,
                             subgroup_confounding=truth.subgroup_confounding, n_mt_rs=settings.n_mt_rs,
                             n_mt_only=settings.n_mt_only)
    df = derive_outcomes(cohort.data)
    potential = cohort.potential.set_index("patient_id").loc[df["patient_id"]]
    return df, (potential["mrs_1"] - potential["mrs_0"]).to_numpy()


def _subgroup_estimates(df: pd.DataFrame, settings: SimulationSettings, weighting, ps,
                        individual: np.ndarray, high: np.ndarray) -> dict:
    """Estimates at the fixed cutoff under one weighting, their targets, and whether the robust
    (HC) and the M-estimation intervals cover them. The target of a subgroup estimate is the
    weighted sample effect of the subgroup under the weighting's own tilting function
    ``h = e (1 - e)`` (overlap weights; Li, Morgan & Zaslavsky 2018), ``e`` from the propensity
    model behind the weights (the overall one, or the subgroup's own)."""
    method = weighting.method
    out = {}
    if not weighting.estimable:
        for name in ("low", "high"):
            out.update({f"estimate_{name}_{method}": np.nan, f"truth_{name}_{method}": np.nan,
                        f"covered_{name}_{method}": np.nan, f"covered_m_{name}_{method}": np.nan})
        return out
    kw = dict(high=high, cutoff=settings.cutoff, hc_type=settings.hc_type)
    robust = estimate_effect(df, "mrs_90d", weighting.weights, **kw).set_index("subgroup")
    m_est = estimate_effect(df, "mrs_90d", weighting.weights, ps=ps, **kw).set_index("subgroup")
    e = weighting.propensity
    tilt = e * (1 - e)
    for name, mask in (("low", ~high), ("high", high)):
        truth = float(np.sum(tilt[mask] * individual[mask]) / np.sum(tilt[mask]))
        r, m = robust.loc[name], m_est.loc[name]
        out.update({f"estimate_{name}_{method}": r["estimate"], f"truth_{name}_{method}": truth,
                    f"covered_{name}_{method}": float(r["ci_lower"] <= truth <= r["ci_upper"]),
                    f"covered_m_{name}_{method}": float(m["ci_lower"] <= truth <= m["ci_upper"])})
    return out


def simulate_one(settings: SimulationSettings, scenario: str, replicate: int, seed: int,
                 targets: CalibrationTargets | None = None) -> dict:
    """One replicate: generate, analyse, compare with the truth.

    The subgroup ATEs at the fixed cutoff are estimated under both weightings (the overall
    propensity model; one model per subgroup, ANALYSIS.md §11), each with the HC sandwich and
    with the M-estimation variance; then the sweep, its selection and the selection-adjusted
    test run as in the analysis (weights of ``settings.subgroup_weights``).
    """
    index = list(SCENARIOS).index(scenario)
    df, individual = simulated_cohort(settings, scenario, replicate, seed, targets)
    model = fit_propensity(df, settings.ps_covariates, estimand=settings.estimand)
    t = df["rescue_stenting"].to_numpy(float)
    w = compute_weights(model.propensity, t, settings.estimand)
    high = df["stenosis_pct"].to_numpy(float) > settings.cutoff
    row = {"scenario": scenario, "replicate": replicate}
    overall = overall_weights(w, model.propensity, settings.cutoff, settings.estimand)
    within = within_weights(df, settings.cutoff, settings.ps_covariates, estimand=settings.estimand)
    for weighting in (overall, within):
        ps = None
        if weighting.estimable:
            ps = (propensity_estimation(df, model, settings.estimand) if weighting.method == "overall"
                  else weighting.estimation(t))
        row.update(_subgroup_estimates(df, settings, weighting, ps, individual, high))
    design = prepare(df, settings.ps_covariates, list(settings.cutoffs), settings.estimand, settings.min_arm_size,
                     model=model, subgroup_weights=settings.subgroup_weights)
    procedure = observed(design)  # the sweep and its selection, on the fast path
    chosen = int(procedure.selected[0])
    if chosen >= 0:
        cut = settings.cutoffs[chosen]
        sub = w if settings.subgroup_weights == "overall" else within_weights(
            df, cut, settings.ps_covariates, estimand=settings.estimand).weights
        cells = t.astype(int) + 2 * (df["stenosis_pct"].to_numpy(float) > cut).astype(int)
        known = df["mrs_90d"].notna().to_numpy()
        fit = fit_cells(df["mrs_90d"].to_numpy(float)[known], sub[known], cells[known], 4, "gaussian",
                        settings.hc_type)
        row["selected_cutoff"] = float(cut)
        row["naive_p"] = wald(*fit.contrast([3, 0], [2, 1]), fit.df_resid)[3]
    else:
        row["selected_cutoff"] = row["naive_p"] = np.nan
    statistic, null = wild_null_test(design, w, settings.null_replicates, seed=replicate_seed(seed, index, replicate))
    row["adjusted_p"] = float((1 + np.sum(null >= statistic - 1e-12 * abs(statistic))) / (null.size + 1))
    return row


def _run_batch(settings: SimulationSettings, tasks: list[tuple[str, int]], seed: int) -> list[dict]:
    targets = settings.targets
    return [simulate_one(settings, scenario, replicate, seed, targets) for scenario, replicate in tasks]


@dataclass(frozen=True)
class SimulationResult:
    """Per-replicate results and their summary by scenario (with Monte-Carlo standard errors)."""

    replicates: pd.DataFrame = field(repr=False)
    summary: pd.DataFrame

    def __repr__(self) -> str:
        per = self.replicates.groupby("scenario").size()
        return f"SimulationResult({', '.join(f'{k}: {v}' for k, v in per.items())} replicates)"


def run_simulation(settings: SimulationSettings, replicates: int, seed: int, scenarios: tuple[str, ...] = tuple(SCENARIOS),
                   scheduler: str | None = None, workers: int | None = None,
                   progress: Callable[[int], None] | None = None, batch: int = 10) -> SimulationResult:
    """Run ``replicates`` replicates of every scenario.

    ``scheduler=None`` uses the local cores (``workers`` processes, default all); a Dask
    scheduler address (``tcp://host:8786``) runs the same batches on that cluster through
    ``dask.distributed``. Replicates are grouped in batches of ``batch`` per task; the results
    are sorted by scenario and replicate, so they do not depend on where they ran.
    """
    tasks = [(s, r) for s in scenarios for r in range(replicates)]
    batches = [tasks[i:i + batch] for i in range(0, len(tasks), batch)]
    rows: list[dict] = []
    if scheduler is not None:
        from distributed import Client, as_completed

        with Client(scheduler) as client:
            futures = client.map(_run_batch, [settings] * len(batches), batches, [seed] * len(batches), pure=False)
            for future in as_completed(futures):
                part = future.result()
                rows.extend(part)
                if progress is not None:
                    progress(len(part))
    else:
        workers = workers or os.cpu_count() or 1
        if workers == 1:
            for b in batches:
                part = _run_batch(settings, b, seed)
                rows.extend(part)
                if progress is not None:
                    progress(len(part))
        else:
            # Spawned workers read their BLAS thread count from the environment when they import
            # NumPy: one thread each, or the workers oversubscribe the cores (measured: 2 workers
            # 18 s instead of 8 s). The parent's environment is restored at once.
            saved = {k: os.environ.get(k) for k in _SINGLE_THREADED}
            os.environ.update(_SINGLE_THREADED)
            try:
                pool = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"))
                futures = [pool.submit(_run_batch, settings, b, seed) for b in batches]
            finally:
                for k, v in saved.items():
                    if v is None:
                        os.environ.pop(k, None)
                    else:
                        os.environ[k] = v
            with pool:
                for future in done(futures):
                    part = future.result()
                    rows.extend(part)
                    if progress is not None:
                        progress(len(part))
    table = pd.DataFrame(rows)
    table["scenario"] = pd.Categorical(table["scenario"], categories=list(scenarios), ordered=True)
    table = table.sort_values(["scenario", "replicate"]).reset_index(drop=True)
    table["scenario"] = table["scenario"].astype(str)
    return SimulationResult(replicates=table, summary=summarize(table))


WEIGHTING_LABEL = {"overall": "overall model", "within": "model per subgroup"}


def summarize(table: pd.DataFrame, alpha: float = 0.05) -> pd.DataFrame:
    """Bias and coverage of the subgroup ATEs under both weightings (coverage of the HC sandwich
    and of the M-estimation intervals), rejection rates of the naive and the selection-adjusted
    tests, and recovery of the true cutoff, each with its Monte-Carlo SE (``sd / sqrt(R)`` for a
    bias, ``sqrt(p (1 - p) / R)`` for a proportion) over the replicates where it exists."""
    rows = []
    for scenario, g in table.groupby("scenario", sort=False):

        def add(quantity: str, values: pd.Series, kind: str) -> None:
            x = pd.to_numeric(values, errors="coerce").dropna().astype(float)
            R = len(x)
            if kind == "bias":
                value, se = float(x.mean()), float(x.std(ddof=1) / np.sqrt(R)) if R > 1 else np.nan
            else:
                value = float(x.mean()) if R else np.nan
                se = float(np.sqrt(value * (1 - value) / R)) if R else np.nan
            rows.append({"scenario": scenario, "quantity": quantity, "value": value, "mc_se": se, "replicates": R})

        for method in WEIGHTINGS:
            if f"estimate_low_{method}" not in g:
                continue
            label = WEIGHTING_LABEL[method]
            for name in ("low", "high"):
                add(f"bias, MD {name} ({label})", g[f"estimate_{name}_{method}"] - g[f"truth_{name}_{method}"], "bias")
                add(f"coverage of the 95% CI, MD {name} ({label}, HC sandwich)", g[f"covered_{name}_{method}"], "rate")
                add(f"coverage of the 95% CI, MD {name} ({label}, M-estimation)", g[f"covered_m_{name}_{method}"],
                    "rate")
        add("significant effect modification, naive (p-interaction at the selected cutoff < 0.05)",
            (g["naive_p"] < alpha).astype(float).where(g["naive_p"].notna()), "rate")
        add("significant effect modification, selection-adjusted (p < 0.05)", (g["adjusted_p"] < alpha).astype(float),
            "rate")
        true_cutoff = SCENARIOS[scenario].true_cutoff if scenario in SCENARIOS else None
        if true_cutoff is not None:
            add(f"true cutoff ({true_cutoff:g}%) selected", (g["selected_cutoff"] == true_cutoff).astype(float), "rate")
    return pd.DataFrame(rows)


def settings_from_parameters(params, table1_published: pd.DataFrame) -> SimulationSettings:
    """The simulation's settings from the analysis parameters (the same cutoffs, eligibility,
    estimand, variance and propensity covariates as the primary analysis)."""
    return SimulationSettings(table1_published=table1_published, cutoff=float(params.cutoff or 75.0),
                              cutoffs=tuple(params.cutoffs()), min_arm_size=params.min_arm_size,
                              estimand=params.estimand, hc_type=params.hc_type,
                              null_replicates=params.simulation_null_replicates,
                              ps_covariates=tuple(params.ps_covariates), subgroup_weights=params.subgroup_weights)


def run_simulation_study(params, table1_published: pd.DataFrame,
                         progress_bar: bool | None = None) -> SimulationResult | None:
    """:func:`run_simulation` with the parameters (``simulation_replicates`` per scenario,
    ``seed``, ``dask_scheduler``) and a tqdm progress bar; ``None`` when skipped (0 replicates)."""
    R = params.simulation_replicates
    if R == 0:
        return None
    settings = settings_from_parameters(params, table1_published)
    bar = None

    progress_bar = interactive() if progress_bar is None else progress_bar
    if progress_bar:
        from tqdm import tqdm

        bar = tqdm(total=R * len(SCENARIOS), unit="cohort", desc="simulation", file=sys.stderr, mininterval=0.5)
    try:
        return run_simulation(settings, R, params.seed, scheduler=params.dask_scheduler,
                              workers=params.simulation_workers or None, progress=None if bar is None else bar.update)
    finally:
        if bar is not None:
            bar.close()


# ------------------------------------------------------- the continuous modifier (a decision)
def stenosis_product_formula(covariates: tuple[str, ...], modifier: str = "stenosis_pct") -> str:
    """The propensity formula with every covariate's product with the stenosis degree (and its
    square): its overlap weights balance the means of ``x`` *and* of ``x * stenosis`` exactly, which
    is what the interaction coefficient of ``y ~ t * stenosis`` needs for a linear outcome model."""
    others = [c for c in covariates if c != modifier]
    return " + ".join([*covariates, f"I({modifier}**2)", *(f"{c}:{modifier}" for c in others)])


def continuous_one(settings: SimulationSettings, scenario: str, replicate: int, seed: int,
                   targets: CalibrationTargets | None = None) -> dict:
    """One replicate of the continuous-modifier experiment (the cohort of :func:`simulate_one`):
    the interaction ``b_t:s`` of ``mrs_90d ~ t * stenosis`` with overlap weights from the primary
    propensity model and from the model with stenosis products, each against its own target, the
    slope of the weighted least-squares line of the individual effects on stenosis with weights
    ``h = e (1 - e)`` (the continuous analogue of the subgroup targets), and its HC0 interval."""
    df, individual = simulated_cohort(settings, scenario, replicate, seed, targets)
    s = df["stenosis_pct"].to_numpy(float)
    row = {"scenario": scenario, "replicate": replicate}
    for label, formula in (("primary", None), ("products", stenosis_product_formula(settings.ps_covariates))):
        try:
            with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
                model = fit_propensity(df, settings.ps_covariates, formula=formula, estimand=settings.estimand)
        except PropensityError:
            row.update({f"slope_{label}": np.nan, f"truth_{label}": np.nan, f"covered_{label}": np.nan})
            continue
        e = model.propensity
        w = compute_weights(e, df["rescue_stenting"].to_numpy(float), settings.estimand)
        fit = continuous_interaction(df, w, settings.hc_type).summary.iloc[0]
        h = e * (1 - e)
        X = np.column_stack([np.ones_like(s), s])
        target = np.linalg.solve(X.T @ (h[:, None] * X), X.T @ (h * individual))[1]
        row.update({f"slope_{label}": fit["interaction_beta"], f"truth_{label}": target,
                    f"covered_{label}": float(fit["interaction_ci_lower"] <= target <= fit["interaction_ci_upper"])})
    return row


def summarize_continuous(table: pd.DataFrame) -> pd.DataFrame:
    """Bias (per 1 % stenosis) and coverage of the interaction under both propensity models, with
    Monte-Carlo SEs, over the replicates whose model could be fitted (``fitted``: their share; the
    others separate the arms)."""
    rows = []
    for scenario, g in table.groupby("scenario", sort=False):
        for label in ("primary", "products"):
            err = (g[f"slope_{label}"] - g[f"truth_{label}"]).dropna()
            cov = g[f"covered_{label}"].dropna()
            R = len(err)
            p = float(cov.mean()) if R else np.nan
            rows.append({"scenario": scenario, "propensity_model": label,
                         "bias": float(err.mean()) if R else np.nan,
                         "bias_mc_se": float(err.std(ddof=1) / np.sqrt(R)) if R > 1 else np.nan, "coverage": p,
                         "coverage_mc_se": float(np.sqrt(p * (1 - p) / R)) if R else np.nan,
                         "fitted": R / len(g), "replicates": int(R)})
    return pd.DataFrame(rows)
