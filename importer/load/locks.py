"""One importer per register, across threads and processes: the register lock.

Claiming a dataset by rename already stops two importers taking the same inbox entry, but a crash leaves
entries in `.processing/` that only the lock holder may treat as abandoned, and a CLI import must not run
beside a daemon import of the same register. So every import (daemon or CLI) holds the register's lock:

- MariaDB/MySQL: `GET_LOCK` on a dedicated production connection, held for the whole import. The server
  releases it when that session ends, so a killed process never leaves it stuck.
- SQLite: `flock` on a file next to the production database file (`<db>.<register>.lock`); the kernel drops
  it with the process. flock (not POSIX record locks) because it belongs to the open file, so two threads of
  one process exclude each other too.

The lock is re-entrant within one thread, so the daemon can hold it around claim + import + archive while
`Pipeline.import_dataset` takes it again without deadlocking.

Between importer hosts (MariaDB) the lock must also pass from a host that hangs, and such a host must then commit
nothing: its session times out after `takeover_s`, the next holder ends the predecessor's open transaction, and
every writing transaction is fenced (`fence`). See importer/load/lease.py.
"""

import fcntl
import os
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Protocol

import sqlalchemy as sa
from sqlalchemy.engine import make_url

from importer.db import get_lock, is_mysql
from importer.errors import InfrastructureError
from importer.load.lease import KeptSession, evict, lock_name, work_lock_name
from importer.logs import get_logger

log = get_logger(__name__)

_POLL_S = 0.1
DEFAULT_TAKEOVER_S = 30.0


class RegisterBusy(InfrastructureError):
    """Another importer holds the register: not the dataset's fault, try again later."""


class LockLost(RegisterBusy):
    """This importer's register lock passed to another importer (this host hung or was cut off): commit nothing."""


class _Handle(Protocol):
    def release(self) -> None: ...

    def alive(self) -> bool: ...


def lock_file(path: Path, wait_s: float, mode: int, poll_s: float = _POLL_S) -> int | None:
    """An exclusive flock on `path` (created with `mode`), waiting up to `wait_s`: the open descriptor, whose closing
    releases it, or None when another holder kept it that long. flock belongs to the open file, so it excludes other
    threads of this process as well as other processes, and the kernel drops it with a process that dies."""
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT, mode)
    deadline = time.monotonic() + wait_s
    while True:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return descriptor
        except BlockingIOError:
            if time.monotonic() >= deadline:
                os.close(descriptor)
                return None
            time.sleep(poll_s)


class _FileHandle:
    def __init__(self, descriptor: int) -> None:
        self.descriptor = descriptor

    def alive(self) -> bool:
        return True  # the kernel's lock: it cannot pass to another process while this one lives

    def release(self) -> None:
        fcntl.flock(self.descriptor, fcntl.LOCK_UN)
        os.close(self.descriptor)


class _ThreadHandle:
    def __init__(self, lock: threading.Lock) -> None:
        self.lock = lock

    def alive(self) -> bool:
        return True

    def release(self) -> None:
        self.lock.release()


class RegisterLocks:
    """Hands out register locks for one production database. `fenced`: the other databases an import writes
    (preflight), whose writes are fenced like production's; `takeover_s`: see importer/load/lease.py."""

    def __init__(self, production: sa.Engine, fenced: Sequence[sa.Engine] = (),
                 takeover_s: float = DEFAULT_TAKEOVER_S) -> None:
        self.production = production
        self.fenced = [production, *(engine for engine in fenced if engine is not production)]
        self.takeover_s = takeover_s
        self._held: dict[tuple[int, str], tuple[_Handle, int]] = {}
        self._guard = threading.Lock()
        self._memory_locks: dict[str, threading.Lock] = {}

    @contextmanager
    def hold(self, register: str, wait_s: float) -> Iterator[None]:
        """Hold the register's lock; RegisterBusy if another importer keeps it longer than `wait_s`."""
        key = (threading.get_ident(), register)
        with self._guard:
            held = self._held.get(key)
            if held is not None:
                self._held[key] = (held[0], held[1] + 1)
        if held is None:
            handle = self._acquire(register, wait_s)
            with self._guard:
                self._held[key] = (handle, 1)
        try:
            yield
        finally:
            with self._guard:
                handle, depth = self._held[key]
                if depth > 1:
                    self._held[key] = (handle, depth - 1)
                else:
                    del self._held[key]
            if depth == 1:
                handle.release()

    def _acquire(self, register: str, wait_s: float) -> _Handle:
        if is_mysql(self.production):
            return self._acquire_mysql(register, wait_s)
        database = make_url(self.production.url).database
        if database and database != ":memory:":
            return self._acquire_file(Path(f"{database}.{register}.lock"), register, wait_s)
        return self._acquire_memory(register, wait_s)

    def still_held(self, register: str) -> bool:
        """Whether this thread holds the register's lock and it is still its own (on MariaDB, asked of the server)."""
        with self._guard:
            held = self._held.get((threading.get_ident(), register))
        return held is not None and held[0].alive()

    def held_elsewhere(self, register: str) -> bool:
        """Whether a session other than this thread's holds the register's lock (MariaDB; asked on a new session)."""
        if not is_mysql(self.production):
            return False
        with self._guard:
            held = self._held.get((threading.get_ident(), register))
        own = held[0].session_id if held is not None and isinstance(held[0], KeptSession) else None
        with self.production.connect() as connection:
            holder = connection.execute(sa.text("SELECT IS_USED_LOCK(:name)"),
                                        {"name": lock_name(make_url(self.production.url).database or "", register)}
                                        ).scalar()
        return holder is not None and holder != own

    @contextmanager
    def fence(self, connection: sa.Connection, register: str) -> Iterator[None]:
        """Around a transaction that writes the register's data: on MariaDB/MySQL it holds the register's work lock
        on its own session (so a host taking the register over can end it) and starts only while this thread's
        register lock is still its own; LockLost otherwise. Nothing to do on SQLite, whose lock cannot pass."""
        if not is_mysql(connection):
            yield
            return
        name = work_lock_name(connection, register)
        if connection.execute(sa.text("SELECT GET_LOCK(:name, 0)"), {"name": name}).scalar() != 1:
            raise LockLost(f"register {register}: another importer is writing it; this one lost the register lock")
        try:
            if not self.still_held(register):
                raise LockLost(f"register {register}: this importer's register lock is gone (its database session "
                               "ended: the host hung or lost the database for longer than takeover_s); nothing "
                               "committed")
            yield
        finally:
            try:
                connection.execute(sa.text("SELECT RELEASE_LOCK(:name)"), {"name": name})
            except sa.exc.SQLAlchemyError:
                connection.invalidate()  # the session ends, and the work lock with it

    def _acquire_mysql(self, register: str, wait_s: float) -> _Handle:
        schema = make_url(self.production.url).database or ""
        name = lock_name(schema, register)
        try:
            connection = self.production.connect()
            try:
                got = get_lock(connection, name, wait_s)
                connection.rollback()  # the lock belongs to the session, not to this transaction
            except BaseException:
                connection.close()
                raise
        except sa.exc.DBAPIError as error:
            raise InfrastructureError(f"cannot take the lock of register {register}: {error.orig}") from error
        if not got:
            connection.close()
            raise RegisterBusy(f"another importer is working on register {register}")
        try:
            handle = KeptSession(connection, name, self.takeover_s)
        except sa.exc.DBAPIError as error:
            connection.invalidate()
            connection.close()
            raise InfrastructureError(f"cannot keep the lock of register {register}: {error.orig}") from error
        # A predecessor that hung inside a transaction may still hold the work lock: end it before anything is read.
        for engine in self.fenced:
            if not is_mysql(engine):
                continue
            try:
                problem = evict(engine, register, max(10.0, self.takeover_s))
            except sa.exc.DBAPIError as error:
                problem = f"cannot check for a predecessor's session: {error.orig}"
            if problem is not None:
                handle.release()
                raise RegisterBusy(f"register {register}: taking it over: {problem}")
        return handle

    def _acquire_file(self, path: Path, register: str, wait_s: float) -> _Handle:
        descriptor = lock_file(path, wait_s, 0o640)
        if descriptor is None:
            raise RegisterBusy(f"another importer is working on register {register}")
        return _FileHandle(descriptor)

    def _acquire_memory(self, register: str, wait_s: float) -> _Handle:
        with self._guard:
            lock = self._memory_locks.setdefault(register, threading.Lock())
        acquired = lock.acquire(timeout=wait_s) if wait_s > 0 else lock.acquire(blocking=False)
        if not acquired:
            raise RegisterBusy(f"another importer is working on register {register}")
        return _ThreadHandle(lock)
