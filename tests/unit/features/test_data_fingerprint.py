"""Data fingerprints of file sources come from each file's path, size and modification time
(never its bytes, so they cost the same for a 1M-row file as for a small one): unchanged files
keep their fingerprint, and any rewrite, touch, added or removed file changes it."""

from __future__ import annotations

import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from bascule.features import FileSource
from bascule.features.offline import DuckDBOfflineStore


def _write(path: Path, values: list[int]) -> None:
    pq.write_table(pa.table({"x": values}), path)


def test_a_file_source_keeps_its_fingerprint_until_a_file_changes(tmp_path: Path) -> None:
    store = DuckDBOfflineStore()
    folder = tmp_path / "events"
    folder.mkdir()
    _write(folder / "a.parquet", [1, 2])
    source = FileSource(str(folder))

    first = store.data_fingerprint(source)
    again = store.data_fingerprint(source)
    st = os.stat(folder / "a.parquet")
    os.utime(folder / "a.parquet", ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    touched = store.data_fingerprint(source)
    _write(folder / "b.parquet", [3])
    added = store.data_fingerprint(source)
    (folder / "b.parquet").unlink()
    removed = store.data_fingerprint(source)

    assert first == again
    assert len({first, touched, added}) == 3
    assert touched == removed


def test_a_file_rewritten_with_other_values_of_the_same_size_changes_it(tmp_path: Path) -> None:
    store = DuckDBOfflineStore()
    path = tmp_path / "a.parquet"
    _write(path, [1, 2])
    source = FileSource(str(path))
    before = store.data_fingerprint(source)
    size = path.stat().st_size
    mtime = path.stat().st_mtime_ns

    _write(path, [3, 4])
    os.utime(path, ns=(mtime + 1_000_000, mtime + 1_000_000))

    assert size == path.stat().st_size
    assert before != store.data_fingerprint(source)
