"""What a register's open rows were after its last import, kept locally so the next delta needs no bulk read.

After a full-dump import the open rows of each history table are exactly the dataset's rows. Remembering
their keys and a digest of each (in memory, and in `state_dir` for the next process; see
`importer.load.temporal.open_state`) lets the next import compare against them instead of reading a million
rows back through the database driver, so a daily delta costs in proportion to what changed, and the
memory of an import holds one dataset's rows, not two. A snapshot is only trusted when it names the same
two databases and the same last transaction time that both databases report; anything else (another
importer imported since, a restore, a re-synchronisation) falls back to reading the database. The delta
is applied with row counts checked either way, so a database that differs from the snapshot is caught,
not silently diverged.
"""

import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from importer.load.temporal import OpenState
from importer.logs import get_logger

log = get_logger(__name__)

# A data-only file (numpy's .npz, read without pickle: loading it can run no code), with a header saying
# what it is. Anything else found under the name is ignored, and the delta comes from the database.
FORMAT = "stamdata-import-snapshot"
FORMAT_VERSION = 1


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
        self._remove_temporaries(lambda pid: not _alive(pid))

    def _remove_temporaries(self, whose: Callable[[int], bool], register: str | None = None) -> None:
        """Half-written snapshots (`.<register>.snapshot.npz.tmp<pid>`) of writers that were killed."""
        pattern = f".{self._path(register).name if register else '*.snapshot.npz'}.tmp*"
        try:
            for temporary in self.directory.glob(pattern):
                pid = temporary.name.rpartition(".tmp")[2]
                if pid.isdigit() and whose(int(pid)):
                    temporary.unlink(missing_ok=True)
        except OSError as error:
            log.warning("could not remove half-written snapshots", reason=str(error))

    def _path(self, register: str) -> Path:
        return self.directory / f"{register}.snapshot.npz"

    def load(self, register: str, transaction_time: datetime | None) -> Snapshot | None:
        """The snapshot for the state both databases are in, or None."""
        if transaction_time is None:
            return None
        snapshot = self._memory.get(register)
        if snapshot is None:
            path = self._path(register)
            if not path.exists():
                return None
            try:
                snapshot = _read(path)
            except Exception as error:  # corrupt, foreign or from another version: only costs a bulk read
                log.warning("ignoring an unreadable import snapshot", register=register, file=str(path),
                            reason=f"{type(error).__name__}: {error}")
                return None
        if snapshot.databases != self.databases or snapshot.transaction_time != transaction_time:
            return None
        self._memory[register] = snapshot
        return snapshot

    def save(self, register: str, snapshot: Snapshot) -> None:
        """Atomically replace the register's snapshot; failing to save only costs the next import time."""
        self._memory[register] = snapshot
        path = self._path(register)
        # Saved under the register lock: any other writer's temporary for this register is a dead one's.
        self._remove_temporaries(lambda pid: pid != os.getpid(), register)
        temporary = path.with_name(f".{path.name}.tmp{os.getpid()}")
        try:
            arrays = _arrays(snapshot)
            # Private: keys and digests of register data, kept like the databases themselves.
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            with os.fdopen(os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as file:
                np.savez(file, allow_pickle=False, **arrays)
            temporary.replace(path)
        except (OSError, ValueError) as error:
            log.warning("could not save the import snapshot", register=register, reason=str(error))
            temporary.unlink(missing_ok=True)
            path.unlink(missing_ok=True)  # an older one would only be ignored, but say nothing stale

    def forget(self, register: str) -> None:
        self._memory.pop(register, None)
        self._path(register).unlink(missing_ok=True)


def _arrays(snapshot: Snapshot) -> dict[str, np.ndarray]:
    tables: dict[str, dict[str, str]] = {}
    arrays: dict[str, np.ndarray] = {}
    for table, state in snapshot.open_state.items():
        kinds: dict[str, str] = {}
        for column, values in state.keys.items():
            kinds[column], arrays[f"{table}/key/{column}"] = _plain(values)
        arrays[f"{table}/digests"] = np.asarray(state.digests, dtype=np.uint64)
        tables[table] = kinds
    header = {"format": FORMAT, "version": FORMAT_VERSION, "databases": snapshot.databases,
              "transaction_time": snapshot.transaction_time.isoformat(), "tables": tables}
    arrays["header"] = np.frombuffer(json.dumps(header).encode("utf-8"), dtype=np.uint8)
    return arrays


def _plain(values: np.ndarray) -> tuple[str, np.ndarray]:
    """A key column as an array numpy stores without pickle: fixed-width text as it is, Python ints and strings
    converted (checked to be lossless), anything else refused (the snapshot is then not kept)."""
    if values.dtype.kind in "SU":
        return values.dtype.kind, values
    items = values.tolist()
    if all(type(item) is int for item in items):
        return "int", np.asarray(items, dtype=np.int64)
    if all(type(item) is str for item in items):
        text = np.asarray(items, dtype=str)
        if text.tolist() == items:
            return "str", text
    raise ValueError("a key column of a type the snapshot format does not keep")


def _read(path: Path) -> Snapshot:
    with np.load(path, allow_pickle=False) as archive:
        header: dict[str, Any] = json.loads(bytes(archive["header"]).decode("utf-8"))
        if header.get("format") != FORMAT or header.get("version") != FORMAT_VERSION:
            raise ValueError(f"not a {FORMAT} file of version {FORMAT_VERSION}")
        open_state = {}
        for table, kinds in header["tables"].items():
            keys = {}
            for column, kind in kinds.items():
                values = archive[f"{table}/key/{column}"]
                keys[column] = values if kind in ("S", "U") else values.astype(object)
            digests = archive[f"{table}/digests"]
            if digests.dtype != np.uint64 or any(len(values) != len(digests) for values in keys.values()):
                raise ValueError(f"{table}: keys and digests do not match")
            open_state[table] = OpenState(keys, digests)
        return Snapshot(databases=str(header["databases"]),
                        transaction_time=datetime.fromisoformat(header["transaction_time"]), open_state=open_state)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    return True
