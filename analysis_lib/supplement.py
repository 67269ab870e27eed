"""The supplementary material as one self-contained HTML file (figures embedded, no network
request, no code), assembled from a build's formatted tables, figures and notes.

The sections are the ``SUPPLEMENT`` entries (label, title, caption); what each section shows
comes from the registry of outputs (:func:`~analysis_lib.registry.supplement_items`): an output
registered with ``section="table2"`` appears under Table 2, so a new table joins an existing
section with its registry entry alone.
"""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass
from pathlib import Path

from .registry import output_for, supplement_items
from .tables import ABBREVIATIONS


@dataclass(frozen=True)
class Entry:
    """One section of the supplement: its anchor (the registry's ``section``), label, title and
    caption (``{terms}`` from :func:`caption_terms`)."""

    anchor: str
    label: str
    title: str
    caption: str
    part: str = "Results as in the paper"

    @property
    def items(self) -> tuple[tuple[str, str], ...]:
        """``(shown, path)`` pairs relative to the build folder: ``table`` (an HTML table written
        by :func:`~analysis_lib.outputs.save_table`), ``figure`` (a PNG), ``note`` (a paragraph
        written by :func:`~analysis_lib.outputs.save_note`), ``beside`` (published beside
        recomputed, collapsed) or ``details`` (a long table, collapsed)."""
        return supplement_items(self.anchor)


SUPPLEMENT: tuple[Entry, ...] = (
    Entry("table1", "Table 1", "Baseline, procedural and outcome characteristics",
          "Characteristics by treatment group. Continuous variables as median (IQR), categorical as n/N (%) "
          "with N the patients with a known value; p from Fisher's exact test (categorical) or the Mann-Whitney "
          "U test (continuous), two-sided. IQR interquartile range; MT mechanical thrombectomy; RS rescue "
          "stenting; mRS modified Rankin Scale; NIHSS National Institutes of Health Stroke Scale; ASPECTS "
          "Alberta Stroke Program Early CT Score; IVT intravenous thrombolysis; MCA middle cerebral artery; "
          "mTICI modified Treatment In Cerebral Infarction; GPI glycoprotein IIb/IIIa inhibitor; sICH "
          "symptomatic intracranial hemorrhage."),
    Entry("table2", "Table 2", "Effect of rescue stenting on outcomes",
          "Unadjusted and {weighted} (IPTW) effects of MT+RS vs MT only, in the entire cohort and by "
          "stenosis subgroup. MD difference in mean 90-day mRS (negative favours stenting), weighted linear "
          "model; weighted, it estimates the {estimand_long}; RR relative risk (MT only reference), weighted Poisson model with "
          "log link; {variance}; p-int p-value of the treatment x subgroup interaction{subgroup_rows}. The "
          "utility-weighted mRS (mRS 0-6 scored 1.0, 0.91, 0.76, 0.65, 0.33, 0, 0; Chaisinanunkul et al. 2015) is a "
          "secondary outcome analysed as the mRS (MD; positive favours stenting)."),
    Entry("figure1", "Figure 1", "Distribution of the 90-day modified Rankin Scale",
          "{Weighted} distribution of 90-day mRS scores by treatment group: (a) entire cohort; (b) stenosis "
          "above and (c) at or below the cutoff{subgroup_rows}. Percentages of patients at each score are weighted; "
          "n beside each bar is the unweighted number of patients with a known 90-day mRS."),
    Entry("stable1", "Supplementary Table 1", "Covariate balance before and after weighting",
          "Standardised mean differences (SMD; {smd}) and variance ratios (MT+RS over MT only, continuous "
          "covariates), before and after {weighting}; |SMD| < 0.1 indicates adequate balance. Below: effective "
          "sample size (ESS) per arm; then the balance within the stenosis subgroups at the cutoff of Table 2, "
          "with the overall model's weights and with one propensity model per subgroup (SMDs inside each "
          "subgroup, same conventions; every cutoff of the sweep in tables/subgroup_balance.csv), and the same "
          "at a glance (Connect-S plot: the shade of a cell is the |SMD| category of a covariate in a subgroup)."),
    Entry("stable2", "Supplementary Table 2", "Treatment effect on the 90-day mRS at each stenosis cutoff",
          "{Weighted} MD of MT+RS vs MT only on the 90-day mRS (estimating the {estimand_long}) at or below and above each candidate cutoff "
          "({cutoffs}), {variance}; their difference and p-interaction; a cutoff with fewer than the minimum number of "
          "patients in a subgroup-arm is not eligible; the selected cutoff has the largest absolute difference"
          "{subgroup_rows}. Beside them, the common odds ratios of a lower mRS (proportional odds, Additional "
          "analysis 9) in the same subgroups; the selection stays on the mean difference, the paper's rule."),
    Entry("stable3", "Supplementary Table 3", "Sensitivity to center effects",
          "Every Table 2 outcome with a random intercept for center (weighted linear mixed model by REML for "
          "the mRS; random-intercept Poisson model by Laplace approximation for binary outcomes), beside the "
          "primary estimates; Wald intervals. Below: the variance components."),
    Entry("sfigure1", "Supplementary Figure 1", "Patient flow",
          "Patients screened, treated and excluded, by reason; counts before the registry export are parameters, "
          "exclusions for missing propensity covariates are computed from the data."),
    Entry("sfigure2", "Supplementary Figure 2", "Continuous effect modification by stenosis",
          "{Weighted} MD of MT+RS vs MT only on the 90-day mRS as a linear function of the stenosis degree with its pointwise 95% band ({band}), "
          "the crossing point and the cutoff used for the subgroups; a rug of the patients of each arm; shaded: "
          "stenosis degrees where only one arm has patients, where the line extrapolates the linear model. Below: "
          "the interaction per 1% stenosis and the crossing point with delta-method and Fieller intervals."),
    Entry("resampling", "Additional analysis 1", "How much to trust the data-driven cutoff",
          "The whole selection procedure repeated in bootstrap samples (propensity refit, weights, every cutoff, "
          "eligibility, selection, continuous model), and a test of the largest difference that accounts for the "
          "selection (wild bootstrap under the null of no effect modification).", part="Additional analyses"),
    Entry("cluster", "Additional analysis 2", "Center-clustered standard errors",
          "The weighted Table 2 rows beside the primary estimates with the sandwich clustered by center, twice: "
          "CR1 (HC0 with G/(G-1), as sandwich::vcovCL; t on the residual df for the mRS, normal for relative "
          "risks) and the bias-reduced CR2 with Satterthwaite degrees of freedom and t intervals (as clubSandwich), "
          "the one to believe with few centers.", part="Additional analyses"),
    Entry("evalues", "Additional analysis 3", "Unmeasured confounding: E-values",
          "E-values (VanderWeele & Ding 2017) of every weighted Table 2 row: the risk-ratio association with both "
          "treatment and outcome an unmeasured confounder would need to explain the estimate (or its confidence "
          "limit) away; the mRS MD converted with RR = exp(0.91 MD / SD).", part="Additional analyses"),
    Entry("specification", "Additional analysis 4", "Propensity model, weights and missing data",
          "Three propensity models (primary, a richer formula, CBPS); six weightings (ATO, ATE, ATT, ATM, truncated "
          "and trimmed ATE weights) with their effective sample sizes; multiple imputation of missing covariates "
          "(Rubin's rules) beside the complete-case analysis.", part="Additional analyses"),
    Entry("multiverse", "Additional analysis 5", "The multiverse of analysis choices",
          "Specification curve: the low and high subgroup MDs on the 90-day mRS over every combination of propensity model, "
          "estimand, sandwich type, cutoff and minimum subgroup-arm size, sorted, with the choices beneath.",
          part="Additional analyses"),
    Entry("simulation", "Additional analysis 6", "Operating characteristics: a simulation study",
          "Cohorts from the calibrated generator with a known truth (four scenarios, among them confounding that "
          "differs between the stenosis subgroups): bias and coverage of the subgroup effects under both weightings "
          "(the overall propensity model; one model per subgroup) with the HC sandwich and with M-estimation, "
          "rejection rates of the naive and the selection-adjusted tests of effect modification, recovery of "
          "the true cutoff, with Monte-Carlo standard errors.", part="Additional analyses"),
    Entry("variance", "Additional analysis 7", "Variance that accounts for the estimated propensity score",
          "Every weighted Table 2 row with two standard errors: the paper's sandwich treating the overlap weights "
          "as known, and M-estimation stacking the logistic propensity model with the weighted outcome model "
          "(as WeightIt's lm_weightit/glm_weightit; normal intervals). SEs of RRs on the log scale.",
          part="Additional analyses"),
    Entry("subgroups", "Additional analysis 8", "Weights within the stenosis subgroups",
          "Every weighted subgroup row of Table 2 with the weights of the overall propensity model (the paper) "
          "and with weights from one propensity model per stenosis subgroup (fully interacted with the subgroup "
          "indicator), which balance every covariate within each subgroup (Yang et al., Stat Med 2021); "
          "{variance}.",
          part="Additional analyses"),
    Entry("ordinal", "Additional analysis 9", "The ordinal shift of the 90-day mRS",
          "The paper's primary outcome analysed as what it is, an ordinal scale: {weighted} proportional-odds "
          "logistic regression of the 90-day mRS on treatment (and on treatment x stenosis subgroup, as Table 2), "
          "as R's MASS::polr with case weights. Common OR: the odds of a lower (better) mRS with MT+RS, > 1 favours "
          "stenting; {variance}; normal Wald intervals on the log scale. p proportional odds: a robust Brant test "
          "that the treatment's log odds ratio is the same for every dichotomy of the scale (Figure 1 shows the "
          "distributions it summarises).", part="Additional analyses"),
    Entry("augmented", "Additional analysis 10", "Doubly robust weighting",
          "Every Table 2 outcome in the entire cohort by augmented weighting (as R's PSweight with augmentation): "
          "the {weighting} estimate plus an outcome regression fitted in each arm on the propensity model's "
          "variables (least squares for the mRS, logistic for binary outcomes; ratios of augmented means), "
          "consistent when either the propensity or the outcome model is right; M-estimation variance stacking "
          "the propensity model, both outcome models and the means; normal intervals. Beside it, the weighted "
          "estimate of Table 2.", part="Additional analyses"),
    Entry("audit", "Additional analysis 11", "Audit of the published numbers",
          "The paper's printed numbers checked against themselves: percentages and p-values recomputed from the "
          "printed counts, unadjusted ratios from the Table 1 counts by several methods, intervals and p-values "
          "for internal consistency, the text against the tables, and the subgroup difference against the "
          "continuous interaction. The findings come first, most severe first (a number that no method "
          "reproduces; the Methods and the numbers disagree; results compatible only at the edges of their "
          "uncertainty; a rounding slip), each pattern once with its count.", part="Additional analyses"),
)

STYLE = """
body { font-family: "DejaVu Sans", "Helvetica Neue", Arial, sans-serif; color: #1a1a1a; max-width: 1100px;
       margin: 2em auto; padding: 0 1.5em; line-height: 1.45; overflow-wrap: anywhere; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; } h2 { font-size: 1.25em; margin-top: 2.2em;
     border-bottom: 1px solid #ccc; padding-bottom: 0.2em; } h3 { font-size: 1.05em; color: #444; }
.banner { background: #fff4d6; border: 1px solid #e0b84c; padding: 0.6em 1em; margin: 1em 0; }
nav ol { columns: 2; padding-left: 2.2em; } nav li { break-inside: avoid; margin-left: 0.4em; }
nav a { text-decoration: none; color: #0b5394; }
@media (max-width: 900px) { nav ol { columns: 1; } body { padding: 0 0.8em; } }
.caption { font-size: 0.92em; color: #333; margin: 0.4em 0 0.8em; }
table { border-collapse: collapse; font-size: 0.82em; margin: 0.6em 0 1.2em; display: block; max-width: 100%;
        overflow-x: auto; }
th, td { border-bottom: 1px solid #ddd; padding: 3px 8px; text-align: left; vertical-align: top; }
th { background: #f3f3f3; } caption { caption-side: top; text-align: left; font-weight: bold; padding: 4px 0; }
img { max-width: 100%; height: auto; margin: 0.6em 0; }
.note { background: #eef5fb; border-left: 4px solid #0b5394; padding: 0.5em 0.9em; margin: 0.8em 0; }
.missing { color: #8a1c1c; font-style: italic; }
details { margin: 0.5em 0 1em; } summary { cursor: pointer; color: #0b5394; }
.source { font-size: 0.8em; color: #555; margin: -0.6em 0 1em; }
footer { margin-top: 3em; font-size: 0.8em; color: #444; border-top: 1px solid #ccc; padding-top: 1em; }
code { font-size: 0.95em; }
"""


def _read(folder: Path, relative: str) -> str | None:
    path = folder / relative
    return path.read_text(encoding="utf-8") if path.exists() else None


def _figure(folder: Path, relative: str, alt: str) -> str:
    path = folder / relative
    if not path.exists():
        return f'<p class="missing">Figure not produced in this build ({html.escape(relative)}).</p>'
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def source_line(relative: str) -> str:
    """Where a table or figure comes from: its notebook and the library function that computed
    it (from the registry of outputs), so that a reviewer goes from a number to its code."""
    output = output_for(relative)
    if output is None:
        return ""
    return (f'<p class="source">Source: <code>notebooks/{output.notebook}.ipynb</code>, '
            f"<code>{html.escape(output.source)}</code></p>")


def _item(folder: Path, kind: str, relative: str, entry: Entry) -> str:
    body = _item_body(folder, kind, relative, entry)
    return body + (source_line(relative) if kind in ("figure", "table") else "")


def _item_body(folder: Path, kind: str, relative: str, entry: Entry) -> str:
    if kind == "figure":  # each figure its own alt text (what it shows) and, when numbered, its caption
        output = output_for(relative)
        image = _figure(folder, relative, f"{entry.label}: {output.description if output else entry.title}")
        return image + (f'<p class="caption">{html.escape(output.caption)}</p>' if output and output.caption else "")
    text = _read(folder, relative)
    if text is None:
        return f'<p class="missing">Not produced in this build ({html.escape(relative)}; skipped or not run).</p>'
    if kind == "note":
        return "".join(f'<p class="note">{html.escape(p)}</p>' for p in text.strip().split("\n\n"))
    if kind == "beside":
        return f"<details><summary>Published beside recomputed</summary>{text}</details>"
    if kind == "details":
        return f"<details><summary>All checks</summary>{text}</details>"
    return text


ESTIMAND_LONG = {"ATO": "ATO, the average treatment effect in the overlap population",
                 "ATE": "ATE, the average treatment effect in the whole population",
                 "ATT": "ATT, the average treatment effect in the treated (MT+RS) population",
                 "ATM": "ATM, the average treatment effect in the matching population"}
WEIGHTING = {"ATO": ("overlap-weighted", "overlap weighting"),
             "ATE": ("inverse-probability-weighted (ATE)", "inverse probability weighting (ATE)"),
             "ATT": ("ATT-weighted", "weighting to the treated (ATT)"),
             "ATM": ("matching-weighted (ATM)", "matching weighting (ATM)")}


def caption_terms(parameters: dict) -> dict[str, str]:
    """The words of the captions that depend on the build's parameters (estimand, variance,
    SMD conventions, candidate cutoffs), so that a caption never describes another analysis."""
    estimand = parameters.get("estimand", "ATO")
    weighted, weighting = WEIGHTING.get(estimand, WEIGHTING["ATO"])
    hc = parameters.get("hc_type", "HC0")
    if parameters.get("variance", "robust") == "m_estimation":
        variance = "M-estimation variance accounting for the estimated propensity score (normal intervals)"
        band = "M-estimation"
    else:
        variance = f"{hc} sandwich variance with the weights treated as known"
        band = hc
    denominator = ("SD of the unweighted treated group" if estimand == "ATT"
                   else "pooled SD of the unweighted groups")
    binary = ("binary covariates as raw differences in proportions" if parameters.get("smd_binary") == "raw"
              else "binary covariates standardised too")
    low, high = parameters.get("cutoff_min", 40), parameters.get("cutoff_max", 90)
    subgroup_rows = ("; the subgroup rows are weighted by one propensity model per stenosis subgroup, which "
                     "balances the covariates within each subgroup" if parameters.get("subgroup_weights") == "within"
                     else "")
    return {"estimand_long": ESTIMAND_LONG.get(estimand, ESTIMAND_LONG["ATO"]), "subgroup_rows": subgroup_rows, "weighted": weighted, "Weighted": weighted[0].upper() + weighted[1:], "weighting": weighting,
            "variance": variance, "band": band, "smd": f"{denominator}, {binary}",
            "cutoffs": f"{low:g}-{high:g} %"}


def table_footnote(output, parameters: dict) -> str:
    """What a Word table carries beneath it, as its HTML twin in the supplement: the caption of
    its section (in the words of the build's parameters) and the abbreviations."""
    entry = next((e for e in SUPPLEMENT if e.anchor == output.section), None)
    text = entry.caption.format(**caption_terms(parameters)) + " " if entry else ""
    return f"{text}Abbreviations: {ABBREVIATIONS}"


def assemble(folder: str | Path, provenance: dict, synthetic: bool) -> Path:
    """Write ``supplement.html`` into a build folder from its tables, figures and notes."""
    folder = Path(folder)
    terms = caption_terms(provenance["parameters"])
    parts: list[str] = []
    toc: list[str] = []
    current = None
    for entry in SUPPLEMENT:
        if entry.part != current:
            current = entry.part
            parts.append(f'<h2 class="part">{html.escape(current)}</h2>')
        toc.append(f'<li><a href="#{entry.anchor}">{html.escape(entry.label)}. {html.escape(entry.title)}</a></li>')
        body = "".join(_item(folder, kind, rel, entry) for kind, rel in entry.items)
        parts.append(f'<section id="{entry.anchor}"><h3>{html.escape(entry.label)}. {html.escape(entry.title)}</h3>'
                     f'<p class="caption">{html.escape(entry.caption.format(**terms))}</p>{body}</section>')
    banner = ('<p class="banner"><strong>Synthetic cohort.</strong> These results come from the synthetic cohort '
              'shipped with the compendium (calibrated to the published Table 1), not from patient data.</p>'
              if synthetic else "")
    prov = provenance
    code = prov["code"]
    footer = (
        f"<footer><h3>Provenance</h3><p>Data <code>{html.escape(prov['data']['file'])}</code>, SHA-256 "
        f"<code>{prov['data']['sha256']}</code> ({prov['data']['bytes']:,} bytes). Code: analysis_lib "
        f"{html.escape(str(code['version']))}, commit <code>{html.escape(str(code.get('commit')))}</code>"
        f"{' (with uncommitted changes)' if code.get('dirty') else ''}. Python {prov['environment']['python']} "
        f"on {html.escape(prov['environment']['platform'])}. Built {prov['build']['started']} in "
        f"{prov['build']['seconds']:.0f} s.</p>"
        "<details><summary>Parameters</summary><table>"
        + "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>" for k, v in prov["parameters"].items())
        + "</table></details><details><summary>Notebooks</summary><table><tr><th>notebook</th><th>started</th>"
        "<th>seconds</th></tr>"
        + "".join(f"<tr><td>{html.escape(k)}</td><td>{v.get('started', '')}</td><td>{v.get('seconds', 0):.1f}</td></tr>"
                  for k, v in prov["notebooks"].items())
        + "</table></details><details><summary>Package versions</summary><table>"
        + "".join(f"<tr><td>{html.escape(k)}</td><td>{html.escape(v)}</td></tr>"
                  for k, v in prov["environment"]["packages"].items())
        + f"</table></details><h3>Abbreviations</h3><p>{html.escape(ABBREVIATIONS)}</p></footer>")
    page = (
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; img-src data:; "
        "style-src 'unsafe-inline'\">"
        "<title>Supplementary material: stenosis severity and rescue stenting</title>"
        f"<style>{STYLE}</style></head><body>"
        "<h1>Supplementary material</h1><p>Effect of stenosis severity on outcomes after rescue stenting for acute "
        "middle cerebral artery occlusions: reproduced and extended with <code>analysis_lib</code>.</p>"
        f"{banner}<nav><h2>Contents</h2><ol>{''.join(toc)}</ol></nav>{''.join(parts)}{footer}</body></html>\n")
    path = folder / "supplement.html"
    path.write_text(page, encoding="utf-8")
    return path
