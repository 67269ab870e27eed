"""Writing results: tidy CSV (unrounded), formatted HTML tables and figure files.

Every writer is a no-op when ``output_dir`` is ``None`` (a notebook opened for review writes
nothing). Files are written so that the same inputs give the same bytes: floats in their
shortest round-trip form, figures without creation dates.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

if TYPE_CHECKING:  # matplotlib is imported by whoever draws the figure, not to write tables
    from matplotlib.figure import Figure

FIGURE_DPI = 300


def save_table(tidy: pd.DataFrame, name: str, output_dir: str | Path | None,
               formatted: pd.DataFrame | None = None, caption: str | None = None) -> Path | None:
    """Write ``tables/<name>.csv`` (tidy) and, if given, ``tables/<name>.html`` (formatted)."""
    if output_dir is None:
        return None
    folder = Path(output_dir) / "tables"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.csv"
    tidy.to_csv(path, index=False, lineterminator="\n")
    if formatted is not None:
        html = formatted.to_html(index=False, border=0, classes="table", escape=True)
        if caption:
            html = html.replace('<table border="0" class="dataframe table">',
                                f'<table border="0" class="dataframe table">\n  <caption>{_escape(caption)}</caption>', 1)
        (folder / f"{name}.html").write_text(html + "\n", encoding="utf-8")
    return path


def save_figure(fig: Figure, name: str, output_dir: str | Path | None) -> Path | None:
    """Write ``figures/<name>.png`` (300 dpi) and ``figures/<name>.pdf`` (vector)."""
    if output_dir is None:
        return None
    folder = Path(output_dir) / "figures"
    folder.mkdir(parents=True, exist_ok=True)
    png = folder / f"{name}.png"
    # Figures use constrained layout, so no second "tight" rendering pass is needed.
    fig.savefig(png, dpi=FIGURE_DPI, metadata={"Software": None})
    fig.savefig(folder / f"{name}.pdf", metadata={"CreationDate": None, "Producer": None})
    return png


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
