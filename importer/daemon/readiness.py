"""When is a dataset in the inbox complete? Importing a half-copied file would refuse (and lock) good data.

A dataset is ready when any of these holds:

1. it was moved in atomically: the file-system watcher saw it arrive by rename (or the daemon put it back
   itself after a failed attempt), so it was complete the moment it appeared;
2. it carries a marker: a `READY` file inside a dataset directory, a sidecar `<dataset>.READY` next to a
   dataset file, or a `READY` file in the register's folder that is at least as new as every file of the
   dataset (one marker for a whole batch);
3. it has been quiet: its file count, total size and newest mtime have not changed for the register's
   quiet period, measured on the injected clock.

Whatever the rule, the register's inbox must also have settled: no new entry for `SETTLE_S`. A batch dropped
"in one go" arrives as several renames microseconds apart, possibly newest first; without this the first
arrival could be imported before an older one lands, which would then be refused as out of sequence.

Rules 1 and 2 also require the register to recognise the dataset as complete (`Register.recognise`), so a
directory marked ready too early still waits; rule 3 does not, so a dataset that will never be recognised
is eventually handed to the parser, which refuses it with a reason instead of blocking the register forever.
"""

import os
import threading
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from importer.clock import Clock
from importer.load.inbox import MARKER, sidecars

SETTLE_S = 1.0


@dataclass(frozen=True)
class Signature:
    files: int
    size: int
    newest_mtime_ns: int


def signature(path: Path) -> Signature | None:
    """What changes while a dataset is still being written; None if it vanished meanwhile."""
    try:
        if not path.is_dir():
            stat = path.stat()
            return Signature(1, stat.st_size, stat.st_mtime_ns)
        files, size, newest = 0, 0, path.stat().st_mtime_ns
        for directory, _, names in os.walk(path):
            for name in names:
                stat = Path(directory, name).stat()
                files, size, newest = files + 1, size + stat.st_size, max(newest, stat.st_mtime_ns)
        return Signature(files, size, newest)
    except FileNotFoundError:
        return None


@dataclass
class _Seen:
    signature: Signature
    since: datetime


class Readiness:
    """Remembers what it saw of each inbox entry of one register, so quiet periods can be measured."""

    def __init__(self, clock: Clock, settle_s: float = SETTLE_S) -> None:
        self.clock = clock
        self.settle_s = settle_s
        self._present: set[str] = set()
        self._last_arrival: datetime | None = None
        self._seen: dict[str, _Seen] = {}
        self._moved_in: set[str] = set()
        self._guard = threading.Lock()  # the watcher thread reports moves while the worker scans

    def moved_in(self, name: str) -> None:
        """The watcher saw `name` arrive by rename (a hint: losing it only means waiting the quiet period)."""
        with self._guard:
            self._moved_in.add(name)

    def forget(self, name: str) -> None:
        self._seen.pop(name, None)
        with self._guard:
            self._moved_in.discard(name)

    def observe(self, dataset: Path) -> Signature | None:
        """Note what a dataset looks like now; its quiet period runs from the last change seen.

        Every waiting dataset is observed on every rescan, not only the head of the queue, so the ones behind
        it have finished their quiet period by the time they are next.
        """
        current = signature(dataset)
        if current is None:
            self.forget(dataset.name)
            return None
        seen = self._seen.get(dataset.name)
        if seen is None or seen.signature != current:
            self._seen[dataset.name] = _Seen(current, self.clock.now())
        return current

    def is_ready(self, dataset: Path, quiet_period_s: float, recognised: bool) -> bool:
        current = self.observe(dataset)
        if current is None:
            return False
        since = self._seen[dataset.name].since
        return self._not_ready_because(dataset, current, since, quiet_period_s, recognised) is None

    def why_not_ready(self, dataset: Path, quiet_period_s: float, recognised: bool) -> str | None:
        """Why `is_ready` would say no now, in words for the operator's page (None: it would say yes).

        Judged by the same rules, but changes nothing it remembers: the page asks from another thread than the
        worker's. A dataset that changed since the worker last looked counts as changed just now."""
        current = signature(dataset)
        if current is None:
            return "gone from the inbox"
        seen = self._seen.get(dataset.name)
        since = seen.since if seen is not None and seen.signature == current else self.clock.now()
        return self._not_ready_because(dataset, current, since, quiet_period_s, recognised)

    def _not_ready_because(self, dataset: Path, current: Signature, since: datetime, quiet_period_s: float,
                           recognised: bool) -> str | None:
        now = self.clock.now()
        if self._last_arrival is not None:
            settling = (now - self._last_arrival).total_seconds()
            if settling < self.settle_s:
                return (f"settling: an entry arrived in the inbox {settling:.1f} s ago (nothing is taken until it has "
                        f"been still for {self.settle_s:g} s)")
        with self._guard:
            moved_in = dataset.name in self._moved_in
        if recognised and (moved_in or _marked(dataset, current)):
            return None
        quiet_s = (now - since).total_seconds()
        if quiet_s >= quiet_period_s:
            return None
        if moved_in or _marked(dataset, current):
            return (f"not complete yet: the register does not recognise it as a whole dataset; taken anyway once "
                    f"unchanged for {quiet_period_s:g} s (unchanged for {quiet_s:.0f} s)")
        return (f"may still be being written: unchanged for {quiet_s:.0f} s of its quiet period of "
                f"{quiet_period_s:g} s (a READY marker or a move into the inbox makes it ready at once)")

    def prune(self, present: set[str]) -> None:
        """Take note of the inbox listing of this rescan: forget entries that left it (claimed, or removed by an
        operator), and remember when an entry last arrived, for the settle time."""
        if present - self._present:
            self._last_arrival = self.clock.now()
        self._present = set(present)
        for name in set(self._seen) - present:
            del self._seen[name]
        with self._guard:
            self._moved_in &= present


def _marked(dataset: Path, current: Signature) -> bool:
    if dataset.is_dir() and (dataset / MARKER).is_file():
        return True
    if sidecars(dataset):
        return True
    batch = dataset.parent / MARKER
    try:
        return batch.stat().st_mtime_ns >= current.newest_mtime_ns
    except FileNotFoundError:
        return False
