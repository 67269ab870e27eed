# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 3. Does stenosis severity modify the effect of stenting?
#
# Two complementary approaches, as in the paper. First, a sweep of stenosis cutoffs from 40 %
# to 90 % in steps of 5 %: at each cutoff, the overlap-weighted linear model
# `mrs_90d ~ rescue_stenting * high` (with `high = stenosis > cutoff`) gives the treatment effect
# on the 90-day mRS below and above the cutoff; the cutoff with the largest absolute difference
# is selected. Second, stenosis as a continuous modifier: `mrs_90d ~ rescue_stenting * stenosis`,
# with the stenosis at which the effect changes sign.
#
# A data-driven cutoff is hypothesis-generating: choosing the largest of eleven differences
# inflates its apparent significance (see the resampling analysis of the supplement).

# %% tags=["parameters"]
data_path = "../data/synthetic_cohort.csv"
data_cache = None
column_map = None
output_dir = None
published_dir = "../data/published"
ps_covariates = [
    "age", "sex_female", "nihss", "aspects", "premorbid_mrs", "m1_occlusion", "stenosis_pct",
    "mtici_2b3_after_mt", "hypertension", "diabetes", "atrial_fibrillation", "general_anesthesia",
]
ps_formula = None
ps_method = "logistic"
estimand = "ATO"
hc_type = "HC0"
variance = "robust"
cutoff = 75.0
cutoff_min = 40.0
cutoff_max = 90.0
cutoff_step = 5.0
min_arm_size = 10
conf_level = 0.95
seed = 20260213
bootstrap_replicates = 2000
subgroup_weights = "overall"

# %%
from analysis_lib.cutoffs import continuous_interaction, resolve_cutoff
from analysis_lib.data import MODIFIER, TREATMENT
from analysis_lib.figures import continuous_interaction_plot, sweep_forest
from analysis_lib.narrative import resampling_summary
from analysis_lib.outputs import save_figure, save_formatted, save_note, save_table
from analysis_lib.params import Parameters
from analysis_lib.published import load_published, text_results_beside
from analysis_lib.resample import run_resampling
from analysis_lib.study import load_study
from analysis_lib.tables import format_continuous, format_cutoff_selection, format_resampling

params = Parameters.from_namespace(globals())
study = load_study(params)
study

# %% [markdown]
# ## Cutoff sweep (Supplementary Table 2)
#
# Subgroup ATEs are linear combinations of the coefficients with the HC sandwich covariance
# (low: `b_t`; high: `b_t + b_t:high`), with t intervals on the residual degrees of freedom; the
# difference is `b_t:high` and p-interaction its Wald p. A cutoff leaving fewer than
# `min_arm_size` patients in any subgroup-arm is shown but not eligible for selection. With
# `subgroup_weights = "within"`, each cutoff has its own weights, from one propensity model per
# subgroup; a cutoff where a subgroup cannot carry its own model is not estimable, and its note
# says why.

# %%
sweep = study.sweep().save()
sweep

# %% [markdown]
# **Supplementary Table 2.** Overlap-weighted ATE of MT+RS vs MT only on the 90-day mRS (difference
# in means; negative favours stenting) at or below and above each cutoff. Difference = high
# minus low.

# %%
figure_sweep = sweep_forest(sweep.table)
save_figure(figure_sweep, "cutoff_sweep_forest", params.output_dir)
figure_sweep

# %% [markdown]
# **Cutoff sweep.** Subgroup ATEs (95 % CI) at each candidate cutoff; grey: not eligible.

# %%
used_cutoff = resolve_cutoff(params.cutoff, sweep.table, params.min_arm_size)
print(f"Cutoff selected by the sweep: {sweep.table.loc[sweep.table['selected'], 'cutoff'].tolist()}; "
      f"cutoff used for Table 2 and Figure 1: {used_cutoff:g} %")

# %% [markdown]
# ## Continuous effect modification (Supplementary Figure 2)
#
# The interaction coefficient is the change in the ATE per 1 % stenosis. The crossing point
# `-b_t / b_t:s` carries two intervals: the delta method (symmetric) and Fieller's (the stenosis
# values at which the pointwise band covers zero; unbounded when the interaction is not
# significant, and then said so).

# %%
continuous = continuous_interaction(study.data, study.weights, params.hc_type, params.conf_level, ps=study.ps)
save_table(continuous.summary, "continuous_interaction", params.output_dir,
           formatted=format_continuous(continuous.summary, continuous.crossing))
save_table(continuous.crossing, "crossing_point", params.output_dir)
save_table(continuous.band, "continuous_band", params.output_dir)
format_continuous(continuous.summary, continuous.crossing)

# %%
figure_s2 = continuous_interaction_plot(continuous.band, continuous.summary["crossing_point"].iloc[0],
                                        used_cutoff, study.data[MODIFIER], study.data[TREATMENT])
save_figure(figure_s2, "supplementary_figure_2_continuous_interaction", params.output_dir)
figure_s2

# %% [markdown]
# **Supplementary Figure 2.** Overlap-weighted ATE of MT+RS vs MT only on the 90-day mRS as a
# linear function of the stenosis degree, with its pointwise 95 % band (HC sandwich), the
# crossing point, the cutoff used for the subgroups, and the patients of each arm (rug). Shaded:
# stenosis degrees where only one arm has patients; there the line extrapolates the linear model.

# %% [markdown]
# ## How much to trust the data-driven cutoff
#
# Picking the largest of eleven differences and then testing it at that cutoff overstates the
# evidence. The whole procedure (propensity refit, weights, every cutoff, eligibility,
# selection, continuous model) is therefore repeated in `bootstrap_replicates` bootstrap samples:
# how often is each cutoff selected, and how uncertain are the crossing point and the selected
# difference? And a test of the largest |difference| that accounts for the selection: outcomes
# are regenerated under the null of a treatment effect that does not depend on stenosis (wild
# bootstrap of a model with a constant effect and a smooth stenosis trend), and the selection is
# repeated in every replicate.

# %%
# NBVAL_IGNORE_OUTPUT
resampling = run_resampling(study)  # progress bar; 2 x bootstrap_replicates replicates

# %%
if resampling is not None:
    for name, table in resampling.tables().items():
        save_table(table, name, params.output_dir)
save_formatted(format_resampling(resampling, sweep.table), "resampling_summary", params.output_dir,
               caption="The data-driven cutoff under resampling.")

# %%
if resampling is not None:
    save_formatted(format_cutoff_selection(resampling.cutoff_selection), "cutoff_selection", params.output_dir,
                   caption="How often each cutoff is selected in bootstrap samples of the whole procedure.")
format_cutoff_selection(resampling.cutoff_selection) if resampling is not None else None

# %%
print(save_note(resampling_summary(resampling, sweep.table), "resampling_summary", params.output_dir))

# %% [markdown]
# ## Published beside recomputed
#
# The paper's text results next to the values the data give.

# %%
selected = sweep.table[sweep.table["selected"]]
beside = text_results_beside(load_published(params.published_dir), {
    "optimal_cutoff_pct": float(selected["cutoff"].iloc[0]) if len(selected) else None,
    "difference_of_ates_at_optimal_cutoff": float(selected["difference"].iloc[0]) if len(selected) else None,
    "continuous_interaction_beta_per_pct": float(continuous.summary["interaction_beta"].iloc[0]),
    "crossing_point_pct": float(continuous.summary["crossing_point"].iloc[0]),
    "patients_analysed": study.sample.n,
    "patients_mt_rs": study.sample.arm_counts()["mt_rs"],
    "patients_mt_only": study.sample.arm_counts()["mt_only"],
    "centers": int(study.data["center"].nunique()),
})
save_formatted(beside, "text_results_beside_published", params.output_dir,
               caption="Text results: published beside recomputed.")
