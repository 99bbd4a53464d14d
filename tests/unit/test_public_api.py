from __future__ import annotations

import subprocess
import sys

import bascule


def test_all_is_sorted_and_complete() -> None:
    public = {"Client", "__version__", "load_model", "register_model", "set_alias", "start_run"}

    assert sorted(bascule.__all__) == bascule.__all__
    assert public == set(bascule.__all__)
    for name in bascule.__all__:
        assert getattr(bascule, name) is not None


def test_import_bascule_loads_no_heavy_library() -> None:
    code = (
        "import sys, bascule; "
        "heavy = {'pandas', 'numpy', 'sqlalchemy', 'onnxruntime', 'sklearn', 'fastapi'};"
        "print(sorted(heavy & set(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)

    assert "[]" == out.stdout.strip()
