"""The daemon's housekeeping of change notifications, in a thread of its own so the watch loop never waits for it.

After every import (seen as a new highest event) it matches the new events to every subscription, so what waits on
pull points is known before anyone pulls; every `PURGE_EVERY` it purges notifications left unfetched for the
retention (10 days: each pull point concerned gets a `lost` system notification), forgets answers past the replay
window and deletes events nobody can still need (importer/load/subscriptions.py). Each round refreshes the
notification metrics. A failure is logged and tried again next round: pulls match for themselves anyway.
"""

import threading
from collections.abc import Sequence
from datetime import datetime, timedelta

import sqlalchemy as sa

from importer.clock import Clock, whole_seconds
from importer.http.metrics import ImporterMetrics
from importer.load import subscriptions
from importer.load.notifications import E, topics
from importer.load.plugin import Register
from importer.logs import get_logger
from importer.privacy import mask_cpr

log = get_logger(__name__)

ROUND_S = 30.0  # how often it looks for new events and refreshes the metrics
PURGE_EVERY = timedelta(hours=1)


class NotificationHousekeeper:
    def __init__(self, engine: sa.Engine, clock: Clock, metrics: ImporterMetrics | None,
                 registers: Sequence[Register], round_s: float = ROUND_S) -> None:
        self.engine = engine
        self.clock = clock
        self.metrics = metrics
        self.topics = topics(registers)
        self.round_s = round_s
        self.next_purge: datetime | None = None  # the first round purges
        self.matched_to = -1  # the highest event matched in the last round
        self.stopping = threading.Event()
        self._woken = threading.Event()
        self.thread = threading.Thread(target=self._run, name="notifications", daemon=True)

    def start(self) -> None:
        if self.topics:
            self.thread.start()

    def stop(self) -> None:
        self.stopping.set()
        self._woken.set()
        if self.thread.is_alive():
            self.thread.join(10)

    def wake(self) -> None:
        """An import committed: match its events now rather than at the next round."""
        self._woken.set()

    def _run(self) -> None:
        while not self.stopping.is_set():
            self.step()
            self._woken.wait(self.round_s)
            self._woken.clear()

    def step(self) -> None:
        """One round: purge when due, else match what is new; then the metrics."""
        try:
            now = whole_seconds(self.clock.now())
            if self.next_purge is None or now >= self.next_purge:
                lost = subscriptions.purge(self.engine, now)
                if self.metrics is not None:
                    self.metrics.purged(lost)
                self.next_purge = now + PURGE_EVERY
                self.matched_to = -1
            with self.engine.connect() as connection:
                newest = int(connection.execute(sa.select(sa.func.coalesce(sa.func.max(E.Sequence), 0))).scalar_one())
            if newest != self.matched_to:
                subscriptions.match_all(self.engine)
                self.matched_to = newest
            if self.metrics is not None:
                with self.engine.connect() as connection:
                    statistics = subscriptions.statistics(connection)
                self.metrics.observe_notifications(statistics, self.topics, now)
        except Exception as error:  # the database may be away; pulls match for themselves meanwhile
            reason = str(getattr(error, "orig", None) or error).strip()
            log.warning("notification housekeeping failed; trying again next round", error=type(error).__name__,
                        reason=mask_cpr(reason.splitlines()[0] if reason else ""))
