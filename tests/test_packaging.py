"""The package installs from its own metadata, and what the files say is true: pyproject.toml
declares every third-party module the library imports, a non-editable install finds the
notebooks from the checkout (or says in one line what to do), and the README's parameter table
and every notebook's parameter cell agree with the defaults of analysis_lib/params.py."""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from dataclasses import fields

import pytest
from conftest import ROOT

from analysis_lib.params import Parameters

# import name -> distribution name, where they differ
DISTRIBUTIONS = {"yaml": "pyyaml", "docx": "python-docx", "distributed": "dask", "IPython": "ipython"}


def imported_modules() -> set[str]:
    found = set()
    for path in (ROOT / "analysis_lib").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                found |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add(node.module.split(".")[0])
    return {m for m in found if m not in sys.stdlib_module_names and m != "analysis_lib"}


def declared() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return {re.split(r"[<>=!~\[ ;]", d)[0].lower() for d in project["dependencies"]}


def test_pyproject_declares_every_module_the_library_imports():
    modules = imported_modules()
    assert {"formulaic", "tqdm", "docx", "distributed", "jupytext", "nbformat", "nbclient", "IPython"} <= modules
    missing = {m for m in modules if DISTRIBUTIONS.get(m, m).lower() not in declared()}
    assert not missing, f"pyproject.toml does not declare {sorted(missing)}"
    assert "openpyxl" in declared()  # pandas.read_excel's engine for .xlsx exports, imported by pandas


def test_the_library_never_imports_statsmodels_or_seaborn():
    """They are the test suite's reference and the reviewers' tool (README: The environment)."""
    assert not imported_modules() & {"statsmodels", "seaborn"}
    readme = (ROOT / "README.md").read_text()
    assert "statsmodels" in readme and "seaborn" in readme


@pytest.fixture(scope="module")
def installed_copy(tmp_path_factory):
    """The package as ``pip install .`` lays it out: in a site folder of its own, away from the checkout."""
    site = tmp_path_factory.mktemp("site")
    shutil.copytree(ROOT / "analysis_lib", site / "analysis_lib", ignore=shutil.ignore_patterns("__pycache__"))
    return site


def run_installed(site, *args, cwd) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(site)}
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True)


def test_an_installed_package_finds_the_checkout_it_runs_in(installed_copy):
    run = run_installed(installed_copy, "-c", "import analysis_lib, analysis_lib.build as b; "
                        "print(analysis_lib.__file__); print(b.project_root())", cwd=ROOT / "notebooks")
    assert run.returncode == 0, run.stderr
    package, root = run.stdout.splitlines()
    assert package.startswith(str(installed_copy)) and root == str(ROOT)


def test_an_installed_package_outside_a_checkout_says_what_to_do(installed_copy, tmp_path):
    run = run_installed(installed_copy, "-m", "analysis_lib", "build", "--data", str(ROOT / "data/synthetic_cohort.csv"),
                        "--out", str(tmp_path / "out"), cwd=tmp_path)
    assert run.returncode == 2 and "Traceback" not in run.stderr
    assert run.stderr.splitlines() == [
        "error: the compendium's notebooks were not found (notebooks/ and data/published/ of a checkout): run the "
        "command from the checkout of the compendium, e.g. cd path/to/compendium"]
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------- parameter defaults
def test_the_readme_parameter_table_is_the_generated_one(capsys):
    from analysis_lib import cli
    from analysis_lib.params import PARAMETERS, parameter_table

    readme = (ROOT / "README.md").read_text()
    assert parameter_table() in readme
    assert cli.main(["parameters"]) == 0 and capsys.readouterr().out == parameter_table() + "\n"
    shown = re.findall(r"^\| `([a-z_0-9]+)` \|", parameter_table(), flags=re.M)
    assert shown == [spec.name for spec in PARAMETERS if not spec.internal]
    assert "| `simulation_replicates` | 500 |" in readme and "| `cutoff` | 75 |" in readme
    assert [f.name for f in fields(Parameters)] == [spec.name for spec in PARAMETERS]
    assert all(getattr(Parameters(), spec.name) == spec.default for spec in PARAMETERS)


def parameter_cell(notebook) -> dict:
    nb = json.loads(notebook.read_text(encoding="utf-8"))
    cell = next(c for c in nb["cells"] if "parameters" in c.get("metadata", {}).get("tags", []))
    values = {}
    for node in ast.parse("".join(cell["source"])).body:
        values[node.targets[0].id] = ast.literal_eval(node.value)
    return values


NOTEBOOK_PATHS = {"data_path": "../data/synthetic_cohort.csv", "published_dir": "../data/published",
                  "output_dir": None, "data_cache": None}


@pytest.mark.parametrize("notebook", sorted((ROOT / "notebooks").glob("*.ipynb")), ids=lambda p: p.stem)
def test_every_notebook_declares_the_library_defaults(notebook):
    defaults = {f.name: getattr(Parameters(), f.name) for f in fields(Parameters)}
    declared_values = parameter_cell(notebook)
    assert declared_values, notebook
    for name, value in declared_values.items():
        expected = NOTEBOOK_PATHS.get(name, defaults.get(name))
        assert name in defaults, f"{notebook.name}: '{name}' is not a parameter"
        if isinstance(expected, tuple):
            value = tuple(value)
        assert value == expected, f"{notebook.name}: {name} = {value!r}, the library's default is {expected!r}"
