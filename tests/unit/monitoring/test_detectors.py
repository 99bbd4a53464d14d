"""Detectors keep the sklearn-style contract (check_detector) and validate their params."""

from __future__ import annotations

import pandas as pd
import pytest

from bascule.core.errors import InvalidInputError, NotReadyError
from bascule.monitoring import DRIFT_METHODS, DriftDetector
from bascule.monitoring.detectors import check_detector
from bascule.monitoring.multivariate import DomainClassifierDetector, auc_score

BUILT_IN = [
    DriftDetector(),
    *(DriftDetector(method=name) for name in DRIFT_METHODS),
    DriftDetector(method={"x": "psi", "c": "chisquare"}, threshold=0.15, alpha=0.01),
    DomainClassifierDetector(),
]


@pytest.mark.parametrize("detector", BUILT_IN, ids=lambda d: f"{type(d).__name__}{d.get_params()}")
def test_built_in_detectors_pass_check_detector(detector) -> None:
    check_detector(detector)


def test_check_detector_names_a_broken_promise() -> None:
    class Forgetful(DriftDetector):
        def fit(self, reference):
            super().fit(reference)
            return

    with pytest.raises(AssertionError, match="fit\\(\\) did not return self"):
        check_detector(Forgetful())


def test_test_before_fit_is_not_ready() -> None:
    with pytest.raises(NotReadyError, match="not fitted") as e:
        DriftDetector().test(pd.DataFrame({"x": [1.0]}))

    assert "not_ready" == e.value.code


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"method": "t-test"}, "method"),
        ({"method": {"nope": "ks"}}, "method"),
        ({"method": {"plan": "ks"}}, "method['plan']"),
        ({"method": {"a": "chisquare"}}, "method['a']"),
        ({"threshold": 0.0}, "threshold"),
        ({"alpha": 1.5}, "alpha"),
    ],
)
def test_bad_parameters_are_named_at_fit(make_frame, params, field) -> None:
    with pytest.raises(InvalidInputError) as e:
        DriftDetector(**params).fit(make_frame(100))

    assert field == e.value.field


def test_params_round_trip_and_set_params_refits_nothing(make_frame) -> None:
    detector = DriftDetector(method="psi", threshold=0.2)
    params = detector.get_params()

    assert {"method": "psi", "threshold": 0.2, "alpha": 0.05, "categorical": None} == params
    assert params == DriftDetector(**params).get_params()
    assert 0.3 == detector.set_params(threshold=0.3).threshold
    with pytest.raises(InvalidInputError):
        detector.set_params(bins=3)


def test_the_threshold_is_an_effect_floor_and_alpha_is_bonferroni(make_frame) -> None:
    reference, current = make_frame(20_000), make_frame(20_000, seed=1, shift=0.1)
    loose = DriftDetector(method="psi", threshold=0.001).fit(reference).test(current)
    default = DriftDetector(method="psi").fit(reference).test(current)

    assert ["a", "b"] == loose.drifted_features
    assert [] == default.drifted_features
    assert {0.05 / 6} == {f.alpha for f in default.features}


def test_categorical_override_treats_numbers_as_categories() -> None:
    reference = pd.DataFrame({"code": [1, 2, 3] * 300})
    current = pd.DataFrame({"code": [1] * 900})
    result = DriftDetector(categorical=["code"]).fit(reference).test(current)

    assert "categorical" == result.features[0].kind
    assert ["code"] == result.drifted_features


def test_domain_classifier_sees_a_correlation_change_per_feature_tests_miss(make_frame) -> None:
    reference, current = make_frame(6000), make_frame(6000, seed=1, rho=-0.6)
    per_feature = DriftDetector().fit(reference).test(current)
    multivariate = DomainClassifierDetector().fit(reference).test(current)

    assert [] == per_feature.drifted_features
    assert multivariate.drifted
    assert multivariate.auc is not None
    assert multivariate.auc > 0.65


def test_float32_logs_of_the_same_data_are_not_drift() -> None:
    import numpy as np

    rng = np.random.default_rng(0)
    reference = pd.DataFrame({"km": np.round(rng.exponential(8, 4000), 1)})
    served = pd.DataFrame({"km": np.round(rng.exponential(8, 4000), 1).astype(np.float32)})

    result = DomainClassifierDetector().fit(reference).test(served)

    assert not result.drifted  # float32(6.7) is the 6.7 the model saw, not a new value


def test_domain_classifier_needs_sample_rows() -> None:
    from bascule.monitoring.reference import ReferenceSummary

    summary = ReferenceSummary.fit(pd.DataFrame({"x": range(100)}), sample_size=0)
    with pytest.raises(InvalidInputError, match="sample"):
        DomainClassifierDetector().fit(summary)


def test_auc_score_counts_ties_as_half() -> None:
    assert 1.0 == auc_score([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9])
    assert 0.5 == auc_score([0, 1], [0.3, 0.3])
    assert 0.875 == auc_score([0, 0, 1, 1], [0.1, 0.5, 0.5, 0.9])
