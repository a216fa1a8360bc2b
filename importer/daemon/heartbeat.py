"""The daemon's heartbeat writer: a thread of its own, so a slow or frozen database never delays the supervisor
loop (and its systemd watchdog pings) or an import. See importer/load/heartbeat.py for what the row is for."""

import threading
from datetime import datetime, timedelta

import sqlalchemy as sa

from importer.clock import Clock
from importer.load import heartbeat
from importer.logs import get_logger

log = get_logger(__name__)

# How often the thread looks at the (injected) clock: a beat is due every interval by that clock.
TICK_S = 0.5


class HeartbeatWriter:
    """Beats at start, every `interval_s` by the clock, and soon after `now()` is asked for (after an import)."""

    def __init__(self, engine: sa.Engine, clock: Clock, interval_s: float, stopping: threading.Event) -> None:
        self.engine = engine
        self.clock = clock
        self.interval = timedelta(seconds=interval_s)
        self.stopping = stopping
        self.host = heartbeat.host_name()
        self._asked = threading.Event()
        self._reached: datetime | None = None  # the newest import committed here, named by the next beats
        self._failing = False
        self.thread = threading.Thread(target=self._run, name="heartbeat", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def now(self, reached: datetime | None = None) -> None:
        """Beat soon: an import has just committed at transaction time `reached`, which the beat names (a replica
        holding the beat holds that import too)."""
        if reached is not None and (self._reached is None or reached > self._reached):
            self._reached = reached
        self._asked.set()

    def _run(self) -> None:
        due: datetime | None = None
        while not self.stopping.is_set():
            if due is None or self._asked.is_set() or self.clock.now() >= due:
                self._asked.clear()
                self._beat()
                due = self.clock.now() + self.interval
            self._asked.wait(TICK_S)

    def _beat(self) -> None:
        try:
            heartbeat.beat(self.engine, self.clock.now(), self.host, self._reached)
            if self._failing:
                log.info("heartbeat written again")
            self._failing = False
        except Exception as error:  # an outage: /status says so already; the next beat tries again
            if not self._failing:
                reason = str(getattr(error, "orig", None) or error).splitlines()
                log.warning("cannot write the heartbeat", reason=reason[0] if reason else type(error).__name__)
            self._failing = True
