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
# # 2. Propensity score, overlap weights and balance
#
# Treatment was chosen by the operator, so the arms differ at baseline (Table 1). As in the
# paper, a propensity score for rescue stenting is estimated by logistic regression on the
# covariates chosen a priori (age, sex, NIHSS, ASPECTS, pre-stroke mRS, occlusion site, stenosis
# degree), the variables imbalanced in Table 1, and the recanalization status after the first
# thrombectomy. Overlap weights (treated `1 - e`, controls `e`) target the patients for whom
# both treatments were plausible; they are normalised to mean 1 over the analysis sample.

# %% tags=["parameters"]
data_path = "../data/synthetic_cohort.csv"
data_cache = None
column_map = None
output_dir = None
page_size = "A4"
ps_covariates = [
    "age", "sex_female", "nihss", "aspects", "premorbid_mrs", "m1_occlusion", "stenosis_pct",
    "mtici_2b3_after_mt", "hypertension", "diabetes", "atrial_fibrillation", "general_anesthesia",
]
ps_formula = None
ps_method = "logistic"
estimand = "ATO"
smd_binary = "std"
subgroup_weights = "overall"
cutoff = 75.0
cutoff_min = 40.0
cutoff_max = 90.0
cutoff_step = 5.0
min_arm_size = 10
hc_type = "HC0"
conf_level = 0.95

# %%
from analysis_lib.params import Parameters
from analysis_lib.study import load_study

# %% [markdown]
# ## Propensity model
#
# Unpenalised maximum likelihood, as R's `glm(family = binomial)`. A covariate that separates
# the arms stops the build with a message naming it; an aliased covariate is dropped as R does.

# %%
study = load_study(Parameters.from_namespace(globals()))
study

# %%
study.propensity_coefficients()

# %% [markdown]
# ## Weights
#
# The patient-level weights are written to `private/weights.csv` in the output folder for audit
# they are never shown here. Their distribution by arm:

# %%
study.patient_weights().save()

# %% [markdown]
# ## Balance (Supplementary Table 1)
#
# Standardised mean differences with cobalt's denominator from the *unweighted* groups (pooled
# for ATO, ATE and ATM; the treated group's SD for ATT), for every covariate (binary ones
# standardised too, as the paper reports SMDs for all; `smd_binary = "raw"` gives cobalt's raw
# differences in proportions instead).
# |SMD| < 0.1 is adequate balance. Overlap weights from a logistic model balance the means of
# the model's covariates exactly, so the weighted SMDs are zero up to rounding. Variance ratios
# (treated over control) are shown for continuous covariates, as cobalt does. With a
# `ps_formula`, balance is reported on the formula's terms (squares, spline bases, interactions,
# every level of a factor), as cobalt does.

# %%
study.balance().save()

# %% [markdown]
# **Supplementary Table 1.** Covariate balance before and after overlap weighting. SMD
# standardised mean difference (pooled SD of the unweighted groups; binary covariates
# standardised as well); variance ratio MT+RS over MT only, continuous covariates only.

# %%
study.sample_sizes().save()

# %% [markdown]
# Effective sample size (ESS) per arm, `(sum w)^2 / sum w^2`: the precision the weighted
# comparison retains.

# %%
study.love_plot().save()

# %% [markdown]
# **Love plot.** Absolute standardised mean differences before (open) and after (filled)
# weighting, ordered by the unweighted imbalance; dashed line at 0.1.

# %%
study.propensity_overlap().save()

# %% [markdown]
# **Propensity overlap.** Distribution of the propensity score in MT+RS (up) and MT only
# (down), before and after weighting.

# %% [markdown]
# ## Balance within the stenosis subgroups
#
# The paper's question is answered by subgroup effects, and a subgroup effect is only as good as the
# balance *within* that subgroup (Yang et al., *Stat Med* 2021): weights that balance the whole
# cohort need not balance the patients at or below, or above, the cutoff. The same SMDs are
# computed inside each subgroup, at the cutoff of Table 2 and at every cutoff of the sweep, with
# the overall model's weights and with one propensity model per subgroup (the model fully
# interacted with the subgroup indicator), whose overlap weights balance every covariate exactly
# within each subgroup.

# %%
study.subgroup_balance().save()

# %% [markdown]
# **Balance within the subgroups.** SMD of each covariate inside the subgroups at or below and
# above the cutoff of Table 2: unweighted, with the weights of the overall propensity model, and
# with one propensity model per subgroup. `tables/subgroup_balance.csv` holds every cutoff of the
# sweep.

# %%
study.subgroup_balance_plot().save()

# %% [markdown]
# **Balance within the subgroups at a glance** (a Connect-S plot): the shade of each cell is the
# |SMD| category of a covariate in a subgroup; darker means more imbalance.

# %%
study.subgroup_balance_summary().save()
