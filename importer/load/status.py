"""The ImportStatus table every register has: one row per run, written so that it tells the truth.

`ImportStatus` owns every query of that table: nothing else in the engine reads or writes it. The start row is
committed on its own, so a long import shows as running; SUCCESS is written in the import's own transaction,
so it exists exactly when the data does; FAILURE is written after the rollback, so it survives it. A row is
always ended by its own id.
"""

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from importer.db import MYSQL_TABLE_OPTIONS, DateTimeSeconds, PidType
from importer.load.plugin import PreviousImport, Register

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
        sa.Column("DatasetDigest", sa.CHAR(64)),  # sha256 of the inbox entry as delivered (see inbox.entry_digest)
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


@dataclass(frozen=True)
class Started:
    """What a run's start row says: known once the dataset is parsed and the transaction time chosen."""

    run_id: str
    dataset: str
    version: str
    files: Mapping[str, str]
    digest: str  # of the inbox entry as delivered
    transaction_time: datetime
    started: datetime


@dataclass(frozen=True)
class Succeeded:
    ended: datetime
    valid_from: datetime
    counts: RunCounts
    forced: bool
    message: str


@dataclass(frozen=True)
class PastRun:
    """One run as its row tells it, for the history an operator looks at (the page's chart)."""

    run_id: str | None
    dataset: str | None
    outcome: str | None  # SUCCESS, FAILURE, REVERTED, or None while it runs
    started: datetime
    ended: datetime | None
    inserted: int
    updated: int
    closed: int
    message: str | None


@dataclass(frozen=True)
class FailedRun:
    """A run that failed, as its row says it: refused, an infrastructure error, or a bug (see failure_message)."""

    run_id: str
    dataset: str
    started: datetime
    ended: datetime
    message: str


class ImportStatus:
    """One register's ImportStatus table, in whichever database a connection or engine points at."""

    def __init__(self, table: sa.Table) -> None:
        self.table = table

    @classmethod
    def of(cls, register: Register) -> "ImportStatus":
        return cls(register.metadata.tables[register.status_table_name])

    # --- the life of a run's row ------------------------------------------------------------------------------

    def start(self, engine: sa.Engine, run: Started) -> int:
        with engine.begin() as connection:
            result = connection.execute(
                self.table.insert().values(
                    StartTime=run.started,
                    RunId=run.run_id,
                    Dataset=run.dataset[:255],
                    DatasetVersion=run.version,
                    InputFiles=json.dumps(dict(run.files), sort_keys=True),
                    DatasetDigest=run.digest,
                    TransactionTime=run.transaction_time,
                )
            )
            key = result.inserted_primary_key
            assert key is not None
            return int(key[0])

    def succeed(self, connection: sa.Connection, status_id: int, outcome: Succeeded) -> None:
        """In the import's own transaction: the row says SUCCESS exactly when the data is there."""
        connection.execute(
            self.table.update()
            .where(self.table.c.Id == status_id)
            .values(EndTime=outcome.ended, Outcome=SUCCESS, ValidFrom=outcome.valid_from, Forced=outcome.forced,
                    Message=outcome.message[:MESSAGE_LENGTH], **outcome.counts.as_columns())
        )

    def fail(self, engine: sa.Engine, status_id: int, *, ended: datetime, message: str) -> None:
        with engine.begin() as connection:
            connection.execute(
                self.table.update()
                .where(self.table.c.Id == status_id)
                .values(EndTime=ended, Outcome=FAILURE, Message=message[:MESSAGE_LENGTH])
            )

    def record_failure(self, engine: sa.Engine, failed: FailedRun) -> None:
        """Make sure a failed run has its row here: its open row ended as FAILURE, or, if the run never got as
        far as writing one (refused while parsing, a database that was down), a complete FAILURE row. A row the
        run already ended (preflight's SUCCESS when production failed) is left as it is."""
        table = self.table
        with engine.begin() as connection:
            ended_open = connection.execute(
                table.update()
                .where(table.c.RunId == failed.run_id, table.c.EndTime.is_(None))
                .values(EndTime=failed.ended, Outcome=FAILURE, Message=failed.message[:MESSAGE_LENGTH])
            ).rowcount
            if ended_open:
                return
            exists = connection.execute(sa.select(table.c.Id).where(table.c.RunId == failed.run_id).limit(1)).first()
            if exists is None:
                connection.execute(table.insert().values(
                    StartTime=failed.started, EndTime=failed.ended, Outcome=FAILURE, RunId=failed.run_id,
                    Dataset=failed.dataset[:255], Message=failed.message[:MESSAGE_LENGTH],
                ))

    def end_interrupted(self, engine: sa.Engine, ended: datetime) -> None:
        """Under the register lock, a row still running belongs to a process that died: say so."""
        with engine.begin() as connection:
            connection.execute(
                self.table.update()
                .where(self.table.c.EndTime.is_(None))
                .values(EndTime=ended, Outcome=FAILURE, Message="interrupted: the importer stopped during this run")
            )

    # --- what the rows tell -----------------------------------------------------------------------------------

    def latest_success(self, connection: sa.Connection) -> PreviousImport | None:
        table = self.table
        row = connection.execute(
            sa.select(table.c.DatasetVersion, table.c.ValidFrom, table.c.Dataset, table.c.TransactionTime)
            .where(table.c.Outcome == SUCCESS)
            .order_by(table.c.TransactionTime.desc(), table.c.Id.desc())
            .limit(1)
        ).first()
        if row is None:
            return None
        return PreviousImport(version=row.DatasetVersion, valid_from=row.ValidFrom, dataset=row.Dataset)

    def latest_success_time(self, connection: sa.Connection) -> datetime | None:
        """The transaction time of the data a database holds: how preflight and production are compared."""
        value = connection.execute(
            sa.select(sa.func.max(self.table.c.TransactionTime)).where(self.table.c.Outcome == SUCCESS)
        ).scalar()
        return _as_datetime(value)

    def latest_transaction_time(self, connection: sa.Connection) -> datetime | None:
        return _as_datetime(connection.execute(sa.select(sa.func.max(self.table.c.TransactionTime))).scalar())

    def last_success_end(self, connection: sa.Connection) -> datetime | None:
        value = connection.execute(
            sa.select(sa.func.max(self.table.c.EndTime)).where(self.table.c.Outcome == SUCCESS)
        ).scalar()
        return _as_datetime(value)

    def recent(self, connection: sa.Connection, limit: int = 1) -> list[dict[str, Any]]:
        """The last `limit` attempts, newest first."""
        rows = connection.execute(
            sa.select(self.table).order_by(self.table.c.Id.desc()).limit(limit)
        ).mappings().all()
        return [dict(row) for row in rows]

    def history(self, connection: sa.Connection, limit: int = 90) -> list[PastRun]:
        """The last `limit` runs, oldest first: what each did (rows inserted, updated, closed) and how it ended."""
        table = self.table
        rows = connection.execute(
            sa.select(table.c.RunId, table.c.Dataset, table.c.Outcome, table.c.StartTime, table.c.EndTime,
                      table.c.RowsInserted, table.c.RowsUpdated, table.c.RowsClosed, table.c.Message)
            .order_by(table.c.Id.desc())
            .limit(limit)
        ).all()
        return [
            PastRun(run_id=row.RunId, dataset=row.Dataset, outcome=row.Outcome, started=row.StartTime,
                    ended=row.EndTime, inserted=int(row.RowsInserted or 0), updated=int(row.RowsUpdated or 0),
                    closed=int(row.RowsClosed or 0), message=row.Message)
            for row in reversed(rows)
        ]

    def imported_datasets(self, connection: sa.Connection) -> set[str]:
        rows = connection.execute(sa.select(self.table.c.Dataset).where(self.table.c.Outcome == SUCCESS))
        return {row.Dataset for row in rows}

    def successes_of(self, connection: sa.Connection, dataset: str) -> list[tuple[str | None, dict[str, str]]]:
        """(entry digest, input files) of every successful import of a dataset of that name; the digest is None
        for runs recorded before it was kept."""
        rows = connection.execute(
            sa.select(self.table.c.DatasetDigest, self.table.c.InputFiles)
            .where(self.table.c.Outcome == SUCCESS, self.table.c.Dataset == dataset[:255])
        ).all()
        return [(row.DatasetDigest, _json_dict(row.InputFiles)) for row in rows]

    # --- re-synchronisation -----------------------------------------------------------------------------------

    def align(self, source: sa.Connection, target: sa.Connection) -> None:
        """Bring the target's rows in line with the source's: its successes the source never committed become
        REVERTED, and successes it lacks are copied, so both agree on what was imported last."""
        table = self.table
        source_time = self.latest_success_time(source)
        reverted = table.c.Outcome == SUCCESS
        if source_time is not None:
            reverted = sa.and_(reverted, table.c.TransactionTime > source_time)
        target.execute(
            table.update()
            .where(reverted)
            .values(Outcome=REVERTED, Message="reverted: production never committed this import")
        )
        target_time = self.latest_success_time(target)
        missing = sa.select(table).where(table.c.Outcome == SUCCESS)
        if target_time is not None:
            missing = missing.where(table.c.TransactionTime > target_time)
        copies = [{k: v for k, v in row.items() if k != "Id"} for row in source.execute(missing).mappings()]
        if copies:
            target.execute(table.insert(), copies)


def _json_dict(text: Any) -> dict[str, str]:
    try:
        value = json.loads(text or "{}")
    except ValueError:
        return {}
    return {str(k): str(v) for k, v in value.items()} if isinstance(value, dict) else {}


def _as_datetime(value: Any) -> datetime | None:
    """Aggregates lose the column type on SQLite (text comes back); bring them back to datetime."""
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromisoformat(str(value))
