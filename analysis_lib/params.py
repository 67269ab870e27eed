"""Analysis parameters: one typed, validated object for the CLI, the notebooks and batches.

Every analysis choice that ANALYSIS.md marks as a *parameter* lives here with its default.
The notebooks declare the parameters they use in a cell tagged ``parameters`` (so that
papermill can override them) and turn them into a :class:`Parameters` object with
:meth:`Parameters.from_namespace`; the command line turns ``-p NAME VALUE`` pairs into the
same object with :meth:`Parameters.from_strings`. Invalid names or values are rejected with
one line that lists the valid choices, before any notebook runs.
"""

from __future__ import annotations

import ast
import dataclasses
import difflib
import math
import re
from dataclasses import dataclass, fields
from typing import Any, Mapping

import yaml

from .data import load_dictionary

DEFAULT_PS_COVARIATES: tuple[str, ...] = (
    "age",
    "sex_female",
    "nihss",
    "aspects",
    "premorbid_mrs",
    "m1_occlusion",
    "stenosis_pct",
    "mtici_2b3_after_mt",
    "hypertension",
    "diabetes",
    "atrial_fibrillation",
    "general_anesthesia",
)

# A richer propensity specification for the sensitivity analyses: a cubic spline in age, squares
# of NIHSS and of the stenosis degree, and recanalization after MT by stenosis. (A spline in the
# stenosis would separate the arms: nobody is stented at the lowest degrees of stenosis.)
RICH_PS_FORMULA = (
    "bs(age, df=3) + sex_female + nihss + I(nihss**2) + aspects + premorbid_mrs + m1_occlusion"
    " + stenosis_pct + I(stenosis_pct**2) + mtici_2b3_after_mt + mtici_2b3_after_mt:stenosis_pct"
    " + hypertension + diabetes + atrial_fibrillation + general_anesthesia"
)

ESTIMANDS: tuple[str, ...] = ("ATO", "ATE", "ATT", "ATM")
PS_METHODS: tuple[str, ...] = ("logistic", "cbps")
HC_TYPES: tuple[str, ...] = ("HC0", "HC1", "HC2", "HC3")
VARIANCES: tuple[str, ...] = ("robust", "m_estimation")
SMD_BINARY: tuple[str, ...] = ("std", "raw")
SUBGROUP_WEIGHTS: tuple[str, ...] = ("overall", "within")


# Set by the build for its notebooks, never from a command line or a scenario file.
INTERNAL: tuple[str, ...] = ("data_cache",)


class ParameterError(ValueError):
    """A parameter name or value is not acceptable; the message is one line."""


@dataclass(frozen=True)
class Parameters:
    """All analysis parameters with the defaults of ANALYSIS.md.

    Attributes
    ----------
    data_path : str
        Registry CSV (one row per patient, columns of the data dictionary).
    output_dir : str or None
        Folder receiving ``tables/`` and ``figures/``; ``None`` writes nothing (interactive review).
    published_dir : str
        Folder with the published tables (``table1_published.csv`` ...).
    ps_covariates : tuple of str
        Linear terms of the propensity model (ANALYSIS.md §2).
    ps_formula : str or None
        A Wilkinson formula for the propensity model (formulaic syntax: ``I(x**2)``,
        ``bs(x, df=3)``, ``C(x)``, ``x:z``); when given it replaces ``ps_covariates``.
    ps_method : {"logistic", "cbps"}
        Maximum likelihood, or the just-identified covariate balancing propensity score
        (Imai & Ratkovic 2014) for the ATE (the ATT when ``estimand`` is ATT).
    estimand : {"ATO", "ATE", "ATT", "ATM"}
        Weights: overlap (default), inverse probability, treated, matching.
    hc_type : {"HC0", "HC1", "HC2", "HC3"}
        Heteroskedasticity-consistent sandwich, as ``sandwich::vcovHC(type=)``.
    cutoff : float or None
        Stenosis cutoff for the dichotomised modifier (``stenosis_pct > cutoff`` is high);
        ``None`` uses the cutoff selected by the sweep.
    cutoff_min, cutoff_max, cutoff_step : float
        Candidate cutoffs of the sweep (inclusive range).
    min_arm_size : int
        A cutoff is eligible only if every subgroup-arm has at least this many patients.
    conf_level : float
        Confidence level of every interval.
    patients_screened, patients_icas_lvo_evt : int
        Counts before the registry export, for the patient-flow figure.
    seed : int
        Seed of every random step (resampling, imputation, simulation).
    mi_imputations : int
        Imputed data sets of the multiple-imputation analysis (0 skips it).
    bootstrap_replicates : int
        Replicates of the bootstrap of the cutoff selection and of its null test (0 skips them).
    simulation_replicates : int
        Replicates per scenario of the simulation study (0 skips it).
    simulation_null_replicates : int
        Null replicates of the selection-adjusted test inside each simulated cohort.
    dask_scheduler : str or None
        Address of an existing Dask scheduler (``tcp://host:8786``) for the simulation study;
        ``None`` runs it on the local cores.
    simulation_workers : int
        Local processes of the simulation study (0: one per core). A build, which already runs
        notebooks side by side on every core, uses 1 unless this is set.
    column_map : str or None
        A YAML file mapping a registry export's column names and codes onto the data
        dictionary (``--columns``; see :class:`analysis_lib.data.ColumnMap`).
    variance : {"robust", "m_estimation"}
        ``robust``: the paper's sandwich (``hc_type``) with the weights treated as known;
        ``m_estimation``: the sandwich of the propensity and outcome models stacked, which
        accounts for the estimated propensity score (as WeightIt), normal intervals. Switches
        Table 2, the cutoff sweep, the continuous interaction, the weight sensitivity rows of
        the four estimands and what derives from them.
    smd_binary : {"std", "raw"}
        Binary covariates in the balance table as standardised (the paper) or raw differences
        in proportions (cobalt's default).
    subgroup_weights : {"overall", "within"}
        Weights of the subgroup rows (Table 2, the cutoff sweep, Figure 1's subgroup panels and
        what derives from them): from the overall propensity model (the paper), or from one
        model per stenosis subgroup at each cutoff, which balances every covariate within each
        subgroup (ANALYSIS.md §11). Overall rows always use the overall model.
    min_cell_size : int
        Counts from 1 to ``min_cell_size - 1`` patients are masked in the exported tables
        (with the percentages that would reveal them); 0 masks nothing.
    data_cache : str or None
        Set by the build, not by users: the cohort validated once by the build, read by the
        notebooks instead of parsing ``data_path`` again (ignored unless it belongs to that file).
    multiverse_formula : str
        The richer propensity specification of the multiverse.
    multiverse_min_arm_sizes : tuple of int
        ``min_arm_size`` values of the multiverse.
    """

    data_path: str = "../data/synthetic_cohort.csv"
    output_dir: str | None = None
    published_dir: str = "../data/published"
    ps_covariates: tuple[str, ...] = DEFAULT_PS_COVARIATES
    ps_formula: str | None = None
    ps_method: str = "logistic"
    estimand: str = "ATO"
    hc_type: str = "HC0"
    cutoff: float | None = 75.0
    cutoff_min: float = 40.0
    cutoff_max: float = 90.0
    cutoff_step: float = 5.0
    min_arm_size: int = 10
    conf_level: float = 0.95
    patients_screened: int = 18732
    patients_icas_lvo_evt: int = 541
    seed: int = 20260213
    mi_imputations: int = 20
    bootstrap_replicates: int = 2000
    simulation_replicates: int = 500
    simulation_null_replicates: int = 199
    dask_scheduler: str | None = None
    simulation_workers: int = 0
    column_map: str | None = None
    min_cell_size: int = 0
    variance: str = "robust"
    smd_binary: str = "std"
    subgroup_weights: str = "overall"
    data_cache: str | None = None
    multiverse_formula: str = RICH_PS_FORMULA
    multiverse_min_arm_sizes: tuple[int, ...] = (5, 10, 20)

    def __post_init__(self) -> None:
        # Normalise types first (papermill passes lists, the CLI passes strings).
        object.__setattr__(self, "ps_covariates", _as_name_tuple("ps_covariates", self.ps_covariates))
        if self.cutoff is not None:
            object.__setattr__(self, "cutoff", _as_float("cutoff", self.cutoff))
        for name in ("cutoff_min", "cutoff_max", "cutoff_step", "conf_level"):
            object.__setattr__(self, name, _as_float(name, getattr(self, name)))
        for name in ("min_arm_size", "patients_screened", "patients_icas_lvo_evt", "seed", "mi_imputations",
                     "bootstrap_replicates", "simulation_replicates", "simulation_null_replicates",
                     "simulation_workers", "min_cell_size"):
            object.__setattr__(self, name, _as_int(name, getattr(self, name)))
        sizes = self.multiverse_min_arm_sizes
        if isinstance(sizes, str):
            sizes = [v for v in sizes.split(",") if v.strip()]
        elif isinstance(sizes, (int, float)):
            sizes = [sizes]
        object.__setattr__(self, "multiverse_min_arm_sizes",
                           tuple(_as_int("multiverse_min_arm_sizes", v) for v in sizes))
        object.__setattr__(self, "ps_method", _choice("ps_method", str(self.ps_method).lower(), PS_METHODS))
        if self.ps_formula is not None:
            object.__setattr__(self, "ps_formula", _check_formula("ps_formula", self.ps_formula))
        if self.multiverse_formula != RICH_PS_FORMULA:  # the default is valid; parsing costs an import
            object.__setattr__(self, "multiverse_formula", _check_formula("multiverse_formula", self.multiverse_formula))
        object.__setattr__(self, "estimand", _choice("estimand", str(self.estimand).upper(), ESTIMANDS))
        object.__setattr__(self, "hc_type", _choice("hc_type", str(self.hc_type).upper(), HC_TYPES))
        object.__setattr__(self, "variance", _choice("variance", str(self.variance).lower(), VARIANCES))
        object.__setattr__(self, "smd_binary", _choice("smd_binary", str(self.smd_binary).lower(), SMD_BINARY))
        object.__setattr__(self, "subgroup_weights",
                           _choice("subgroup_weights", str(self.subgroup_weights).lower(), SUBGROUP_WEIGHTS))
        if self.variance == "m_estimation" and self.ps_method != "logistic":
            raise ParameterError("parameter 'variance': m_estimation needs ps_method logistic (the estimating "
                                 "equations of CBPS are not stacked); use variance robust with CBPS")
        self._check_ranges()

    def _check_ranges(self) -> None:
        if self.cutoff is not None and not 0 < self.cutoff < 100:
            raise ParameterError(
                f"parameter 'cutoff': {self.cutoff:g} is outside the open interval 0 to 100 "
                "(a stenosis percentage; use 'auto' to take the cutoff selected by the sweep)"
            )
        if not 0 < self.cutoff_min <= self.cutoff_max < 100:
            raise ParameterError(
                "parameters 'cutoff_min'/'cutoff_max': need 0 < cutoff_min <= cutoff_max < 100, "
                f"got {self.cutoff_min:g} and {self.cutoff_max:g}"
            )
        if self.cutoff_step <= 0:
            raise ParameterError(f"parameter 'cutoff_step': must be positive, got {self.cutoff_step:g}")
        if self.min_arm_size < 1:
            raise ParameterError(f"parameter 'min_arm_size': must be at least 1, got {self.min_arm_size}")
        if not 0.5 <= self.conf_level < 1:
            raise ParameterError(f"parameter 'conf_level': must be in [0.5, 1), got {self.conf_level:g}")
        if not self.ps_covariates:
            raise ParameterError("parameter 'ps_covariates': needs at least one covariate")
        if self.simulation_replicates < 0:
            raise ParameterError(f"parameter 'simulation_replicates': 0 (skip) or more, got {self.simulation_replicates}")
        if self.simulation_workers < 0:
            raise ParameterError("parameter 'simulation_workers': 0 (one per core) or more")
        if self.simulation_null_replicates < 1:
            raise ParameterError("parameter 'simulation_null_replicates': at least 1")
        if self.dask_scheduler is not None and "://" not in str(self.dask_scheduler):
            raise ParameterError(f"parameter 'dask_scheduler': an address such as tcp://host:8786, "
                                 f"got {self.dask_scheduler!r}")
        if self.min_cell_size < 0:
            raise ParameterError(f"parameter 'min_cell_size': 0 (no masking) or more, got {self.min_cell_size}")
        if self.bootstrap_replicates < 0:
            raise ParameterError(f"parameter 'bootstrap_replicates': 0 (skip) or more, got {self.bootstrap_replicates}")
        if self.mi_imputations < 0 or self.mi_imputations == 1:
            raise ParameterError(f"parameter 'mi_imputations': 0 (skip) or at least 2, got {self.mi_imputations}")
        if not self.multiverse_min_arm_sizes or min(self.multiverse_min_arm_sizes) < 1:
            raise ParameterError("parameter 'multiverse_min_arm_sizes': positive whole numbers, e.g. 5,10,20")
        for name in ("patients_screened", "patients_icas_lvo_evt"):
            if getattr(self, name) < 0:
                raise ParameterError(f"parameter '{name}': must be a count (0 or more)")
        if self.patients_screened < self.patients_icas_lvo_evt:
            raise ParameterError(f"parameters 'patients_screened'/'patients_icas_lvo_evt': the patients screened "
                                 f"({self.patients_screened}) include those treated ({self.patients_icas_lvo_evt}), "
                                 "so patients_screened >= patients_icas_lvo_evt")
        if not 0 <= self.seed < 2 ** 63:
            raise ParameterError(f"parameter 'seed': a whole number from 0 to 2^63 - 1, got {self.seed}")
        if self.cutoff_step > self.cutoff_max - self.cutoff_min and self.cutoff_max > self.cutoff_min:
            raise ParameterError(f"parameter 'cutoff_step': {self.cutoff_step:g} is wider than the range "
                                 f"{self.cutoff_min:g} to {self.cutoff_max:g}, which then holds one cutoff; "
                                 "use a smaller step or set cutoff_min = cutoff_max")
        if len(self.cutoffs()) > 1000:
            raise ParameterError(f"parameter 'cutoff_step': {self.cutoff_step:g} gives {len(self.cutoffs())} "
                                 "cutoffs; at most 1000")
        self._check_covariates()

    def _check_covariates(self) -> None:
        """Covariates of the propensity model: numeric baseline columns of the data dictionary."""
        dictionary = load_dictionary()
        for name in self.ps_covariates:
            spec = dictionary.get(name)
            if spec is None:
                close = difflib.get_close_matches(name, list(dictionary), n=1)
                hint = f" (did you mean '{close[0]}'?)" if close else ""
                raise ParameterError(f"parameter 'ps_covariates': '{name}' is not a column of the data dictionary"
                                     f"{hint}")
            if spec.type == "string":
                raise ParameterError(f"parameter 'ps_covariates': '{name}' is a text column ({spec.description}); "
                                     "the propensity model takes numeric baseline covariates")
            if spec.role not in ("covariate", "modifier"):
                raise ParameterError(f"parameter 'ps_covariates': '{name}' is the {spec.role} ({spec.description}), "
                                     "not a baseline covariate")

    # ----------------------------------------------------------------- constructors
    @classmethod
    def names(cls) -> tuple[str, ...]:
        """Names of all parameters, in declaration order."""
        return tuple(f.name for f in fields(cls))

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> "Parameters":
        """Build from a mapping, rejecting unknown names with a suggestion."""
        known = set(cls.names())
        for key in values:
            if key not in known:
                raise ParameterError(_unknown_message(key, cls.names()))
        return cls(**dict(values))

    @classmethod
    def from_namespace(cls, namespace: Mapping[str, Any]) -> "Parameters":
        """Build from a notebook's globals: takes the names that are parameters, ignores the rest."""
        return cls(**{k: namespace[k] for k in cls.names() if k in namespace})

    @classmethod
    def from_strings(cls, pairs: list[tuple[str, str]], base: Mapping[str, Any] | None = None) -> "Parameters":
        """Build from command-line ``-p NAME VALUE`` pairs (values parsed as YAML scalars/lists)."""
        values = dict(base or {})
        for name, raw in pairs:
            if name not in cls.names():
                raise ParameterError(_unknown_message(name, cls.names()))
            if name in INTERNAL:
                raise ParameterError(f"parameter '{name}' is set by the build, not by users")
            values[name] = parse_value(name, raw)
        return cls.from_mapping(values)

    def replace(self, **changes: Any) -> "Parameters":
        """A copy with some parameters changed (validated again)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON/YAML-serialisable dict (tuples become lists)."""
        out = {}
        for f in fields(self):
            v = getattr(self, f.name)
            out[f.name] = list(v) if isinstance(v, tuple) else v
        return out

    def cutoffs(self) -> list[float]:
        """Candidate cutoffs of the sweep: cutoff_min, cutoff_min + step, ..., <= cutoff_max."""
        n = int(round((self.cutoff_max - self.cutoff_min) / self.cutoff_step + 1e-9))
        return [round(self.cutoff_min + i * self.cutoff_step, 10) for i in range(n + 1)]


def parse_value(name: str, raw: str) -> Any:
    """Parse one command-line value for parameter ``name``."""
    text = raw.strip()
    if name == "cutoff" and text.lower() in {"auto", "none", "null", "selected"}:
        return None
    if name in ("output_dir", "ps_formula", "dask_scheduler", "data_cache", "column_map") and text.lower() in {"none", "null", ""}:
        return None
    if name == "ps_covariates" and not text.startswith("["):
        return [part.strip() for part in text.split(",") if part.strip()]
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        value = text
    if name in {"data_path", "output_dir", "published_dir", "estimand", "hc_type", "ps_formula", "ps_method",
                "variance", "smd_binary", "subgroup_weights",
                "multiverse_formula", "multiverse_min_arm_sizes", "dask_scheduler", "data_cache", "column_map"}:
        return text
    return value


def _unknown_message(name: str, valid: tuple[str, ...]) -> str:
    close = difflib.get_close_matches(name, valid, n=1)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    return f"unknown parameter '{name}'{hint}; valid parameters: {', '.join(valid)}"


def _choice(name: str, value: str, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise ParameterError(f"parameter '{name}': '{value}' is not one of {', '.join(allowed)}")
    return value


def _as_float(name: str, value: Any) -> float:
    """A finite number (``nan``, ``inf`` and overflowing literals such as ``1e400`` refused)."""
    if isinstance(value, bool):
        raise ParameterError(f"parameter '{name}': expected a number, got {value!r}")
    try:
        f = float(value)
    except (TypeError, ValueError, OverflowError):
        raise ParameterError(f"parameter '{name}': expected a number, got {value!r}") from None
    if not math.isfinite(f):
        raise ParameterError(f"parameter '{name}': expected a finite number, got {value!r}")
    return f


def _as_int(name: str, value: Any) -> int:
    """A whole number: an int, or a finite float or text without a fractional part."""
    if isinstance(value, bool):
        raise ParameterError(f"parameter '{name}': expected a whole number, got {value!r}")
    if isinstance(value, int):
        return int(value)
    if isinstance(value, str) and re.fullmatch(r"\s*[+-]?\d+\s*", value):
        return int(value)
    f = _as_float(name, value)
    if f != math.floor(f) or abs(f) > 2 ** 53:
        raise ParameterError(f"parameter '{name}': expected a whole number, got {value!r}")
    return int(f)


# The transforms a propensity formula may call (formulaic's own, by name): everything else,
# attribute access (np.log), dunders, subscripts, lambdas and comprehensions are refused before
# formulaic evaluates anything, because formulaic evaluates a factor as Python.
FORMULA_FUNCTIONS: frozenset[str] = frozenset({
    "I", "C", "bs", "cr", "cs", "cc", "poly", "center", "scale", "standardize",
    "log", "log2", "log10", "exp", "exp2", "exp10",
    "Treatment", "Sum", "Helmert", "Diff", "Poly",
})
_FORMULA_NODES = (ast.Expression, ast.Name, ast.Load, ast.Constant, ast.BinOp, ast.UnaryOp, ast.Compare, ast.Call,
                  ast.keyword, ast.List, ast.Tuple, ast.operator, ast.unaryop, ast.cmpop)


def _check_formula(name: str, value: Any) -> str:
    """A right-hand-side formula that formulaic can parse (a leading ``~`` is allowed), whose every
    factor is arithmetic on data columns and calls of :data:`FORMULA_FUNCTIONS` only; checked on
    the parsed terms, before anything is evaluated."""
    from formulaic import Formula

    text = str(value).strip()
    if text.startswith("~"):
        text = text[1:].strip()
    if "~" in text:
        raise ParameterError(f"parameter '{name}': give only the right-hand side, e.g. 'age + I(age**2) + C(x)'")
    try:
        terms = list(Formula(text))
    except Exception as err:  # formulaic raises several parser exception types
        raise ParameterError(f"parameter '{name}': not a valid formula ({str(err).splitlines()[0]})") from None
    for term in terms:
        for factor in term.factors:
            problem = _unsafe_factor(str(factor.expr))
            if problem:
                raise ParameterError(f"parameter '{name}': term '{factor.expr}' {problem}; a formula may use data "
                                     f"columns, numbers, arithmetic and {', '.join(sorted(FORMULA_FUNCTIONS))}")
    dictionary = load_dictionary()
    for term in terms:
        for factor in term.factors:
            tree = ast.parse(str(factor.expr), mode="eval")
            called = {id(n.func) for n in ast.walk(tree) if isinstance(n, ast.Call)}
            for node in ast.walk(tree):
                if isinstance(node, ast.Name) and id(node) not in called and node.id not in dictionary:
                    close = difflib.get_close_matches(node.id, list(dictionary), n=1)
                    hint = f" (did you mean '{close[0]}'?)" if close else ""
                    raise ParameterError(f"parameter '{name}': '{node.id}' in term '{factor.expr}' is not a column "
                                         f"of the data dictionary{hint}")
    return text


def _unsafe_factor(expression: str) -> str:
    """Why a formula factor may not be evaluated ('' when it may)."""
    try:
        tree = ast.parse(expression, mode="eval")
    except SyntaxError:
        return "is not a valid expression"
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute):
            return f"uses attribute access ('.{node.attr}'; write log(x), not np.log(x))"
        if not isinstance(node, _FORMULA_NODES):
            return f"uses {type(node).__name__}, which a formula may not"
        if isinstance(node, ast.Name) and node.id.startswith("_"):
            return f"uses the name '{node.id}'"
        if isinstance(node, ast.Call):
            if isinstance(node.func, ast.Attribute):
                return f"uses attribute access ('.{node.func.attr}'; write log(x), not np.log(x))"
            if not isinstance(node.func, ast.Name) or node.func.id not in FORMULA_FUNCTIONS:
                called = node.func.id if isinstance(node.func, ast.Name) else type(node.func).__name__
                return f"calls '{called}', which is not a formula transform"
        if isinstance(node, ast.Constant) and not isinstance(node.value, (int, float, str)):
            return f"uses the constant {node.value!r}"
    return ""


def _as_name_tuple(name: str, value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [v.strip() for v in value.split(",") if v.strip()]
    try:
        items = tuple(str(v) for v in value)
    except TypeError:
        raise ParameterError(f"parameter '{name}': expected a list of column names, got {value!r}") from None
    if len(set(items)) != len(items):
        dup = sorted({v for v in items if items.count(v) > 1})
        raise ParameterError(f"parameter '{name}': duplicated names {', '.join(dup)}")
    return items
