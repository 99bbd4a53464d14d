"""Factories of reference and current windows with known drift."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest

MakeFrame = Callable[..., pd.DataFrame]


@pytest.fixture
def make_frame() -> MakeFrame:
    """``make_frame(n, seed=, shift=, scale=, rho=, plan=)``: 4 numeric + 2 categorical columns.

    ``shift`` moves ``a`` and ``b`` (in sds), ``scale`` multiplies the spread of ``c``,
    ``rho`` is the correlation of ``a`` and ``d``, ``plan`` the shares of ``plan``.
    """

    def make(
        n: int,
        *,
        seed: int = 0,
        shift: float = 0.0,
        scale: float = 1.0,
        rho: float = 0.6,
        plan: tuple[float, float, float] = (0.6, 0.3, 0.1),
    ) -> pd.DataFrame:
        rng = np.random.default_rng(seed)
        a, noise = rng.standard_normal(n), rng.standard_normal(n)
        return pd.DataFrame(
            {
                "a": a + shift,
                "b": rng.standard_normal(n) + shift,
                "c": rng.standard_normal(n) * scale,
                "d": rho * a + np.sqrt(1 - rho**2) * noise,
                "plan": rng.choice(["basic", "pro", "team"], n, p=list(plan)),
                "region": rng.choice(["eu", "us", "apac", "latam"], n),
            }
        )

    return make
