"""The audit trail of look-ups of persons: who (the client), when, which CPR number, through which endpoint.

Every answer that holds a person's data found by CPR number is recorded before it is sent; if the record cannot
be written the answer is not sent (503): a look-up nobody can trace must not happen. The rows live in production,
written through the services' own account (`service_url`, the primary), never through the façades' read-only
one, and never in the logs, which keep masking CPR numbers. The table holds CPR numbers in full: grant it to the
services' account for INSERT and to the auditors for SELECT only (README, "Access").
"""

import threading
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa

from importer.clock import Clock, SystemClock
from importer.db import MYSQL_TABLE_OPTIONS, DateTimeSeconds, PidType, create_engine
from importer.http.clients import metadata

audit_table = sa.Table(
    "stamdata_audit",
    metadata,
    sa.Column("Id", PidType, primary_key=True, autoincrement=True),
    sa.Column("AccessTime", DateTimeSeconds, nullable=False),
    sa.Column("Client", sa.String(300), nullable=False),
    sa.Column("CPR", sa.CHAR(10), nullable=False),
    sa.Column("Endpoint", sa.String(200), nullable=False),
    sa.Index("ix_stamdata_audit_cpr_time", "CPR", "AccessTime"),
    **MYSQL_TABLE_OPTIONS,
)


@dataclass(frozen=True)
class Access:
    time: datetime
    client: str
    cpr: str
    endpoint: str


class Auditor:
    """Writes audit rows through its own (writing) connection pool, created on first use."""

    def __init__(self, url: str, clock: Clock | None = None) -> None:
        self.url = url
        self.clock = clock or SystemClock()
        self._engine: sa.Engine | None = None
        self._lock = threading.Lock()

    def _get_engine(self) -> sa.Engine:
        with self._lock:
            if self._engine is None:
                self._engine = create_engine(self.url)
            return self._engine

    def record(self, client: str, cprs: list[str] | str, endpoint: str) -> None:
        """One row per person the answer names; committed before the caller sends its answer."""
        people = sorted({cprs} if isinstance(cprs, str) else set(cprs))
        if not people:
            return
        moment = self.clock.now().replace(microsecond=0, tzinfo=None)
        with self._get_engine().begin() as connection:
            connection.execute(audit_table.insert(), [
                {"AccessTime": moment, "Client": client, "CPR": cpr, "Endpoint": endpoint} for cpr in people])

    def close(self) -> None:
        with self._lock:
            if self._engine is not None:
                self._engine.dispose()
                self._engine = None


def accesses(connection: sa.Connection, cpr: str, since: datetime | None = None) -> list[Access]:
    """The look-ups of one person, oldest first."""
    table = audit_table.c
    person = table.CPR
    query = sa.select(table.AccessTime, table.Client, person, table.Endpoint).where(person == cpr)
    if since is not None:
        query = query.where(table.AccessTime >= since)
    return [Access(*row) for row in connection.execute(query.order_by(table.AccessTime, table.Id))]
