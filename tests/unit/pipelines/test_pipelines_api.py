"""The public surface of bascule.pipelines: sorted, complete, cheap to import."""

from __future__ import annotations

import subprocess
import sys

import bascule.pipelines


def test_all_is_sorted_and_every_name_resolves() -> None:
    names = bascule.pipelines.__all__

    assert sorted(names) == names
    for name in names:
        assert getattr(bascule.pipelines, name) is not None


def test_importing_pipelines_loads_no_heavy_library() -> None:
    code = (
        "import sys, bascule.pipelines;"
        "heavy = {'pandas', 'numpy', 'sqlalchemy', 'ray', 'sklearn', 'pyarrow'};"
        "print(sorted(heavy & set(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)

    assert "[]" == out.stdout.strip()


def test_step_and_pipeline_alone_stay_light() -> None:
    code = (
        "import sys; from bascule.pipelines import Pipeline, step;"
        "heavy = {'pandas', 'sqlalchemy', 'ray'};"
        "print(sorted(heavy & set(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)

    assert "[]" == out.stdout.strip()
