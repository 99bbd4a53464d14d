"""The drift tests as pure functions, on distributions whose answer is known."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import scipy.stats as st
from scipy.spatial.distance import jensenshannon as scipy_js

from bascule.core.errors import InvalidInputError
from bascule.monitoring import DRIFT_METHODS
from bascule.monitoring.drift import chi2_sf, choose_method, kolmogorov_sf, normal_sf
from bascule.monitoring.reference import ReferenceSummary, read_categories, read_numeric


def numeric_pair(reference: np.ndarray, current: np.ndarray):
    ref = ReferenceSummary.fit(pd.DataFrame({"x": reference}), sample_size=0).columns["x"]
    return ref, ref.observe(read_numeric(pd.Series(current)).finite)


def categorical_pair(reference: list[str], current: list[str]):
    ref = ReferenceSummary.fit(pd.DataFrame({"c": reference}), sample_size=0).columns["c"]
    return ref, ref.observe(read_categories(pd.Series(current))[0])


@pytest.fixture(scope="module")
def normals() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    return rng.standard_normal(20_000), rng.standard_normal(20_000)


@pytest.mark.parametrize(("x", "dof"), [(0.5, 1), (3.0, 2), (30.0, 9), (100.0, 50), (400.0, 99)])
def test_chi2_sf_matches_scipy(x: float, dof: int) -> None:
    assert st.chi2.sf(x, dof) == pytest.approx(chi2_sf(x, dof), rel=1e-9, abs=1e-300)


@pytest.mark.parametrize("lam", [0.3, 0.5, 1.0, 1.5, 2.5])
def test_kolmogorov_sf_matches_scipy(lam: float) -> None:
    assert st.kstwobign.sf(lam) == pytest.approx(kolmogorov_sf(lam), rel=1e-9)


def test_normal_sf_and_chi2_sf_edges() -> None:
    assert 0.5 == normal_sf(0.0)
    assert 1.0 == chi2_sf(0.0, 3)
    with pytest.raises(InvalidInputError) as e:
        chi2_sf(1.0, 0)
    assert "invalid_input" == e.value.code


def test_ks_matches_scipy_on_a_half_sd_shift(normals) -> None:
    reference, current = normals
    score = DRIFT_METHODS["ks"].func(*numeric_pair(reference, current + 0.5))

    expected = st.ks_2samp(reference, current + 0.5).statistic
    assert expected == pytest.approx(score.statistic, abs=2e-3)
    assert score.p_value is not None
    assert score.p_value < 1e-50


def test_wasserstein_is_the_shift_in_reference_sds(normals) -> None:
    reference, current = normals
    score = DRIFT_METHODS["wasserstein"].func(*numeric_pair(reference, current + 0.5))

    expected = st.wasserstein_distance(reference, current + 0.5) / reference.std()
    assert expected == pytest.approx(score.statistic, rel=0.02)
    assert score.effect_size == score.statistic


def test_wasserstein_is_exact_for_discrete_values() -> None:
    rng = np.random.default_rng(3)
    reference, current = rng.integers(0, 5, 5000), rng.integers(1, 6, 4000)
    score = DRIFT_METHODS["wasserstein"].func(*numeric_pair(reference, current))

    expected = st.wasserstein_distance(reference, current) / reference.std()
    assert expected == pytest.approx(score.statistic, rel=1e-9)


def test_psi_of_a_half_sd_shift_is_about_a_quarter(normals) -> None:
    reference, current = normals
    score = DRIFT_METHODS["psi"].func(*numeric_pair(reference, current + 0.5))

    assert 0.2 < score.statistic < 0.3
    assert score.p_value is not None
    assert score.p_value < 1e-50


def test_jensenshannon_matches_scipy_on_categories() -> None:
    rng = np.random.default_rng(5)
    reference = list(rng.choice(list("abcd"), 5000, p=[0.4, 0.3, 0.2, 0.1]))
    current = list(rng.choice(list("abcde"), 5000, p=[0.25, 0.3, 0.25, 0.15, 0.05]))
    ref, obs = categorical_pair(reference, current)
    score = DRIFT_METHODS["jensenshannon"].func(ref, obs)

    keep = (obs.ref_bins + obs.cur_bins) > 0
    ref_share = obs.ref_bins[keep] / obs.ref_bins.sum()
    expected = scipy_js(ref_share, obs.cur_bins[keep] / obs.cur_bins.sum())
    assert expected == pytest.approx(score.statistic, rel=1e-9)
    assert {"e": obs.unseen_total} == obs.unseen


def test_chisquare_matches_scipy_and_reports_cohens_w() -> None:
    rng = np.random.default_rng(6)
    reference = list(rng.choice(list("abc"), 3000, p=[0.5, 0.3, 0.2]))
    current = list(rng.choice(list("abc"), 2000, p=[0.3, 0.3, 0.4]))
    ref, obs = categorical_pair(reference, current)
    score = DRIFT_METHODS["chisquare"].func(ref, obs)

    keep = (obs.ref_bins + obs.cur_bins) > 0
    table = np.vstack([obs.ref_bins[keep], obs.cur_bins[keep]])
    stat, p, _, _ = st.chi2_contingency(table, correction=False)
    assert stat == pytest.approx(score.statistic, rel=1e-9)
    assert p == pytest.approx(score.p_value, rel=1e-6, abs=1e-300)
    assert math.sqrt(stat * 5000 / (3000 * 2000)) == pytest.approx(score.effect_size)


def test_a_tenth_sd_shift_stays_under_every_numeric_floor(normals) -> None:
    reference, current = normals
    pair = numeric_pair(reference, current + 0.1)

    for name in ("ks", "psi", "wasserstein", "jensenshannon"):
        method = DRIFT_METHODS[name]
        assert method.func(*pair).effect_size < method.default_threshold, name


def test_a_half_sd_shift_reaches_every_numeric_floor(normals) -> None:
    reference, current = normals
    pair = numeric_pair(reference, current + 0.5)

    for name in ("ks", "psi", "wasserstein", "jensenshannon"):
        method = DRIFT_METHODS[name]
        assert method.func(*pair).effect_size >= method.default_threshold, name


def test_numeric_tests_refuse_categorical_columns() -> None:
    pair = categorical_pair(["a", "b"] * 50, ["a"] * 100)

    for name in ("ks", "wasserstein"):
        with pytest.raises(InvalidInputError):
            DRIFT_METHODS[name].func(*pair)


def test_every_method_documents_itself() -> None:
    for name, method in DRIFT_METHODS.items():
        assert name == method.name
        assert method.doc
        assert method.default_threshold > 0
        assert method.kinds <= {"numeric", "categorical"}


@pytest.mark.parametrize(
    ("kind", "n_ref", "n_cur", "constant", "expected"),
    [
        ("numeric", 10_000, 500, False, "ks"),
        ("numeric", 10_000, 5000, False, "wasserstein"),
        ("numeric", 10_000, 5000, True, "ks"),
        ("categorical", 10_000, 800, False, "chisquare"),
        ("categorical", 10_000, 80_000, False, "jensenshannon"),
    ],
)
def test_auto_chooses_by_kind_and_size(kind, n_ref, n_cur, constant, expected) -> None:
    assert expected == choose_method(kind, n_ref, n_cur, constant=constant)
