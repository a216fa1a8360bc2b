"""The ImportStatus table every register has: one row per run, written so that it tells the truth.

The start row is committed on its own, so a long import shows as running; SUCCESS is written in the
import's own transaction, so it exists exactly when the data does; FAILURE is written after the rollback,
so it survives it. A row is always ended by its own id.
"""

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from importer.db import MYSQL_TABLE_OPTIONS, DateTimeSeconds, PidType
from importer.load.plugin import PreviousImport

SUCCESS = "SUCCESS"
FAILURE = "FAILURE"
# A preflight run whose production twin never committed, undone by re-synchronisation.
REVERTED = "REVERTED"

MESSAGE_LENGTH = 4000


def import_status_table(name: str, metadata: sa.MetaData) -> sa.Table:
    return sa.Table(
        name,
        metadata,
        sa.Column("Id", PidType, primary_key=True, autoincrement=True),
        sa.Column("StartTime", DateTimeSeconds, nullable=False),
        sa.Column("EndTime", DateTimeSeconds),
        sa.Column("Outcome", sa.String(20)),
        sa.Column("RunId", sa.String(64)),
        sa.Column("Dataset", sa.String(255)),
        sa.Column("DatasetVersion", sa.String(32)),
        sa.Column("InputFiles", sa.Text),
        sa.Column("TransactionTime", DateTimeSeconds),
        sa.Column("ValidFrom", DateTimeSeconds),
        sa.Column("RowsRead", sa.BigInteger),
        sa.Column("RowsInserted", sa.BigInteger),
        sa.Column("RowsUpdated", sa.BigInteger),
        sa.Column("RowsClosed", sa.BigInteger),
        sa.Column("RowsUnchanged", sa.BigInteger),
        sa.Column("Warnings", sa.Integer),
        sa.Column("Forced", sa.Boolean),
        sa.Column("Message", sa.String(MESSAGE_LENGTH)),
        sa.Index(f"ix_{name}_StartTime", "StartTime"),
        **MYSQL_TABLE_OPTIONS,
    )


@dataclass(frozen=True)
class RunCounts:
    rows_read: int = 0
    inserted: int = 0
    updated: int = 0
    closed: int = 0
    unchanged: int = 0
    warnings: int = 0

    def as_columns(self) -> dict[str, int]:
        return {
            "RowsRead": self.rows_read,
            "RowsInserted": self.inserted,
            "RowsUpdated": self.updated,
            "RowsClosed": self.closed,
            "RowsUnchanged": self.unchanged,
            "Warnings": self.warnings,
        }


def start(
    engine: sa.Engine,
    table: sa.Table,
    *,
    run_id: str,
    dataset: str,
    version: str,
    files: Mapping[str, str],
    transaction_time: datetime,
    started: datetime,
) -> int:
    with engine.begin() as connection:
        result = connection.execute(
            table.insert().values(
                StartTime=started,
                RunId=run_id,
                Dataset=dataset[:255],
                DatasetVersion=version,
                InputFiles=json.dumps(dict(files), sort_keys=True),
                TransactionTime=transaction_time,
            )
        )
        key = result.inserted_primary_key
        assert key is not None
        return int(key[0])


def succeed(
    connection: sa.Connection,
    table: sa.Table,
    status_id: int,
    *,
    ended: datetime,
    valid_from: datetime,
    counts: RunCounts,
    forced: bool,
    message: str,
) -> None:
    connection.execute(
        table.update()
        .where(table.c.Id == status_id)
        .values(
            EndTime=ended,
            Outcome=SUCCESS,
            ValidFrom=valid_from,
            Forced=forced,
            Message=message[:MESSAGE_LENGTH],
            **counts.as_columns(),
        )
    )


def fail(engine: sa.Engine, table: sa.Table, status_id: int, *, ended: datetime, message: str) -> None:
    with engine.begin() as connection:
        connection.execute(
            table.update()
            .where(table.c.Id == status_id)
            .values(EndTime=ended, Outcome=FAILURE, Message=message[:MESSAGE_LENGTH])
        )


def record_failure(
    engine: sa.Engine, table: sa.Table, *, run_id: str, dataset: str, started: datetime, ended: datetime, message: str
) -> None:
    """Make sure a failed run has its row here: its open row ended as FAILURE, or, if the run never got as far
    as writing one (refused while parsing, a database that was down), a complete FAILURE row. A row the run
    already ended (preflight's SUCCESS when production failed) is left as it is."""
    with engine.begin() as connection:
        ended_open = connection.execute(
            table.update()
            .where(table.c.RunId == run_id, table.c.EndTime.is_(None))
            .values(EndTime=ended, Outcome=FAILURE, Message=message[:MESSAGE_LENGTH])
        ).rowcount
        if ended_open:
            return
        exists = connection.execute(sa.select(table.c.Id).where(table.c.RunId == run_id).limit(1)).first()
        if exists is None:
            connection.execute(table.insert().values(
                StartTime=started, EndTime=ended, Outcome=FAILURE, RunId=run_id, Dataset=dataset[:255],
                Message=message[:MESSAGE_LENGTH],
            ))


def latest_success(connection: sa.Connection, table: sa.Table) -> PreviousImport | None:
    row = connection.execute(
        sa.select(table.c.DatasetVersion, table.c.ValidFrom, table.c.Dataset, table.c.TransactionTime)
        .where(table.c.Outcome == SUCCESS)
        .order_by(table.c.TransactionTime.desc(), table.c.Id.desc())
        .limit(1)
    ).first()
    if row is None:
        return None
    return PreviousImport(version=row.DatasetVersion, valid_from=row.ValidFrom, dataset=row.Dataset)


def latest_success_time(connection: sa.Connection, table: sa.Table) -> datetime | None:
    """The transaction time of the data a database holds: how preflight and production are compared."""
    value = connection.execute(
        sa.select(sa.func.max(table.c.TransactionTime)).where(table.c.Outcome == SUCCESS)
    ).scalar()
    return _as_datetime(value)


def latest_transaction_time(connection: sa.Connection, table: sa.Table) -> datetime | None:
    value = connection.execute(sa.select(sa.func.max(table.c.TransactionTime))).scalar()
    return _as_datetime(value)


def recent(connection: sa.Connection, table: sa.Table, limit: int = 1) -> list[dict[str, Any]]:
    rows = connection.execute(sa.select(table).order_by(table.c.Id.desc()).limit(limit)).mappings().all()
    return [dict(row) for row in rows]


def _as_datetime(value: Any) -> datetime | None:
    """Aggregates lose the column type on SQLite (text comes back); bring them back to datetime."""
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromisoformat(str(value))
