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
PAGE_SIZES: tuple[str, ...] = ("A4", "letter")


class ParameterError(ValueError):
    """A parameter name or value is not acceptable; the message is one line."""


@dataclass(frozen=True)
class Spec:
    """One analysis parameter: its name, kind (how a value is parsed and checked), default,
    allowed values and help. :data:`PARAMETERS` is the single table they live in: it makes the
    :class:`Parameters` dataclass, parses ``-p NAME VALUE``, prints ``python -m analysis_lib
    parameters`` and the README's table (a test keeps them equal), and the notebooks' parameter
    cells are tested against it."""

    name: str
    kind: str  # path, optional_path, names, formula, choice, cutoff, float, int, ints, address
    default: Any
    help: str
    choices: tuple[str, ...] = ()
    case: str = "lower"  # how a choice is normalised: lower, upper, or any (as the choices are written)
    internal: bool = False  # set by the build, never by a user (-p, scenario files)
    shown_default: str | None = None  # the README's words for a default that depends on the checkout

    @property
    def annotation(self) -> str:
        return {"path": "str", "optional_path": "str | None", "names": "tuple[str, ...]", "formula": "str | None",
                "choice": "str", "cutoff": "float | None", "float": "float", "int": "int", "ints": "tuple[int, ...]",
                "address": "str | None"}[self.kind]

    def readme_default(self) -> str:
        """The default as the README's table writes it."""
        value = self.default
        if self.shown_default is not None:
            return self.shown_default
        if value is None:
            return "none"
        if isinstance(value, tuple):
            return ", ".join(str(v) for v in value)
        if isinstance(value, str):
            return f"`{value}`"
        return str(value) if isinstance(value, int) else f"{value:g}"


PARAMETERS: tuple[Spec, ...] = (
    Spec("data_path", "path", "../data/synthetic_cohort.csv", "registry file (set by `--data`)", internal=True),
    Spec("output_dir", "optional_path", None, "output folder (set by `--out`); none writes nothing", internal=True),
    Spec("published_dir", "path", "../data/published", "the paper's printed tables (the four `*_published.csv` files)",
         shown_default="the checkout's `data/published`"),
    Spec("ps_covariates", "names", DEFAULT_PS_COVARIATES, "linear terms of the propensity model (numeric baseline "
         "columns of the data dictionary)"),
    Spec("ps_formula", "formula", None, "a propensity formula in formulaic syntax, e.g. `\"bs(age, df=3) + "
         "C(premorbid_mrs) + nihss:aspects\"`; replaces `ps_covariates` (the transforms allowed are listed below)"),
    Spec("ps_method", "choice", "logistic", "`logistic` (maximum likelihood) or `cbps` (covariate balancing "
         "propensity score)", PS_METHODS),
    Spec("estimand", "choice", "ATO", "weights: `ATO` (overlap), `ATE`, `ATT`, `ATM` (matching)", ESTIMANDS,
         case="upper"),
    Spec("hc_type", "choice", "HC0", "sandwich variance, as `sandwich::vcovHC(type=)`: `HC0`-`HC3`", HC_TYPES,
         case="upper"),
    Spec("cutoff", "cutoff", 75.0, "stenosis cutoff of Table 2 and Figure 1 (`> cutoff` is high); `auto` takes the "
         "sweep's selection"),
    Spec("cutoff_min", "float", 40.0, "lowest candidate cutoff of the sweep"),
    Spec("cutoff_max", "float", 90.0, "highest candidate cutoff of the sweep"),
    Spec("cutoff_step", "float", 5.0, "step between candidate cutoffs (at most 1000 cutoffs)"),
    Spec("min_arm_size", "int", 10, "a cutoff is eligible only if every subgroup-arm has this many patients"),
    Spec("conf_level", "float", 0.95, "confidence level"),
    Spec("patients_screened", "int", 18732, "patients screened before the registry export (flow diagram)"),
    Spec("patients_icas_lvo_evt", "int", 541, "patients treated for ICAS-LVO before the export (flow diagram; at "
         "most `patients_screened`; fewer than the patients of the file: the flow begins at the file)"),
    Spec("seed", "int", 20260213, "seed of every random step (0 to 2^63 - 1)"),
    Spec("mi_imputations", "int", 20, "imputed data sets of the multiple-imputation analysis (0 skips it)"),
    Spec("bootstrap_replicates", "int", 2000, "replicates of the bootstrap of the cutoff selection and of its null "
         "test (0 skips them)"),
    Spec("simulation_replicates", "int", 500, "simulated cohorts per scenario (0 skips the simulation study); 500 "
         "keeps the Monte-Carlo SE of a 5 % rate below 1 percentage point"),
    Spec("simulation_null_replicates", "int", 199, "null replicates of the selection-adjusted test in each "
         "simulated cohort"),
    Spec("dask_scheduler", "address", None, "address of a Dask scheduler for the simulation study "
         "(`tcp://host:8786`); none: local cores"),
    Spec("simulation_workers", "int", 0, "local processes of the simulation study (0: one per core; a build runs it "
         "in its notebook's process)"),
    Spec("column_map", "optional_path", None, "column map of a registry export (what `--columns` sets)"),
    Spec("min_cell_size", "int", 0, "mask Table 1 counts below this many patients (0: no masking)"),
    Spec("variance", "choice", "robust", "`robust` (the paper's sandwich, weights as known) or `m_estimation` "
         "(propensity score as estimated)", VARIANCES),
    Spec("smd_binary", "choice", "std", "binary covariates in the balance table standardised (`std`) or as raw "
         "differences (`raw`)", SMD_BINARY),
    Spec("subgroup_weights", "choice", "overall", "weights of the subgroup rows (Table 2, sweep, Figure 1's subgroup "
         "panels, E-values, resampling): `overall` (the overall propensity model, the paper) or `within` (one "
         "propensity model per stenosis subgroup at each cutoff, balancing every covariate within each subgroup)",
         SUBGROUP_WEIGHTS),
    Spec("data_cache", "optional_path", None, "the cohort validated by the build, read by its notebooks",
         internal=True),
    Spec("multiverse_formula", "formula", RICH_PS_FORMULA, "the second, richer propensity model of the "
         "sensitivity analyses"),
    Spec("multiverse_min_arm_sizes", "ints", (5, 10, 20), "`min_arm_size` values of the multiverse"),
    Spec("page_size", "choice", "A4", "page of the Word tables: `A4` (the journal's) or `letter`", PAGE_SIZES,
         case="any"),
)
SPECS: dict[str, Spec] = {spec.name: spec for spec in PARAMETERS}
# Set by the build for its notebooks, never from a command line or a scenario file.
INTERNAL: tuple[str, ...] = ("data_cache",)


def parameter_table() -> str:
    """The README's table of the parameters a user sets (generated from :data:`PARAMETERS`)."""
    rows = ["| parameter | default | meaning |", "| --- | --- | --- |"]
    rows += [f"| `{spec.name}` | {spec.readme_default()} | {spec.help} |" for spec in PARAMETERS if not spec.internal]
    return "\n".join(rows)


class _Checks:
    """Normalisation and validation of :class:`Parameters` (the dataclass is made from the table)."""

    def __post_init__(self) -> None:
        # Normalise types first (papermill passes lists, the CLI passes strings), in table order.
        for spec in PARAMETERS:
            object.__setattr__(self, spec.name, _normalise(spec, getattr(self, spec.name)))
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


Parameters = dataclasses.make_dataclass(
    "Parameters", [(spec.name, spec.annotation, dataclasses.field(default=spec.default)) for spec in PARAMETERS],
    bases=(_Checks,), frozen=True,
    namespace={"__doc__": "All analysis parameters with the defaults of ANALYSIS.md, one field per row of "
                          ":data:`PARAMETERS`:\n\n" + "\n".join(f"* ``{spec.name}`` (default ``{spec.default!r}``): "
                                                               f"{spec.help}" for spec in PARAMETERS)})
Parameters.__module__ = __name__  # (make_dataclass takes ``module=`` from Python 3.12 on)


def _normalise(spec: Spec, value: Any) -> Any:
    """A value of ``spec``'s kind, or :class:`ParameterError` naming the parameter."""
    name = spec.name
    if spec.kind == "names":
        return _as_name_tuple(name, value)
    if spec.kind == "float":
        return _as_float(name, value)
    if spec.kind == "int":
        return _as_int(name, value)
    if spec.kind == "cutoff":
        return None if value is None else _as_float(name, value)
    if spec.kind == "ints":
        sizes = [v for v in value.split(",") if v.strip()] if isinstance(value, str) else (
            [value] if isinstance(value, (int, float)) else value)
        return tuple(_as_int(name, v) for v in sizes)
    if spec.kind == "choice":
        if spec.case == "any":  # written as the choices are, whatever case the user typed
            text = next((c for c in spec.choices if c.lower() == str(value).lower()), str(value))
        else:
            text = str(value).upper() if spec.case == "upper" else str(value).lower()
        return _choice(name, text, spec.choices)
    if spec.kind == "formula":
        if value is None or value == spec.default:  # the default is valid; parsing costs an import
            return value
        return _check_formula(name, value)
    return value


def parse_value(name: str, raw: str) -> Any:
    """Parse one command-line value for parameter ``name`` by its kind in :data:`PARAMETERS`:
    text kinds stay text (``none`` means none where the parameter may be none), names and
    numbers lists are comma-separated, ``cutoff auto`` is the sweep's selection, numbers are read
    as YAML scalars and checked by :class:`Parameters`."""
    kind = SPECS[name].kind
    text = raw.strip()
    none = text.lower() in {"none", "null", ""}
    if kind == "cutoff" and text.lower() in {"auto", "none", "null", "selected"}:
        return None
    if kind in ("optional_path", "address") or (kind == "formula" and SPECS[name].default is None):
        return None if none else text
    if kind == "names" and not text.startswith("["):
        return [part.strip() for part in text.split(",") if part.strip()]
    if kind in ("path", "formula", "choice", "ints"):
        return text
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


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
