"""The audit trail of look-ups of persons: who (the client), when, which CPR number, through which endpoint.

Every answer that holds a person's data found by CPR number is recorded before it is sent; if the record cannot
be written the answer is not sent (503): a look-up nobody can trace must not happen. The rows live in production,
written through the services' own account (`service_url`, the primary), never through the façades' read-only
one, and never in the logs, which keep masking CPR numbers. The table holds CPR numbers in full: grant it to the
services' account for INSERT and to the auditors for SELECT only (README, "Access").

Group commit: a look-up waits for its rows' commit before it answers, but the rows of look-ups made at the same
time share one transaction. One writer thread takes every row waiting, inserts them in one statement and commits
once, then releases each look-up; rows that arrive meanwhile wait for the next commit. A failed commit fails
every look-up whose rows were in it (503: none of them is answered), so no answer leaves without its row.
"""

import asyncio
import queue
import threading
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from importer.clock import Clock, SystemClock
from importer.db import MYSQL_TABLE_OPTIONS, DateTimeSeconds, LazyEngine, PidType, create_engine
from importer.http.batch import settle_on_their_loops
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


# At most this many rows go into one transaction; more wait for the next.
BATCH_ROWS = 1000


class Auditor:
    """Writes audit rows through its own (writing) connection pool, created on first use, by group commit."""

    def __init__(self, url: str, clock: Clock | None = None) -> None:
        self.url = url
        self.clock = clock or SystemClock()
        # One writer, one connection; pinged only after a pause (a failed commit is a 503 anyway).
        self._engine = LazyEngine(lambda: create_engine(self.url, pool_size=1, ping_idle_s=1.0))
        self._lock = threading.Lock()
        # The writer thread and its queue (each writer its own: close() ends exactly the one it stops).
        self._writer: tuple[threading.Thread, queue.SimpleQueue[_Pending | None]] | None = None

    def record(self, client: str, cprs: list[str] | str, endpoint: str) -> None:
        """One row per person the answer names; returns once they are committed (raises if they cannot be)."""
        pending = self.submit(client, cprs, endpoint)
        if pending is not None:
            pending.result()

    async def record_async(self, client: str, cprs: list[str] | str, endpoint: str) -> None:
        """`record` for the event loop: the request waits for the commit without holding a thread (the writer
        wakes the loop once for every look-up of a commit, not once for each)."""
        waiter = asyncio.get_running_loop().create_future()
        if self.submit(client, cprs, endpoint, waiter) is not None:
            await waiter

    def submit(self, client: str, cprs: list[str] | str, endpoint: str,
               waiter: "asyncio.Future[None] | None" = None) -> "Future[None] | None":
        """Queues the rows for the next commit; the future (and `waiter`, on its loop) is done when they are
        committed. None: no rows."""
        people = sorted({cprs} if isinstance(cprs, str) else set(cprs))
        if not people:
            return None
        moment = self.clock.now().replace(microsecond=0, tzinfo=None)
        pending = _Pending([{"AccessTime": moment, "Client": client, "CPR": cpr, "Endpoint": endpoint}
                            for cpr in people], waiter)
        with self._lock:
            if self._writer is None or not self._writer[0].is_alive():
                waiting: queue.SimpleQueue[_Pending | None] = queue.SimpleQueue()
                writer = threading.Thread(target=self._write_batches, args=(waiting,), name="audit-writer",
                                          daemon=True)
                writer.start()
                self._writer = (writer, waiting)
            self._writer[1].put(pending)
        return pending

    def _write_batches(self, waiting: "queue.SimpleQueue[_Pending | None]") -> None:
        """The writer: everything waiting, in one transaction per batch, until close() sends None."""
        while True:
            first = waiting.get()
            if first is None:
                return
            batch, rows, stop = [first], len(first.rows), False
            while rows < BATCH_ROWS:
                try:
                    more = waiting.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    stop = True
                    break
                batch.append(more)
                rows += len(more.rows)
            self._commit(batch)
            if stop:
                return

    def _commit(self, batch: "list[_Pending]") -> None:
        try:
            with self._engine.get().begin() as connection:
                connection.execute(audit_table.insert(), [row for pending in batch for row in pending.rows])
        except BaseException as error:  # every look-up of the batch fails: none of them is answered
            _settle(batch, error)
            return
        _settle(batch, None)

    def close(self) -> None:
        """Commits what is waiting, then stops the writer (a later record starts another) and the pool."""
        with self._lock:
            writer, self._writer = self._writer, None
            if writer is not None:
                writer[1].put(None)
        if writer is not None:
            writer[0].join()
        self._engine.dispose()


class _Pending(Future[None]):
    """One look-up's rows, done when committed (and its waiter on an event loop, if it has one)."""

    def __init__(self, rows: list[dict[str, Any]], waiter: "asyncio.Future[None] | None" = None) -> None:
        super().__init__()
        self.rows = rows
        self.waiter = waiter

    def settle(self, error: BaseException | None) -> None:
        """Committed (None) or failed. A look-up given up meanwhile (its client went away: the future was
        cancelled) has its rows committed all the same; there is nobody left to tell."""
        if self.set_running_or_notify_cancel():
            if error is None:
                self.set_result(None)
            else:
                self.set_exception(error)


def _settle(batch: "list[_Pending]", error: BaseException | None) -> None:
    """Every look-up of a commit told its outcome (those on event loops with one wake-up per loop)."""
    for pending in batch:
        pending.settle(error)
    settle_on_their_loops((pending.waiter, None, error) for pending in batch if pending.waiter is not None)


def accesses(connection: sa.Connection, cpr: str, since: datetime | None = None) -> list[Access]:
    """The look-ups of one person, oldest first."""
    table = audit_table.c
    person = table.CPR
    query = sa.select(table.AccessTime, table.Client, person, table.Endpoint).where(person == cpr)
    if since is not None:
        query = query.where(table.AccessTime >= since)
    return [Access(*row) for row in connection.execute(query.order_by(table.AccessTime, table.Id))]
