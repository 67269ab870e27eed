"""One registry of the outputs of a build: each file's name, kind, what it holds, the notebook that
writes it and the library function that computes it, its tidy columns and when it may be absent.

Everything that lists outputs reads it: the build's completeness check, ``outputs/README.md``
(:func:`readme`), the Source line under every table and figure of the supplement, and the
tests' output contract. Adding an analysis adds one :class:`Output` here.
"""

from __future__ import annotations

from dataclasses import dataclass

from .augmented import AUGMENTED_COLUMNS
from .balance import BALANCE_COLUMNS
from .cutoffs import CONTINUOUS_COLUMNS, SWEEP_COLUMNS
from .descriptives import TABLE1_COLUMNS
from .effects import TABLE2_COLUMNS
from .imputation import MI_COLUMNS
from .ordinal import ORDINAL_COLUMNS, ORDINAL_SWEEP_COLUMNS
from .resample import CROSSING_COLUMNS, SELECTION_COLUMNS, TEST_COLUMNS
from .sensitivity import CENTER_COLUMNS, CLUSTER_COLUMNS, COMPARISON_COLUMNS, EVALUE_COLUMNS
from .specification import WEIGHT_SENSITIVITY_COLUMNS
from .subgroups import SUBGROUP_BALANCE_COLUMNS

FORMATS = {"private": ("csv",), "table": ("csv",), "formatted table": ("csv", "html", "docx"), "display": ("html", "docx"),
           "figure": ("png", "pdf"), "note": ("md",)}
FOLDERS = {"private": "private", "table": "tables", "formatted table": "tables", "display": "tables", "figure": "figures", "note": "notes"}


@dataclass(frozen=True)
class Output:
    """One output of a build.

    ``kind``: ``private`` (a patient-level CSV in ``private/``, never shared), ``table`` (tidy CSV only), ``formatted table`` (tidy CSV with its formatted HTML and
    Word copies), ``display`` (a formatted table without a tidy twin), ``figure`` (PNG and PDF) or
    ``note`` (a paragraph of plain words). ``skip_when`` names a parameter value with which the
    analysis is skipped and the file absent (e.g. ``("bootstrap_replicates", 0)``). ``caption``
    heads the table in the notebook, the HTML and the Word copy (``{cutoff}`` is the study's
    cutoff). ``section`` is the anchor of the supplement's item that shows it (``None``: not in
    the supplement), in the order of this registry; ``shown`` says how a table is shown there:
    ``table``, ``beside`` (published beside recomputed, collapsed) or ``details`` (collapsed).
    """

    name: str
    kind: str
    notebook: str
    source: str
    description: str
    columns: tuple[str, ...] = ()
    skip_when: tuple[str, object] | None = None
    private: bool = False
    caption: str = ""
    section: str | None = None
    shown: str = "table"

    @property
    def files(self) -> tuple[str, ...]:
        """Paths relative to the output folder."""
        return tuple(f"{FOLDERS[self.kind]}/{self.name}.{ext}" for ext in FORMATS[self.kind])

    def expected(self, parameters: dict) -> bool:
        """Whether a build with these parameters writes it."""
        if self.skip_when is None:
            return True
        name, value = self.skip_when
        return parameters.get(name) != value


NO_RESAMPLING = ("bootstrap_replicates", 0)
NO_SIMULATION = ("simulation_replicates", 0)
T, F, D, P, N = "table", "formatted table", "display", "figure", "note"
OUTPUTS: tuple[Output, ...] = (
    Output("audit_summary", N, "00_audit", "analysis_lib.narrative.audit_summary_text", "the audit in plain words",
           section="audit"),
    Output("audit_findings", F, "00_audit", "analysis_lib.audit.audit_findings",
           "the audit's findings, most severe first: each pattern once, with its count and severity",
           ("severity", "finding", "checks", "statement", "headline", "items"),
           caption="Findings of the audit of the published numbers, most severe first.", section="audit"),
    Output("published_audit_problems", D, "00_audit", "analysis_lib.audit.audit_published",
           "the inconsistent and explained printed numbers", caption="Inconsistent and explained numbers of the paper.",
           section="audit"),
    Output("published_audit", F, "00_audit", "analysis_lib.audit.audit_published",
           "the audit of the paper's printed numbers (checked against themselves)",
           ("source", "item", "quantity", "published", "recomputed", "status", "reason", "severity", "finding"),
           caption="Audit of the published numbers.", section="audit", shown="details"),
    Output("patient_flow", T, "01_cohort", "analysis_lib.descriptives.patient_flow",
           "Supplementary Figure 1: counts of the patient flow", ("stage", "n", "n_mt_rs", "n_mt_only")),
    Output("supplementary_figure_1_patient_flow", P, "01_cohort", "analysis_lib.figures.patient_flow_figure",
           "Supplementary Figure 1: patient flow", section="sfigure1"),
    Output("table1", F, "01_cohort", "analysis_lib.descriptives.table1",
           "Table 1: characteristics by arm, with Fisher / Mann-Whitney p", tuple(TABLE1_COLUMNS),
           caption="Table 1. Baseline, procedural and outcome characteristics by treatment group.", section="table1"),
    Output("table1_beside_published", D, "01_cohort", "analysis_lib.published.table1_beside",
           "Table 1: published beside recomputed", caption="Table 1: published beside recomputed.",
           section="table1", shown="beside"),
    Output("weights", "private", "02_weighting", "analysis_lib.weighting.weights_table",
           "patient-level propensity and weight (audit only: never share)", ("patient_id", "propensity", "weight"),
           private=True),
    Output("balance", F, "02_weighting", "analysis_lib.steps.covariate_balance",
           "Supplementary Table 1: SMDs and variance ratios", tuple(BALANCE_COLUMNS),
           caption="Supplementary Table 1. Covariate balance before and after weighting.", section="stable1"),
    Output("effective_sample_size", F, "02_weighting", "analysis_lib.balance.sample_sizes",
           "effective sample size per arm", ("arm", "n", "ess_unweighted", "ess_weighted"),
           caption="Effective sample size per arm.", section="stable1"),
    Output("love_plot", P, "02_weighting", "analysis_lib.figures.love_plot", "love plot of the SMDs",
           section="stable1", caption="Supplementary Figure 3. Love plot: absolute standardised mean differences of "
           "the propensity model's covariates before (open) and after (filled) weighting; the line marks 0.1."),
    Output("propensity_overlap", P, "02_weighting", "analysis_lib.figures.propensity_overlap",
           "propensity score by arm, before and after weighting", section="stable1",
           caption="Supplementary Figure 4. Distribution of the propensity score by arm, before and after weighting."),
    Output("subgroup_balance", F, "02_weighting", "analysis_lib.steps.subgroup_balance_of",
           "balance within the stenosis subgroups, every cutoff, both weightings (overall model, model per "
           "subgroup)", tuple(SUBGROUP_BALANCE_COLUMNS),
           caption="Covariate balance within the stenosis subgroups at {cutoff:g}%.", section="stable1"),
    Output("subgroup_balance", P, "02_weighting", "analysis_lib.figures.subgroup_balance_plot",
           "balance within the subgroups at a glance (Connect-S plot)", section="stable1",
           caption="Supplementary Figure 5. Balance within the stenosis subgroups at the cutoff of Table 2 (Connect-S "
           "plot): the shade of a cell is the |SMD| category of a covariate in a subgroup, unweighted, with the overall "
           "model's weights and with one model per subgroup."),
    Output("subgroup_balance_summary", N, "02_weighting", "analysis_lib.narrative.subgroup_balance_summary",
           "the largest within-subgroup imbalance and what it means for Table 2", section="stable1"),
    Output("cutoff_sweep", F, "03_cutoffs", "analysis_lib.steps.sweep_of",
           "Supplementary Table 2: subgroup mean differences and common odds ratios at every cutoff",
           (*SWEEP_COLUMNS, *ORDINAL_SWEEP_COLUMNS[1:]),
           caption="Supplementary Table 2. Treatment effect on the 90-day mRS below and above each stenosis cutoff.",
           section="stable2"),
    Output("cutoff_sweep_forest", P, "03_cutoffs", "analysis_lib.figures.sweep_forest",
           "the cutoff sweep as a forest plot", section="stable2",
           caption="Supplementary Figure 6. Weighted effect of MT+RS vs MT only on the 90-day mRS (difference in means, "
           "95% CI) at or below and above each candidate cutoff; grey: not eligible; shaded: the cutoff used in Table 2."),
    Output("cutoff_choice", N, "03_cutoffs", "analysis_lib.narrative.cutoff_choice",
           "the cutoff the sweep selects and the cutoff the tables use, reconciled", section="stable2"),
    Output("supplementary_figure_2_continuous_interaction", P, "03_cutoffs",
           "analysis_lib.figures.continuous_interaction_plot", "Supplementary Figure 2: ATE by stenosis",
           section="sfigure2"),
    Output("continuous_interaction", F, "03_cutoffs", "analysis_lib.cutoffs.continuous_interaction",
           "interaction per 1 % stenosis and crossing point (delta CI)", tuple(CONTINUOUS_COLUMNS),
           caption="Interaction of rescue stenting with the stenosis degree (linear) and crossing point.",
           section="sfigure2"),
    Output("crossing_point", T, "03_cutoffs", "analysis_lib.cutoffs.continuous_interaction",
           "crossing point with delta-method and Fieller intervals"),
    Output("continuous_band", T, "03_cutoffs", "analysis_lib.cutoffs.continuous_interaction",
           "the effect as a function of the stenosis degree, with its pointwise band (Supplementary Figure 2)"),
    Output("resampling_summary", D, "03_cutoffs", "analysis_lib.resample.run_resampling",
           "the data-driven cutoff under resampling", caption="The data-driven cutoff under resampling.",
           section="resampling"),
    Output("cutoff_selection", F, "03_cutoffs", "analysis_lib.resample.run_resampling",
           "how often each cutoff is selected in bootstrap samples of the whole procedure", tuple(SELECTION_COLUMNS),
           skip_when=NO_RESAMPLING,
           caption="How often each cutoff is selected in bootstrap samples of the whole procedure.",
           section="resampling"),
    Output("crossing_bootstrap", T, "03_cutoffs", "analysis_lib.resample.run_resampling",
           "percentile intervals of the crossing point and of the selected difference", tuple(CROSSING_COLUMNS),
           skip_when=NO_RESAMPLING),
    Output("selection_test", T, "03_cutoffs", "analysis_lib.resample.run_resampling",
           "the test of the largest difference, adjusted for the selection", tuple(TEST_COLUMNS),
           skip_when=NO_RESAMPLING),
    Output("resampling_summary", N, "03_cutoffs", "analysis_lib.narrative.resampling_summary",
           "the resampling in plain words", section="resampling"),
    Output("text_results_beside_published", D, "03_cutoffs", "analysis_lib.published.text_results_beside",
           "the paper's text results beside the recomputed ones", caption="Text results: published beside recomputed.",
           section="stable2", shown="beside"),
    Output("table2", F, "04_outcomes", "analysis_lib.steps.table2_of",
           "Table 2: every outcome, unadjusted and weighted, overall and by subgroup", tuple(TABLE2_COLUMNS),
           caption="Table 2. Effect of rescue stenting on outcomes.", section="table2"),
    Output("table2_beside_published", D, "04_outcomes", "analysis_lib.published.table2_beside",
           "Table 2: published beside recomputed", caption="Table 2: published beside recomputed.",
           section="table2", shown="beside"),
    Output("mrs_distribution", T, "04_outcomes", "analysis_lib.descriptives.mrs_distribution",
           "Figure 1: weighted 90-day mRS distribution", ("group", "arm", "mrs", "n", "percent")),
    Output("figure_1_mrs_distribution", P, "04_outcomes", "analysis_lib.figures.mrs_bars",
           "Figure 1: weighted 90-day mRS distribution", section="figure1"),
    Output("ordinal_shift", F, "04_outcomes", "analysis_lib.ordinal.ordinal_shift",
           "common odds ratio of a lower 90-day mRS (weighted proportional odds), unadjusted and weighted, overall "
           "and by subgroup, with the test of proportional odds", tuple(ORDINAL_COLUMNS),
           caption="Ordinal shift analysis of the 90-day mRS: common odds ratio of a lower (better) mRS with MT+RS.",
           section="ordinal"),
    Output("ordinal_summary", N, "04_outcomes", "analysis_lib.narrative.ordinal_summary",
           "the ordinal shift in plain words", section="ordinal"),
    Output("augmented", F, "04_outcomes", "analysis_lib.augmented.augmented_rows",
           "augmented (doubly robust) estimate of every outcome beside the weighted one", tuple(AUGMENTED_COLUMNS),
           caption="Augmented (doubly robust) weighting: every outcome in the entire cohort.", section="augmented"),
    Output("augmented_summary", N, "04_outcomes", "analysis_lib.narrative.augmented_summary",
           "the augmented estimates in plain words", section="augmented"),
    Output("subgroup_weights_comparison", F, "04_outcomes", "analysis_lib.steps.subgroup_weights_comparison",
           "every weighted subgroup row of Table 2 with the overall model's weights and with one model per "
           "subgroup", caption="Subgroup effects with the overall model's weights and with one propensity model per "
           "subgroup.", section="subgroups"),
    Output("subgroup_weights_summary", N, "04_outcomes", "analysis_lib.narrative.subgroup_weights_summary",
           "what weights within the subgroups change", section="subgroups"),
    Output("center_sensitivity", F, "05_sensitivity", "analysis_lib.sensitivity.center_sensitivity",
           "Supplementary Table 3: every Table 2 outcome with a random intercept for center", tuple(CENTER_COLUMNS),
           caption="Supplementary Table 3. Effect of rescue stenting with center as a random intercept.",
           section="stable3"),
    Output("center_models", F, "05_sensitivity", "analysis_lib.sensitivity.center_sensitivity",
           "variance components, p-interaction and convergence of those models",
           caption="Variance components of the random-intercept models.", section="stable3"),
    Output("center_summary", N, "05_sensitivity", "analysis_lib.narrative.center_summary",
           "the center analysis in plain words", section="stable3"),
    Output("cluster_robust", F, "05_sensitivity", "analysis_lib.sensitivity.cluster_robust",
           "every weighted Table 2 row with center-clustered standard errors: CR1 and CR2 (Satterthwaite df)",
           tuple(CLUSTER_COLUMNS),
           caption="Weighted effects with standard errors clustered by center.", section="cluster"),
    Output("cluster_summary", N, "05_sensitivity", "analysis_lib.narrative.cluster_summary",
           "the clustered analysis in plain words", section="cluster"),
    Output("evalues", F, "05_sensitivity", "analysis_lib.sensitivity.evalues",
           "E-values of every weighted Table 2 row", tuple(EVALUE_COLUMNS),
           caption="E-values of the weighted effects.", section="evalues"),
    Output("evalue_summary", N, "05_sensitivity", "analysis_lib.narrative.evalue_summary",
           "the E-values in plain words", section="evalues"),
    Output("variance_comparison", F, "05_sensitivity", "analysis_lib.sensitivity.compare_variances",
           "every weighted Table 2 row: SE and CI with the weights as known and by M-estimation",
           tuple(COMPARISON_COLUMNS), skip_when=("ps_method", "cbps"),
           caption="Weighted effects with the weights as known and with the propensity score as estimated.",
           section="variance"),
    Output("variance_summary", N, "05_sensitivity", "analysis_lib.narrative.variance_summary",
           "the two variances in plain words", skip_when=("ps_method", "cbps"), section="variance"),
    Output("propensity_specifications", F, "06_specification", "analysis_lib.multiverse.propensity_specifications",
           "the primary, richer-formula and CBPS propensity models side by side",
           caption="Three propensity models side by side.", section="specification"),
    Output("weight_sensitivity", F, "06_specification", "analysis_lib.specification.weight_sensitivity",
           "mRS, mRS 0-2 and sICH under ATO, ATE, ATT, ATM, truncated and trimmed weights",
           tuple(WEIGHT_SENSITIVITY_COLUMNS), caption="Effects under six weightings.", section="specification"),
    Output("weights_summary", N, "06_specification", "analysis_lib.narrative.weights_summary",
           "the weightings in plain words", section="specification"),
    Output("mi_sensitivity", F, "06_specification", "analysis_lib.imputation.multiple_imputation",
           "the same rows after multiple imputation of missing covariates (Rubin's rules)", tuple(MI_COLUMNS),
           skip_when=("mi_imputations", 0),
           caption="Complete-case and multiply imputed analyses side by side.", section="specification"),
    Output("imputation_summary", N, "06_specification", "analysis_lib.narrative.imputation_summary",
           "the imputation in plain words", skip_when=("mi_imputations", 0), section="specification"),
    Output("specification_curve", T, "06_specification", "analysis_lib.multiverse.run_multiverse",
           "the multiverse: subgroup ATEs and common odds ratios on the mRS over every combination of choices",
           ("ps_spec", "estimand", "hc_type", "cutoff", "min_arm_size", "subgroup", "estimate", "ci_lower",
            "ci_upper", "p_value", "eligible", "primary", "agrees", "common_or", "common_or_ci_lower",
            "common_or_ci_upper", "common_or_p_value", "common_or_agrees")),
    Output("specification_curve", P, "06_specification", "analysis_lib.figures.specification_curve_figure",
           "the specification curve", section="multiverse",
           caption="Supplementary Figure 7. Specification curve: the subgroup effects on the 90-day mRS of every "
           "combination of analysis choices, sorted, with their 95% CIs (coloured: same sign and significance as the "
           "primary analysis; diamond: the primary analysis) and, beneath, the choices of each."),
    Output("multiverse_summary", N, "06_specification", "analysis_lib.narrative.multiverse_summary",
           "the multiverse in plain words", section="multiverse"),
    Output("simulation_summary", F, "07_simulation", "analysis_lib.simulation.run_simulation_study",
           "the simulation study: bias, coverage, rejection rates, cutoff recovery (Monte-Carlo SEs)",
           ("scenario", "quantity", "value", "mc_se", "replicates"), skip_when=NO_SIMULATION,
           caption="Operating characteristics in simulated cohorts, with Monte-Carlo standard errors.",
           section="simulation"),
    Output("simulation_replicates", T, "07_simulation", "analysis_lib.simulation.run_simulation_study",
           "one row per simulated cohort", skip_when=NO_SIMULATION),
    Output("simulation_rejection_rates", P, "07_simulation", "analysis_lib.figures.simulation_figure",
           "rejection rates of the simulation study", skip_when=NO_SIMULATION, section="simulation",
           caption="Supplementary Figure 8. Share of simulated cohorts with p < 0.05 for effect modification, naive and "
           "selection-adjusted, by scenario, with 95% Monte-Carlo intervals; dashed: the nominal 5%."),
    Output("simulation_summary", N, "07_simulation", "analysis_lib.narrative.simulation_summary",
           "the simulation in plain words", section="simulation"),
)


def output_named(name: str, kind: str | None = None) -> Output:
    """The registered output ``name``; ``kind`` picks one when a table, a figure or a note share
    a name (``figure``, ``note``, or any table kind when ``None``)."""
    for o in OUTPUTS:
        if o.name == name and (o.kind == kind if kind in ("figure", "note") else o.kind not in ("figure", "note")):
            return o
    raise KeyError(f"no output '{name}' in analysis_lib/registry.py")


def supplement_items(section: str) -> tuple[tuple[str, str], ...]:
    """The items of a supplement section as ``(shown, path)`` pairs, in the order of the registry:
    ``figure`` (its PNG), ``note`` (its paragraph) or a table's ``shown`` (its HTML)."""
    items = []
    for o in OUTPUTS:
        if o.section != section:
            continue
        if o.kind == "figure":
            items.append(("figure", f"figures/{o.name}.png"))
        elif o.kind == "note":
            items.append(("note", f"notes/{o.name}.md"))
        else:
            items.append((o.shown, f"tables/{o.name}.html"))
    return tuple(items)


def output_for(path: str) -> Output | None:
    """The output a file belongs to (``tables/table2.html`` -> the ``table2`` table)."""
    return next((o for o in OUTPUTS if path in o.files), None)


def missing_files(folder, parameters: dict) -> list[str]:
    """The files a build with these parameters should have written into ``folder`` but did not."""
    return [f for o in OUTPUTS if o.expected(parameters) for f in o.files if not (folder / f).exists()]


README_HEAD = """\
# Build outputs

Written by `make supplement` (or `python -m analysis_lib build --data PATH --out DIR`); the whole
folder is replaced only when every notebook succeeded. Numbers in `tables/*.csv` are unrounded;
the `.html` and `.docx` tables are formatted for the manuscript. Each file names the notebook
that writes it and the library function that computes it (`analysis_lib/registry.py`).

| path | content | notebook | computed by |
| --- | --- | --- | --- |
| `supplement.html` | the supplementary material in one self-contained file (open it in any browser) | | `analysis_lib.supplement.assemble` |
| `provenance.json` | SHA-256 of the data, every parameter, code commit, package versions, timings | | `analysis_lib.provenance.collect` |
| `notebooks/NN_name.ipynb` | every notebook as executed on the data, with its parameters | | |
"""
README_TAIL = """\
| `scenarios/NAME/`, `scenarios/summary.csv` | written by `make batch` (kept when the build replaces this folder) | | `analysis_lib.batch.run_batch` |
"""


def readme() -> str:
    """``outputs/README.md``: every output of a build, from :data:`OUTPUTS`."""
    rows = []
    for o in OUTPUTS:
        files = ", ".join(f"`{f}`" for f in o.files)
        private = " (patient-level: never share)" if o.private and "never share" not in o.description else ""
        rows.append(f"| {files} | {o.description}{private} | `{o.notebook}.ipynb` | `{o.source}` |")
    return README_HEAD + "\n".join(rows) + "\n" + README_TAIL
