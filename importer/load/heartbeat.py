"""The importer's heartbeat: one row per importer host in production, rewritten every `heartbeat_interval_s` and
after every import. Replication carries it to every replica like any other row, so a façade reading a replica
learns how far behind the primary its database is by comparing the newest heartbeat with its own clock (README,
"Beyond one machine"). It also tells an operator which importer hosts are alive.

The times are the importer's clock (naive UTC, whole seconds, like every stored time); hosts keep their clocks in
step with NTP, and a second of skew is a second of lag more or less.
"""

import os
import socket
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.dialects import mysql, sqlite

from importer import __version__
from importer.clock import whole_seconds
from importer.db import MYSQL_TABLE_OPTIONS, DateTimeSeconds, is_mysql

metadata = sa.MetaData()

heartbeat_table = sa.Table(
    "stamdata_heartbeat",
    metadata,
    sa.Column("Host", sa.String(255), primary_key=True),  # the importer host's name
    sa.Column("Beat", DateTimeSeconds, nullable=False),  # its clock at the last beat
    sa.Column("Pid", sa.Integer, nullable=False),
    sa.Column("Version", sa.String(50), nullable=False),
    # The transaction time of the newest import this host committed (NULL: none yet). Written after that commit, so
    # a database holding the row holds the import: what a façade asks of a replica (importer/http/consistency.py).
    sa.Column("Reached", DateTimeSeconds),
    **MYSQL_TABLE_OPTIONS,
)
_BEAT = heartbeat_table.c


def host_name() -> str:
    return socket.gethostname()[:255] or "unknown"


def beat(engine: sa.Engine, now: datetime, host: str | None = None, reached: datetime | None = None) -> None:
    """Write this host's heartbeat (one small autocommitted upsert: it never waits for an import). `reached`: the
    transaction time of an import this host has committed (None: the row keeps the one it names)."""
    values = {"Host": host or host_name(), "Beat": whole_seconds(now), "Pid": os.getpid(), "Version": __version__,
              "Reached": whole_seconds(reached) if reached is not None else None}
    with engine.connect() as connection:
        if is_mysql(connection):
            statement = mysql.insert(heartbeat_table).values(values)
            connection.execute(statement.on_duplicate_key_update(
                Beat=statement.inserted.Beat, Pid=statement.inserted.Pid, Version=statement.inserted.Version,
                Reached=sa.func.coalesce(statement.inserted.Reached, _BEAT.Reached)))
        else:
            statement_lite = sqlite.insert(heartbeat_table).values(values)
            connection.execute(statement_lite.on_conflict_do_update(
                index_elements=["Host"], set_={"Beat": values["Beat"], "Pid": values["Pid"],
                                               "Version": values["Version"],
                                               "Reached": sa.func.coalesce(statement_lite.excluded.Reached,
                                                                           _BEAT.Reached)}))
        connection.commit()


def newest(connection: sa.Connection) -> datetime | None:
    """The newest heartbeat this database holds (None: no importer has beaten into it, or an older schema)."""
    return _newest(connection, _BEAT.Beat)


def reached(connection: sa.Connection) -> datetime | None:
    """The newest import a heartbeat here names: this database holds every import up to it (None: none named)."""
    return _newest(connection, _BEAT.Reached)


def _newest(connection: sa.Connection, column: sa.ColumnElement[datetime]) -> datetime | None:
    try:
        return connection.execute(sa.select(sa.func.max(column))).scalar()
    except sa.exc.ProgrammingError:  # no such table: a database not migrated to this version yet
        connection.rollback()
        return None
    except sa.exc.OperationalError as error:
        if "no such table" in str(error.orig):  # SQLite says it this way
            connection.rollback()
            return None
        raise


def hosts(connection: sa.Connection) -> list[dict[str, object]]:
    """Every importer host that ever beat into this database, newest first (for the operator)."""
    rows = connection.execute(sa.select(heartbeat_table).order_by(_BEAT.Beat.desc())).mappings()
    return [dict(row) for row in rows]
