"""One build: validate parameters and data, execute the notebooks with papermill into a
temporary folder beside the target, and swap it in only when every notebook succeeded.

A failed build leaves the previous output folder exactly as it was and keeps the failed run's
partial notebooks in ``<out>.failed/`` for inspection.
"""

from __future__ import annotations

import multiprocessing
import os
import shutil
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .data import DataError
from .params import Parameters, ParameterError
from .data import write_cohort_cache
from .study import Study, analysis_cutoff, load_study

NOTEBOOKS: tuple[str, ...] = ("00_audit", "01_cohort", "02_weighting", "03_cutoffs", "04_outcomes", "05_sensitivity",
                               "06_specification", "07_simulation")
# Heaviest first when notebooks share workers, so that no long notebook starts last.
SCHEDULE_FIRST: tuple[str, ...] = ("06_specification", "07_simulation", "05_sensitivity", "02_weighting")
PATH_PARAMETERS = ("data_path", "output_dir", "published_dir")
SINGLE_THREADED = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


OUTPUT_README = """\
# Build outputs

Written by `make supplement` (or `python -m analysis_lib build --data PATH --out DIR`); the whole
folder is replaced only when every notebook succeeded. Numbers in `tables/*.csv` are unrounded;
the `.html` tables are formatted for the manuscript.

| path | content |
| --- | --- |
| `notebooks/NN_name.ipynb` | every notebook as executed on the data, with its parameters |
| `tables/published_audit.csv` | the audit of the paper's printed numbers (checked against themselves) |
| `tables/table1.csv` | Table 1: characteristics by arm, with Fisher / Mann-Whitney p |
| `tables/patient_flow.csv` | Supplementary Figure 1: counts of the patient flow |
| `tables/weights.csv` | patient-level propensity and weight (audit only: never share) |
| `tables/balance.csv` | Supplementary Table 1: SMDs and variance ratios |
| `tables/effective_sample_size.csv` | effective sample size per arm |
| `tables/cutoff_sweep.csv` | Supplementary Table 2: subgroup ATEs at every cutoff |
| `tables/continuous_interaction.csv` | interaction per 1 % stenosis and crossing point (delta CI) |
| `tables/crossing_point.csv` | crossing point with delta-method and Fieller intervals |
| `tables/continuous_band.csv` | ATE(stenosis) with its pointwise band (Supplementary Figure 2) |
| `tables/cutoff_selection.csv` | how often each cutoff is selected in bootstrap samples of the whole procedure |
| `tables/crossing_bootstrap.csv` | percentile intervals of the crossing point and of the selected difference |
| `tables/selection_test.csv` | the test of the largest difference, adjusted for the selection |
| `tables/simulation_summary.csv` | the simulation study: bias, coverage, rejection rates, cutoff recovery (Monte-Carlo SEs) |
| `tables/simulation_replicates.csv` | one row per simulated cohort |
| `tables/table2.csv` | Table 2: every outcome, unadjusted and weighted, overall and by subgroup |
| `tables/mrs_distribution.csv` | Figure 1: weighted 90-day mRS distribution |
| `tables/center_sensitivity.csv` | Supplementary Table 3: every Table 2 outcome with a random intercept for center |
| `tables/center_models.csv` | variance components, p-interaction and convergence of those models |
| `tables/cluster_robust.csv` | every weighted Table 2 row with center-clustered standard errors |
| `tables/evalues.csv` | E-values of every weighted Table 2 row |
| `tables/propensity_specifications.csv` | the primary, richer-formula and CBPS propensity models side by side |
| `tables/weight_sensitivity.csv` | mRS, mRS 0-2 and sICH under ATO, ATE, ATT, ATM, truncated and trimmed weights |
| `tables/mi_sensitivity.csv` | the same rows after multiple imputation of missing covariates (Rubin's rules) |
| `tables/specification_curve.csv` | the multiverse: subgroup ATEs on the mRS over every combination of choices |
| `figures/*.png`, `figures/*.pdf` | figures at 300 dpi and as vector PDF |
"""


class BuildError(RuntimeError):
    """A build step failed; the message is one line, and the exit code is set."""

    def __init__(self, message: str, exit_code: int = 1):
        super().__init__(message)
        self.exit_code = exit_code


def project_root() -> Path:
    """The compendium's root folder (the package is installed in editable mode)."""
    return Path(__file__).resolve().parents[1]


def notebook_path(name: str, folder: Path | None = None) -> Path:
    return (folder or project_root() / "notebooks") / f"{name}.ipynb"


@dataclass(frozen=True)
class BuildResult:
    out: Path
    params: Parameters
    timings: dict[str, float]
    seconds: float


def resolve_parameters(data: str | Path, out: str | Path, overrides: list[tuple[str, str]]) -> Parameters:
    """Parameters of a build: defaults, then the data and output paths, then ``-p`` overrides."""
    for name, _ in overrides:
        if name in ("data_path", "output_dir"):
            raise ParameterError(f"parameter '{name}' is set by --data/--out, not with -p")
    base = {"data_path": str(Path(data).resolve()), "output_dir": str(Path(out).resolve()),
            "published_dir": str(project_root() / "data" / "published")}
    params = Parameters.from_strings(overrides, base=base)
    if params.published_dir != base["published_dir"]:
        params = params.replace(published_dir=str(Path(params.published_dir).resolve()))
    return params


def preflight(params: Parameters) -> Study:
    """Stop before any notebook runs when the data or the design cannot support the analysis:
    invalid data (every problem listed), a propensity model that cannot be fitted, or no usable
    cutoff when the cutoff is data-driven. Returns the study (its validated cohort is cached
    for the notebooks)."""
    study = load_study(params)
    analysis_cutoff(study)
    return study


def notebook_parameters(path: Path, params: Parameters, output_dir: Path) -> dict:
    """The parameters a notebook declares, with the build's values (paths absolute)."""
    import papermill as pm

    declared = pm.inspect_notebook(str(path))
    values = params.to_dict()
    values["output_dir"] = str(output_dir)
    return {k: values[k] for k in declared if k in values}


def run_build(data: str | Path, out: str | Path, overrides: list[tuple[str, str]] | None = None,
              notebooks: tuple[str, ...] = NOTEBOOKS, log: Callable[[str], None] = print,
              notebook_dir: Path | None = None, jobs: int | None = None) -> BuildResult:
    """Execute the whole build (see the module docstring). Raises :class:`BuildError`.

    The notebooks do not depend on each other (each starts from the data), so they run in
    parallel on ``jobs`` worker processes (default: one per core); their order in the output
    and in error reports is the order of ``notebooks``.
    """
    overrides = overrides or []
    started = time.perf_counter()
    try:
        params = resolve_parameters(data, out, overrides)
        study = preflight(params)
    except (ParameterError, DataError, ValueError) as err:
        raise BuildError(str(err), exit_code=2) from None

    out = Path(params.output_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    stamp = f"{os.getpid()}-{int(time.time())}"
    work = out.parent / f".{out.name}.partial-{stamp}"
    (work / "notebooks").mkdir(parents=True)
    cache = out.parent / f".{out.name}.cohort-{stamp}.pkl"  # the validated cohort, read by every notebook
    write_cohort_cache(study.cohort, params.data_path, cache)
    del study
    params = params.replace(data_cache=str(cache))
    tasks = []
    order = sorted(notebooks, key=lambda n: (SCHEDULE_FIRST.index(n) if n in SCHEDULE_FIRST else len(SCHEDULE_FIRST)))
    for name in order:
        source = notebook_path(name, notebook_dir)
        tasks.append((name, str(source), str(work / "notebooks" / f"{name}.ipynb"),
                      notebook_parameters(source, params, work)))
    jobs = max(1, min(jobs or os.cpu_count() or 1, len(tasks)))
    log(f"running {len(tasks)} notebooks on {jobs} worker{'s' if jobs > 1 else ''}")
    results: dict[str, dict] = {}
    try:
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=jobs, mp_context=context) as pool:
            futures = {pool.submit(_execute, *task): task[0] for task in tasks}
            for future in as_completed(futures):
                name = futures[future]
                results[name] = future.result()
                log(_progress(name, results[name], len(results), len(tasks)))
    except KeyboardInterrupt:
        failed = _keep_failed(work, out)
        raise BuildError(f"build interrupted - previous outputs in {out} untouched; "
                         f"partial run kept in {failed}", exit_code=130) from None
    finally:
        cache.unlink(missing_ok=True)
    for name in notebooks:
        error = results[name].get("error")
        if error:
            failed = _keep_failed(work, out)
            raise BuildError(
                f"build failed in notebook {name}.ipynb, {error['cell']} ({error['line'][:60]}): "
                f"{error['ename']}: {error['evalue']} - previous outputs in {out} untouched; "
                f"partial run kept in {failed}"
            )
    (work / "README.md").write_text(OUTPUT_README, encoding="utf-8")
    _swap_in(work, out)
    return BuildResult(out=out, params=params, timings={n: results[n]["seconds"] for n in notebooks},
                       seconds=time.perf_counter() - started)


def _progress(name: str, result: dict, done: int, total: int) -> str:
    status = "FAILED" if result.get("error") else "done"
    return f"[{done}/{total}] {name} {status} ({result['seconds']:.1f} s)"


def _execute(name: str, source: str, dest: str, parameters: dict) -> dict:
    """Run one notebook with papermill (in a worker process); errors come back as plain data.

    The kernel inherits the worker's standard error, where ipykernel prints transport warnings;
    it goes to the null device so that the build's own messages stay readable (a notebook's
    errors reach the user through papermill's exception, below).
    """
    import papermill as pm
    from papermill.exceptions import PapermillExecutionError

    os.dup2(os.open(os.devnull, os.O_WRONLY), 2)
    # Notebooks already run side by side on the cores: one BLAS thread per kernel avoids
    # oversubscription (the kernels, and the processes they spawn, inherit this environment).
    os.environ.update(SINGLE_THREADED)

    start = time.perf_counter()
    try:
        pm.execute_notebook(source, dest, parameters=parameters, cwd=str(Path(source).parent),
                            kernel_name="python3", progress_bar=False, log_output=False)
    except PapermillExecutionError as err:
        cell = f"cell In [{err.exec_count}]" if err.exec_count else f"cell index {err.cell_index}"
        line = next((ln.strip() for ln in str(err.source).splitlines() if ln.strip() and not ln.startswith("#")), "")
        evalue = str(err.evalue).strip().splitlines()[0] if str(err.evalue).strip() else ""
        return {"seconds": time.perf_counter() - start,
                "error": {"cell": cell, "line": line, "ename": err.ename, "evalue": evalue}}
    return {"seconds": time.perf_counter() - start}


def _keep_failed(work: Path, out: Path) -> Path:
    failed = out.parent / f"{out.name}.failed"
    if failed.exists():
        shutil.rmtree(failed)
    os.replace(work, failed)
    return failed


def _swap_in(work: Path, out: Path) -> None:
    """Replace ``out`` by ``work``: two renames, the old folder removed only afterwards."""
    old = None
    if out.exists():
        old = out.parent / f".{out.name}.old-{os.getpid()}"
        os.replace(out, old)
    os.replace(work, out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    failed = out.parent / f"{out.name}.failed"
    if failed.exists():
        shutil.rmtree(failed, ignore_errors=True)


def summary_line(result: BuildResult) -> str:
    tables = len(list((result.out / "tables").glob("*.csv")))
    figures = len(list((result.out / "figures").glob("*.png")))
    return (f"Outputs written to {result.out} ({len(result.timings)} notebooks, {tables} tables, "
            f"{figures} figures; {result.seconds:.1f} s)")


def refresh_notebooks(names: tuple[str, ...] = NOTEBOOKS, log: Callable[[str], None] = print) -> None:
    """Re-execute the committed notebooks from their paired percent scripts, with their default
    parameters (the synthetic cohort), and store the outputs in ``notebooks/*.ipynb``.

    These stored outputs are what nbval compares against in ``make test`` and what a reader sees
    on the web. Execution-timing metadata is dropped so that a re-run leaves git clean.
    """
    import jupytext
    from nbclient import NotebookClient

    folder = project_root() / "notebooks"
    for name in names:
        start = time.perf_counter()
        nb = jupytext.read(folder / f"{name}.py")
        NotebookClient(nb, kernel_name="python3", timeout=900,
                       resources={"metadata": {"path": str(folder)}}).execute()
        for cell in nb.cells:
            cell.metadata.pop("execution", None)
        nb.metadata.pop("papermill", None)
        jupytext.write(nb, folder / f"{name}.ipynb")
        log(f"{name}.ipynb executed ({time.perf_counter() - start:.1f} s)")
