"""Command line: ``python -m analysis_lib build | batch | resample | validate | synthesize | notebooks``.

User mistakes (bad data, bad parameters) end with one line on standard error and exit code 2;
a failing notebook ends with one line naming the notebook and cell and exit code 1.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

from .batch import run_batch
from .build import BuildError, check_output_folder, project_root, refresh_notebooks, run_build, summary_line
from .data import DataError, load_cohort, read_column_map, read_registry, validate
from .outputs import save_table
from .params import PARAMETERS, ParameterError, Parameters, parameter_table
from .resample import run_resampling
from .study import load_study
from .synthetic import paper_cohort, write_cohort


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m analysis_lib",
                                description="Rescue stenting x stenosis severity: build the supplementary material.")
    sub = p.add_subparsers(dest="command", required=True)

    b = sub.add_parser("build", help="run every notebook into an output folder")
    b.add_argument("--data", required=True, help="registry CSV (see analysis_lib/data_dictionary.csv)")
    b.add_argument("--out", required=True, help="output folder (replaced only when the build succeeds)")
    b.add_argument("--columns", default=None, metavar="MAP.yml",
                   help="column map of a registry export (names and codes onto the data dictionary)")
    b.add_argument("-p", "--parameter", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                   help="override a parameter, e.g. -p estimand ATE -p cutoff auto; the parameters: "
                        + ", ".join(spec.name for spec in PARAMETERS if not spec.internal)
                        + " (python -m analysis_lib parameters: defaults and meaning)")
    b.add_argument("--force", action="store_true",
                   help="run every notebook, even those whose inputs are unchanged since the previous build into --out "
                        "or, for the notebooks that read no data, since they were stored in .cache/notebooks/")

    c = sub.add_parser("batch", help="build several named parameter sets (a scenario file) side by side")
    c.add_argument("scenarios", help="scenario file (YAML), e.g. scenarios.yml")
    c.add_argument("--out", default=None, help="folder of the scenario builds (default: the file's 'out')")
    c.add_argument("--jobs", type=int, default=None, help="worker processes (default: one per core)")

    v = sub.add_parser("validate", help="check a registry file against the data dictionary")
    v.add_argument("--data", required=True)
    v.add_argument("--columns", default=None, metavar="MAP.yml", help="column map of the export")

    r = sub.add_parser("resample", help="bootstrap and selection-adjusted test of the data-driven cutoff")
    r.add_argument("--data", required=True)
    r.add_argument("--replicates", type=int, default=2000, help="bootstrap and null replicates (default 2000)")
    r.add_argument("--seed", type=int, default=None, help="seed (default: the parameter seed)")
    r.add_argument("--out", required=True, help="folder; the tables go to OUT/tables/")
    r.add_argument("-p", "--parameter", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"))

    sub.add_parser("notebooks", help="re-execute the committed notebooks on the synthetic cohort")
    sub.add_parser("parameters", help="the parameters (-p NAME VALUE) with their defaults and meaning")

    s = sub.add_parser("synthesize", help="regenerate the synthetic cohort from the published Table 1")
    s.add_argument("--out", default="data/synthetic_cohort.csv")
    s.add_argument("--seed", type=int, default=None)
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "build":
            return _build(args)
        if args.command == "batch":
            return _batch(args)
        if args.command == "validate":
            return _validate(args)
        if args.command == "synthesize":
            return _synthesize(args)
        if args.command == "resample":
            return _resample(args)
        if args.command == "parameters":
            print(parameter_table())
            return 0
        if args.command == "notebooks":
            refresh_notebooks()
            return 0
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BuildError as err:  # e.g. no checkout to find the notebooks in
        print(f"error: {err}", file=sys.stderr)
        return err.exit_code
    return 2


def _build(args) -> int:
    pairs = [(name, value) for name, value in args.parameter]
    if args.columns is not None:
        pairs.append(("column_map", args.columns))
    try:
        result = run_build(args.data, args.out, pairs, log=lambda m: print(m, flush=True), force=args.force)
    except BuildError as err:
        for line in str(err).splitlines():
            print(f"error: {line}", file=sys.stderr)
        return err.exit_code
    print(summary_line(result))
    return 0


def _batch(args) -> int:
    try:
        result = run_batch(args.scenarios, args.out, jobs=args.jobs, log=lambda m: print(m, flush=True))
    except BuildError as err:
        for line in str(err).splitlines():
            print(f"error: {line}", file=sys.stderr)
        return err.exit_code
    for name, build in result.builds.items():
        print(f"{name}: {build.out} ({build.seconds:.1f} s)")
    print(f"Scenario summary written to {result.out / 'summary.csv'}")
    return 0


def _resample(args) -> int:
    try:
        check_output_folder(args.out, {"the data file": args.data}, replaced=False)
        params = Parameters.from_strings([tuple(p) for p in args.parameter],
                                         base={"data_path": args.data, "output_dir": args.out})
        if args.seed is not None:
            params = params.replace(seed=args.seed)
        if args.replicates < 1:
            raise ParameterError(f"--replicates: at least 1, got {args.replicates}")
        study = load_study(params)
        result = run_resampling(study, args.replicates, progress_bar=True)
    except (ParameterError, DataError, ValueError, BuildError) as err:
        for line in str(err).splitlines():
            print(f"error: {line}", file=sys.stderr)
        return 2

    for name in ("cutoff_selection", "crossing_bootstrap", "selection_test"):
        save_table(getattr(result, name), name, args.out)
    test = result.selection_test.iloc[0]
    print(f"{result!r}\nTables written to {Path(args.out) / 'tables'} (selection-adjusted p = {test['p_value']:.4g})")
    return 0


def _validate(args) -> int:
    """Every problem of the file at once, one line each; how the file was read on success."""
    try:
        mapping = read_column_map(args.columns) if args.columns else None
        raw = read_registry(args.data, mapping)
        _, problems = validate(raw)
        if problems:
            raise DataError([f"{Path(args.data).name}: {p}" for p in problems])
        cohort = load_cohort(args.data, column_map=mapping)
    except DataError as err:
        for line in err.problems:
            print(f"error: {line}", file=sys.stderr)
        print(f"{len(err.problems)} problem(s) found in {args.data}", file=sys.stderr)
        return 2
    print(f"{args.data}: valid ({len(cohort)} patients, {cohort.shape[1]} columns; read as {raw.attrs['read_as']})")
    return 0


def _synthesize(args) -> int:



    table1 = pd.read_csv(project_root() / "data" / "published" / "table1_published.csv")
    kwargs = {} if args.seed is None else {"seed": args.seed}
    cohort = paper_cohort(table1, **kwargs)
    write_cohort(cohort.data, Path(args.out))
    print(f"wrote {args.out} ({len(cohort.data)} synthetic patients)")
    return 0
