"""One build: validate parameters and data, execute the notebooks with papermill into a
temporary folder beside the target, and swap it in only when every notebook succeeded.

A failed build leaves the previous output folder exactly as it was and keeps the failed run's
partial notebooks in ``<out>.failed/`` for inspection. A build whose every notebook the previous
one into the same folder can give copies them without reading the data (:func:`plan_unchanged`).
"""

from __future__ import annotations

import ast
import ctypes
import json
import multiprocessing
import os
import shutil
import subprocess
import sys
import threading
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from threadpoolctl import threadpool_limits

from . import cache as cache_module
from . import provenance
from .data import DataError, remove_cohort_cache, write_cohort_cache, write_fitted_cache
from .kernel_server import SERVER_ENVIRONMENT, KernelServer, forking_possible
from .outputs import BUILD_ENVIRONMENT
from .params import ParameterError, Parameters
from .published import check_published_dir
from .registry import missing_files, readme
from .steps import analysis_cutoff, check_subgroup_weights
from .study import Study, load_study, propensity_key, sample_key
from .supplement import assemble

NOTEBOOKS: tuple[str, ...] = ("00_audit", "01_cohort", "02_weighting", "03_cutoffs", "04_outcomes", "05_sensitivity",
                               "06_specification", "07_simulation")
# Heaviest first when notebooks share workers, so that no long notebook starts last (the order of
# their times at n = 10^6: 06 55 s, 07 58 s when it runs, 04 17 s, 02 17 s, 05 16 s, 03 7 s, 01 5 s).
SCHEDULE_FIRST: tuple[str, ...] = ("06_specification", "07_simulation", "04_outcomes", "02_weighting",
                                   "05_sensitivity", "03_cutoffs")
PATH_PARAMETERS = ("data_path", "output_dir", "published_dir")
KEPT_ACROSS_BUILDS = "scenarios"
SINGLE_THREADED = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
# glibc's allocator returns large blocks to the system when they are freed (each array above a
# threshold is its own mapping, and the top of the heap is trimmed), so a kernel that makes and
# drops arrays of 10^6 rows spends its time in page faults zeroing fresh memory; kept in the heap,
# they are reused (system time of a 10^6 build: 16-21 s before, 14 s after; the kernels' peak
# memory unchanged). Only where memory comes from changes, never a result; other C libraries ignore it.
HEAP_KEPT = {"MALLOC_MMAP_THRESHOLD_": str(2 ** 32), "MALLOC_TRIM_THRESHOLD_": str(2 ** 33)}
# the kernels notebooks run in (by name: imported by the workers only when a notebook runs)
KERNEL_MANAGER = "analysis_lib.kernels.BuildKernelManager"


OUTPUT_README = readme()  # outputs/README.md, from the registry of outputs
PR_SET_THP_DISABLE, PR_GET_THP_DISABLE = 41, 42  # prctl(2), Linux 3.15 and later


@contextmanager
def small_pages():
    """Transparent huge pages off for this process while the block runs (``prctl``'s
    ``PR_SET_THP_DISABLE``; restored after it): the preflight reads, validates and caches 10^6
    rows in fresh memory, and on virtual machines a fresh 2 MB page can cost more than the work
    done in it (the preflight of 10^6 rows took 3.7-4.4 s with small pages against 7.3-8.3 s with
    the huge pages NumPy asks for, measured alternately; the notebooks' kernels, which reuse
    their memory, were not faster with small pages and keep the system's setting). Nothing
    happens where ``prctl`` is missing or refuses; results never depend on it."""
    prctl = None
    if sys.platform.startswith("linux"):
        try:
            prctl = ctypes.CDLL(None).prctl
        except (OSError, AttributeError):
            pass
    previous = prctl(PR_GET_THP_DISABLE, 0, 0, 0, 0) if prctl is not None else -1
    if previous >= 0:
        prctl(PR_SET_THP_DISABLE, 1, 0, 0, 0)
    try:
        yield
    finally:
        if previous >= 0:
            prctl(PR_SET_THP_DISABLE, previous, 0, 0, 0)


class BuildError(RuntimeError):
    """A build step failed; the message is one line, and the exit code is set."""

    def __init__(self, message: str, exit_code: int = 1):
        super().__init__(message)
        self.exit_code = exit_code


NOTEBOOK_ENVIRONMENT = "ANALYSIS_LIB_NOTEBOOK"


def project_root() -> Path:
    """The compendium's checkout: the folder with ``notebooks/`` and ``data/published/``.

    With the editable install of ``make`` it is the folder above the package; with ``pip install .``
    the package lives in site-packages, and the checkout is the current folder or one above it.
    Anywhere else the build cannot run, and says so in one line."""
    for folder in (Path(__file__).resolve().parents[1], Path.cwd().resolve(), *Path.cwd().resolve().parents):
        if (folder / "notebooks" / f"{NOTEBOOKS[0]}.ipynb").is_file() and (folder / "data" / "published").is_dir():
            return folder
    raise BuildError("the compendium's notebooks were not found (notebooks/ and data/published/ of a checkout): "
                     "run the command from the checkout of the compendium, e.g. cd path/to/compendium", exit_code=2)


BUILD_MARKER = "provenance.json"  # what every finished build writes: its folder may be replaced
FAILED_MARKER = ".failed-build"   # what a failed build leaves in <out>.failed/: that folder may be replaced


def _only_the_shipped_readme(folder: Path) -> bool:
    """Empty, or holding only the README that every build writes (the checkout's ``outputs/``)."""
    content = list(folder.iterdir())
    if not content:
        return True
    readme = folder / "README.md"
    return content == [readme] and readme.is_file() and readme.read_text(encoding="utf-8", errors="replace") == OUTPUT_README


def check_output_folder(out: str | Path, inputs: dict[str, str | Path | None] | None = None,
                        replaced: bool = True) -> Path:
    """The output folder of a build, refused (:class:`BuildError`, exit code 2) unless replacing
    it can lose nothing: it must not be the file-system root, the home folder, an existing file,
    the compendium's checkout or a folder above it, nor be or contain any of ``inputs`` (label ->
    path: the data file, the column map, the published tables); an existing non-empty folder must
    carry the marker of a previous build (``provenance.json``). ``replaced=False`` (a folder
    that only receives files: the scenario batch's, the resampling's) skips that last rule."""
    out = Path(out).expanduser().resolve()
    home = Path.home().resolve()
    if out == Path(out.anchor):
        raise BuildError(f"--out {out}: the file-system root cannot be an output folder; name a new folder, "
                         "e.g. --out outputs", exit_code=2)
    if out == home:
        raise BuildError(f"--out {out}: the home folder cannot be an output folder; name a new folder inside it",
                         exit_code=2)
    if out.exists() and not out.is_dir():
        raise BuildError(f"--out {out}: an existing file, not a folder; a build replaces its output folder, so "
                         "name a new folder", exit_code=2)
    try:
        root = project_root()
    except BuildError:
        root = None
    protected = {**({"the compendium's checkout": root} if root is not None else {}), **(inputs or {})}
    for label, path in protected.items():
        if path is None:
            continue
        path = Path(path).expanduser().resolve()
        if out == path or out in path.parents:
            verb = "is" if out == path else "contains"
            raise BuildError(f"--out {out} {verb} {label} ({path}); a build replaces its output folder, so "
                             "choose a new folder, e.g. --out outputs", exit_code=2)
    if replaced and out.is_dir() and not (out / BUILD_MARKER).is_file() and not _only_the_shipped_readme(out):
        raise BuildError(f"--out {out}: a folder with other content and no {BUILD_MARKER} of an earlier build; a "
                         "build replaces its output folder, so choose a new or empty folder", exit_code=2)
    return out


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
    base = {"data_path": str(Path(data).expanduser().resolve()), "output_dir": str(Path(out).expanduser().resolve()),
            "published_dir": str(project_root() / "data" / "published"),
            # notebooks already share every core, and pool workers spawned inside a kernel would
            # outlive a Ctrl-C of the build: the simulation runs in its kernel's process
            "simulation_workers": 1}
    params = Parameters.from_strings(overrides, base=base)
    if params.published_dir != base["published_dir"]:
        params = params.replace(published_dir=str(Path(params.published_dir).resolve()))
    problem = check_published_dir(params.published_dir)
    if problem:
        raise ParameterError(problem)
    if params.column_map is not None:  # notebooks run in notebooks/: every path absolute
        params = params.replace(column_map=str(Path(params.column_map).resolve()))
    return params


def preflight(params: Parameters, on_valid: Callable[[Study], None] | None = None) -> tuple[Study, float]:
    """Stop before any notebook runs when the data or the design cannot support the analysis:
    invalid data (every problem listed), a propensity model that cannot be fitted, or no usable
    cutoff when the cutoff is data-driven. Returns the study (its validated cohort is cached
    for the notebooks) and the cutoff of Table 2. ``on_valid(study)`` is called once the data
    are valid, before the propensity model is fitted (the build starts writing the cache there)."""
    study = load_study(params)
    if on_valid is not None:
        on_valid(study)
    # one BLAS thread, as in the kernels (SINGLE_THREADED): the propensity model fitted here is
    # stored for the notebooks (write_fitted_cache), and must be theirs to the last bit
    with threadpool_limits(limits=1, user_api="blas"):
        study.weights  # the propensity model is fitted here, before any notebook runs
        cutoff = analysis_cutoff(study)
        check_subgroup_weights(study, cutoff)
    return study, cutoff


class _CacheWriter:
    """Writes the validated cohort and its analysis sample into the build's temporary folder on a
    thread while the preflight fits the propensity model and checks the design, then the fitted
    model beside it (:func:`~analysis_lib.data.write_fitted_cache`). At 10^6 patients the 0.5 GB
    file takes 0.9 to 2 s to write, the model and the checks about 1 s: the write overlaps them
    on the second core instead of following them (the notebooks wait for both)."""

    def __init__(self, out: Path, params: Parameters, prefix: str):
        self.out, self.params, self.prefix = out, params, prefix
        self.work: Path | None = None
        self.thread: threading.Thread | None = None
        self.error: OSError | None = None

    def start(self, study: Study) -> None:
        try:
            self.out.parent.mkdir(parents=True, exist_ok=True)
            self.work = _claim_work_folder(self.out, self.prefix)
        except OSError as err:
            raise self._cannot_write(err) from None
        self.thread = threading.Thread(target=self._write, args=(study.cohort, study.sample), name="cohort cache")
        self.thread.start()

    @property
    def cache(self) -> Path:
        return self.work / ".cohort.pkl"  # the validated cohort, read by every notebook; removed before the swap

    def _write(self, cohort, sample) -> None:
        try:
            write_cohort_cache(cohort, self.params.data_path, self.cache, sample=(sample_key(self.params), sample))
        except OSError as err:
            self.error = err

    def finish(self, **fitted) -> tuple[Path, Path]:
        """Wait for the cohort, store ``fitted`` beside it; the temporary folder and the cache."""
        self.thread.join()
        try:
            if self.error is not None:
                raise self.error
            write_fitted_cache(self.params.data_path, self.cache, **fitted)
        except OSError as err:
            self.abandon()
            raise self._cannot_write(err) from None
        return self.work, self.cache

    def abandon(self) -> None:
        """The preflight failed: wait for the write, remove the temporary folder."""
        if self.thread is not None:
            self.thread.join()
        if self.work is not None:
            shutil.rmtree(self.work, ignore_errors=True)

    def _cannot_write(self, err: OSError) -> BuildError:
        return BuildError(f"{self.prefix}--out {self.out}: cannot write there ({err.strerror or type(err).__name__}); "
                          "choose a folder you can write to", exit_code=2)


def declared_parameters(path: Path) -> list[str]:
    """Names assigned in the notebook's cell tagged ``parameters`` (what papermill replaces).

    Read with ``ast`` from the notebook's JSON: papermill's ``inspect_notebook`` validates the
    whole notebook, outputs included, and took most of a second per notebook.
    """
    nb = json.loads(Path(path).read_text(encoding="utf-8"))
    for cell in nb.get("cells", []):
        if cell.get("cell_type") == "code" and "parameters" in cell.get("metadata", {}).get("tags", []):
            source = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
            names = []
            for node in ast.parse(source).body:
                targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
                names += [t.id for t in targets if isinstance(t, ast.Name)]
            return names
    return []


def notebook_parameters(path: Path, params: Parameters, output_dir: Path) -> dict:
    """The parameters a notebook declares, with the build's values (paths absolute)."""
    values = params.to_dict()
    values["output_dir"] = str(output_dir)
    return {k: values[k] for k in declared_parameters(path) if k in values}


@dataclass(frozen=True)
class Plan:
    """A build validated and ready to run: its parameters, its notebook tasks and its folders."""

    out: Path
    work: Path
    cache: Path
    params: Parameters
    tasks: tuple[tuple[str, str, str, dict], ...]
    started: float
    started_at: datetime
    keys: dict = None  # notebook -> the content hash of its inputs (analysis_lib.cache)
    store: Path | None = None  # the store of the notebooks that read no data (analysis_lib.cache)

    @property
    def unread(self) -> set[str]:
        """The notebooks that read no data (kept in the store)."""
        return {name for name, _, _, injected in self.tasks if not cache_module.reads_data(injected)}


def plan_build(data: str | Path, out: str | Path, overrides: list[tuple[str, str]] | None = None,
               notebooks: tuple[str, ...] = NOTEBOOKS, notebook_dir: Path | None = None,
               label: str = "", store: Path | None = None) -> Plan:
    """Validate parameters and data (:func:`preflight`), then create the temporary folder and the
    validated-cohort cache and list the notebook tasks. Raises :class:`BuildError` (exit code 2)
    before anything is written when the parameters or the data are wrong, and with the temporary
    folder removed when the design is (the cache is written while it is checked); ``label`` (a scenario
    name) prefixes that message. ``store``: where the notebooks that read no data are kept
    between builds (:mod:`analysis_lib.cache`; None: not kept). Runs in :func:`small_pages`."""
    with small_pages():
        return _plan_build(data, out, overrides, notebooks, notebook_dir, label, store)


def _plan_build(data, out, overrides, notebooks, notebook_dir, label, store) -> Plan:
    started = time.perf_counter()
    started_at = datetime.now(timezone.utc)
    prefix = f"scenario '{label}': " if label else ""
    try:
        params, out = _checked_parameters(data, out, overrides)
    except (ParameterError, DataError, ValueError, BuildError) as err:
        raise BuildError(prefix + str(err), exit_code=2) from None
    writer = _CacheWriter(out, params, prefix)
    try:
        study, _ = preflight(params, on_valid=writer.start)
        inputs = cache_module.build_inputs(params)  # hashed while the cache is still being written
    except BaseException as err:  # nothing of this build is left behind, whatever stopped it
        writer.abandon()
        if isinstance(err, (ParameterError, DataError, ValueError)):
            raise BuildError(prefix + str(err), exit_code=2) from None
        raise
    # with the propensity model of the preflight: every notebook uses the same
    work, cache = writer.finish(propensity=(propensity_key(params), study.propensity))
    params = params.replace(data_cache=str(cache))
    tasks, keys = _notebook_tasks(params, notebooks, notebook_dir, work, inputs)
    return Plan(out=out, work=work, cache=cache, params=params, tasks=tasks, started=started, started_at=started_at,
                keys=keys, store=store)


def _checked_parameters(data, out, overrides) -> tuple[Parameters, Path]:
    params = resolve_parameters(data, out, overrides or [])
    out = check_output_folder(params.output_dir, {"the data file": params.data_path,
                                                  "the column map": params.column_map,
                                                  "the published tables": params.published_dir})
    return params, out


def _notebook_tasks(params: Parameters, notebooks, notebook_dir, work: Path, inputs: dict) -> tuple[tuple, dict]:
    """The notebook tasks, heaviest first (``(name, source, executed copy, parameters)``), and
    each notebook's key (:func:`~analysis_lib.cache.notebook_key`)."""
    tasks, keys = [], {}
    order = sorted(notebooks, key=lambda n: (SCHEDULE_FIRST.index(n) if n in SCHEDULE_FIRST else len(SCHEDULE_FIRST)))
    for name in order:
        source = notebook_path(name, notebook_dir)
        injected = notebook_parameters(source, params, work)
        tasks.append((name, str(source), str(work / "notebooks" / f"{name}.ipynb"), injected))
        keys[name] = cache_module.notebook_key(source, injected, inputs)
    return tuple(tasks), keys


def plan_unchanged(data: str | Path, out: str | Path, overrides: list[tuple[str, str]] | None = None,
                   notebooks: tuple[str, ...] = NOTEBOOKS, notebook_dir: Path | None = None,
                   store: Path | None = None) -> Plan | None:
    """The plan of a build whose every notebook the previous build into ``out`` can give
    (:func:`~analysis_lib.cache.reusable`: the same inputs, its files intact), made without
    reading the data or writing the cohort cache: every notebook's key holds the data file's
    SHA-256 and the library's, so the previous build validated these very bytes with this very
    code. ``None`` when a notebook would run or anything is amiss: then :func:`plan_build`
    validates (and reports) as usual. At 10^6 patients the unchanged rebuild skips 5 to 7 s of
    reading, validating and caching the data."""
    started, started_at = time.perf_counter(), datetime.now(timezone.utc)
    try:
        params, out = _checked_parameters(data, out, overrides)
        record, _ = cache_module.previous_record(out)
        if record is None:
            return None
        work = _work_folder(out)
        params = params.replace(data_cache=str(work / ".cohort.pkl"))  # never written: no notebook runs
        tasks, keys = _notebook_tasks(params, notebooks, notebook_dir, work, cache_module.build_inputs(params))
        if any(cache_module.reusable(out, record, name, keys[name]) is None for name in keys):
            return None
        work = _claim_work_folder(out)
    except (ParameterError, DataError, ValueError, BuildError, OSError):
        return None
    return Plan(out=out, work=work, cache=work / ".cohort.pkl", params=params, tasks=tasks, started=started,
                started_at=started_at, keys=keys, store=store)


def _work_folder(out: Path) -> Path:
    return out.parent / f".{out.name}.partial"


def _claim_work_folder(out: Path, prefix: str = "") -> Path:
    """The temporary folder of a build into ``out``: ``.<out>.partial`` beside it, with the
    owner's process ID inside. Its name does not change from build to build, so that executed
    notebooks (whose parameters name it) are identical when data, parameters and seed are. A
    folder left by a build that no longer runs is removed; one of a running build stops this one."""
    work = _work_folder(out)
    owner_file = work / ".owner"
    if work.exists():
        try:
            owner = int(owner_file.read_text().strip())
        except (OSError, ValueError):
            owner = None
        if owner is None:
            raise BuildError(f"{prefix}{work} exists and was not made by a build (no owner file); move it away "
                             f"before building into {out}", exit_code=2)
        if owner != os.getpid() and _alive(owner):
            raise BuildError(f"{prefix}another build (process {owner}) is writing {out}; wait for it to finish, "
                             f"or remove {work} if it no longer runs", exit_code=2)
        shutil.rmtree(work)
    (work / "notebooks").mkdir(parents=True)
    owner_file.write_text(f"{os.getpid()}\n")
    return work


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def complete_build(plan: Plan, results: dict[str, dict], label: str = "") -> BuildResult:
    """After the notebooks ran: stop at the first failed notebook (previous outputs untouched,
    the partial run kept in ``<out>.failed/``), otherwise write the README, provenance and
    supplement into the temporary folder and swap it in."""
    remove_cohort_cache(plan.cache)
    prefix = f"scenario '{label}': " if label else ""
    names = [task[0] for task in plan.tasks]
    for name in sorted(names, key=lambda n: NOTEBOOKS.index(n) if n in NOTEBOOKS else len(NOTEBOOKS)):
        error = results[name].get("error")
        if error:
            failed = _keep_failed(plan.work, plan.out)
            raise BuildError(
                f"{prefix}build failed in notebook {name}.ipynb, {error['cell']} ({error['line'][:60]}): "
                f"{error['ename']}: {error['evalue']} - previous outputs in {plan.out} untouched; "
                f"partial run kept in {failed}"
            )
    ordered = [n for n in NOTEBOOKS if n in names] + [n for n in names if n not in NOTEBOOKS]
    missing = missing_files(plan.work, plan.params.to_dict()) if set(names) == set(NOTEBOOKS) else []
    if missing:
        failed = _keep_failed(plan.work, plan.out)
        raise BuildError(f"{prefix}build incomplete: the notebooks did not write {', '.join(missing[:5])}"
                         f"{' and more' if len(missing) > 5 else ''} (see analysis_lib/registry.py) - previous "
                         f"outputs in {plan.out} untouched; partial run kept in {failed}")
    parameters = plan.params.to_dict()
    notebooks = {}
    for n in ordered:
        notebooks[n] = {"started": results[n]["started"], "seconds": round(results[n]["seconds"], 2),
                        "reused": bool(results[n].get("reused"))}
        if plan.keys and n in plan.keys:
            notebooks[n]["inputs"] = plan.keys[n]
            notebooks[n]["files"] = cache_module.written_files(plan.work, n, parameters)
            if plan.store is not None and n in plan.unread and not results[n].get("reused"):
                cache_module.save_to_store(plan.store, n, plan.keys[n], plan.work, notebooks[n]["files"],
                                           notebooks[n]["seconds"], notebooks[n]["started"])
    finalize(plan.work, plan.params.replace(data_cache=None, output_dir=str(plan.out)), plan.started_at,
             time.perf_counter() - plan.started, notebooks)
    (plan.work / ".owner").unlink(missing_ok=True)
    _swap_in(plan.work, plan.out)
    return BuildResult(out=plan.out, params=plan.params.replace(data_cache=None),
                       timings={n: results[n]["seconds"] for n in ordered},
                       seconds=time.perf_counter() - plan.started)


def abandon_build(plan: Plan) -> Path:
    """An interrupted build: remove the cache, keep the partial run in ``<out>.failed/``."""
    remove_cohort_cache(plan.cache)
    return _keep_failed(plan.work, plan.out)


def run_build(data: str | Path, out: str | Path, overrides: list[tuple[str, str]] | None = None,
              notebooks: tuple[str, ...] = NOTEBOOKS, log: Callable[[str], None] = print,
              notebook_dir: Path | None = None, jobs: int | None = None, force: bool = False,
              store: Path | None | str = "default") -> BuildResult:
    """Execute the whole build (see the module docstring). Raises :class:`BuildError`.

    The notebooks do not depend on each other (each starts from the data), so they run in
    parallel on ``jobs`` worker processes (default: one per core); their order in the output
    and in error reports is the order of ``notebooks``. A notebook whose inputs are those of the
    previous build into ``out`` is copied from it instead (:mod:`analysis_lib.cache`), and a
    notebook that reads no data from ``store`` when it holds it (default: the checkout's
    ``.cache/notebooks/`` or ``$ANALYSIS_LIB_CACHE``; None: no store), unless ``force``. When
    every notebook is copied, the data are not read again (:func:`plan_unchanged`).
    """
    store = cache_module.default_store(project_root()) if store == "default" else store
    plan = None if force else plan_unchanged(data, out, overrides, notebooks, notebook_dir, store=store)
    # the kernel server imports what the notebooks import while the data are validated
    with kernel_server(plan is None, notebook_path("", notebook_dir).parent):
        plan = plan or plan_build(data, out, overrides, notebooks, notebook_dir, store=store)
        try:
            reused = {} if force else reuse_previous(plan, log)
            todo = [task for task in plan.tasks if task[0] not in reused]
            results = {}
            if todo:  # the workers start only when a notebook has to run
                jobs = max(1, min(jobs or os.cpu_count() or 1, len(todo)))
                log(f"running {len(todo)} notebook{'s' if len(todo) > 1 else ''} on {jobs} worker"
                    f"{'s' if jobs > 1 else ''}" + (f" ({len(reused)} reused)" if reused else ""))
                results = run_tasks(_worker_pool(jobs), {(task[0],): task for task in todo}, log)
        except KeyboardInterrupt:
            failed = abandon_build(plan)
            raise BuildError(f"build interrupted - previous outputs in {plan.out} untouched; "
                             f"partial run kept in {failed}", exit_code=130) from None
    return complete_build(plan, {**reused, **{key[0]: value for key, value in results.items()}})


@contextmanager
def kernel_server(wanted: bool = True, cwd: Path | None = None):
    """While the build runs its notebooks, a :class:`~analysis_lib.kernel_server.KernelServer`
    forks their kernels with the modules they import already imported (Linux; elsewhere, when not
    ``wanted``, or when the server cannot start, kernels start as new processes). Its address is in
    the environment that the workers, forked later, inherit; the kernels' environment is the
    workers' (``_execute``), and the server's working directory theirs, the notebooks' folder ``cwd``."""
    server = None
    if wanted and forking_possible() and not os.environ.get(SERVER_ENVIRONMENT):
        try:
            server = KernelServer({**os.environ, **SINGLE_THREADED, **HEAP_KEPT, BUILD_ENVIRONMENT: "1"}, cwd)
        except OSError:
            server = None
    if server is None:
        yield None
        return
    os.environ[SERVER_ENVIRONMENT] = server.address
    try:
        yield server
    finally:
        os.environ.pop(SERVER_ENVIRONMENT, None)
        server.close()


def reuse_previous(plan: Plan, log: Callable[[str], None]) -> dict[str, dict]:
    """Copy into the new folder the notebooks whose inputs are unchanged since the previous build
    into ``plan.out`` (:func:`analysis_lib.cache.reusable`); their results, marked reused."""
    record, notice = cache_module.previous_record(plan.out)
    if notice:
        log(notice)
    reused = {}
    for name, *_ in plan.tasks:
        files = cache_module.reusable(plan.out, record, name, plan.keys[name])
        if files is not None:
            cache_module.copy_files(plan.out, plan.work, files)
            entry = record["notebooks"][name]
            reused[name] = {"seconds": float(entry.get("seconds", 0.0)), "started": entry.get("started", ""),
                            "reused": True}
            log(f"[reused] {name} (inputs unchanged since the previous build)")
        elif plan.store is not None and name in plan.unread:
            entry, notice = cache_module.stored(plan.store, name, plan.keys[name])
            if notice:
                log(notice)
            if entry is not None:
                cache_module.copy_from_store(plan.store, plan.keys[name], entry, plan.work)
                reused[name] = {"seconds": entry["seconds"], "started": entry["started"], "reused": True}
                log(f"[reused] {name} (reads no data; inputs unchanged since it was stored in {plan.store})")
    return reused


def run_tasks(pool: ProcessPoolExecutor, tasks: dict[tuple, tuple], log: Callable[[str], None]) -> dict[tuple, dict]:
    """Run notebook tasks (``key -> (name, source, dest, parameters)``, in submission order) on
    the pool; progress is logged as each finishes, labelled by the key."""
    results: dict[tuple, dict] = {}
    try:
        futures = {pool.submit(_execute, *task): key for key, task in tasks.items()}
        for future in as_completed(futures):
            key = futures[future]
            results[key] = future.result()
            log(_progress("/".join(key), results[key], len(results), len(tasks)))
    except KeyboardInterrupt:
        _stop(pool)
        raise
    pool.shutdown()
    return results


def _stop(pool: ProcessPoolExecutor) -> None:
    """Ctrl-C: drop the notebooks not yet started and stop the running ones at once (the
    executor would otherwise run every queued notebook before returning). Their kernels exit
    with them (ipykernel watches its parent process). The worker list is the executor's
    private ``_processes``, read before ``shutdown`` clears it."""
    workers = list((getattr(pool, "_processes", None) or {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for process in workers:
        if process.is_alive():
            process.terminate()
    for process in workers:
        process.join(timeout=10)


def finalize(folder: Path, params: Parameters, started_at: datetime, seconds: float, notebooks: dict) -> None:
    """The folder's README, ``provenance.json`` and the assembled ``supplement.html``."""
    (folder / "README.md").write_text(OUTPUT_README, encoding="utf-8")
    record = provenance.collect(params.data_path, params.to_dict(), project_root(), started_at, seconds, notebooks)
    provenance.write(record, folder / "provenance.json")
    shipped = project_root() / "data" / "synthetic_cohort.csv"
    synthetic = shipped.exists() and provenance.sha256(shipped) == record["data"]["sha256"]
    assemble(folder, record, synthetic)


def _without_iri_checker() -> None:
    """Keep ``jsonschema`` from importing ``rfc3987_syntax``, an optional checker of the ``iri``
    string format that compiles a grammar at import: 2.8 of the 3.6 s that ``import papermill``
    took (through nbformat -> jsonschema; python-jsonschema/jsonschema#1428). The notebook
    schema has no ``iri`` format, so validation is unchanged. A ``None`` entry in
    ``sys.modules`` makes that optional import fail as if the package were absent."""
    if "jsonschema" not in sys.modules:
        sys.modules.setdefault("rfc3987_syntax", None)


def _worker_pool(jobs: int) -> ProcessPoolExecutor:
    """Processes that run notebooks with papermill (each launches its kernels as new processes).

    On Linux they are forked after papermill is imported here, so they start at once; they run
    no numerical code, which makes forking safe. Elsewhere they are spawned and import
    papermill while this process validates the data.
    """
    _without_iri_checker()
    if "fork" in multiprocessing.get_all_start_methods() and os.name == "posix" and sys.platform.startswith("linux"):
        import papermill  # noqa: F401  (inherited by the forked workers)

        return ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("fork"))
    pool = ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn"))
    for _ in range(jobs):
        pool.submit(_import_papermill)
    return pool


def _import_papermill() -> None:
    _without_iri_checker()
    import papermill  # noqa: F401


def _progress(name: str, result: dict, done: int, total: int) -> str:
    status = "FAILED" if result.get("error") else "done"
    return f"[{done}/{total}] {name} {status} ({result['seconds']:.1f} s)"


def _execute(name: str, source: str, dest: str, parameters: dict) -> dict:
    """Run one notebook with papermill (in a worker process); errors come back as plain data.

    The kernel inherits the worker's standard error, where ipykernel prints transport warnings;
    it goes to the null device so that the build's own messages stay readable (a notebook's
    errors reach the user through papermill's exception, below).
    """
    _without_iri_checker()
    import papermill as pm
    from papermill.exceptions import PapermillExecutionError

    os.dup2(os.open(os.devnull, os.O_WRONLY), 2)
    # Notebooks already run side by side on the cores: one BLAS thread per kernel avoids
    # oversubscription (the kernels, and the processes they spawn, inherit this environment).
    os.environ.update(SINGLE_THREADED)
    os.environ.update(HEAP_KEPT)
    os.environ[BUILD_ENVIRONMENT] = "1"  # no progress bars in executed notebooks (see outputs.interactive)
    os.environ[NOTEBOOK_ENVIRONMENT] = name  # which notebook a kernel runs (benchmarks/benchmark_scale.py)

    start = time.perf_counter()
    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    try:
        # The notebook is written once at the end (also after an error), not after every cell,
        # and the kernel is stopped at once when the last cell is done instead of waiting for
        # a graceful exit: together about a second per notebook. Stream outputs are coalesced:
        # how a kernel splits one print into messages depends on timing (its flush thread), and
        # the executed notebook must not.
        pm.execute_notebook(source, dest, parameters=parameters, cwd=str(Path(source).parent),
                            kernel_name="python3", progress_bar=False, log_output=False,
                            request_save_on_cell_execute=False, shutdown_kernel="immediate",
                            coalesce_streams=True, kernel_manager_class=KERNEL_MANAGER)
    except PapermillExecutionError as err:
        cell = f"cell In [{err.exec_count}]" if err.exec_count else f"cell index {err.cell_index}"
        line = next((ln.strip() for ln in str(err.source).splitlines() if ln.strip() and not ln.startswith("#")), "")
        evalue = str(err.evalue).strip().splitlines()[0] if str(err.evalue).strip() else ""
        return {"seconds": time.perf_counter() - start, "started": started,
                "error": {"cell": cell, "line": line, "ename": err.ename, "evalue": evalue}}
    _fixed_injected_cell_id(dest)
    return {"seconds": time.perf_counter() - start, "started": started}


def _fixed_injected_cell_id(path: str) -> None:
    """papermill gives the cell it injects with the parameters a random ID; a fixed one keeps the
    executed notebook identical from build to build."""
    text = Path(path).read_text(encoding="utf-8")
    nb = json.loads(text)
    for cell in nb.get("cells", []):
        if "injected-parameters" in cell.get("metadata", {}).get("tags", []):
            cell["id"] = "injected-parameters"
    Path(path).write_text(json.dumps(nb, indent=1, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8")


def _keep_failed(work: Path, out: Path) -> Path:
    """Move a failed run to ``<out>.failed/`` (replacing only an earlier failed run, never a
    folder that a build did not leave there: then the run stays in the work folder)."""
    (work / ".owner").unlink(missing_ok=True)
    (work / FAILED_MARKER).touch()
    failed = out.parent / f"{out.name}.failed"
    if failed.exists():
        if not (failed / FAILED_MARKER).is_file():
            return work
        shutil.rmtree(failed)
    os.replace(work, failed)
    return failed


def _remove_failed(out: Path) -> None:
    failed = out.parent / f"{out.name}.failed"
    if (failed / FAILED_MARKER).is_file():
        shutil.rmtree(failed, ignore_errors=True)


def _swap_in(work: Path, out: Path) -> None:
    """Replace ``out`` by ``work``: two renames, the old folder removed only afterwards.

    ``out/scenarios/`` (the scenario batch's builds, see :mod:`analysis_lib.batch`) is not part
    of a build and moves over to the new folder."""
    old = None
    batch = out / KEPT_ACROSS_BUILDS
    if batch.is_dir() and not (work / KEPT_ACROSS_BUILDS).exists():
        os.replace(batch, work / KEPT_ACROSS_BUILDS)
    if out.exists():  # checked by check_output_folder: a previous build's folder, or empty
        old = out.parent / f".{out.name}.old-{os.getpid()}"
        os.replace(out, old)
    os.replace(work, out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    _remove_failed(out)


def summary_line(result: BuildResult) -> str:
    tables = len(list((result.out / "tables").glob("*.csv")))
    figures = len(list((result.out / "figures").glob("*.png")))
    return (f"Outputs written to {result.out} ({len(result.timings)} notebooks, {tables} tables, "
            f"{figures} figures; {result.seconds:.1f} s)")


def refresh_notebooks(names: tuple[str, ...] = NOTEBOOKS, log: Callable[[str], None] = print) -> None:
    """Re-execute the committed notebooks from their paired percent scripts, with their default
    parameters (the synthetic cohort), and store the outputs in ``notebooks/*.ipynb``.

    These stored outputs are what nbval compares against in ``make test`` and what a reader sees
    on the web. Execution-timing metadata is dropped and cell IDs are kept, so that a re-run
    leaves git clean unless an output changed.
    """
    _without_iri_checker()
    import jupytext
    from nbclient import NotebookClient

    folder = project_root() / "notebooks"
    for name in names:
        start = time.perf_counter()
        nb = jupytext.read(folder / f"{name}.py")
        _keep_cell_ids(nb, folder / f"{name}.ipynb")
        NotebookClient(nb, kernel_name="python3", timeout=900, shutdown_kernel="immediate", coalesce_streams=True,
                       kernel_manager_class=KERNEL_MANAGER, resources={"metadata": {"path": str(folder)}}).execute(
            stderr=subprocess.DEVNULL)  # the kernel's transport warnings; cell errors still raise
        for cell in nb.cells:
            cell.metadata.pop("execution", None)
        nb.metadata.pop("papermill", None)
        jupytext.write(nb, folder / f"{name}.ipynb")
        log(f"{name}.ipynb executed ({time.perf_counter() - start:.1f} s)")


def _keep_cell_ids(nb, stored: Path) -> None:
    """Give the cells read from the percent script the IDs of the committed notebook's cells at
    the same positions (jupytext draws new random IDs on every read); added cells keep theirs."""
    import nbformat

    if not stored.exists():
        return
    old = nbformat.read(stored, as_version=4).cells
    used = set()
    for cell, previous in zip(nb.cells, old):
        if previous.get("id") and cell.cell_type == previous.cell_type:
            cell["id"] = previous["id"]
            used.add(previous["id"])
    for cell in nb.cells[len(old):]:
        if cell.get("id") in used:
            cell["id"] = f"{cell['id']}-new"
