"""The online store contract on every adapter, and what a store that is down gives."""

from __future__ import annotations

import re
import socket
from pathlib import Path

import pytest

from bascule.core.errors import StorageError
from bascule.store.online import SQLiteOnlineStore, check_online_store
from bascule.testing import make_settings
from bascule.wiring import open_online_store


def test_sqlite_online_store_passes_the_contract(tmp_path: Path) -> None:
    store = SQLiteOnlineStore(tmp_path / "online.db")
    try:
        check_online_store(store)
    finally:
        store.close()


@pytest.mark.redis
def test_redis_online_store_passes_the_contract(redis_url: str) -> None:
    from bascule.store.online.redis import RedisOnlineStore

    store = RedisOnlineStore(redis_url)
    try:
        check_online_store(store)
    finally:
        store.close()


@pytest.mark.redis
def test_two_redis_prefixes_do_not_see_each_other(redis_url: str) -> None:
    from bascule.store.online.redis import RedisOnlineStore

    a = RedisOnlineStore(redis_url, prefix="a:")
    b = RedisOnlineStore(redis_url, prefix="b:")
    a.ensure_table("v", {"x": "int64"})
    a.write("v", ["x"], ["1"], [10], [[7]])

    assert [(10, (7,))] == a.read("v", ["1"], ["x"])
    assert [None] == b.read("v", ["1"], ["x"])
    assert 0 == b.count("v")
    a.close()
    b.close()


@pytest.mark.redis
def test_redis_rows_of_the_per_feature_layout_read_as_absent_until_written_again(
    redis_url: str,
) -> None:
    import redis

    from bascule.store.online.redis import RedisOnlineStore

    raw = redis.Redis.from_url(redis_url)
    raw.hset("old:v:1", mapping={"_ts": 10**15, "x": "7"})  # the layout before whole rows
    store = RedisOnlineStore(redis_url, prefix="old:")
    store.ensure_table("v", {"x": "int64"})

    before = store.read("v", ["1"], ["x"])
    store.write("v", ["x"], ["1"], [10], [[8]])
    after = store.read("v", ["1", "1"], ["x"])

    assert [None] == before
    assert [(10, (8,)), (10, (8,))] == after
    store.close()
    raw.close()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def test_redis_that_is_down_raises_storage_error_naming_it() -> None:
    from bascule.store.online.redis import RedisOnlineStore

    store = RedisOnlineStore(f"redis://:secret@127.0.0.1:{_closed_port()}/0", timeout_s=0.5)

    with pytest.raises(StorageError, match=re.escape("online store redis://:***@127.0.0.1")) as e:
        store.read("v", ["1", "2"], ["x"])
    assert "storage_error" == e.value.code
    assert "secret" not in str(e.value)
    with pytest.raises(StorageError):
        store.ping()
    store.close()


def test_sqlite_store_in_an_unwritable_place_raises_storage_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")

    with pytest.raises(StorageError) as e:
        SQLiteOnlineStore(blocker / "sub" / "online.db").ensure_table("v", {"x": "int64"})
    assert "storage_error" == e.value.code


def test_wiring_picks_sqlite_by_default_and_redis_for_redis_urls(tmp_path: Path) -> None:
    default = open_online_store(make_settings(tmp_path))
    redis_store = open_online_store(make_settings(tmp_path, online_store="redis://127.0.0.1:1/0"))

    assert f"sqlite:///{(tmp_path / 'online.db').resolve()}" == default.url
    assert "RedisOnlineStore" == type(redis_store).__name__
    default.close()
    redis_store.close()
