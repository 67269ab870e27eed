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
# once the stated reason is accepted), **reproduced**, **not_checkable**. Real problems first.

# %% tags=["parameters"]
published_dir = "../data/published"
output_dir = None

# %%
from analysis_lib.audit import audit_published, audit_summary
from analysis_lib.narrative import audit_summary_text
from analysis_lib.outputs import save_formatted, save_note, save_table
from analysis_lib.tables import format_audit

audit = audit_published(published_dir)
save_table(audit, "published_audit", output_dir, formatted=format_audit(audit),
           caption="Audit of the published numbers.")
audit_summary(audit)

# %%
print(save_note(audit_summary_text(audit), "audit_summary", output_dir))

# %% [markdown]
# ## Inconsistent
#
# Numbers that contradict each other: to correct, or to explain in the manuscript.

# %%
save_formatted(format_audit(audit, ("inconsistent", "explained")), "published_audit_problems", output_dir,
               caption="Inconsistent and explained numbers of the paper.").query("Status == 'inconsistent'")

# %% [markdown]
# ## Explained
#
# Numbers that agree once a reason is accepted (truncation instead of rounding, another test or
# interval method than the Methods state): worth aligning the Methods with what was done.

# %%
format_audit(audit, ("explained",))

# %% [markdown]
# ## Reproduced and not checkable

# %%
format_audit(audit, ("reproduced", "not_checkable"))
