"""The façades' database: read-only connections with the façade account, and the clock their answers use.

Everything a façade reads goes through `FacadeDatabase`, which connects with the façade account (`facade_url`, by
default the production URL) and additionally marks every session read-only, so a façade cannot write even when
it is given an account that could.
"""

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa

from importer.clock import Clock, SystemClock
from importer.db import create_engine


class FacadeDatabase:
    """Read-only connections, created lazily so an unreachable database is a 503, not a failed start."""

    def __init__(self, url: str, clock: Clock | None = None) -> None:
        self.url = url
        self.clock = clock or SystemClock()  # "now" of every answer (the feed's `updated`, a look-up's default)
        self._engine: sa.Engine | None = None
        self._lock = threading.Lock()

    def engine(self) -> sa.Engine:
        with self._lock:
            if self._engine is None:
                engine = create_engine(self.url, readonly=True)
                sa.event.listen(engine, "connect", _read_only_session)
                self._engine = engine
            return self._engine

    @contextmanager
    def connect(self) -> Iterator[sa.Connection]:
        """One transaction per request (one consistent snapshot), always rolled back: nothing is written."""
        with self.engine().connect() as connection:
            transaction = connection.begin()
            try:
                yield connection
            finally:
                transaction.rollback()

    def close(self) -> None:
        with self._lock:
            if self._engine is not None:
                self._engine.dispose()
                self._engine = None


def _read_only_session(dbapi_connection: Any, _: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        if type(dbapi_connection).__module__.startswith("sqlite3"):
            cursor.execute("PRAGMA query_only = ON")
        else:
            cursor.execute("SET SESSION TRANSACTION READ ONLY")
    finally:
        cursor.close()
