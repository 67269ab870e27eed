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
# # 5. Sensitivity: center effects and unmeasured confounding
#
# Two questions a reviewer asks first about a 25-center observational study. Do differences
# between centers explain the result? Patients of one center share operators, devices and
# protocols, so their outcomes are correlated and centers differ in their use of stenting.
# And how strong would a confounder that the registry does not record have to be to explain
# the result away?

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
hc_type = "HC0"
variance = "robust"
cutoff = 75.0
cutoff_min = 40.0
cutoff_max = 90.0
cutoff_step = 5.0
min_arm_size = 10
conf_level = 0.95
subgroup_weights = "overall"

# %%
from analysis_lib.params import Parameters
from analysis_lib.study import load_study

study = load_study(Parameters.from_namespace(globals()))
study

# %% [markdown]
# ## Center as a random intercept (Supplementary Table 3)
#
# Every Table 2 outcome is refitted with a random intercept for center, the same overlap
# weights and the same subgroup coding. For the 90-day mRS: a weighted linear mixed model fitted
# by REML, the weights meaning residual variance `sigma^2 / w`, as `lme4::lmer(weights = w)`.
# For binary outcomes: a random-intercept Poisson model (log link, Laplace approximation as
# `glmer`'s default) for the relative risk. Intervals and p-values are Wald with normal
# quantiles, as `confint(method = "Wald")`. A model that does not converge, is singular (center
# variance estimated at zero) or has a subgroup-arm without events gives a note and no number.

# %%
study.center_sensitivity().save()

# %% [markdown]
# **Supplementary Table 3.** Overlap-weighted effects of MT+RS vs MT only with a random
# intercept for center, beside the primary estimates (HC sandwich). ATE difference in mean
# 90-day mRS; RR relative risk (MT only reference); CI confidence interval.

# %%
study.center_models().save()

# %% [markdown]
# Variance components: the center (random-intercept) variance and the residual variance (for a
# patient of weight 1; the Poisson model has none), as `summary(lmer)` reports them.

# %%
study.center_summary().save()

# %% [markdown]
# ## Center-clustered standard errors
#
# A cheaper cross-check that keeps the primary estimates and changes only their uncertainty:
# the sandwich with center as the cluster (HC0 meat, small-sample factor G/(G-1)), as
# `sandwich::vcovCL(fit, cluster = ~ center, type = "HC0", cadjust = TRUE)`; t intervals on the
# residual degrees of freedom for the linear model, normal ones for the Poisson model.

# %%
study.cluster_robust().save()

# %%
study.cluster_summary().save()

# %% [markdown]
# ## Unmeasured confounding: E-values
#
# The E-value (VanderWeele & Ding 2017) is the minimum strength of association, on the risk
# ratio scale, that an unmeasured confounder would need with both the treatment and the outcome
# to fully explain away an estimate (or to move its confidence limit to no effect), beyond the
# measured covariates. For the mRS ATE the difference is first standardised by the SD of the
# 90-day mRS in the analysis sample and converted with RR = exp(0.91 d); stenting was chosen by
# operators on angiographic features the registry does not record, so this is the question to
# ask of this study.

# %%
study.evalues().save()

# %%
study.evalue_summary().save()

# %% [markdown]
# ## Variance that accounts for the estimated propensity score
#
# The intervals of Table 2, as the paper's, treat the overlap weights as known, although they
# come from a fitted propensity model. Stacking the propensity model's estimating equations with
# the outcome model's (M-estimation, as WeightIt's `lm_weightit` and `glm_weightit`) accounts for
# that estimation; intervals are then normal, as in WeightIt. For overlap and inverse-probability
# weights from a logistic model, treating the weights as known is conservative for the overall
# effect, because estimating the propensity score removes the part of the outcome variation that
# the covariates explain; within subgroups, and for outcomes known on a subset of patients, that
# is not guaranteed, so both are shown. `-p variance m_estimation` switches every effect table of
# the build to M-estimation.

# %%
study.variance_comparison().save()

# %% [markdown]
# **Variance comparison.** Every weighted row of Table 2: standard errors (difference in means,
# or log RR) with the weights treated as known (the paper's HC sandwich) and by M-estimation
# (propensity and outcome models stacked), their ratio, and both 95% intervals.

# %%
study.variance_summary().save()
