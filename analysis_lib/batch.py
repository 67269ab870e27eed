"""Scenario batches: several named parameter sets run as full builds, side by side.

A scenario file (YAML) names the data, the output folder and the scenarios::

    data: data/synthetic_cohort.csv      # default data of every scenario
    out: outputs/scenarios               # each scenario is built into OUT/NAME/
    parameters: {bootstrap_replicates: 2000}   # shared by every scenario (optional)
    scenarios:
      primary: {}
      ate_weights: {estimand: ATE}
      hc3: {hc_type: HC3}
      cutoff_70: {cutoff: 70}

Every scenario is validated (parameters and data) before any notebook runs. The notebooks of
all scenarios then share one pool of worker processes (one per core), so that a short scenario
does not leave a core idle. Each scenario folder is written exactly as ``build`` writes it (and
replaced only when all its notebooks succeeded); ``OUT/summary.csv`` sets the key results of the
scenarios side by side, read back from their tables.
"""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd
import yaml

from .build import (
    NOTEBOOKS,
    BuildError,
    BuildResult,
    Plan,
    _worker_pool,
    abandon_build,
    check_output_folder,
    complete_build,
    kernel_server,
    notebook_path,
    plan_build,
    run_tasks,
)

SCENARIO_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
TOP_LEVEL_KEYS = ("data", "out", "parameters", "scenarios")
SUMMARY_COLUMNS = ["scenario", "settings", "quantity", "subgroup", "estimate", "ci_lower", "ci_upper", "p_value"]


@dataclass(frozen=True)
class Scenario:
    name: str
    data: Path
    out: Path
    overrides: tuple[tuple[str, str], ...]
    settings: str  # the scenario's own parameters, as written in the file (for the summary)


@dataclass(frozen=True)
class BatchResult:
    out: Path
    builds: dict[str, BuildResult]
    failed: dict[str, str]
    summary: pd.DataFrame


def _as_string(name: str, value: Any) -> str:
    """A YAML value as the ``-p NAME VALUE`` string the build parses."""
    if value is None:
        return "auto" if name == "cutoff" else "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value)
    return str(value)


def read_scenarios(path: str | Path, out: str | Path | None = None) -> list[Scenario]:
    """Parse and check a scenario file; paths in it are relative to the file's folder.
    Raises :class:`BuildError` (exit code 2) with one line naming the problem."""
    path = Path(path)
    if not path.exists():
        raise BuildError(f"scenario file {path} not found", exit_code=2)
    try:
        spec = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        first = str(err).splitlines()[0]
        raise BuildError(f"scenario file {path}: not valid YAML ({first})", exit_code=2) from None
    if not isinstance(spec, dict):
        raise BuildError(f"scenario file {path}: expected a mapping with keys {', '.join(TOP_LEVEL_KEYS)}", exit_code=2)
    unknown = [k for k in spec if k not in TOP_LEVEL_KEYS]
    if unknown:
        raise BuildError(f"scenario file {path}: unknown key(s) {', '.join(map(str, unknown))}; "
                         f"valid keys: {', '.join(TOP_LEVEL_KEYS)}", exit_code=2)
    scenarios = spec.get("scenarios")
    if not isinstance(scenarios, dict) or not scenarios:
        raise BuildError(f"scenario file {path}: 'scenarios' must map at least one name to its parameters",
                         exit_code=2)
    shared = spec.get("parameters") or {}
    if not isinstance(shared, dict):
        raise BuildError(f"scenario file {path}: 'parameters' must map parameter names to values", exit_code=2)
    base = path.resolve().parent
    root = Path(out) if out is not None else base / str(spec.get("out", "outputs/scenarios"))
    default_data = spec.get("data")
    found = []
    for name, own in scenarios.items():
        name = str(name)
        if not SCENARIO_NAME.match(name):
            raise BuildError(f"scenario file {path}: scenario name '{name}' must be letters, digits, '_', '-' or '.' "
                             "(it names a folder)", exit_code=2)
        own = own or {}
        if not isinstance(own, dict):
            raise BuildError(f"scenario '{name}': expected a mapping of parameter names to values", exit_code=2)
        own = dict(own)
        data = own.pop("data", default_data)
        if data is None:
            raise BuildError(f"scenario '{name}': no data file (set 'data' at the top or in the scenario)",
                             exit_code=2)
        for reserved in ("data_path", "output_dir"):
            if reserved in own or reserved in shared:
                raise BuildError(f"scenario '{name}': '{reserved}' is set by the batch (use 'data' and 'out')",
                                 exit_code=2)
        merged = {**shared, **own}
        overrides = tuple((str(k), _as_string(str(k), v)) for k, v in merged.items())
        settings = "; ".join(f"{k}={_as_string(str(k), v)}" for k, v in own.items()) or "primary analysis"
        found.append(Scenario(name=name, data=(base / str(data)).resolve(), out=(root / name).resolve(),
                              overrides=overrides, settings=settings))
    return found


def run_batch(path: str | Path, out: str | Path | None = None, jobs: int | None = None,
              log: Callable[[str], None] = print) -> BatchResult:
    """Run every scenario of a scenario file as a full build and write ``summary.csv``.

    All scenarios are checked first (a wrong one stops the batch before anything runs). A
    scenario whose notebook fails keeps its previous outputs (as a single build would); the
    others complete, and :class:`BuildError` is raised at the end naming the failed ones.
    """
    scenarios = read_scenarios(path, out)
    root = check_output_folder(scenarios[0].out.parent, {"the scenario file": path}, replaced=False)
    total = len(scenarios) * len(NOTEBOOKS)
    jobs = max(1, min(jobs or os.cpu_count() or 1, total))
    # kernels forked from a kernel server that imports what the notebooks import (as a build's)
    with kernel_server(True, notebook_path("").parent):
        pool = _worker_pool(jobs)
        plans: dict[str, Plan] = {}
        try:
            for scenario in scenarios:
                plans[scenario.name] = plan_build(scenario.data, scenario.out, list(scenario.overrides),
                                                  label=scenario.name)
        except BuildError:
            pool.shutdown(cancel_futures=True)
            for plan in plans.values():  # nothing ran: the scenarios planned so far leave no trace
                plan.cache.unlink(missing_ok=True)
                shutil.rmtree(plan.work, ignore_errors=True)
            raise
        log(f"running {len(scenarios)} scenarios ({total} notebooks) on {jobs} worker{'s' if jobs > 1 else ''}")
        tasks = {}
        for position in range(len(NOTEBOOKS)):  # interleaved: the heavy notebooks of every scenario first
            for name, plan in plans.items():
                if position < len(plan.tasks):
                    task = plan.tasks[position]
                    tasks[(name, task[0])] = task
        try:
            results = run_tasks(pool, tasks, log)
        except KeyboardInterrupt:
            for plan in plans.values():
                abandon_build(plan)
            raise BuildError(f"batch interrupted - previous outputs in {root} untouched", exit_code=130) from None
    builds: dict[str, BuildResult] = {}
    failed: dict[str, str] = {}
    for scenario in scenarios:
        own = {notebook: value for (name, notebook), value in results.items() if name == scenario.name}
        try:
            builds[scenario.name] = complete_build(plans[scenario.name], own, label=scenario.name)
        except BuildError as err:
            failed[scenario.name] = str(err)
    summary = summarise({s.name: s for s in scenarios if s.name in builds}, builds)
    _write_atomically(summary, root / "summary.csv")
    result = BatchResult(out=root, builds=builds, failed=failed, summary=summary)
    if failed:
        raise BuildError("; ".join(failed.values()) + f" ({len(builds)} of {len(scenarios)} scenarios written)")
    return result


def _write_atomically(frame: pd.DataFrame, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial-{os.getpid()}")
    frame.to_csv(partial, index=False, lineterminator="\n")
    os.replace(partial, path)


def summarise(scenarios: dict[str, Scenario], builds: dict[str, BuildResult]) -> pd.DataFrame:
    """Key results of each scenario, read back from the tables its build wrote (tidy, long):
    the cutoff used; the weighted ATE on the 90-day mRS and the RR of mRS 0-2, overall and by
    subgroup, with the p-interaction; the selected cutoff and its selection-adjusted p; the
    crossing point; the largest weighted |SMD|; the effective sample size per arm."""
    rows: list[dict] = []
    for name, build in builds.items():
        tables = build.out / "tables"
        settings = scenarios[name].settings

        def add(quantity, subgroup="", estimate=np.nan, lower=np.nan, upper=np.nan, p=np.nan):
            rows.append({"scenario": name, "settings": settings, "quantity": quantity, "subgroup": subgroup,
                         "estimate": float(estimate), "ci_lower": float(lower), "ci_upper": float(upper),
                         "p_value": float(p)})

        table2 = pd.read_csv(tables / "table2.csv")
        weighted = table2[table2["analysis"] == "iptw"]
        sweep = pd.read_csv(tables / "cutoff_sweep.csv")
        selected = sweep[sweep["selected"].astype(bool)]
        cutoff_used = build.params.cutoff if build.params.cutoff is not None else (
            selected["cutoff"].iloc[0] if len(selected) else np.nan)
        add("cutoff_used", estimate=cutoff_used)
        for outcome, quantity in (("mrs_90d", "ate_mrs_90d"), ("mrs_0_2", "rr_mrs_0_2")):
            for row in weighted[weighted["outcome"] == outcome].itertuples():
                add(quantity, row.subgroup, row.estimate, row.ci_lower, row.ci_upper, row.p_value)
            rows_p = weighted[(weighted["outcome"] == outcome) & (weighted["subgroup"] != "overall")]
            add(f"p_interaction_{quantity}", estimate=np.nan, p=rows_p["p_interaction"].iloc[0] if len(rows_p) else np.nan)
        if len(selected):
            s = selected.iloc[0]
            add("selected_cutoff", estimate=s["cutoff"], p=s["p_interaction"])
            add("selected_difference", estimate=s["difference"])
        else:
            add("selected_cutoff")
        test = tables / "selection_test.csv"
        if test.exists():
            add("selection_adjusted_p", p=pd.read_csv(test)["p_value"].iloc[0])
        crossing = pd.read_csv(tables / "continuous_interaction.csv").iloc[0]
        add("crossing_point", estimate=crossing["crossing_point"], lower=crossing["crossing_ci_lower"],
            upper=crossing["crossing_ci_upper"])
        add("interaction_per_percent", estimate=crossing["interaction_beta"], lower=crossing["interaction_ci_lower"],
            upper=crossing["interaction_ci_upper"], p=crossing["interaction_p"])
        balance = pd.read_csv(tables / "balance.csv")
        add("max_abs_smd_weighted", estimate=balance["smd_weighted"].abs().max())
        for row in pd.read_csv(tables / "effective_sample_size.csv").itertuples():
            add("effective_sample_size", row.arm, row.ess_weighted)
    return pd.DataFrame(rows, columns=SUMMARY_COLUMNS)
