"""Parameters: defaults of ANALYSIS.md, parsing of -p values, and one-line rejections."""

import pytest

from analysis_lib.params import DEFAULT_PS_COVARIATES, ParameterError, Parameters


def test_defaults_follow_the_specification():
    p = Parameters()
    assert p.estimand == "ATO" and p.hc_type == "HC0" and p.cutoff == 75
    assert p.cutoffs() == [40, 45, 50, 55, 60, 65, 70, 75, 80, 85, 90]
    assert p.min_arm_size == 10 and p.ps_covariates == DEFAULT_PS_COVARIATES


def test_command_line_values():
    p = Parameters.from_strings([("estimand", "ate"), ("cutoff", "auto"), ("hc_type", "HC3"),
                                 ("ps_covariates", "age,nihss"), ("min_arm_size", "5")])
    assert (p.estimand, p.cutoff, p.hc_type, p.ps_covariates, p.min_arm_size) == ("ATE", None, "HC3", ("age", "nihss"), 5)
    assert Parameters.from_strings([("cutoff", "70")]).cutoff == 70.0


@pytest.mark.parametrize("pairs,message", [
    ([("cutoff", "150")], "parameter 'cutoff': 150 is outside the open interval 0 to 100"),
    ([("estimand", "XYZ")], "parameter 'estimand': 'XYZ' is not one of ATO, ATE, ATT, ATM"),
    ([("hc_type", "HC5")], "parameter 'hc_type': 'HC5' is not one of HC0, HC1, HC2, HC3"),
    ([("estimnd", "ATE")], "unknown parameter 'estimnd' (did you mean 'estimand'?); valid parameters: data_path"),
    ([("min_arm_size", "2.5")], "parameter 'min_arm_size': expected a whole number"),
    ([("cutoff_step", "0")], "parameter 'cutoff_step': must be positive"),
    ([("conf_level", "95")], "parameter 'conf_level': must be in [0.5, 1)"),
    ([("ps_covariates", "age,age")], "parameter 'ps_covariates': duplicated names age"),
])
def test_bad_values_are_rejected_in_one_line(pairs, message):
    with pytest.raises(ParameterError) as err:
        Parameters.from_strings(pairs)
    assert str(err.value).startswith(message)
    assert "\n" not in str(err.value)


def test_specification_parameters():
    p = Parameters.from_strings([("ps_formula", "~ age + I(age**2) + C(m1_occlusion)"), ("ps_method", "CBPS"),
                                 ("multiverse_min_arm_sizes", "5,15"), ("mi_imputations", "10")])
    assert p.ps_formula == "age + I(age**2) + C(m1_occlusion)" and p.ps_method == "cbps"
    assert p.multiverse_min_arm_sizes == (5, 15) and p.mi_imputations == 10
    assert Parameters.from_strings([("ps_formula", "none")]).ps_formula is None
    for pairs, message in (([("ps_formula", "age + (")], "parameter 'ps_formula': not a valid formula"),
                           ([("ps_formula", "y ~ age")], "parameter 'ps_formula': give only the right-hand side"),
                           ([("ps_method", "probit")], "parameter 'ps_method': 'probit' is not one of logistic, cbps"),
                           ([("mi_imputations", "1")], "parameter 'mi_imputations': 0 (skip) or at least 2")):
        with pytest.raises(ParameterError, match=message.replace("(", r"\(").replace(")", r"\)")):
            Parameters.from_strings(pairs)


def test_from_namespace_takes_only_parameters():
    p = Parameters.from_namespace({"estimand": "ATM", "study": object(), "__name__": "x"})
    assert p.estimand == "ATM"


def test_round_trip_to_dict():
    p = Parameters(cutoff=None, ps_covariates=("age",))
    assert Parameters.from_mapping(p.to_dict()) == p
