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
# # 0. Audit of the published numbers
#
# Coauthors read this compendium beside the manuscript; this notebook helps them catch reporting
# errors before a reviewer does. Many of the paper's numbers can be recomputed from the counts it
# prints, with no patient data: every Table 1 percentage from its n/N; every categorical p-value
# from its 2 x 2 table (Fisher's exact test, as the Methods state, and the chi-square tests, to
# see which the authors used); every unadjusted ratio of Table 2 from the Table 1 counts, by the
# methods a paper might have used (risk and odds ratios; Wald, robust and profile-likelihood
# intervals); every interval and p-value for internal consistency; and the text against the
# tables. Every check allows for the printed precision.
#
# Statuses: **inconsistent** (the numbers contradict each other), **explained** (they agree
# once the stated reason is accepted), **reproduced**, **not_checkable**. "Explained" never hides
# a contradiction with the Methods: every check that is not reproduced carries a **severity**, most
# severe first: a number that no method reproduces; the Methods and the numbers disagree; two
# results compatible only at the edges of their uncertainty; a rounding slip. Checks of one
# pattern (15 p-values from one test the Methods do not name) make one finding, with its count.

# %% tags=["parameters"]
published_dir = "../data/published"
output_dir = None
page_size = "A4"

# %%
from analysis_lib.params import Parameters
from analysis_lib.steps import load_paper

paper = load_paper(Parameters.from_namespace(globals()))
paper.audit().save()
paper.audit_counts()

# %%
paper.audit_summary().save()

# %% [markdown]
# ## Findings
#
# What a referee would write to the authors, most severe first. The difference of the subgroup
# effects and the continuous interaction are compared through the one bound that links them for
# any effect monotone in stenosis (the stenosis distribution and overlap weights are those of a
# cohort reconstructed from Table 1, ten times the paper's size).

# %%
paper.audit_findings().save()

# %% [markdown]
# ## Inconsistent
#
# Numbers that contradict each other: to correct, or to explain in the manuscript.

# %%
paper.audit_problems().save()
paper.audit_checks(("inconsistent",))

# %% [markdown]
# ## Explained
#
# Numbers that agree once a reason is accepted (truncation instead of rounding, another test or
# interval method than the Methods state): worth aligning the Methods with what was done.

# %%
paper.audit_checks(("explained",))

# %% [markdown]
# ## Reproduced and not checkable

# %%
paper.audit_checks(("reproduced", "not_checkable"))
