"""Database access shared by every register: engines, the whole-second DATETIME type, bulk writes.

SQLite is the embedded default (nothing to install); MariaDB/MySQL through PyMySQL is production.
Everything dialect-specific lives here, behind functions that take a Connection.
"""

import contextlib
import math
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import sqlite
from sqlalchemy.engine import make_url

from importer.errors import InfrastructureError

# Whole seconds, stored by SQLite as 'YYYY-MM-DD HH:MM:SS' so text order equals time order.
DateTimeSeconds = sa.DateTime().with_variant(
    sqlite.DATETIME(  # type: ignore[no-untyped-call]
        storage_format="%(year)04d-%(month)02d-%(day)02d %(hour)02d:%(minute)02d:%(second)02d",
        regexp=r"(\d+)-(\d+)-(\d+) (\d+):(\d+):(\d+)",
    ),
    "sqlite",
)

# A BIGINT surrogate key that still auto-increments on SQLite (which only does so for INTEGER PRIMARY KEY).
PidType = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

# Binary collation: codes and names compare exactly as delivered (the platform's tables use utf8_bin).
MYSQL_TABLE_OPTIONS: dict[str, Any] = {
    "mysql_engine": "InnoDB",
    "mysql_charset": "utf8mb4",
    "mysql_collate": "utf8mb4_bin",
}

# Bound parameters per statement stay well below SQLite's and MySQL's limits.
CHUNK = 5000


def is_mysql(connection: sa.Connection | sa.Engine) -> bool:
    return connection.dialect.name in {"mysql", "mariadb"}


CONNECT_TIMEOUT_S = 10.0
# GET_LOCK waits on the server without a word on the wire; it is asked in slices that fit the read timeout.
LOCK_POLL_S = 5


def create_engine(url: str, *, readonly: bool = False, timeout_s: float | None = None,
                  pool_size: int | None = None, ping_idle_s: float | None = None,
                  autocommit: bool = False) -> sa.Engine:
    """An engine whose transactions behave the same on SQLite and MariaDB.

    `timeout_s` bounds every round trip to a database server (connect, send, wait for an answer) and the wait
    for a pooled connection: a server that froze or a connection that went half-open becomes an error to
    retry instead of a hang. A read-only engine (status, façades) never creates the database it is given.
    `pool_size` keeps that many connections to a server open and opens no more (a busy server's requests wait
    for one): without it the pool keeps 5 and opens up to 10 more, closing each of those when it is given back,
    so a server answering more than 5 requests at once would connect anew for most of them.

    A pooled MariaDB connection is tested with a ping when it is taken from the pool (one round trip), so that
    one the server dropped meanwhile is replaced instead of failing a request. With `ping_idle_s` only those
    unused for longer are pinged: a connection in constant use has just proven itself, and if the server went
    away since, the failed statement invalidates the pool and the next request reconnects.

    `autocommit` sessions run each statement as its own transaction: for readers of one statement at a time
    (the façades' look-ups), which then need no ROLLBACK afterwards (with `ping_idle_s`, none is sent).
    SQLite's connections are in that mode outside SQLAlchemy's transactions already.
    """
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(parsed, readonly)
    if parsed.get_backend_name() in {"mysql", "mariadb"}:
        return _mysql_engine(parsed, readonly, timeout_s, pool_size, ping_idle_s, autocommit)
    raise InfrastructureError(f"unsupported database URL scheme {parsed.drivername!r} (use sqlite or mysql+pymysql)")


def _sqlite_engine(url: sa.URL, readonly: bool) -> sa.Engine:
    options: dict[str, Any] = {"connect_args": {"timeout": 60}}
    if url.database and url.database != ":memory:":
        path = Path(url.database)
        if readonly:
            # Opened read-only, so a missing database is an error to report, never an empty file created.
            address = f"{path.resolve().as_uri()}?mode=ro"
            options = {"creator": lambda: sqlite3.connect(address, uri=True, timeout=60, check_same_thread=False)}
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            # Personal data: private whatever the umask (SQLite gives its -wal and -shm files the same mode).
            with contextlib.suppress(FileExistsError):
                os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    engine = sa.create_engine(url, **options)

    @sa.event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, _: Any) -> None:
        # Let SQLAlchemy, not the sqlite3 module, decide where transactions begin; WAL lets readers
        # (status page, façades) read while an import writes.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=60000")
        cursor.close()

    @sa.event.listens_for(engine, "begin")
    def _begin(connection: sa.Connection) -> None:
        # IMMEDIATE takes the write lock up front, so two writers queue instead of deadlocking later.
        connection.exec_driver_sql("BEGIN" if readonly else "BEGIN IMMEDIATE")

    return engine


def _mysql_engine(url: sa.URL, readonly: bool, timeout_s: float | None, pool_size: int | None,
                  ping_idle_s: float | None, autocommit: bool) -> sa.Engine:
    query = dict(url.query)
    query.setdefault("charset", "utf8mb4")
    url = url.set(query=query)
    connect_args: dict[str, Any] = {"local_infile": True, "connect_timeout": CONNECT_TIMEOUT_S}
    if readonly and url.get_driver_name() == "pymysql":
        connect_args["conv"] = _read_conversions()
    options: dict[str, Any] = {"isolation_level": "AUTOCOMMIT"} if autocommit else {}
    if pool_size is not None:
        options.update(pool_size=pool_size, max_overflow=0)
    if timeout_s is not None:
        # PyMySQL takes whole seconds; anything shorter than one would mean "no timeout".
        seconds = max(1, round(timeout_s))
        connect_args.update(connect_timeout=min(CONNECT_TIMEOUT_S, seconds), read_timeout=seconds,
                            write_timeout=seconds)
        options["pool_timeout"] = timeout_s
    if ping_idle_s is not None:
        options["pool_reset_on_return"] = None  # _lean_pool resets instead
    engine = sa.create_engine(url, pool_pre_ping=ping_idle_s is None, pool_recycle=3600, connect_args=connect_args,
                              **options)
    if ping_idle_s is not None:
        _lean_pool(engine, ping_idle_s)
    if url.database and not readonly:
        _create_database_if_missing(url)
    return engine


def _lean_pool(engine: sa.Engine, idle_s: float) -> None:
    """The pool's pre-ping for connections given back more than `idle_s` ago only (see create_engine), and its
    reset (a ROLLBACK when a connection is given back) only where the last statement was not already followed by
    a rollback or commit (a request that rolled back its transaction itself would otherwise send two) and the
    server did not say that no transaction is open."""

    @sa.event.listens_for(engine, "checkout")
    def _taken(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        record.info["unfinished"] = True  # whatever happens next, reset it unless it is seen to end
        returned = record.info.get("returned_at")
        if returned is not None and time.monotonic() - returned <= idle_s:
            return
        try:
            dbapi_connection.ping(False)
        except Exception as error:  # the pool replaces it (up to three times) and the request goes on
            raise sa.exc.DisconnectionError(f"connection lost while idle: {error}") from error

    @sa.event.listens_for(engine, "before_cursor_execute")
    def _statement(connection: sa.Connection, *_: Any) -> None:
        connection.info["unfinished"] = True

    @sa.event.listens_for(engine, "rollback")
    @sa.event.listens_for(engine, "commit")
    def _ended(connection: sa.Connection) -> None:
        connection.info["unfinished"] = False

    @sa.event.listens_for(engine, "reset")
    def _reset(dbapi_connection: Any, record: Any, state: Any) -> None:
        unfinished = record.info.get("unfinished", True)
        if not state.terminate_only and unfinished and _may_be_in_transaction(dbapi_connection):
            dbapi_connection.rollback()
        record.info["unfinished"] = False
        record.info["returned_at"] = time.monotonic()


def _may_be_in_transaction(dbapi_connection: Any) -> bool:
    """False only for an autocommit session whose last answer from the server said no transaction is open.

    PyMySQL keeps the status flags of the server's last OK or EOF packet. In autocommit mode a transaction is
    open only after an explicit BEGIN, whose answer sets the flag; an error answer leaves the flags as they
    were, and no error opens a transaction in that mode. Outside autocommit the flags can be stale after an
    error (a failed first statement may have opened one), so a ROLLBACK is always sent there.
    """
    from pymysql.constants import SERVER_STATUS

    status = getattr(dbapi_connection, "server_status", None)
    if not isinstance(status, int):
        return True
    return not status & SERVER_STATUS.SERVER_STATUS_AUTOCOMMIT or bool(status & SERVER_STATUS.SERVER_STATUS_IN_TRANS)


def _read_conversions() -> dict[Any, Any]:
    """PyMySQL's conversions, with DATETIME and DATE values converted once per distinct text: the readers (the
    façades' feed pages above all) meet few distinct times (one per import, the validity dates) in many rows, and
    converting each in Python cost more than reading the rest of the row. The values are the same objects
    PyMySQL makes (immutable), and the caches are bounded."""
    from pymysql import converters
    from pymysql.constants import FIELD_TYPE

    conversions = dict(converters.conversions)
    conversions[FIELD_TYPE.DATETIME] = _cached(converters.convert_datetime)
    conversions[FIELD_TYPE.DATE] = _cached(converters.convert_date)
    return conversions


def _cached(convert: Any, limit: int = 65_536) -> Any:
    cache: dict[Any, Any] = {}

    def cached(text: Any) -> Any:
        found = cache.get(text)
        if found is None:
            found = convert(text)
            if len(cache) >= limit:  # bounded; a race with another thread at worst converts one again
                cache.clear()
            cache[text] = found
        return found

    return cached


class LazyEngine:
    """An engine made by `make` on first use, so that an unreachable database fails that use (a 503, a retry) rather
    than the start; thread-safe. `dispose` closes its connections, and the next use makes a new one."""

    def __init__(self, make: Callable[[], sa.Engine]) -> None:
        self._make = make
        self._engine: sa.Engine | None = None
        self._lock = threading.Lock()

    def get(self) -> sa.Engine:
        with self._lock:
            if self._engine is None:
                self._engine = self._make()
            return self._engine

    def dispose(self) -> None:
        with self._lock:
            if self._engine is not None:
                self._engine.dispose()
                self._engine = None


def get_lock(connection: sa.Connection, name: str, wait_s: float) -> bool:
    """MariaDB's named lock `name` for this session, waiting up to `wait_s`; False if another session keeps it.

    Asked for in slices of a few seconds, so that no single wait outlasts the connection's read timeout."""
    deadline = time.monotonic() + max(0.0, wait_s)
    while True:
        slice_s = max(0, min(LOCK_POLL_S, math.ceil(deadline - time.monotonic())))
        got = connection.execute(sa.text("SELECT GET_LOCK(:name, :timeout)"), {"name": name, "timeout": slice_s})
        if got.scalar() == 1:
            return True
        if time.monotonic() >= deadline:
            return False


def _create_database_if_missing(url: sa.URL) -> None:
    """A fresh deployment names a database that does not exist yet; create it rather than fail."""
    server = sa.create_engine(url.set(database=""), connect_args={"connect_timeout": CONNECT_TIMEOUT_S})
    name = url.database or ""
    try:
        with server.connect() as connection:
            exists = connection.execute(
                sa.text("SELECT 1 FROM information_schema.schemata WHERE schema_name = :name"), {"name": name}
            ).first()
            if not exists:
                quoted = connection.dialect.identifier_preparer.quote(name)
                connection.exec_driver_sql(
                    f"CREATE DATABASE IF NOT EXISTS {quoted} CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"
                )
    except sa.exc.DBAPIError as error:
        where = url.render_as_string()
        raise InfrastructureError(f"database server for {where} unreachable: {error.orig}") from error
    finally:
        server.dispose()


# MariaDB/MySQL: no such table.
_NO_SUCH_TABLE = 1146


def table_exists(connection: sa.Connection, name: str) -> bool:
    """Whether the connection's database holds table `name`.

    On MariaDB/MySQL SQLAlchemy's `has_table` sends `DESCRIBE`, which the server answers from an information-schema
    table with blob columns, so every call creates and drops an on-disk temporary table in the server's tmpdir; the
    status page and the operator page ask on every request. A `SELECT ... LIMIT 0` reads nothing and needs no
    temporary table; the same privilege (SELECT on the table) is enough for both."""
    if not is_mysql(connection):
        return sa.inspect(connection).has_table(name)
    quoted = connection.dialect.identifier_preparer.quote(name)
    try:
        connection.exec_driver_sql(f"SELECT 1 FROM {quoted} LIMIT 0").close()
    except sa.exc.DBAPIError as error:
        code = error.orig.args[0] if error.orig is not None and error.orig.args else None
        if code == _NO_SUCH_TABLE:
            return False
        raise
    return True


def chunks(items: Sequence[Any], size: int = CHUNK) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
