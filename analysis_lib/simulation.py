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

import os
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import pandas as pd

from .data import derive_outcomes
from .effects import estimate_effect, fit_cells, wald
from .params import DEFAULT_PS_COVARIATES
from .resample import observed, prepare, wild_null_test
from .synthetic import CalibrationTargets, TrueEffect, generate_cohort, table1_targets
from .weighting import compute_weights, fit_propensity

SCENARIOS: dict[str, TrueEffect] = {
    "no effect modification": TrueEffect("none"),
    "step at 75%": TrueEffect("step", crossing=75.0, step=1.0),
    "linear, crossing at 70%": TrueEffect("linear", crossing=70.0, slope=0.1),
}
_SINGLE_THREADED = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
TRUE_CUTOFF = {"no effect modification": None, "step at 75%": 75.0, "linear, crossing at 70%": 70.0}


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

    @property
    def targets(self) -> CalibrationTargets:
        return CalibrationTargets(table1_targets(self.table1_published))


def replicate_seed(seed: int, scenario_index: int, replicate: int) -> int:
    """The generator seed of one replicate: independent of where and in which order it runs."""
    return int(np.random.SeedSequence([seed, scenario_index, replicate]).generate_state(1)[0])


def simulate_one(settings: SimulationSettings, scenario: str, replicate: int, seed: int,
                 targets: CalibrationTargets | None = None) -> dict:
    """One replicate: generate, analyse, compare with the truth.

    The target of the subgroup estimates is the overlap-weighted sample effect of the subgroup,
    ``sum h_i (Y_i(1) - Y_i(0)) / sum h_i`` with ``h = e (1 - e)`` from the fitted propensity
    (the estimand of overlap weights, Li, Morgan & Zaslavsky 2018), computed from both potential
    outcomes, which the generator knows.
    """
    index = list(SCENARIOS).index(scenario)
    cohort = generate_cohort(targets or settings.targets, seed=replicate_seed(seed, index, replicate),
                             effect=SCENARIOS[scenario], mrs_calibration="common", mediators_in_outcome=False)
    df = derive_outcomes(cohort.data)
    model = fit_propensity(df, settings.ps_covariates, estimand=settings.estimand)
    e = model.propensity
    w = compute_weights(e, df["rescue_stenting"].to_numpy(), settings.estimand)
    high = df["stenosis_pct"].to_numpy(float) > settings.cutoff
    effects = estimate_effect(df, "mrs_90d", w, high=high, cutoff=settings.cutoff,
                              hc_type=settings.hc_type).set_index("subgroup")
    potential = cohort.potential.set_index("patient_id").loc[df["patient_id"]]
    individual = (potential["mrs_1"] - potential["mrs_0"]).to_numpy()
    tilt = e * (1 - e)
    row = {"scenario": scenario, "replicate": replicate}
    for name, mask in (("low", ~high), ("high", high)):
        truth = float(np.sum(tilt[mask] * individual[mask]) / np.sum(tilt[mask]))
        r = effects.loc[name]
        row.update({f"estimate_{name}": r["estimate"], f"truth_{name}": truth,
                    f"covered_{name}": bool(r["ci_lower"] <= truth <= r["ci_upper"])})
    design = prepare(df, settings.ps_covariates, list(settings.cutoffs), settings.estimand, settings.min_arm_size,
                     model=model)
    chosen = int(observed(design).selected[0])  # the sweep's selection, on the fast path
    if chosen >= 0:
        cut = settings.cutoffs[chosen]
        cells = df["rescue_stenting"].to_numpy(int) + 2 * (df["stenosis_pct"].to_numpy(float) > cut).astype(int)
        known = df["mrs_90d"].notna().to_numpy()
        fit = fit_cells(df["mrs_90d"].to_numpy(float)[known], w[known], cells[known], 4, "gaussian", settings.hc_type)
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
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor, as_completed as done

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


def summarize(table: pd.DataFrame, alpha: float = 0.05) -> pd.DataFrame:
    """Bias and coverage of the subgroup ATEs, rejection rates of the naive and the
    selection-adjusted tests, and recovery of the true cutoff, each with its Monte-Carlo SE
    (``sd / sqrt(R)`` for a bias, ``sqrt(p (1 - p) / R)`` for a proportion)."""
    rows = []
    for scenario, g in table.groupby("scenario", sort=False):
        R = len(g)

        def prop(x) -> tuple[float, float]:
            p = float(np.mean(x))
            return p, float(np.sqrt(p * (1 - p) / R))

        def add(quantity: str, value: float, se: float) -> None:
            rows.append({"scenario": scenario, "quantity": quantity, "value": value, "mc_se": se, "replicates": R})

        for name in ("low", "high"):
            err = g[f"estimate_{name}"] - g[f"truth_{name}"]
            add(f"bias, ATE {name}", float(err.mean()), float(err.std(ddof=1) / np.sqrt(R)))
            add(f"coverage of the 95% CI, ATE {name}", *prop(g[f"covered_{name}"]))
        add("significant effect modification, naive (p-interaction at the selected cutoff < 0.05)",
            *prop(g["naive_p"] < alpha))
        add("significant effect modification, selection-adjusted (p < 0.05)", *prop(g["adjusted_p"] < alpha))
        true_cutoff = TRUE_CUTOFF.get(scenario)
        if true_cutoff is not None:
            add(f"true cutoff ({true_cutoff:g}%) selected", *prop(g["selected_cutoff"] == true_cutoff))
    return pd.DataFrame(rows)


def settings_from_parameters(params, table1_published: pd.DataFrame) -> SimulationSettings:
    """The simulation's settings from the analysis parameters (the same cutoffs, eligibility,
    estimand, variance and propensity covariates as the primary analysis)."""
    return SimulationSettings(table1_published=table1_published, cutoff=float(params.cutoff or 75.0),
                              cutoffs=tuple(params.cutoffs()), min_arm_size=params.min_arm_size,
                              estimand=params.estimand, hc_type=params.hc_type,
                              null_replicates=params.simulation_null_replicates,
                              ps_covariates=tuple(params.ps_covariates))


def run_simulation_study(params, table1_published: pd.DataFrame,
                         progress_bar: bool | None = None) -> SimulationResult | None:
    """:func:`run_simulation` with the parameters (``simulation_replicates`` per scenario,
    ``seed``, ``dask_scheduler``) and a tqdm progress bar; ``None`` when skipped (0 replicates)."""
    R = params.simulation_replicates
    if R == 0:
        return None
    settings = settings_from_parameters(params, table1_published)
    bar = None
    from .outputs import interactive

    progress_bar = interactive() if progress_bar is None else progress_bar
    if progress_bar:
        import sys

        from tqdm import tqdm

        bar = tqdm(total=R * len(SCENARIOS), unit="cohort", desc="simulation", file=sys.stderr, mininterval=0.5)
    try:
        return run_simulation(settings, R, params.seed, scheduler=params.dask_scheduler,
                              workers=params.simulation_workers or None, progress=None if bar is None else bar.update)
    finally:
        if bar is not None:
            bar.close()
