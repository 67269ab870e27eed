"""Scenario batches: each scenario equals its single build byte for byte, the summary holds the
builds' own numbers, and a wrong scenario file stops everything with one line."""

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml
from conftest import COHORTS, ROOT

from analysis_lib.batch import SUMMARY_COLUMNS, read_scenarios, run_batch
from analysis_lib.build import NOTEBOOKS, BuildError, run_build
from analysis_lib.kernel_server import ForkedKernel, forking_possible

LIGHT = {"bootstrap_replicates": 20, "simulation_replicates": 0, "mi_imputations": 2}


def _compared(folder: Path) -> dict[str, bytes]:
    """Everything a build writes that must not depend on when or where it ran."""
    return {str(p.relative_to(folder)): p.read_bytes()
            for sub in ("tables", "notes") for p in sorted((folder / sub).iterdir())}


@pytest.fixture(scope="module")
def batch(built, tmp_path_factory):
    folder = tmp_path_factory.mktemp("batch")
    spec = {"data": str(COHORTS["synthetic"]), "out": "scenarios",
            "scenarios": {"primary": {}, "hc3_light": {"hc_type": "HC3", **LIGHT}}}
    (folder / "scenarios.yml").write_text(yaml.safe_dump(spec))
    forks = folder / "forked.txt"
    start = ForkedKernel.start

    def recorded(*args, **kwargs):  # runs in the workers, forked after the patch: one line per kernel
        kernel = start(*args, **kwargs)
        with open(forks, "a") as record:
            record.write(f"{kernel.pid if kernel else 0}\n")
        return kernel

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(ForkedKernel, "start", recorded)
        return run_batch(folder / "scenarios.yml", log=lambda m: None)


def test_a_batch_of_two_scenarios_reproduces_the_two_single_builds(built, batch, tmp_path):
    assert sorted(batch.builds) == ["hc3_light", "primary"] and not batch.failed
    assert _compared(batch.builds["primary"].out) == _compared(built.out)
    overrides = [("hc_type", "HC3")] + [(k, str(v)) for k, v in LIGHT.items()]
    single = run_build(COHORTS["synthetic"], tmp_path / "hc3", overrides, log=lambda m: None)
    assert _compared(batch.builds["hc3_light"].out) == _compared(single.out)
    assert (batch.out / "hc3_light" / "supplement.html").exists()


@pytest.mark.skipif(not forking_possible(), reason="kernels are forked from a kernel server on Linux only")
def test_a_batch_forks_every_kernel_from_the_kernel_server(batch):
    forked = (batch.out.parent / "forked.txt").read_text().split()
    assert len(forked) == 2 * len(NOTEBOOKS)  # two scenarios, every notebook run in a kernel of its own
    assert all(int(pid) > 0 for pid in forked) and len(set(forked)) == len(forked)


def test_summary_holds_each_scenario_s_own_numbers(batch):
    summary = pd.read_csv(batch.out / "summary.csv")
    assert list(summary.columns) == SUMMARY_COLUMNS
    for name, build in batch.builds.items():
        table2 = pd.read_csv(build.out / "tables" / "table2.csv")
        row = table2.query("outcome == 'mrs_90d' and analysis == 'iptw' and subgroup == 'high'").iloc[0]
        mine = summary.query("scenario == @name and quantity == 'ate_mrs_90d' and subgroup == 'high'").iloc[0]
        assert (mine.estimate, mine.ci_lower, mine.ci_upper, mine.p_value) == (
            row.estimate, row.ci_lower, row.ci_upper, row.p_value)
    # same point estimates, wider HC3 intervals: the scenarios differ only where they should
    ate = summary[summary["quantity"] == "ate_mrs_90d"].set_index(["scenario", "subgroup"])
    for subgroup in ("overall", "low", "high"):
        hc0, hc3 = ate.loc[("primary", subgroup)], ate.loc[("hc3_light", subgroup)]
        assert hc0.estimate == hc3.estimate
        assert hc3.ci_upper - hc3.ci_lower > hc0.ci_upper - hc0.ci_lower
    settings = dict(zip(summary["scenario"], summary["settings"]))
    assert settings["primary"] == "primary analysis"
    assert settings["hc3_light"] == "bootstrap_replicates=20; hc_type=HC3; mi_imputations=2; simulation_replicates=0"
    assert summary.query("scenario == 'primary' and quantity == 'cutoff_used'")["estimate"].item() == 75


def test_shipped_scenarios_parse(tmp_path):
    scenarios = read_scenarios(ROOT / "scenarios.yml")
    assert [s.name for s in scenarios] == ["primary", "ate_weights", "hc3", "cutoff_70", "cutoff_selected",
                                          "within_subgroups"]
    assert all(s.out.parent == ROOT / "outputs" / "scenarios" for s in scenarios)
    assert dict(scenarios[1].overrides) == {"estimand": "ATE"}
    assert dict(scenarios[4].overrides) == {"cutoff": "auto"}
    assert read_scenarios(ROOT / "scenarios.yml", out=tmp_path)[0].out == tmp_path.resolve() / "primary"


@pytest.mark.parametrize("text, message", [
    ("scenarios: {a: {estimand: XYZ}}\ndata: x.csv\n", "scenario 'a': parameter 'estimand': 'XYZ' is not one of"),
    ("scenarios: {a: {cutof: 70}}\ndata: x.csv\n", "scenario 'a': unknown parameter 'cutof' (did you mean 'cutoff'?)"),
    ("scenarios: {'a b': {}}\ndata: x.csv\n", "scenario name 'a b' must be"),
    ("scenario: {a: {}}\n", "unknown key(s) scenario"),
    ("scenarios: {}\n", "'scenarios' must map at least one name"),
    ("scenarios: {a: {}}\n", "scenario 'a': no data file"),
    ("scenarios: {a: {output_dir: /tmp}}\ndata: x.csv\n", "'output_dir' is set by the batch"),
    ("scenarios: [a\n", "not valid YAML"),
])
def test_a_wrong_scenario_file_stops_before_anything_runs(tmp_path, text, message):
    (tmp_path / "x.csv").write_bytes(COHORTS["synthetic"].read_bytes())
    (tmp_path / "s.yml").write_text(text)
    with pytest.raises(BuildError) as err:
        run_batch(tmp_path / "s.yml", log=lambda m: None)
    assert message in str(err.value) and "\n" not in str(err.value)
    assert err.value.exit_code == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.yml", "x.csv"]


def test_batch_command_line_reports_bad_data_in_one_scenario(tmp_path):
    bad = tmp_path / "bad.csv"
    frame = pd.read_csv(COHORTS["synthetic"])
    frame.loc[3, "age"] = 150
    frame.to_csv(bad, index=False)
    (tmp_path / "s.yml").write_text(yaml.safe_dump({
        "data": str(COHORTS["synthetic"]), "scenarios": {"good": {}, "registry": {"data": str(bad)}}}))
    done = subprocess.run([sys.executable, "-m", "analysis_lib", "batch", str(tmp_path / "s.yml")],
                          capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 2
    assert "scenario 'registry'" in done.stderr and "age" in done.stderr and "Traceback" not in done.stderr
    written = [p for p in (tmp_path / "outputs").rglob("*") if p.is_file()]
    assert written == []  # the good scenario was not started either
