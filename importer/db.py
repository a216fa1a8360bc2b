"""Database access shared by every register: engines, the whole-second DATETIME type, bulk writes.

SQLite is the embedded default (nothing to install); MariaDB/MySQL through PyMySQL is production.
Everything dialect-specific lives here, behind functions that take a Connection.
"""

import contextlib
import math
import os
import sqlite3
import time
from collections.abc import Iterator, Sequence
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


def create_engine(url: str, *, readonly: bool = False, timeout_s: float | None = None) -> sa.Engine:
    """An engine whose transactions behave the same on SQLite and MariaDB.

    `timeout_s` bounds every round trip to a database server (connect, send, wait for an answer) and the wait
    for a pooled connection: a server that froze or a connection that went half-open becomes an error to
    retry instead of a hang. A read-only engine (status, façades) never creates the database it is given.
    """
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(parsed, readonly)
    if parsed.get_backend_name() in {"mysql", "mariadb"}:
        return _mysql_engine(parsed, readonly, timeout_s)
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


def _mysql_engine(url: sa.URL, readonly: bool, timeout_s: float | None) -> sa.Engine:
    query = dict(url.query)
    query.setdefault("charset", "utf8mb4")
    url = url.set(query=query)
    connect_args: dict[str, Any] = {"local_infile": True, "connect_timeout": CONNECT_TIMEOUT_S}
    options: dict[str, Any] = {}
    if timeout_s is not None:
        # PyMySQL takes whole seconds; anything shorter than one would mean "no timeout".
        seconds = max(1, round(timeout_s))
        connect_args.update(connect_timeout=min(CONNECT_TIMEOUT_S, seconds), read_timeout=seconds,
                            write_timeout=seconds)
        options["pool_timeout"] = timeout_s
    engine = sa.create_engine(url, pool_pre_ping=True, pool_recycle=3600, connect_args=connect_args, **options)
    if url.database and not readonly:
        _create_database_if_missing(url)
    return engine


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
