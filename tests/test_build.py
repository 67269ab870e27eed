"""The build end to end: output contract, numbers equal to the library's, determinism, and
failures that leave earlier outputs untouched with a one-line message."""

import shutil
import subprocess
import sys
from pathlib import Path

import jupytext
import nbformat
import numpy as np
import pandas as pd
import pytest
from conftest import ROOT, sample, weights

from analysis_lib.build import NOTEBOOKS, BuildError, run_build
from analysis_lib.cutoffs import CONTINUOUS_COLUMNS, SWEEP_COLUMNS
from analysis_lib.descriptives import TABLE1_COLUMNS
from analysis_lib.effects import TABLE2_COLUMNS, table2
from analysis_lib.imputation import MI_COLUMNS
from analysis_lib.ordinal import ORDINAL_SWEEP_COLUMNS
from analysis_lib.resample import CROSSING_COLUMNS, SELECTION_COLUMNS, TEST_COLUMNS
from analysis_lib.sensitivity import CENTER_COLUMNS, CLUSTER_COLUMNS, EVALUE_COLUMNS
from analysis_lib.specification import WEIGHT_SENSITIVITY_COLUMNS

SYNTHETIC = ROOT / "data" / "synthetic_cohort.csv"
CONTRACT = {
    "table1.csv": TABLE1_COLUMNS,
    "balance.csv": ["covariate", "smd_unweighted", "smd_weighted", "variance_ratio_unweighted",
                    "variance_ratio_weighted"],
    "table2.csv": TABLE2_COLUMNS,
    "cutoff_sweep.csv": [*SWEEP_COLUMNS, *ORDINAL_SWEEP_COLUMNS[1:]],
    "continuous_interaction.csv": CONTINUOUS_COLUMNS,
    "center_sensitivity.csv": CENTER_COLUMNS,
    "cluster_robust.csv": CLUSTER_COLUMNS,
    "evalues.csv": EVALUE_COLUMNS,
    "weight_sensitivity.csv": WEIGHT_SENSITIVITY_COLUMNS,
    "mi_sensitivity.csv": MI_COLUMNS,
    "cutoff_selection.csv": SELECTION_COLUMNS,
    "crossing_bootstrap.csv": CROSSING_COLUMNS,
    "selection_test.csv": TEST_COLUMNS,
    "specification_curve.csv": ["ps_spec", "estimand", "hc_type", "cutoff", "min_arm_size", "subgroup", "estimate",
                                "ci_lower", "ci_upper", "p_value", "eligible", "primary", "agrees", "common_or",
                                "common_or_ci_lower", "common_or_ci_upper", "common_or_p_value", "common_or_agrees"],
}
FIGURES = ["figure_1_mrs_distribution", "supplementary_figure_1_patient_flow",
           "supplementary_figure_2_continuous_interaction", "love_plot", "propensity_overlap",
           "cutoff_sweep_forest", "specification_curve", "simulation_rejection_rates"]


# The columns OUTPUTS.md of the specification fixes (key and value columns, in its order).
SPEC_CONTRACT = {
    "balance.csv": ["covariate", "smd_unweighted", "smd_weighted", "variance_ratio_unweighted",
                    "variance_ratio_weighted"],
    "table2.csv": ["outcome", "analysis", "subgroup", "measure", "estimate", "ci_lower", "ci_upper", "p_value",
                   "p_interaction", "n", "note"],
    "center_sensitivity.csv": ["outcome", "subgroup", "measure", "estimate", "ci_lower", "ci_upper", "p_value", "note"],
    "subgroup_balance.csv": ["cutoff", "weights", "subgroup", "covariate", "smd_unweighted", "smd_weighted",
                             "variance_ratio_weighted"],
}


def test_output_contract(built):
    out = built.out
    for name, columns in CONTRACT.items():
        frame = pd.read_csv(out / "tables" / name)
        assert list(frame.columns) == columns, name
    for name, columns in SPEC_CONTRACT.items():
        assert list(pd.read_csv(out / "tables" / name).columns)[:len(columns)] == columns, name
    for name in FIGURES:
        assert (out / "figures" / f"{name}.png").stat().st_size > 10_000
        assert (out / "figures" / f"{name}.pdf").exists()
    for name in NOTEBOOKS:
        nb = nbformat.read(out / "notebooks" / f"{name}.ipynb", as_version=4)
        assert any(c.get("outputs") for c in nb.cells if c.cell_type == "code")
    assert (out / "README.md").read_text() == (ROOT / "outputs" / "README.md").read_text()
    assert not list(out.parent.glob(".outputs.partial*"))


def test_every_registered_output_is_written_with_its_columns_and_nothing_else(built):
    from analysis_lib.registry import OUTPUTS, missing_files

    out = built.out
    assert missing_files(out, built.params.to_dict()) == []
    registered = {f for o in OUTPUTS for f in o.files}
    written = {str(p.relative_to(out)) for folder in ("tables", "figures", "notes", "private")
               for p in (out / folder).iterdir()}
    assert written == registered, (written - registered, registered - written)
    for output in OUTPUTS:
        if output.columns:
            assert tuple(pd.read_csv(out / output.files[0]).columns) == output.columns, output.name


def test_the_build_refuses_to_swap_in_an_incomplete_folder(previous, tmp_path):
    """A notebook that ran without writing its tables leaves the earlier outputs in place."""
    folder = tmp_path / "nb"
    folder.mkdir()
    for name in NOTEBOOKS:
        shutil.copy(ROOT / "notebooks" / f"{name}.ipynb", folder)
    silent = nbformat.read(folder / "04_outcomes.ipynb", as_version=4)
    silent.cells = [c for c in silent.cells if "study.subgroup_weights_summary()" not in "".join(c.source)]
    assert len(silent.cells) == len(nbformat.read(ROOT / "notebooks" / "04_outcomes.ipynb", as_version=4).cells) - 1
    nbformat.write(silent, folder / "04_outcomes.ipynb")
    before = _snapshot(previous)
    with pytest.raises(BuildError, match=r"build incomplete: the notebooks did not write "
                                         r"notes/subgroup_weights_summary.md \(see analysis_lib/registry.py\)"):
        run_build(SYNTHETIC, previous, [("bootstrap_replicates", "0"), ("simulation_replicates", "0"),
                                        ("mi_imputations", "0")], notebook_dir=folder, log=lambda m: None)
    assert _snapshot(previous) == before


def test_tables_hold_the_library_numbers_unrounded(built):
    csv = pd.read_csv(built.out / "tables" / "table2.csv")
    direct = table2(sample("synthetic"), weights("synthetic"), 75)
    for col in ("estimate", "ci_lower", "ci_upper", "p_value", "p_interaction"):
        np.testing.assert_array_equal(csv[col].to_numpy(float), direct[col].to_numpy(float))
    w = pd.read_csv(built.out / "private" / "weights.csv")
    assert list(w.columns) == ["patient_id", "propensity", "weight"]
    assert not (built.out / "tables" / "weights.csv").exists()  # coauthors share tables/: no patient rows there
    np.testing.assert_array_equal(w["weight"].to_numpy(), weights("synthetic"))


def test_same_inputs_give_byte_identical_tables_and_notebooks(built, tmp_path):
    """A second build into the same folder, every notebook run again (``force``): every table
    byte for byte, every executed notebook identical apart from its timing metadata (outputs,
    parameters and cell IDs included)."""
    import json

    from analysis_lib.provenance import without_timing

    first = tmp_path / "first"
    shutil.copytree(built.out, first)
    again = run_build(SYNTHETIC, built.out, log=lambda m: None, force=True).out
    tables = sorted(p.name for p in (first / "tables").iterdir())
    assert tables == sorted(p.name for p in (again / "tables").iterdir()) and len(tables) > 40
    for name in tables:
        assert (first / "tables" / name).read_bytes() == (again / "tables" / name).read_bytes(), name
    for name in NOTEBOOKS:
        a = json.loads((first / "notebooks" / f"{name}.ipynb").read_text())
        b = json.loads((again / "notebooks" / f"{name}.ipynb").read_text())
        for cell in b["cells"]:  # one stream per name and cell, however the kernel flushed it
            names = [o["name"] for o in cell.get("outputs", []) if o["output_type"] == "stream"]
            assert len(names) == len(set(names)), (name, names)
        assert a != b  # the timing differs ...
        a, b = without_timing(a), without_timing(b)
        if a != b:  # ... and nothing else: show where, readably
            import difflib

            left = json.dumps(a, indent=1, sort_keys=True).splitlines()
            right = json.dumps(b, indent=1, sort_keys=True).splitlines()
            diff = "\n".join(list(difflib.unified_diff(left, right, lineterm="", n=3))[:80])
            pytest.fail(f"{name}: the executed notebooks differ beyond timing:\n{diff}")


def _cli(*args, cwd=ROOT):
    return subprocess.run([sys.executable, "-m", "analysis_lib", *args], cwd=cwd, capture_output=True, text=True)


def _snapshot(folder: Path) -> dict:
    return {p.relative_to(folder): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_bad_parameter_stops_before_anything_runs(previous):
    before = _snapshot(previous)
    run = _cli("build", "--data", str(SYNTHETIC), "--out", str(previous), "-p", "cutoff", "150")
    assert run.returncode == 2
    assert run.stderr.strip().splitlines() == [
        "error: parameter 'cutoff': 150 is outside the open interval 0 to 100 "
        "(a stenosis percentage; use 'auto' to take the cutoff selected by the sweep)"]
    assert _snapshot(previous) == before


def test_bad_data_lists_every_problem_and_leaves_outputs(previous, tmp_path):
    frame = pd.read_csv(SYNTHETIC, dtype=str, keep_default_na=False)
    frame.loc[2, "age"] = "250"
    frame.loc[4, "rescue_stenting"] = "3"
    bad = tmp_path / "registry.csv"
    frame.to_csv(bad, index=False)
    before = _snapshot(previous)
    run = _cli("build", "--data", str(bad), "--out", str(previous))
    assert run.returncode == 2
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 2 and all(line.startswith("error: registry.csv: ") for line in lines)
    assert "Traceback" not in run.stderr
    assert _snapshot(previous) == before


def test_failing_notebook_names_notebook_and_cell(previous, tmp_path):
    source = jupytext.reads("# %% tags=[\"parameters\"]\ndata_path = ''\n\n# %%\nx = 1\n\n# %%\nraise ValueError('planted failure')\n",
                            fmt="py:percent")
    source.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    folder = tmp_path / "nbs"
    folder.mkdir()
    nbformat.write(source, folder / "99_broken.ipynb")
    before = _snapshot(previous)
    with pytest.raises(BuildError) as err:
        run_build(SYNTHETIC, previous, notebooks=("99_broken",), notebook_dir=folder, log=lambda m: None)
    message = str(err.value)
    assert message.startswith("build failed in notebook 99_broken.ipynb, cell In [4] (raise ValueError('planted failure')): "
                              "ValueError: planted failure")
    assert "\n" not in message
    assert _snapshot(previous) == before
    assert (previous.parent / "outputs.failed" / "notebooks" / "99_broken.ipynb").exists()


def test_notebooks_and_percent_scripts_are_paired():
    for name in NOTEBOOKS:
        py = jupytext.read(ROOT / "notebooks" / f"{name}.py")
        nb = jupytext.read(ROOT / "notebooks" / f"{name}.ipynb")
        assert [(c.cell_type, c.source) for c in py.cells] == [(c.cell_type, c.source) for c in nb.cells], name


def test_a_build_keeps_the_scenario_batch_folder(tmp_path):
    from analysis_lib.build import _swap_in

    out, work = tmp_path / "outputs", tmp_path / ".outputs.partial-1"
    (out / "tables").mkdir(parents=True)
    (out / "tables" / "stale.csv").write_text("old\n")
    (out / "scenarios" / "hc3").mkdir(parents=True)
    (out / "scenarios" / "summary.csv").write_text("scenario\n")
    (work / "tables").mkdir(parents=True)
    (work / "tables" / "table2.csv").write_text("new\n")
    _swap_in(work, out)
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*")) == [
        "scenarios", "scenarios/hc3", "scenarios/summary.csv", "tables", "tables/table2.csv"]
    assert not work.exists() and [p.name for p in tmp_path.iterdir()] == ["outputs"]


def test_refreshing_the_notebooks_keeps_their_cell_ids():
    """``make notebooks`` re-reads the percent scripts, which carry no cell IDs: the committed
    IDs are kept, so that a refresh changes git only where an output changed."""
    from analysis_lib.build import _keep_cell_ids

    for name in NOTEBOOKS:
        stored = ROOT / "notebooks" / f"{name}.ipynb"
        fresh = jupytext.read(ROOT / "notebooks" / f"{name}.py")
        _keep_cell_ids(fresh, stored)
        assert [c["id"] for c in fresh.cells] == [c["id"] for c in nbformat.read(stored, as_version=4).cells]


def test_the_notebooks_take_the_builds_sample_only_for_the_same_propensity_variables(tmp_path):
    """The build stores its analysis sample with the cohort (plan_build); a notebook's study uses
    it when its propensity variables are the build's, and otherwise builds its own."""
    from analysis_lib.data import analysis_sample, load_cohort, write_cohort_cache
    from analysis_lib.params import Parameters
    from analysis_lib.study import load_study, sample_key

    params = Parameters(data_path=str(SYNTHETIC), data_cache=str(tmp_path / "cohort.cache"))
    cohort = load_cohort(SYNTHETIC)
    marked = analysis_sample(cohort, params.ps_covariates)
    marked.data["age"] += 1000.0  # only a stored sample can carry this mark
    write_cohort_cache(cohort, SYNTHETIC, params.data_cache, sample=(sample_key(params), marked))
    assert load_study(params).sample.data["age"].min() > 1000
    fewer = params.replace(ps_covariates=params.ps_covariates[:3])
    assert load_study(fewer).sample.data["age"].max() < 120
    assert load_study(params.replace(data_cache=None)).sample.data["age"].max() < 120


def _huge_pages_allowed() -> str | None:
    """This process's ``THP_enabled`` in /proc/self/status ("1" or "0"; None where not shown)."""
    status = Path("/proc/self/status")
    text = status.read_text() if status.exists() else ""
    return text.split("THP_enabled:")[1].split()[0] if "THP_enabled:" in text else None


@pytest.mark.skipif(_huge_pages_allowed() is None, reason="Linux showing THP_enabled in /proc/self/status")
def test_the_preflight_runs_with_small_pages_and_the_setting_comes_back(tmp_path, monkeypatch):
    """plan_build validates and caches the cohort with transparent huge pages off for its own
    process (build.small_pages), and the workers forked afterwards get the setting it had."""
    from analysis_lib import build

    seen, preflight = [], build.preflight
    monkeypatch.setattr(build, "preflight", lambda params, **kw: (seen.append(_huge_pages_allowed()), preflight(params, **kw))[1])
    before = _huge_pages_allowed()
    build.plan_build(SYNTHETIC, tmp_path / "out", [("bootstrap_replicates", "0")])
    assert seen == ["0"] and _huge_pages_allowed() == before
