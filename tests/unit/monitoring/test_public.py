"""The public surface of bascule.monitoring and bascule.business."""

from __future__ import annotations

import subprocess
import sys

import pytest

import bascule.business
import bascule.monitoring


@pytest.mark.parametrize("module", [bascule.monitoring, bascule.business])
def test_all_is_sorted_and_importable(module) -> None:
    assert sorted(module.__all__) == module.__all__
    for name in module.__all__:
        assert getattr(module, name) is not None


def test_importing_monitoring_loads_neither_sklearn_nor_scipy() -> None:
    code = (
        "import sys, bascule.monitoring, bascule.business;"
        "print(sorted({'sklearn', 'scipy', 'matplotlib'} & set(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)

    assert "[]" == out.stdout.strip()
