"""Steps as result objects: one call on the study computes a table, a figure or a note with its
parameters, shows it in JupyterLab with its caption and source, and saves every file the registry
lists for it; the steps and the registry of outputs describe the same build."""

from __future__ import annotations

import html

import pandas as pd
import pytest
from conftest import COHORTS, ROOT

from analysis_lib.params import Parameters
from analysis_lib.registry import OUTPUTS
from analysis_lib.results import Result, Skipped
from analysis_lib.steps import Paper, Steps, load_paper, sweep_of, table2_of
from analysis_lib.study import load_study
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
    pd.testing.assert_frame_equal(result.shown, format_table2(result.table, 75.0))
    pd.testing.assert_frame_equal(study.sweep().table[sweep_of(study).columns], sweep_of(study))
    assert study.cutoff == 75.0 and result.source == "notebooks/04_outcomes.ipynb, analysis_lib.steps.table2_of"


def test_a_study_without_an_output_folder_saves_nothing(study, tmp_path):
    assert study.params.output_dir is None
    assert study.balance().save() is not None and not any(tmp_path.iterdir())
    written = load_study(Parameters(data_path=str(COHORTS["synthetic"]), output_dir=str(tmp_path)))
    written.balance().save()
    assert (tmp_path / "tables" / "balance.csv").exists()


QUICK = dict(bootstrap_replicates=20, simulation_replicates=2, simulation_null_replicates=9, mi_imputations=2,
             simulation_workers=1)


def _steps(owner, cls) -> list[str]:
    return [name for name, member in vars(cls).items() if callable(member) and not name.startswith("_")
            and member.__annotations__.get("return") in ("Result", "Result | Skipped")]


def test_the_steps_write_exactly_the_outputs_of_the_registry(tmp_path):
    """Every registered file is written by one step (or as the companion CSV of one), and every
    step writes a registered output: a new analysis is one registry entry and one step."""
    params = Parameters(data_path=str(COHORTS["synthetic"]), output_dir=str(tmp_path),
                        published_dir=str(ROOT / "data" / "published"), **QUICK)
    study, paper = load_study(params), load_paper(params)
    written = []
    for owner, cls in ((study, Steps), (paper, Paper)):
        for name in _steps(owner, cls):
            result = getattr(owner, name)()
            assert isinstance(result, Result), name
            assert result.save() is result
            written.append((result.name, result.output.kind))
            written += [(companion, "table") for companion, _ in result.companions]
    registered = sorted((o.name, o.kind) for o in OUTPUTS)
    assert sorted(written) == registered
    expected = sorted(f for o in OUTPUTS for f in o.files)
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*.*")) == expected


def test_a_figure_step_shows_a_png_and_says_what_it_shows(study):
    figure = study.love_plot()
    assert figure.kind == "figure" and figure._repr_png_()[:8] == b"\x89PNG\r\n\x1a\n"
    assert figure._repr_html_() is None
    assert repr(figure) == "Love plot of the SMDs (Source: notebooks/02_weighting.ipynb, analysis_lib.figures.love_plot)"


def test_a_note_step_shows_its_text_and_a_caption_names_the_cutoff(study):
    note = study.subgroup_balance_summary()
    assert note.kind == "note" and repr(note) == note.shown and note._repr_png_() is None
    assert study.subgroup_balance().caption == "Covariate balance within the stenosis subgroups at 75%."


def test_a_switched_off_step_says_why_and_writes_nothing(tmp_path):
    params = Parameters(data_path=str(COHORTS["synthetic"]), output_dir=str(tmp_path), mi_imputations=0,
                        bootstrap_replicates=0)
    study = load_study(params)
    for step in (study.multiple_imputation(), study.imputation_summary(), study.cutoff_selection()):
        assert isinstance(step, Skipped) and step.save() is step
    assert repr(study.multiple_imputation()) == "Multiple imputation skipped (mi_imputations = 0)."
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("page_size,width_mm", [("A4", 210.0), ("letter", 215.9)])
def test_a_word_table_carries_its_caption_and_footnote_on_the_chosen_page(tmp_path, page_size, width_mm):
    import docx

    params = Parameters(data_path=str(COHORTS["synthetic"]), output_dir=str(tmp_path),
                        page_size=Parameters.from_strings([("page_size", page_size.upper())]).page_size)
    assert params.page_size == page_size  # -p page_size LETTER reads as letter
    load_study(params).table2().save()
    document = docx.Document(tmp_path / "tables" / "table2.docx")
    section = document.sections[0]
    assert abs(section.page_width.mm - width_mm) < 0.1 or abs(section.page_height.mm - width_mm) < 0.1
    paragraphs = [p.text for p in document.paragraphs if p.text]
    assert paragraphs[0] == "Table 2. Effect of rescue stenting on outcomes."
    assert paragraphs[-1].startswith("Unadjusted and overlap-weighted (IPTW) effects of MT+RS vs MT only")
    assert "ATO, the average treatment effect in the overlap population" in paragraphs[-1]
    assert "Abbreviations: MD difference in mean 90-day mRS" in paragraphs[-1]
