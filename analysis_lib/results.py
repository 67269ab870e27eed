"""Steps as result objects: an output that renders itself in JupyterLab and saves itself with its
caption, as R users get from WeightIt/cobalt and Python users from statsmodels' results.

A :class:`Result` is one output of the registry (:data:`~analysis_lib.registry.OUTPUTS`): a
table (the tidy, unrounded CSV of the output contract, with the formatted table a reader sees),
a figure or a note. Its caption and its source (notebook and computing function) come from the
registry. ``_repr_html_`` / ``_repr_png_`` show it with its caption and source; :meth:`Result.save`
writes every file the registry lists for it, and the tidy ``companions`` the same step computes
(e.g. the crossing point and the band beside the continuous interaction).
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from .figures import png_bytes
from .outputs import save_figure, save_formatted, save_note, save_private, save_table
from .registry import Output, output_named


@dataclass(frozen=True)
class Result:
    """One computed output: ``name`` and ``kind`` name its registry entry; ``shown`` is what a
    reader sees (the formatted table, the figure or the text); ``table`` the tidy table (``None``
    for figures, notes and display-only tables); ``output_dir`` is where :meth:`save` writes by
    default (the study's parameter); ``companions`` are further tidy tables of the same step,
    ``(name, table)``; ``value`` the computation behind it (e.g. the fitted continuous model);
    ``footnote`` what the Word table carries beneath it, on a ``page_size`` page."""

    name: str
    kind: str
    shown: object = field(repr=False)
    table: pd.DataFrame | None = field(default=None, repr=False)
    caption: str = ""
    output_dir: str | None = field(default=None, repr=False)
    companions: tuple[tuple[str, pd.DataFrame], ...] = field(default=(), repr=False)
    value: object = field(default=None, repr=False)
    footnote: str = field(default="", repr=False)
    page_size: str = field(default="A4", repr=False)

    @property
    def output(self) -> Output:
        return output_named(self.name, self.kind)

    @property
    def is_figure(self) -> bool:
        return self.kind == "figure"

    @property
    def source(self) -> str:
        """``notebooks/NN_name.ipynb, analysis_lib.module.function`` of the registry."""
        return f"notebooks/{self.output.notebook}.ipynb, {self.output.source}"

    def save(self, output_dir: str | Path | None = None) -> "Result":
        """Write the files of the registry entry (into ``output_dir``, default the study's;
        nothing when both are ``None``) and the companions' CSVs; returns itself, so that a
        notebook cell saves and shows a step in one line."""
        out = output_dir if output_dir is not None else self.output_dir
        kind = self.output.kind
        caption = self.caption or None
        if kind == "figure":
            save_figure(self.shown, self.name, out)
        elif kind == "note":
            save_note(self.shown, self.name, out)
        elif kind == "private":
            save_private(self.table, self.name, out)
        elif kind == "display":
            save_formatted(self.shown, self.name, out, caption, self.footnote or None, self.page_size)
        else:
            save_table(self.table, self.name, out, formatted=self.shown if kind == "formatted table" else None,
                       caption=caption, footnote=self.footnote or None, page_size=self.page_size)
        for name, table in self.companions:
            save_table(table, name, out)
        return self

    def _repr_html_(self) -> str | None:
        if not isinstance(self.shown, pd.DataFrame):
            return None
        caption = f"<p><strong>{html.escape(self.caption)}</strong></p>" if self.caption else ""
        table = self.shown.to_html(index=False, border=0, escape=True)
        return f"{caption}{table}<p><small>Source: {html.escape(self.source)}</small></p>"

    def _repr_png_(self) -> bytes | None:
        return png_bytes(self.shown) if self.is_figure else None

    def __repr__(self) -> str:
        if isinstance(self.shown, str):
            return self.shown
        if self.is_figure:
            return f"{self.output.description[0].upper()}{self.output.description[1:]} (Source: {self.source})"
        return f"{self.caption}\n{self.shown.to_string(index=False)}".strip()


@dataclass(frozen=True)
class Skipped:
    """A step that a parameter switches off (``reason``): shows the reason, saves nothing."""

    reason: str
    value: object = None

    def save(self, output_dir: str | Path | None = None) -> "Skipped":
        return self

    def __repr__(self) -> str:
        return self.reason
