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
# # 6. Sensitivity to the analysis choices
#
# A methods reviewer will ask whether the result survives another propensity model, other
# weights, and the patients dropped for missing covariates, and, since every analysis makes
# several such choices at once, how many reasonable analyses would have told the same story.
# Each section below changes one choice, with the library functions of the primary analysis;
# the last one changes all of them together.

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
seed = 20260213
mi_imputations = 20
multiverse_formula = (
    "bs(age, df=3) + sex_female + nihss + I(nihss**2) + aspects + premorbid_mrs + m1_occlusion"
    " + stenosis_pct + I(stenosis_pct**2) + mtici_2b3_after_mt + mtici_2b3_after_mt:stenosis_pct"
    " + hypertension + diabetes + atrial_fibrillation + general_anesthesia"
)
multiverse_min_arm_sizes = [5, 10, 20]

# %%
from analysis_lib.effects import table2
from analysis_lib.figures import specification_curve_figure
from analysis_lib.imputation import multiple_imputation
from analysis_lib.multiverse import fit_specifications, multiverse_specs, propensity_specifications, run_multiverse
from analysis_lib.narrative import imputation_summary, multiverse_summary, weights_summary
from analysis_lib.outputs import save_figure, save_note, save_table
from analysis_lib.params import Parameters
from analysis_lib.specification import weight_sensitivity
from analysis_lib.study import analysis_cutoff, load_study
from analysis_lib.tables import format_imputation, format_propensity_specifications, format_weight_sensitivity

params = Parameters.from_namespace(globals())
study = load_study(params)
cutoff_used = analysis_cutoff(study)
primary = table2(study.data, study.weights, cutoff_used, params.hc_type, params.conf_level, ps=study.ps)
study

# %% [markdown]
# ## Propensity specification
#
# Three propensity models: the primary one; a richer formula (a cubic spline in age, squares of
# NIHSS and stenosis, recanalization after MT by stenosis; parameter `multiverse_formula`,
# formulaic syntax); and the covariate balancing propensity score (CBPS, Imai & Ratkovic 2014),
# which chooses the coefficients so that the inverse-probability weighted covariate means are
# equal in both arms, starting from the maximum-likelihood fit. Balance is shown on the primary
# covariates, with each model's weights for the primary estimand.

# %%
specs = multiverse_specs(params.ps_covariates, params.ps_formula, params.ps_method, params.multiverse_formula)
fits = fit_specifications(study.data, specs, params.estimand)
spec_table = propensity_specifications(fits, params.estimand, cutoff_used, params.hc_type, params.conf_level)
save_table(spec_table, "propensity_specifications", params.output_dir,
           formatted=format_propensity_specifications(spec_table))
format_propensity_specifications(spec_table)

# %% [markdown]
# ## Weights
#
# The mRS, mRS 0-2 and sICH rows of Table 2 under overlap (ATO), inverse-probability (ATE),
# treated (ATT) and matching (ATM) weights, ATE weights truncated at their 1st and 99th
# percentiles, and ATE weights after trimming the patients with a propensity outside
# [0.1, 0.9] (Crump et al. 2009). The effective sample size (ESS) of each row shows the price of
# extreme weights.

# %%
weights_table_ = weight_sensitivity(study.data, study.propensity, cutoff_used, params.hc_type, params.conf_level,
                                    variance=params.variance)
save_table(weights_table_, "weight_sensitivity", params.output_dir,
           formatted=format_weight_sensitivity(weights_table_, cutoff_used))
format_weight_sensitivity(weights_table_, cutoff_used)

# %%
print(save_note(weights_summary(weights_table_, cutoff_used), "weights_summary", params.output_dir))

# %% [markdown]
# ## Missing covariates: multiple imputation
#
# The primary analysis drops the patients with a missing propensity covariate. Here the missing
# covariates are imputed by chained equations with predictive mean matching (`mi_imputations`
# data sets, seeded), the propensity model and weights are re-estimated in every data set, and
# the estimates are pooled by Rubin's rules.

# %%
mi = multiple_imputation(study.cohort, params.ps_covariates, cutoff_used, m=params.mi_imputations,
                         seed=params.seed, ps_formula=params.ps_formula, estimand=params.estimand,
                         hc_type=params.hc_type, conf_level=params.conf_level)
save_table(mi.table, "mi_sensitivity", params.output_dir, formatted=format_imputation(mi.table, primary, cutoff_used))
mi

# %%
format_imputation(mi.table, primary, cutoff_used)

# %%
print(save_note(imputation_summary(mi.table, primary, study.sample.n_input - study.sample.n), "imputation_summary",
                params.output_dir))

# %% [markdown]
# ## All choices at once: the multiverse
#
# The low and high subgroup effects on the 90-day mRS over every combination of propensity
# model (3, fitted once above), estimand (4), sandwich type (HC0-HC3), stenosis cutoff (40-90 %)
# and minimum subgroup-arm size, drawn as a specification curve (Simonsohn, Simmons & Nelson 2020):
# estimates sorted, with their CIs, and beneath them the choices that produced each one.

# %%
curve = run_multiverse(fits, params, cutoff_used)
save_table(curve, "specification_curve", params.output_dir)
figure_curve = specification_curve_figure(curve)
save_figure(figure_curve, "specification_curve", params.output_dir)
figure_curve

# %% [markdown]
# **Specification curve.** Each point is one specification with an eligible cutoff; coloured
# points agree with the primary analysis (diamond) in sign and significance at 5 %.

# %%
print(save_note(multiverse_summary(curve), "multiverse_summary", params.output_dir))
