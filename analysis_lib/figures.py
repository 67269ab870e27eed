"""Figures of the paper and supplement (ANALYSIS.md §10), one function per artefact.

Functions take the tidy frames computed elsewhere and return a :class:`matplotlib.figure.Figure`
(object-oriented, no pyplot state). Colours are colour-blind safe: Okabe-Ito for the arms and
``cividis`` for the ordinal mRS.
"""

from __future__ import annotations

import io
import sys
from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from .descriptives import variable_label

if TYPE_CHECKING:  # matplotlib is imported when a figure is drawn: the build's own process draws none
    from matplotlib.figure import Figure

ARM_COLORS = {"MT only": "#0072B2", "MT+RS": "#D55E00"}  # Okabe-Ito blue and vermillion
GREY = "#7F7F7F"
RUG_MAX = 2000  # patients per arm drawn in a rug


@lru_cache(maxsize=1)
def mrs_colors() -> tuple:
    """The colours of mRS 0-6: cividis from light to dark, death nearly black."""
    from matplotlib import colormaps

    return tuple(colormaps["cividis"](x) for x in np.linspace(0.95, 0.15, 6)) + ((0.1, 0.1, 0.1, 1.0),)


JOURNAL_WIDTH = 17.4 / 2.54  # inches: a full-width figure of the journal's page (17.4 cm)


def _figure(width: float, height: float, **kw) -> Figure:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained", **kw)


def png_bytes(fig: Figure) -> bytes:
    """The figure as a screen PNG (100 dpi), as a notebook shows it."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, metadata={"Software": None})
    return buffer.getvalue()


def _register_notebook_display() -> None:
    """Show a returned :class:`Figure` as a PNG in Jupyter (what ``%matplotlib inline`` does,
    without importing pyplot in every kernel). Nothing happens outside IPython."""
    if "IPython" not in sys.modules:  # not in a kernel (where IPython is always imported first)
        return
    from IPython import get_ipython

    shell = get_ipython()
    if shell is None:
        return

    shell.display_formatter.formatters["image/png"].for_type_by_name("matplotlib.figure", "Figure", png_bytes)


_register_notebook_display()


def love_plot(balance: pd.DataFrame, threshold: float = 0.1) -> Figure:
    """Absolute SMDs before and after weighting, ordered by the unadjusted imbalance."""
    b = balance.assign(abs_u=balance["smd_unweighted"].abs(), abs_w=balance["smd_weighted"].abs())
    b = b.sort_values("abs_u")
    y = np.arange(len(b))
    fig = _figure(6.0, 0.32 * len(b) + 1.2)
    ax = fig.add_subplot()
    ax.scatter(b["abs_u"], y, facecolors="white", edgecolors=GREY, s=36, label="Unweighted", zorder=3)
    ax.scatter(b["abs_w"], y, color=ARM_COLORS["MT+RS"], s=30, label="Weighted", zorder=4)
    ax.axvline(threshold, color="black", linestyle="--", linewidth=0.8)
    ax.set_yticks(y, [variable_label(c) for c in b["covariate"]])
    ax.set_xlabel("Absolute Standardized Mean Differences")
    ax.set_xlim(left=0)
    ax.grid(axis="x", color="#e5e5e5")
    ax.legend(loc="lower right", frameon=False)
    return fig


def propensity_overlap(propensity: np.ndarray, treatment: np.ndarray, weights: np.ndarray) -> Figure:
    """Mirrored histograms of the propensity score by arm, unweighted and weighted."""
    e = np.asarray(propensity, float)
    t = np.asarray(treatment, float)
    w = np.asarray(weights, float)
    bins = np.linspace(0, 1, 26)
    fig = _figure(8.0, 3.2)
    axes = fig.subplots(1, 2, sharey=False)
    for ax, (title, ww) in zip(axes, (("Unweighted", np.ones_like(w)), ("Weighted", w))):
        h1, _ = np.histogram(e[t == 1], bins=bins, weights=ww[t == 1])
        h0, _ = np.histogram(e[t == 0], bins=bins, weights=ww[t == 0])
        centers, width = (bins[:-1] + bins[1:]) / 2, np.diff(bins)
        ax.bar(centers, h1, width=width, color=ARM_COLORS["MT+RS"], alpha=0.85, label="MT+RS")
        ax.bar(centers, -h0, width=width, color=ARM_COLORS["MT only"], alpha=0.85, label="MT only")
        ax.axhline(0, color="black", linewidth=0.6)
        ax.set_title(title)
        ax.set_xlabel("Propensity score")
        ax.set_ylabel("Patients (weighted)" if title == "Weighted" else "Patients")
        ticks = ax.get_yticks()
        ax.set_yticks(ticks, [f"{abs(v):g}" for v in ticks])
    axes[0].legend(frameon=False, loc="upper center")
    return fig


def sweep_forest(sweep: pd.DataFrame, used: float | None = None) -> Figure:
    """Forest plot of the low and high subgroup effects at every candidate cutoff; the selected
    cutoff, the ineligible ones and the cutoff ``used`` for Table 2 (shaded) are labelled."""
    fig = _figure(6.5, 0.42 * len(sweep) + 1.4)
    ax = fig.add_subplot()
    y = np.arange(len(sweep))[::-1]
    if used is not None and (sweep["cutoff"] == used).any():
        row = y[int(np.flatnonzero(sweep["cutoff"].to_numpy() == used)[0])]
        ax.axhspan(row - 0.45, row + 0.45, color="#EAEAEA", zorder=0)
    for offset, name, label, color in ((0.15, "ate_low", "Stenosis \u2264 cutoff", ARM_COLORS["MT only"]),
                                       (-0.15, "ate_high", "Stenosis > cutoff", ARM_COLORS["MT+RS"])):
        est = sweep[name].to_numpy(float)
        lo = sweep[f"{name}_ci_lower"].to_numpy(float)
        hi = sweep[f"{name}_ci_upper"].to_numpy(float)
        eligible = sweep["eligible"].to_numpy(bool)
        for yy, e, l, h, ok in zip(y + offset, est, lo, hi, eligible):
            if np.isnan(e):
                continue
            c = color if ok else GREY
            ax.plot([l, h], [yy, yy], color=c, linewidth=1.2)
            ax.plot(e, yy, "o", color=c, markersize=4.5)
        ax.plot([], [], "o-", color=color, label=label)
    ax.axvline(0, color="black", linewidth=0.8)
    labels = [f"{c:g}%" + ("  (selected)" if s else "") + ("  (used, Table 2)" if c == used else "")
              + ("" if el else "  (not eligible)") for c, s, el in zip(sweep["cutoff"], sweep["selected"], sweep["eligible"])]
    ax.set_yticks(y, labels)
    ax.set_xlabel("Weighted difference in mean 90-day mRS, MT+RS vs MT only (95% CI)")
    ax.legend(frameon=False, loc="lower left", fontsize=8)
    return fig


def continuous_interaction_plot(band: pd.DataFrame, crossing: float, cutoff: float,
                                stenosis: np.ndarray, treatment: np.ndarray) -> Figure:
    """Supplementary Figure 2: ATE(s) with its pointwise band, the crossing point, the cutoff
    used for the subgroups and a rug of patients by arm (at most ``RUG_MAX`` per arm, drawn at
    random with a fixed seed, in larger cohorts). Stenosis degrees outside the range where both
    arms have patients are shaded: there the line extrapolates a linear model and no comparison
    rests on data."""
    fig = _figure(6.5, 4.2)
    ax = fig.add_subplot()
    s = band.iloc[:, 0].to_numpy(float)
    st_all, tr_all = np.asarray(stenosis, float), np.asarray(treatment, float)
    supported = (max(st_all[tr_all == a].min() for a in (0.0, 1.0)), min(st_all[tr_all == a].max() for a in (0.0, 1.0)))
    label = "One arm only: extrapolated"
    for left, right in ((s.min(), supported[0]), (supported[1], s.max())):
        if right > left:
            ax.axvspan(left, right, color="#E8E8E8", zorder=0, label=label)
            label = None  # one legend entry for both sides
    ax.fill_between(s, band["ci_lower"], band["ci_upper"], color="#BBBBBB", alpha=0.6, label="95% pointwise band")
    ax.plot(s, band["ate"], color="black", linewidth=1.6, label="Effect(stenosis)")
    ax.axhline(0, color="black", linewidth=0.6)
    if np.isfinite(crossing) and s.min() <= crossing <= s.max():
        ax.axvline(crossing, color="#009E73", linestyle="--", linewidth=1.2, label=f"Crossing point {crossing:.1f}%")
    ax.axvline(cutoff, color="#CC79A7", linestyle=":", linewidth=1.4, label=f"Cutoff {cutoff:g}%")
    st = np.asarray(stenosis, float)
    tr = np.asarray(treatment, float)
    if st.size > 2 * RUG_MAX:  # a registry of any size: a fixed random subset per arm keeps the figure light
        rng = np.random.default_rng(0)
        keep = np.concatenate([rng.choice(np.flatnonzero(tr == a), min(RUG_MAX, int((tr == a).sum())), replace=False)
                               for a in (0.0, 1.0)])
        st, tr = st[keep], tr[keep]
    lo = min(band["ci_lower"].min(), 0)
    span = max(band["ci_upper"].max(), 0) - lo
    for arm, val, off in (("MT only", 0.0, 0.02), ("MT+RS", 1.0, 0.07)):
        x = st[tr == val]
        ax.plot(x, np.full_like(x, lo - off * span), "|", color=ARM_COLORS[arm], markersize=7, alpha=0.6, label=f"{arm} patients")
    ax.set_xlabel("Degree of MCA stenosis (%)")
    ax.set_ylabel("Weighted difference in mean 90-day mRS\n(MT+RS minus MT only)")
    ax.legend(frameon=False, fontsize=8, loc="upper right")
    return fig


def mrs_bars(distribution: pd.DataFrame, cutoff: float) -> Figure:
    """Figure 1: weighted 90-day mRS distribution by arm, (a) overall, (b) stenosis > cutoff,
    (c) stenosis <= cutoff; percentages printed in the segments."""
    panels = (("overall", "a  Entire cohort"), ("high", f"b  Stenosis >{cutoff:g}%"),
              ("low", f"c  Stenosis \u2264{cutoff:g}%"))
    fig = _figure(8.0, 5.6)
    axes = fig.subplots(3, 1, sharex=True)
    for ax, (group, title) in zip(axes, panels):
        g = distribution[distribution["group"] == group]
        for row, arm in enumerate(("MT+RS", "MT only")):
            d = g[g["arm"] == arm].sort_values("mrs")
            left = 0.0
            for k, pct in zip(d["mrs"], d["percent"]):
                if np.isnan(pct):
                    continue
                color = mrs_colors()[int(k)]
                ax.barh(row, pct, left=left, color=color, edgecolor="white", linewidth=0.6, height=0.7)
                if pct >= 3:
                    lum = 0.299 * color[0] + 0.587 * color[1] + 0.114 * color[2]
                    ax.text(left + pct / 2, row, f"{pct:.0f}", ha="center", va="center", fontsize=7.5,
                            color="black" if lum > 0.5 else "white")
                left += pct
        n = {arm: int(g.loc[g["arm"] == arm, "n"].iloc[0]) for arm in ("MT+RS", "MT only")}
        ax.set_yticks([0, 1], [f"MT+RS (n={n['MT+RS']})", f"MT only (n={n['MT only']})"])
        ax.set_title(title, loc="left", fontsize=10)
        ax.set_xlim(0, 100)
    axes[-1].set_xlabel("Patients (%), overlap-weighted")
    from matplotlib.patches import FancyBboxPatch

    handles = [FancyBboxPatch((0, 0), 1, 1, color=c) for c in mrs_colors()]
    fig.legend(handles, [f"mRS {k}" for k in range(7)], loc="outside lower center", ncol=7, frameon=False, fontsize=8)
    return fig


def patient_flow_figure(flow: pd.DataFrame) -> Figure:
    """Supplementary Figure 1: patient flow, the main chain of stages with exclusions to the side
    (the exclusions for a missing covariate in one box, with the count of each covariate)."""
    main: list[str] = []
    side: dict[int, list[str]] = {}
    for _, r in _merge_missing(flow).iterrows():
        text = f"{r['stage']}\nn = {int(r['n']):,}"
        if pd.notna(r["n_mt_rs"]):
            text += f"\n(MT+RS {int(r['n_mt_rs'])}, MT only {int(r['n_mt_only'])})"
        if str(r["stage"]).startswith("Excluded"):
            side.setdefault(len(main) - 1, []).append(text.replace("Excluded: ", "Excluded:\n", 1))
        else:
            main.append(text)
    def height(text: str) -> float:  # a side box: 1.0 for up to four lines, more for more
        return 1.0 + 0.22 * max(0, text.count("\n") - 3)

    ys, y = [], 0.0
    for i in range(len(main)):
        ys.append(y)
        y -= 1.3 + sum(height(t) for t in side.get(i, []))
    fig = _figure(6.8, 0.62 * (-y) + 0.6)
    ax = fig.add_subplot()
    ax.set_axis_off()
    ax.set_xlim(0, 1)
    ax.set_ylim(y + 0.9, 0.6)
    box = {"boxstyle": "round,pad=0.4", "edgecolor": "black", "linewidth": 0.8}
    for i, (text, yy) in enumerate(zip(main, ys)):
        ax.text(0.3, yy, text, ha="center", va="center", fontsize=8.5, bbox={**box, "facecolor": "white"})
        if i + 1 < len(main):
            ax.annotate("", xy=(0.3, ys[i + 1] + 0.42), xytext=(0.3, yy - 0.42),
                        arrowprops={"arrowstyle": "-|>", "linewidth": 0.8, "color": "black"})
        below = 0.0
        for ex in side.get(i, []):
            ey = yy - 0.95 - below - (height(ex) - 1.0) / 2
            below += height(ex)
            ax.annotate("", xy=(0.6, ey), xytext=(0.3, ey),
                        arrowprops={"arrowstyle": "-|>", "linewidth": 0.8, "color": "black"})
            ax.text(0.62, ey, ex, ha="left", va="center", fontsize=8, bbox={**box, "facecolor": "#F2F2F2"})
    return fig


def _merge_missing(flow: pd.DataFrame) -> pd.DataFrame:
    """One row for the exclusions for missing covariates, its stage listing each covariate's count."""
    missing = flow["stage"].astype(str).str.startswith("Excluded: missing ")
    if missing.sum() < 2:
        return flow
    rows = flow[missing]
    parts = [f"{stage.removeprefix('Excluded: missing ')} {n}" for stage, n in zip(rows["stage"], rows["n"])]
    lines = [", ".join(parts[i:i + 2]) for i in range(0, len(parts), 2)]
    merged = pd.DataFrame([{"stage": "Excluded: missing propensity-model covariates\n" + ",\n".join(lines),
                            "n": rows["n"].sum(), "n_mt_rs": rows["n_mt_rs"].sum(), "n_mt_only": rows["n_mt_only"].sum()}])
    first = int(np.flatnonzero(missing.to_numpy())[0])
    return pd.concat([flow.iloc[:first], merged, flow[~missing].iloc[first:]], ignore_index=True)


def specification_curve_figure(curve: pd.DataFrame) -> Figure:
    """Specification curve (Simonsohn, Simmons & Nelson 2020) of the low and high subgroup ATEs:
    eligible specifications sorted by estimate with their 95% CIs (coloured when they agree with
    the primary result in sign and significance), the primary one marked, and beneath, which
    choice each specification made."""
    choices = ["ps_spec", "estimand", "hc_type", "cutoff", "min_arm_size"]
    labels = {"ps_spec": "Propensity model", "estimand": "Estimand", "hc_type": "Variance",
              "cutoff": "Cutoff (%)", "min_arm_size": "Min. arm size"}
    fig = _figure(JOURNAL_WIDTH, 8.0)  # drawn at the page width: every label at least 6 pt in print
    levels = {c: sorted(curve[c].unique(), key=lambda v: (isinstance(v, str), v)) for c in choices}
    n_rows = sum(len(v) for v in levels.values())
    grid = fig.add_gridspec(2, 2, height_ratios=[1.0, 0.09 * n_rows + 0.2])
    for col, subgroup in enumerate(("low", "high")):
        d = curve[(curve["subgroup"] == subgroup) & curve["eligible"]].sort_values("estimate").reset_index(drop=True)
        x = np.arange(len(d))
        top = fig.add_subplot(grid[0, col])
        colors = np.where(d["agrees"], ARM_COLORS["MT+RS"] if subgroup == "high" else ARM_COLORS["MT only"], GREY)
        # thousands of marks: drawn as raster inside the vector PDF (axes and text stay vector)
        top.vlines(x, d["ci_lower"], d["ci_upper"], colors=colors, alpha=0.25, linewidth=0.6, rasterized=True)
        top.scatter(x, d["estimate"], c=colors, s=4, zorder=3, rasterized=True)
        prim = d.index[d["primary"]]
        if len(prim):
            top.scatter(prim, d.loc[prim, "estimate"], marker="D", s=40, facecolors="none", edgecolors="black",
                        zorder=4, label="primary analysis")
            top.legend(frameon=False, loc="upper left", fontsize=7)
        top.axhline(0, color="black", linewidth=0.7)
        top.set_title(f"Stenosis {'≤ cutoff' if subgroup == 'low' else '> cutoff'}: "
                      f"{int(d['agrees'].sum())} of {len(d)} agree", fontsize=8)
        top.set_ylabel("Difference in mean 90-day mRS (95% CI)" if col == 0 else "", fontsize=7)
        top.tick_params(labelsize=7)
        top.set_xlim(-1, len(d))
        top.set_xticks([])
        bottom = fig.add_subplot(grid[1, col], sharex=top)
        y = 0
        ticks, names, marks = [], [], []
        for c in choices:
            for level in levels[c]:
                marks.append((x[(d[c] == level).to_numpy()], y))
                ticks.append(y)
                names.append(f"{labels[c]}: {level:g}" if isinstance(level, (int, float, np.integer, np.floating))
                             else f"{labels[c]}: {level}")
                y -= 1
            y -= 0.6
        _barcode(bottom, marks)
        bottom.set_yticks(ticks, names if col == 0 else [""] * len(names), fontsize=6.5)
        bottom.set_ylim(y, 1)
        bottom.set_xlabel("Specifications, sorted by estimate", fontsize=7)
        bottom.tick_params(axis="y", length=0)
        for side in ("top", "right", "left"):
            bottom.spines[side].set_visible(False)
    return fig


def _barcode(ax, marks: list[tuple[np.ndarray, float]], half: float = 0.35) -> None:
    """A black tick of height ``2 half`` at every ``(x, y)`` of ``marks`` (x positions, one row y
    each), drawn as one line broken by NaN (raster in the PDF). Opaque ticks look the same as one
    vertical line each (``vlines``), whose 16,000 separate paths took 0.4 s to make."""
    xs = np.concatenate([np.repeat(hits, 3) for hits, _ in marks])
    ys = np.concatenate([np.tile([y - half, y + half, np.nan], hits.size) for hits, y in marks])
    ax.plot(xs, ys, color="black", linewidth=0.4, solid_capstyle="butt", rasterized=True)


def simulation_figure(summary: pd.DataFrame) -> Figure:
    """Rejection rates of "significant effect modification" by scenario, naive and
    selection-adjusted, with 95% Monte-Carlo intervals; the 5% line marks the nominal level."""
    d = summary[summary["quantity"].str.startswith("significant effect modification")]
    scenarios = list(dict.fromkeys(d["scenario"]))
    fig = _figure(7.0, 3.6)
    ax = fig.add_subplot()
    x = np.arange(len(scenarios))
    for offset, key, label, color in ((-0.18, "naive", "Naive (at the selected cutoff)", GREY),
                                      (0.18, "selection-adjusted", "Selection-adjusted", ARM_COLORS["MT+RS"])):
        rows = d[d["quantity"].str.contains(key)].set_index("scenario").loc[scenarios]
        value = 100 * rows["value"].to_numpy(float)
        half = 196 * rows["mc_se"].to_numpy(float)  # a 95% Monte-Carlo interval, kept within 0-100 %
        ax.bar(x + offset, value, width=0.34, color=color, label=label,
               yerr=[value - np.clip(value - half, 0, 100), np.clip(value + half, 0, 100) - value], capsize=3)
    ax.axhline(5, color="black", linestyle="--", linewidth=0.8)
    ax.set_xticks(x, scenarios)
    ax.set_ylabel("Cohorts with p < 0.05 (%)")
    ax.set_ylim(0, 105)
    ax.legend(frameon=False, fontsize=8, loc="upper left")
    return fig


SMD_BINS = (0.05, 0.1, 0.2)  # |SMD| categories of the Connect-S plot


def subgroup_balance_plot(balance: pd.DataFrame, cutoff: float) -> Figure:
    """Connect-S style plot of balance within the stenosis subgroups (Yang et al., Stat Med 2021):
    one row per covariate, one column per subgroup, a panel per weighting (overall propensity model;
    one model per subgroup) and the unweighted subgroups for reference; each cell's shade is the
    |SMD| category (< 0.05, 0.05-0.1, 0.1-0.2, >= 0.2), so imbalance inside a subgroup shows at a
    glance. Cells without a number (a subgroup that cannot carry its own model) are crossed."""
    rows = balance[balance["cutoff"] == cutoff]
    covariates = list(dict.fromkeys(rows["covariate"]))
    columns = [("Unweighted", "overall", "smd_unweighted"), ("Overall model", "overall", "smd_weighted"),
               ("Model per subgroup", "within", "smd_weighted")]
    shades = ["#f7f7f7", "#cccccc", "#E69F00", "#D55E00"]  # light to dark; Okabe-Ito orange, vermillion
    fig = _figure(7.2, 0.3 * len(covariates) + 1.9)
    axes = fig.subplots(1, len(columns), sharey=True)
    for ax, (title, method, column) in zip(axes, columns):
        for j, subgroup in enumerate(("low", "high")):
            part = rows[(rows["weights"] == method) & (rows["subgroup"] == subgroup)].set_index("covariate")
            for i, covariate in enumerate(covariates):
                value = part[column].get(covariate, np.nan) if covariate in part.index else np.nan
                if np.isnan(value):
                    ax.plot(j, i, marker="x", color=GREY, markersize=7)
                    continue
                shade = shades[int(np.searchsorted(SMD_BINS, abs(value), side="right"))]
                ax.scatter(j, i, s=150, marker="s", color=shade, edgecolors="#555555", linewidths=0.5)
        ax.set_xticks([0, 1], [f"\u2264{cutoff:g}%", f">{cutoff:g}%"])
        ax.set_xlim(-0.6, 1.6)
        ax.set_title(title, fontsize=9.5)
        ax.tick_params(length=0)
        for side in ("top", "right", "bottom", "left"):
            ax.spines[side].set_visible(False)
    axes[0].set_yticks(range(len(covariates)), [variable_label(c) for c in covariates], fontsize=8)
    axes[0].invert_yaxis()
    labels = ["|SMD| < 0.05", "0.05-0.1", "0.1-0.2", "\u2265 0.2"]
    from matplotlib.patches import FancyBboxPatch

    handles = [FancyBboxPatch((0, 0), 1, 1, color=c, ec="#555555") for c in shades]
    fig.legend(handles, labels, loc="outside lower center", ncol=4, frameon=False, fontsize=8)
    return fig
