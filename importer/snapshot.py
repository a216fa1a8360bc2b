"""What a register's open rows were after its last import, kept locally so the next delta needs no bulk read.

After a full-dump import the open rows of each history table are exactly the dataset's rows. Remembering
their keys and a digest of each (in memory, and in `state_dir` for the next process; see
`importer.temporal.open_state`) lets the next import compare against them instead of reading a million
rows back through the database driver, so a daily delta costs in proportion to what changed, and the
memory of an import holds one dataset's rows, not two. A snapshot is only trusted when it names the same
two databases and the same last transaction time that both databases report; anything else (another
importer imported since, a restore, a re-synchronisation) falls back to reading the database. The delta
is applied with row counts checked either way, so a database that differs from the snapshot is caught,
not silently diverged.
"""

import hashlib
import os
import pickle
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from importer.logs import get_logger
from importer.temporal import OpenState

log = get_logger(__name__)


@dataclass(frozen=True)
class Snapshot:
    databases: str  # fingerprint of the preflight and production URLs
    transaction_time: datetime  # of the import that left these rows open, in both databases
    open_state: dict[str, OpenState]  # table name -> business key and digest of each open row


def fingerprint(preflight_url: str, production_url: str) -> str:
    return hashlib.sha256(f"{preflight_url}\n{production_url}".encode()).hexdigest()[:32]


class SnapshotStore:
    """One snapshot per register: the newest in memory, and a copy on disk for the next process."""

    def __init__(self, directory: Path, databases: str) -> None:
        self.directory = directory
        self.databases = databases
        self._memory: dict[str, Snapshot] = {}

    def _path(self, register: str) -> Path:
        return self.directory / f"{register}.snapshot.pickle"

    def load(self, register: str, transaction_time: datetime | None) -> Snapshot | None:
        """The snapshot for the state both databases are in, or None."""
        if transaction_time is None:
            return None
        snapshot = self._memory.get(register)
        if snapshot is None:
            try:
                with self._path(register).open("rb") as file:
                    # Our own file in our own state directory, written below; not external input.
                    snapshot = pickle.load(file)
            except (OSError, pickle.UnpicklingError, EOFError, AttributeError, ImportError):
                return None
        if not isinstance(snapshot, Snapshot) or not all(
            isinstance(state, OpenState) for state in getattr(snapshot, "open_state", {None: None}).values()
        ):
            return None  # not one this version wrote: read the database instead
        if snapshot.databases != self.databases or snapshot.transaction_time != transaction_time:
            return None
        self._memory[register] = snapshot
        return snapshot

    def save(self, register: str, snapshot: Snapshot) -> None:
        """Atomically replace the register's snapshot; failing to save only costs the next import time."""
        self._memory[register] = snapshot
        path = self._path(register)
        temporary = path.with_suffix(f".tmp{os.getpid()}")
        try:
            # Private: keys and digests of register data, kept like the databases themselves.
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            with os.fdopen(os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as file:
                pickle.dump(snapshot, file, protocol=pickle.HIGHEST_PROTOCOL)
            temporary.replace(path)
        except OSError as error:
            log.warning("could not save the import snapshot", register=register, reason=str(error))
            temporary.unlink(missing_ok=True)

    def forget(self, register: str) -> None:
        self._memory.pop(register, None)
        self._path(register).unlink(missing_ok=True)
