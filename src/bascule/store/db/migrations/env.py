"""Alembic environment: bascule passes a live connection in ``config.attributes``."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from bascule.store.db import (
    feature_tables,  # noqa: F401  (registers the feature store tables)
    monitoring_tables,  # noqa: F401  (registers the monitoring tables)
)
from bascule.store.db.engine import normalise_url
from bascule.store.db.tables import Base

config = context.config
target_metadata = Base.metadata


def _run(connection: object) -> None:
    context.configure(
        connection=connection,  # type: ignore[arg-type]  # alembic types it as Connection
        target_metadata=target_metadata,
        render_as_batch=True,
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


connection = config.attributes.get("connection")
if connection is not None:
    _run(connection)
else:
    # `alembic` on the command line (e.g. `alembic check`): URL from -x url=... or an in-memory DB.
    url = context.get_x_argument(as_dictionary=True).get("url", "sqlite://")
    engine = create_engine(normalise_url(url))
    with engine.begin() as conn:
        _run(conn)
