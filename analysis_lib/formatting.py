"""How a number is printed: the one path for every table, note, caption and notebook display.

A value that rounds to zero at its displayed precision prints unsigned. Quantities that are zero
in exact arithmetic (for example the weighted SMD of a covariate of the overlap-weighted
propensity model, exactly balanced) come out of floating point as +-1e-17, with a sign that
depends on the CPU, the BLAS kernels and the thread count; printing ``-0.000`` on one machine and
``0.000`` on another would make the stored notebooks and the supplement machine-dependent.
Conventions of the paper: estimates with two decimals, ``lower to upper`` intervals, p-values
with two decimals, three below 0.01 and ``<0.001`` below 0.001.
"""

from __future__ import annotations

import math
import re

import numpy as np
import pandas as pd

MISSING = "-"

# A printed negative zero ("-0", "-0.0", "-0.000" not followed by further digits): what the
# tests look for in every output of a build.
NEGATIVE_ZERO = re.compile(r"(?<![\w.])-0(?:\.0+)?(?![.\d])")


def _missing(x) -> bool:
    return x is None or (isinstance(x, (float, np.floating)) and math.isnan(x)) or x is pd.NA


def fmt_num(x, digits: int = 2, sign: bool = False) -> str:
    """Fixed-point with ``digits`` decimals; ``-`` when missing; never a negative zero.

    >>> fmt_num(-1e-17, 3), fmt_num(-0.0004, 3), fmt_num(-0.0006, 3), fmt_num(0.5, 1, sign=True)
    ('0.000', '0.000', '-0.001', '+0.5')
    """
    if _missing(x):
        return MISSING
    x = float(x)
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    text = f"{x:.{digits}f}"
    if float(text) == 0:
        return text.lstrip("-")
    return f"+{text}" if sign and x > 0 else text


def fmt_pct(share, digits: int = 0) -> str:
    """A proportion as a percentage with ``digits`` decimals and a ``%`` sign.

    >>> fmt_pct(0.0449), fmt_pct(-1e-18, 1)
    ('4%', '0.0%')
    """
    text = fmt_num(None if _missing(share) else 100 * float(share), digits)
    return text if text == MISSING else f"{text}%"


def fmt_p(p) -> str:
    """``<0.001``, three decimals below 0.01, two otherwise; ``-`` when missing.

    >>> fmt_p(0.0004), fmt_p(0.004), fmt_p(0.04)
    ('<0.001', '0.004', '0.04')
    """
    if _missing(p):
        return MISSING
    if p < 0.001:
        return "<0.001"
    return fmt_num(p, 3 if p < 0.01 else 2)


def fmt_ci(lo, hi, digits: int = 2) -> str:
    """``lower to upper``; ``-`` when either limit is missing."""
    if _missing(lo) or _missing(hi):
        return MISSING
    return f"{fmt_num(lo, digits)} to {fmt_num(hi, digits)}"


def fmt_frame(frame: pd.DataFrame, digits: int | dict[str, int] = 3) -> pd.DataFrame:
    """A frame for display: float columns through :func:`fmt_num` (``digits`` per column or for
    all), everything else unchanged. Raw floats in a notebook display would show six significant
    digits, some of which change with the CPU; this shows only what survives.

    >>> fmt_frame(pd.DataFrame({"a": [-1e-17, 1.23456], "n": [1, 2]}), 2)["a"].tolist()
    ['0.00', '1.23']
    """
    out = frame.copy()
    for column in out.columns:
        if pd.api.types.is_float_dtype(out[column]):
            d = digits.get(column, 3) if isinstance(digits, dict) else digits
            out[column] = out[column].map(lambda v, d=d: fmt_num(v, d))
    return out

