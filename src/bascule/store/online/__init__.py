"""Online stores: the latest feature values per entity, for serving.

``SQLiteOnlineStore`` is the embedded default; ``RedisOnlineStore`` (extra ``bascule[redis]``)
is imported from :mod:`bascule.store.online.redis` only when a ``redis://`` URL is used.
"""

from __future__ import annotations

from bascule.store.online.base import ONLINE_DTYPES, OnlineRow, OnlineStore
from bascule.store.online.checks import check_online_store
from bascule.store.online.sqlite import SQLiteOnlineStore

__all__ = ["ONLINE_DTYPES", "OnlineRow", "OnlineStore", "SQLiteOnlineStore", "check_online_store"]
