"""Steps as result objects: one call on the study computes a table with its parameters, shows it
in JupyterLab with its caption and source, and saves it with its caption."""

from __future__ import annotations

import html

import pandas as pd
import pytest
from conftest import COHORTS

from analysis_lib.params import Parameters
from analysis_lib.registry import OUTPUTS
from analysis_lib.study import load_study, sweep_of, table2_of
from analysis_lib.tables import format_table2


@pytest.fixture(scope="module")
def study():
    return load_study(Parameters(data_path=str(COHORTS["synthetic"])))


STEPS = ["balance", "sample_sizes", "subgroup_balance", "sweep", "table2", "subgroup_weights_comparison"]


@pytest.mark.parametrize("step", STEPS)
def test_every_step_is_a_registered_output_that_renders_and_saves_itself(study, step, tmp_path):
    result = getattr(study, step)()
    assert any(o.name == result.name and o.kind in ("formatted table", "table") for o in OUTPUTS)
    page = result._repr_html_()
    assert html.escape(result.caption) in page and "Source: notebooks/0" in page and "<table" in page
    assert result.save(tmp_path) is result
    saved = pd.read_csv(tmp_path / "tables" / f"{result.name}.csv")
    assert list(saved.columns) == list(result.table.columns) and len(saved) == len(result.table)
    assert f"<caption>{html.escape(result.caption, quote=False)}" in (tmp_path / "tables" / f"{result.name}.html").read_text()
    assert (tmp_path / "tables" / f"{result.name}.docx").exists()


def test_a_step_is_the_library_computation_with_the_study_s_parameters(study):
    result = study.table2()
    pd.testing.assert_frame_equal(result.table, table2_of(study, 75.0))
    pd.testing.assert_frame_equal(result.formatted, format_table2(result.table, 75.0))
    pd.testing.assert_frame_equal(study.sweep().table, sweep_of(study))
    assert study.cutoff == 75.0 and result.source == "notebooks/04_outcomes.ipynb, analysis_lib.study.table2_of"


def test_a_study_without_an_output_folder_saves_nothing(study, tmp_path):
    assert study.params.output_dir is None
    assert study.balance().save() is not None and not any(tmp_path.iterdir())
    written = load_study(Parameters(data_path=str(COHORTS["synthetic"]), output_dir=str(tmp_path)))
    written.balance().save()
    assert (tmp_path / "tables" / "balance.csv").exists()
