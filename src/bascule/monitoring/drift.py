"""Drift tests: one small pure function per statistical test, selected by name.

Each test compares one column's compact reference summary (see
:mod:`bascule.monitoring.reference`) with that column's observation in the current
window (computed once per column by ``reference.observe(values)``) and returns a
:class:`DriftScore`: the test's statistic, its p-value when it has one, and an effect size.
No test draws charts, reads files or keeps state.

The tests, in the explicit ``DRIFT_METHODS`` dict (no registration at import time):

==============  ===========  =========================================  ==================
name            column kinds effect size (= statistic unless noted)     default threshold
==============  ===========  =========================================  ==================
ks              numeric      Kolmogorov-Smirnov D                       0.1
psi             both         population stability index                 0.1
wasserstein     numeric      Wasserstein-1 / reference std              0.2
jensenshannon   both         Jensen-Shannon distance (natural log)      0.1
chisquare       categorical  Cohen's w = sqrt(sum (p - q)^2 / pooled)   0.2
==============  ===========  =========================================  ==================

The threshold is an **effect-size floor**: a column drifts only when its effect size
reaches the threshold *and* the change is statistically significant (p-value below the
detector's ``alpha``). The floors all sit near the effect of a mean shift of 0.2-0.3
standard deviations of a normal feature (KS D ≈ 0.4·δ, PSI ≈ δ², JS ≈ 0.35·δ,
Wasserstein/sd = δ, w ≈ δ), so a 0.1 sd shift stays quiet however many rows are compared —
the classic failure of p-value-only tests at 100k rows — while a 0.5 sd shift is flagged.

P-values: KS uses the asymptotic Kolmogorov distribution with Stephens' small-sample
correction; chi-square is the 2xK test of homogeneity; PSI and Jensen-Shannon use their
asymptotic chi-square laws (``PSI / (1/n + 1/m)`` and ``8·JS² / (1/n + 1/m)`` are
chi2(B-1) under no drift, Yurdakul 2018); Wasserstein has no closed-form null law, so its
p-value is the KS p-value of the same two CDFs (the significance companion).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

import numpy as np

from bascule.core.errors import InvalidInputError
from bascule.monitoring.reference import (
    CategoricalReference,
    ColumnReference,
    NumericObservation,
    NumericReference,
    Observation,
)

__all__ = [
    "AUTO",
    "DRIFT_METHODS",
    "SMALL_SAMPLE",
    "DriftMethod",
    "DriftScore",
    "chi2_sf",
    "chisquare",
    "choose_method",
    "jensenshannon",
    "kolmogorov_sf",
    "ks",
    "normal_sf",
    "psi",
    "wasserstein",
]

AUTO = "auto"
SMALL_SAMPLE = 1000
"""At or below this many values on either side, ``auto`` picks the tests with exact-size
p-values (KS, chi-square); above it, the distances (Wasserstein, Jensen-Shannon)."""


@dataclass(frozen=True)
class DriftScore:
    """What one test says about one column: statistic, p-value (or None), effect size."""

    statistic: float
    p_value: float | None
    effect_size: float


# ---------------------------------------------------------------- distributions


def normal_sf(z: float) -> float:
    """Upper tail of the standard normal distribution, ``P(Z > z)``."""
    return 0.5 * math.erfc(z / math.sqrt(2.0))


def kolmogorov_sf(lam: float) -> float:
    """Upper tail of the Kolmogorov distribution, ``P(K > lam)``.

    Args:
        lam: ``sqrt(n_eff) * D`` (after any small-sample correction).

    Returns:
        The probability, in [0, 1].
    """
    if lam < 0.2:
        return 1.0
    total = 0.0
    for k in range(1, 101):
        term = 2.0 * (-1.0) ** (k - 1) * math.exp(-2.0 * k * k * lam * lam)
        total += term
        if abs(term) < 1e-12:
            break
    return min(1.0, max(0.0, total))


def chi2_sf(x: float, dof: int) -> float:
    """Upper tail of the chi-square distribution, ``P(X > x)`` with ``dof`` degrees of freedom.

    Computed as the regularised upper incomplete gamma function ``Q(dof/2, x/2)`` (series
    below ``a + 1``, Lentz's continued fraction above), accurate to about 1e-12.

    Args:
        x: The statistic (negative values count as 0).
        dof: Degrees of freedom, at least 1.

    Returns:
        The probability, in [0, 1].

    Raises:
        InvalidInputError: ``dof`` is smaller than 1.
    """
    if dof < 1:
        raise InvalidInputError.for_field("dof", dof, "an integer >= 1")
    if x <= 0.0 or not math.isfinite(x):
        return 1.0 if x <= 0.0 or math.isnan(x) else 0.0
    a, z = dof / 2.0, x / 2.0
    log_front = a * math.log(z) - z - math.lgamma(a)
    if z < a + 1.0:  # P by its series, Q = 1 - P
        term = total = 1.0 / a
        ap = a
        for _ in range(10_000):
            ap += 1.0
            term *= z / ap
            total += term
            if abs(term) < abs(total) * 1e-15:
                break
        return min(1.0, max(0.0, 1.0 - total * math.exp(log_front)))
    tiny = 1e-300
    b = z + 1.0 - a
    c, d = 1.0 / tiny, 1.0 / b
    h = d
    for i in range(1, 10_000):
        an = -i * (i - a)
        b += 2.0
        d = an * d + b
        d = tiny if abs(d) < tiny else d
        c = b + an / c
        c = tiny if abs(c) < tiny else c
        d = 1.0 / d
        step = d * c
        h *= step
        if abs(step - 1.0) < 1e-15:
            break
    return min(1.0, max(0.0, math.exp(log_front) * h))


# ---------------------------------------------------------------- the tests


def _ks_from(obs: NumericObservation, ref: NumericReference) -> tuple[float, float]:
    if obs.n == 0 or ref.count == 0:
        return 0.0, 1.0
    d = max(
        float(np.max(np.abs(obs.cdf_right - ref.cdf_right))),
        float(np.max(np.abs(obs.cdf_left - ref.cdf_left))),
    )
    n_eff = ref.count * obs.n / (ref.count + obs.n)
    root = math.sqrt(n_eff)
    return d, kolmogorov_sf((root + 0.12 + 0.11 / root) * d)


def _numeric(
    reference: ColumnReference, current: Observation, test: str
) -> tuple[NumericReference, NumericObservation]:
    if not isinstance(reference, NumericReference) or not isinstance(current, NumericObservation):
        raise InvalidInputError.for_field("method", test, "a test for categorical columns")
    return reference, current


def ks(reference: ColumnReference, current: Observation) -> DriftScore:
    """Two-sample Kolmogorov-Smirnov test: the largest gap between the two CDFs.

    The CDFs are compared at the reference's quantile grid (1,001 points when fitted from
    data, 101 from a registry profile), so D is exact up to that resolution.

    Raises:
        InvalidInputError: The column is categorical.
    """
    ref, obs = _numeric(reference, current, "ks")
    d, p = _ks_from(obs, ref)
    return DriftScore(statistic=d, p_value=p, effect_size=d)


def wasserstein(reference: ColumnReference, current: Observation) -> DriftScore:
    """Wasserstein-1 (earth mover's) distance divided by the reference standard deviation.

    Read it as "the distribution moved by this many reference standard deviations". The
    area between the CDFs is integrated over the reference grid (exact for discrete data,
    trapezoidal between quantiles) plus the exact tails beyond the reference range. A
    constant reference (std 0) is not normalised. The p-value is the KS p-value of the
    same CDFs (Wasserstein has no closed-form null distribution).

    Raises:
        InvalidInputError: The column is categorical.
    """
    ref, obs = _numeric(reference, current, "wasserstein")
    if obs.n == 0 or ref.count == 0:
        return DriftScore(statistic=0.0, p_value=1.0, effect_size=0.0)
    a = obs.cdf_right[:-1] - ref.cdf_right[:-1]  # just right of each grid point
    b = obs.cdf_left[1:] - ref.cdf_left[1:]  # just left of the next one
    width = np.diff(ref.grid)
    same_sign = a * b >= 0
    absum = np.abs(a) + np.abs(b)
    crossing = np.divide(a * a + b * b, absum, out=np.zeros_like(absum), where=absum > 0)
    area = np.where(same_sign, absum / 2.0, crossing / 2.0) * width
    distance = float(area.sum()) + (obs.below_sum + obs.above_sum) / obs.n
    scale = ref.std if ref.std > 0 else 1.0
    _, p = _ks_from(obs, ref)
    value = distance / scale
    return DriftScore(statistic=value, p_value=p, effect_size=value)


def _bins(current: Observation) -> tuple[np.ndarray, np.ndarray]:
    ref, cur = current.ref_bins, current.cur_bins
    keep = (ref + cur) > 0
    return ref[keep].astype(np.float64), cur[keep].astype(np.float64)


def psi(reference: ColumnReference, current: Observation) -> DriftScore:
    """Population stability index over the reference's bins (or categories).

    ``sum((q - p) * ln(q / p))`` with ``p`` the reference and ``q`` the current shares,
    each count smoothed by half an observation so empty bins (and unseen categories) stay
    finite. Numeric bins are the reference deciles (a registry profile's 5 % quantile
    histogram, merged in pairs). Rule of thumb: < 0.1 stable, 0.1-0.25 moderate, > 0.25
    large.
    """
    ref, cur = _bins(current)
    n, m = float(ref.sum()), float(cur.sum())
    if ref.size < 2 or n == 0 or m == 0:
        return DriftScore(statistic=0.0, p_value=1.0, effect_size=0.0)
    p = (ref + 0.5) / (n + 0.5 * ref.size)
    q = (cur + 0.5) / (m + 0.5 * cur.size)
    value = float(np.sum((q - p) * np.log(q / p)))
    p_value = chi2_sf(value / (1.0 / n + 1.0 / m), ref.size - 1)
    return DriftScore(statistic=value, p_value=p_value, effect_size=value)


def jensenshannon(reference: ColumnReference, current: Observation) -> DriftScore:
    """Jensen-Shannon distance (square root of the divergence, natural log; 0 to 0.83).

    Over the same bins as PSI; unseen categories need no smoothing. Symmetric and bounded,
    which makes it the default for large categorical windows.
    """
    ref, cur = _bins(current)
    n, m = float(ref.sum()), float(cur.sum())
    if ref.size < 2 or n == 0 or m == 0:
        return DriftScore(statistic=0.0, p_value=1.0, effect_size=0.0)
    p, q = ref / n, cur / m
    mid = (p + q) / 2.0

    def _kl(x: np.ndarray) -> float:
        used = x > 0
        return float(np.sum(x[used] * np.log(x[used] / mid[used])))

    divergence = max(0.0, (_kl(p) + _kl(q)) / 2.0)
    value = math.sqrt(divergence)
    p_value = chi2_sf(8.0 * divergence / (1.0 / n + 1.0 / m), ref.size - 1)
    return DriftScore(statistic=value, p_value=p_value, effect_size=value)


def chisquare(reference: ColumnReference, current: Observation) -> DriftScore:
    """Chi-square test of homogeneity on the 2xK table of category counts.

    The statistic is Pearson's chi2 with K-1 degrees of freedom; the effect size is
    Cohen's ``w = sqrt(chi2 · (n + m) / (n · m))`` (0.1 small, 0.3 medium, 0.5 large),
    which does not grow with the window size the way chi2 does.

    Raises:
        InvalidInputError: The column is numeric.
    """
    if not isinstance(reference, CategoricalReference):
        raise InvalidInputError.for_field("method", "chisquare", "a test for numeric columns")
    ref, cur = _bins(current)
    n, m = float(ref.sum()), float(cur.sum())
    if ref.size < 2 or n == 0 or m == 0:
        return DriftScore(statistic=0.0, p_value=1.0, effect_size=0.0)
    total = n + m
    pooled = (ref + cur) / total
    expected_ref, expected_cur = pooled * n, pooled * m
    stat = float(np.sum((ref - expected_ref) ** 2 / expected_ref))
    stat += float(np.sum((cur - expected_cur) ** 2 / expected_cur))
    effect = math.sqrt(stat * total / (n * m))
    return DriftScore(statistic=stat, p_value=chi2_sf(stat, ref.size - 1), effect_size=effect)


# ---------------------------------------------------------------- the name → test dict


@dataclass(frozen=True)
class DriftMethod:
    """A named drift test: which column kinds it takes, its default threshold, its function."""

    name: str
    kinds: frozenset[str]
    default_threshold: float
    statistic: str
    """What ``DriftScore.statistic`` is, for tables and reports."""
    effect: str
    """What ``DriftScore.effect_size`` is (the quantity the threshold applies to)."""
    func: Callable[[ColumnReference, Observation], DriftScore]

    @property
    def doc(self) -> str:
        """The first line of the test function's docstring."""
        return (self.func.__doc__ or "").strip().splitlines()[0]


_BOTH = frozenset({"numeric", "categorical"})

DRIFT_METHODS: Mapping[str, DriftMethod] = MappingProxyType(
    {
        "ks": DriftMethod("ks", frozenset({"numeric"}), 0.1, "KS D", "KS D", ks),
        "psi": DriftMethod("psi", _BOTH, 0.1, "PSI", "PSI", psi),
        "wasserstein": DriftMethod(
            "wasserstein",
            frozenset({"numeric"}),
            0.2,
            "Wasserstein / std",
            "Wasserstein / std",
            wasserstein,
        ),
        "jensenshannon": DriftMethod(
            "jensenshannon", _BOTH, 0.1, "JS distance", "JS distance", jensenshannon
        ),
        "chisquare": DriftMethod(
            "chisquare", frozenset({"categorical"}), 0.2, "chi-square", "Cohen's w", chisquare
        ),
    }
)
"""Every drift test by name. ``"auto"`` is not in it: see :func:`choose_method`."""


def choose_method(kind: str, n_reference: int, n_current: int, *, constant: bool = False) -> str:
    """The test ``auto`` uses for a column, by kind and sample size.

    Numeric: KS when either side has at most ``SMALL_SAMPLE`` values or the reference is
    constant (a distance normalised by a zero spread means nothing), else Wasserstein.
    Categorical: chi-square up to ``SMALL_SAMPLE`` values, else Jensen-Shannon.

    Args:
        kind: ``"numeric"`` or ``"categorical"``.
        n_reference: Values the reference summary was built from.
        n_current: Values in the current window.
        constant: Whether the reference column holds a single value.

    Returns:
        A key of ``DRIFT_METHODS``.
    """
    small = min(n_reference, n_current) <= SMALL_SAMPLE
    if kind == "numeric":
        return "ks" if small or constant else "wasserstein"
    return "chisquare" if small else "jensenshannon"
