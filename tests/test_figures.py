"""What the figures show a reader: each figure function drawn from the study's own tables, checked
for the marks, labels and limits a reader relies on (not only through the notebooks)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import COHORTS

from analysis_lib import figures
from analysis_lib.data import TREATMENT
from analysis_lib.descriptives import mrs_distribution, patient_flow, variable_label
from analysis_lib.params import Parameters
from analysis_lib.steps import covariate_balance, sweep_of
from analysis_lib.study import load_study


@pytest.fixture(scope="module")
def study():
    return load_study(Parameters(data_path=str(COHORTS["synthetic"])))


def points(ax) -> int:
    return sum(len(c.get_offsets()) for c in ax.collections)


def test_love_plot_shows_every_covariate_before_and_after(study):
    balance = covariate_balance(study)
    ax = figures.love_plot(balance).axes[0]
    assert points(ax) == 2 * len(balance)
    assert [t.get_text() for t in ax.get_yticklabels()] == [variable_label(c) for c in balance.sort_values(
        "smd_unweighted", key=abs)["covariate"]]
    assert "Degree of MCA stenosis, %" in [t.get_text() for t in ax.get_yticklabels()]  # the dictionary's label
    assert any(line.get_xdata()[0] == 0.1 for line in ax.lines)  # the 0.1 threshold


def test_sweep_forest_marks_the_selected_and_the_ineligible_cutoffs(study):
    sweep = sweep_of(study)
    labels = [t.get_text() for t in figures.sweep_forest(sweep).axes[0].get_yticklabels()]
    assert len(labels) == len(sweep)
    selected = sweep.loc[sweep["selected"], "cutoff"].iloc[0]
    assert f"{selected:g}%  (selected)" in labels
    assert sum("(not eligible)" in label for label in labels) == int((~sweep["eligible"]).sum())


def test_figure_1_has_three_panels_of_seven_scores_each_summing_to_100(study):
    distribution = mrs_distribution(study.data, study.weights, 75.0)
    fig = figures.mrs_bars(distribution, 75.0)
    panels = fig.axes[:3]
    assert [ax.get_title(loc="left") for ax in panels] == ["a  Entire cohort", "b  Stenosis >75%",
                                                           "c  Stenosis \u226475%"]
    for ax in panels:
        widths = [p.get_width() for p in ax.patches]
        assert len(widths) == 14 and sum(widths) == pytest.approx(200.0)  # two arms x 7 scores, 100 % each
    legend = fig.legends[0]
    assert [t.get_text() for t in legend.get_texts()] == [f"mRS {k}" for k in range(7)]


def test_patient_flow_draws_one_box_per_stage(study):
    flow = patient_flow(study.sample, 18732, 541)
    fig = figures.patient_flow_figure(flow)
    texts = " ".join(t.get_text() for t in fig.axes[0].texts)
    missing = flow["stage"].str.startswith("Excluded: missing ")
    for _, row in flow[~missing].iterrows():
        assert f"n = {int(row['n']):,}" in texts
    # the exclusions for a missing covariate share one box, with each covariate's count
    assert "missing propensity-model covariates" in texts and f"n = {int(flow.loc[missing, 'n'].sum())}" in texts
    assert "ASPECTS 29" in texts
    # a flow that begins at the registry file hangs the exclusions beside the file's box
    short = figures.patient_flow_figure(patient_flow(study.sample, 18732, 1))
    texts = [t.get_text() for t in short.axes[0].texts if t.get_text()]
    assert texts[0] == "Patients of the registry file\nn = 344" and texts[2].startswith("Analysed\nn = 303")
    assert texts[1].startswith("Excluded:\nmissing propensity-model covariates") and "n = 41" in texts[1]


def test_simulation_error_bars_stay_within_0_and_100_percent():
    summary = pd.DataFrame({
        "scenario": ["a", "a", "b", "b"],
        "quantity": ["significant effect modification, naive", "significant effect modification, selection-adjusted"] * 2,
        "value": [0.99, 0.01, 1.0, 0.0], "mc_se": [0.02, 0.02, 0.0, 0.0], "replicates": 100})
    ax = figures.simulation_figure(summary).axes[0]
    ends = [np.asarray(s.get_segments())[:, :, 1] for c in ax.containers if getattr(c, "errorbar", None)
            for s in c.errorbar.lines[2]]
    assert len(ends) == 2 and sum(e.shape[0] for e in ends) == 4  # naive and adjusted, two scenarios each
    assert min(e.min() for e in ends) >= 0 and max(e.max() for e in ends) <= 100
    assert max(e.max() for e in ends) == 100  # 99 % + 1.96 x 2 % is clipped at 100 %


def test_propensity_overlap_mirrors_the_arms(study):
    fig = figures.propensity_overlap(study.propensity.propensity, study.data[TREATMENT], study.weights)
    unweighted = fig.axes[0]
    heights = [p.get_height() for p in unweighted.patches]
    assert sum(h for h in heights if h > 0) == pytest.approx((study.data[TREATMENT] == 1).sum())
    assert -sum(h for h in heights if h < 0) == pytest.approx((study.data[TREATMENT] == 0).sum())


def test_supplementary_figure_2_shades_the_stenosis_where_only_one_arm_has_patients(study):
    from analysis_lib.cutoffs import continuous_interaction

    fit = continuous_interaction(study.data, study.weights)
    s, t = study.data["stenosis_pct"], study.data[TREATMENT]
    ax = figures.continuous_interaction_plot(fit.band, fit.summary["crossing_point"].iloc[0], 75.0, s, t).axes[0]
    spans = sorted((p.get_x(), p.get_x() + p.get_width()) for p in ax.patches)
    both = (max(s[t == 0].min(), s[t == 1].min()), min(s[t == 0].max(), s[t == 1].max()))
    assert spans == [(s.min(), both[0]), (both[1], s.max())]  # 20-45 % (no MT+RS) and 95-100 % (no MT only)
    assert [t.get_text() for t in ax.get_legend().get_texts()].count("One arm only: extrapolated") == 1


def test_the_forest_plot_marks_the_cutoff_used_beside_the_selected_one(study):
    sweep = sweep_of(study)
    labels = [t.get_text() for t in figures.sweep_forest(sweep, 70.0).axes[0].get_yticklabels()]
    assert "70%  (used, Table 2)" in labels and "75%  (selected)" in labels
    assert not any("used" in label for label in [t.get_text() for t in figures.sweep_forest(sweep).axes[0].get_yticklabels()])


def test_the_specification_curve_is_legible_at_the_journal_s_page_width(study):
    from matplotlib.text import Text

    from analysis_lib.multiverse import fit_specifications, multiverse_specs, run_multiverse

    p = study.params
    fits = fit_specifications(study.data, multiverse_specs(p.ps_covariates, None, "logistic", p.multiverse_formula), "ATO")
    fig = figures.specification_curve_figure(run_multiverse(fits, p, 75.0))
    assert fig.get_figwidth() * 2.54 <= 17.4 + 1e-9  # printed at its own size: no reduction
    sizes = [t.get_fontsize() for t in fig.findobj(Text) if t.get_visible() and t.get_text().strip()]
    assert sizes and min(sizes) >= 6
    # beneath the curve, one tick per specification and choice, in the row of the level it took
    curve = run_multiverse(fits, p, 75.0)
    low = curve[(curve["subgroup"] == "low") & curve["eligible"]].sort_values("estimate").reset_index(drop=True)
    line = fig.axes[1].get_lines()[0]
    x, top = line.get_xdata()[::3], line.get_ydata()[1::3]
    assert len(x) == 5 * len(low) and np.isnan(line.get_ydata()[2::3]).all()
    estimand_rows = {t.get_text().split(": ")[1]: t.get_position()[1] for t in fig.axes[1].get_yticklabels()
                     if t.get_text().startswith("Estimand")}
    assert len(estimand_rows) == low["estimand"].nunique() > 1
    for level, row in estimand_rows.items():
        assert sorted(x[np.isclose(top, row + 0.35)]) == list(low.index[low["estimand"] == level])


def test_the_mrs_shades_differ_in_lightness_so_that_grey_print_tells_them_apart():
    def lightness(c):  # CIE L* of an sRGB colour
        r, g, b = (x / 12.92 if x <= 0.04045 else ((x + 0.055) / 1.055) ** 2.4 for x in c[:3])
        y = 0.2126 * r + 0.7152 * g + 0.0722 * b
        return 116 * y ** (1 / 3) - 16 if y > 0.008856 else 903.3 * y

    lights = [lightness(c) for c in figures.mrs_colors()]
    assert all(a - b >= 10 for a, b in zip(lights, lights[1:]))  # mRS 0 lightest ... 6 darkest, 10 L* apart
