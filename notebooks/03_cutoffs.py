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
page_size = "A4"
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
from analysis_lib.params import Parameters
from analysis_lib.study import load_study

study = load_study(Parameters.from_namespace(globals()))
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
# says why. Beside the mean differences, each cutoff carries the common odds ratios of a lower
# mRS in the same subgroups (weighted proportional odds, notebook 04): a second reading of the
# same split on the ordinal scale. The selection stays on the mean difference, the paper's rule,
# so that the selected cutoff is the paper's; the ORs show whether the ordinal scale tells the
# same story at every cutoff.

# %%
study.sweep().save()

# %% [markdown]
# **Supplementary Table 2.** Overlap-weighted ATE of MT+RS vs MT only on the 90-day mRS (difference
# in means; negative favours stenting) at or below and above each cutoff. Difference = high
# minus low.

# %%
study.sweep_forest().save()

# %% [markdown]
# **Cutoff sweep.** Subgroup ATEs (95 % CI) at each candidate cutoff; grey: not eligible.

# %%
study.cutoff_choice().save()

# %% [markdown]
# ## Continuous effect modification (Supplementary Figure 2)
#
# The interaction coefficient is the change in the ATE per 1 % stenosis. The crossing point
# `-b_t / b_t:s` carries two intervals: the delta method (symmetric) and Fieller's (the stenosis
# values at which the pointwise band covers zero; unbounded when the interaction is not
# significant, and then said so).

# %%
study.continuous_interaction().save()

# %%
study.continuous_interaction_plot().save()

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
resampling = study.resampling()  # progress bar; 2 x bootstrap_replicates replicates

# %%
resampling.save()

# %%
study.cutoff_selection().save()

# %%
study.resampling_summary().save()

# %% [markdown]
# ## Published beside recomputed
#
# The paper's text results next to the values the data give.

# %%
study.text_results_beside_published().save()
