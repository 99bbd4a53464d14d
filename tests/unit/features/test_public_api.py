from __future__ import annotations

import subprocess
import sys

import bascule.features


def test_all_is_unique_and_every_name_resolves() -> None:
    assert len(set(bascule.features.__all__)) == len(bascule.features.__all__)
    for name in bascule.features.__all__:
        assert getattr(bascule.features, name) is not None


def test_definitions_import_no_storage_or_engine() -> None:
    code = (
        "import sys, bascule, bascule.features; "
        "heavy = {'duckdb', 'sqlalchemy', 'pandas', 'redis', 'bascule.features.store'}; "
        "print(sorted(heavy & set(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)

    assert "[]" == out.stdout.strip()
