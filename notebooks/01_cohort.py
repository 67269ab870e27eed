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
# # 1. Cohort description
#
# Patients with an acute middle cerebral artery occlusion due to underlying intracranial
# stenosis, treated with mechanical thrombectomy followed by rescue stenting (MT+RS) or with
# thrombectomy alone (MT only). This notebook builds the analysis sample, draws the patient
# flow and reproduces Table 1 of the paper.
#
# By default it runs on the **synthetic cohort** shipped in `data/` (not patient data; see
# `data/README.md`). The build (`make supplement DATA=...`) runs the same notebook on a registry
# file; the parameters below are then replaced by papermill.

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
patients_screened = 18732
patients_icas_lvo_evt = 541
min_cell_size = 0

# %%
from analysis_lib.params import Parameters
from analysis_lib.study import load_study

# %% [markdown]
# ## Analysis sample
#
# The registry file is validated against the data dictionary (columns, types, ranges, unique
# IDs, death consistent with the mRS) before anything is computed. The analysis uses complete
# cases on the treatment, the stenosis degree and every propensity-score covariate: nothing is
# imputed in the primary analysis (multiple imputation is a sensitivity analysis). Outcomes may
# be missing; each outcome model later uses the patients whose outcome is known.

# %%
study = load_study(Parameters.from_namespace(globals()))
study.sample

# %% [markdown]
# ## Patient flow (Supplementary Figure 1)
#
# Counts before the registry export (screened patients, ICAS-LVO treated endovascularly) are
# parameters; the exclusions for missing propensity-score covariates are computed from the data.

# %%
study.patient_flow().save()

# %%
study.patient_flow_figure().save()

# %% [markdown]
# **Supplementary Figure 1.** Patient flow. MT mechanical thrombectomy; RS rescue stenting;
# ICAS-LVO large vessel occlusion due to intracranial artery stenosis.

# %% [markdown]
# ## Table 1
#
# Continuous variables as median (interquartile range), categorical variables as n/N (%) with N
# the patients with a known value. Between-group differences: Fisher's exact test for
# categorical and the Mann-Whitney U test for continuous variables, both two-sided, as in the
# paper. The antiplatelet regimen is recorded for MT+RS patients only and is not tested.
# With `min_cell_size` set (e.g. 5), counts of 1 to 4 patients and their percentages are masked
# in every exported copy of the table (statistical disclosure control).

# %%
study.table1().save()

# %% [markdown]
# **Table 1.** Univariate analysis of demographic and baseline characteristics, procedural
# features and outcomes. IQR interquartile range; MT mechanical thrombectomy; RS rescue stenting;
# mRS modified Rankin Scale; NIHSS National Institutes of Health Stroke Scale; ASPECTS Alberta
# Stroke Program Early CT Score; IVT intravenous thrombolysis; MCA middle cerebral artery; mTICI
# modified Treatment In Cerebral Infarction; GPI glycoprotein IIb/IIIa inhibitor; sICH
# symptomatic intracranial hemorrhage.

# %% [markdown]
# ## Published beside recomputed
#
# The paper's Table 1 as printed, next to the same rows computed from the data at hand. On the
# synthetic cohort the two agree by construction (the generator is calibrated to the printed
# proportions, medians and quartiles); on the registry they should agree exactly.

# %%
study.table1_beside_published().save()
