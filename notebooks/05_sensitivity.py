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
from analysis_lib.narrative import center_summary, cluster_summary, evalue_summary, variance_summary
from analysis_lib.outputs import save_note, save_table
from analysis_lib.params import Parameters
from analysis_lib.sensitivity import center_sensitivity, cluster_robust, compare_variances, evalues, mrs_sd
from analysis_lib.study import analysis_cutoff, load_study, table2_of
from analysis_lib.tables import (format_center, format_center_models, format_cluster, format_evalues,
                                 format_variance_comparison)

params = Parameters.from_namespace(globals())
study = load_study(params)
cutoff_used = analysis_cutoff(study)
primary = table2_of(study, cutoff_used)
subgroup_rows_weights = study.subgroup_weights(cutoff_used).weights  # overall model, or one model per subgroup
print(f"{study!r}\nStenosis subgroups at {cutoff_used:g} %; {study.data['center'].nunique()} centers")

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
center = center_sensitivity(study.data, study.weights, cutoff_used, conf_level=params.conf_level,
                            subgroup_weights=subgroup_rows_weights)
save_table(center.table, "center_sensitivity", params.output_dir,
           formatted=format_center(center.table, primary, cutoff_used),
           caption="Supplementary Table 3. Effect of rescue stenting with center as a random intercept.")
save_table(center.models, "center_models", params.output_dir, formatted=format_center_models(center.models))
format_center(center.table, primary, cutoff_used)

# %% [markdown]
# **Supplementary Table 3.** Overlap-weighted effects of MT+RS vs MT only with a random
# intercept for center, beside the primary estimates (HC sandwich). ATE difference in mean
# 90-day mRS; RR relative risk (MT only reference); CI confidence interval.

# %%
format_center_models(center.models)

# %% [markdown]
# Variance components: the center (random-intercept) variance and the residual variance (for a
# patient of weight 1; the Poisson model has none), as `summary(lmer)` reports them.

# %%
print(save_note(center_summary(center.table, primary, cutoff_used), "center_summary", params.output_dir))

# %% [markdown]
# ## Center-clustered standard errors
#
# A cheaper cross-check that keeps the primary estimates and changes only their uncertainty:
# the sandwich with center as the cluster (HC0 meat, small-sample factor G/(G-1)), as
# `sandwich::vcovCL(fit, cluster = ~ center, type = "HC0", cadjust = TRUE)`; t intervals on the
# residual degrees of freedom for the linear model, normal ones for the Poisson model.

# %%
cluster = cluster_robust(study.data, study.weights, cutoff_used, conf_level=params.conf_level,
                         subgroup_weights=subgroup_rows_weights)
save_table(cluster, "cluster_robust", params.output_dir, formatted=format_cluster(cluster, primary, cutoff_used))
format_cluster(cluster, primary, cutoff_used)

# %%
print(save_note(cluster_summary(cluster, primary), "cluster_summary", params.output_dir))

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
ev = evalues(primary, mrs_sd(study.data))
save_table(ev, "evalues", params.output_dir, formatted=format_evalues(ev, cutoff_used))
format_evalues(ev, cutoff_used)

# %%
print(save_note(evalue_summary(ev, cutoff_used), "evalue_summary", params.output_dir))

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
comparison = compare_variances(study, cutoff_used)
if comparison is not None:
    save_table(comparison, "variance_comparison", params.output_dir,
               formatted=format_variance_comparison(comparison, cutoff_used))
    print(save_note(variance_summary(comparison), "variance_summary", params.output_dir))
else:
    print("CBPS propensity model: its estimating equations are not stacked; no M-estimation comparison.")

# %%
format_variance_comparison(comparison, cutoff_used) if comparison is not None else None

# %% [markdown]
# **Variance comparison.** Every weighted row of Table 2: standard errors (difference in means,
# or log RR) with the weights treated as known (the paper's HC sandwich) and by M-estimation
# (propensity and outcome models stacked), their ratio, and both 95% intervals.
