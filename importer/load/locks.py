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
"""

import fcntl
import hashlib
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Protocol

import sqlalchemy as sa
from sqlalchemy.engine import make_url

from importer.db import get_lock, is_mysql
from importer.errors import InfrastructureError
from importer.logs import get_logger

log = get_logger(__name__)

MYSQL_LOCK_NAME_MAX = 64
_POLL_S = 0.1


class RegisterBusy(InfrastructureError):
    """Another importer holds the register: not the dataset's fault, try again later."""


class _Handle(Protocol):
    def release(self) -> None: ...


class _MysqlHandle:
    def __init__(self, connection: sa.Connection, name: str) -> None:
        self.connection = connection
        self.name = name

    def release(self) -> None:
        try:
            self.connection.execute(sa.text("SELECT RELEASE_LOCK(:name)"), {"name": self.name})
            self.connection.rollback()
            self.connection.close()
        except sa.exc.DBAPIError:
            # The session is gone (database outage); the server released the lock with it.
            self.connection.invalidate()
            self.connection.close()


class _FileHandle:
    def __init__(self, descriptor: int) -> None:
        self.descriptor = descriptor

    def release(self) -> None:
        fcntl.flock(self.descriptor, fcntl.LOCK_UN)
        os.close(self.descriptor)


class _ThreadHandle:
    def __init__(self, lock: threading.Lock) -> None:
        self.lock = lock

    def release(self) -> None:
        self.lock.release()


class RegisterLocks:
    """Hands out register locks for one production database."""

    def __init__(self, production: sa.Engine) -> None:
        self.production = production
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

    def _acquire_mysql(self, register: str, wait_s: float) -> _Handle:
        schema = make_url(self.production.url).database or ""
        name = f"stamdata:{schema}:{register}"
        if len(name) > MYSQL_LOCK_NAME_MAX:  # server-wide name; keep it unique per database and register
            name = "stamdata:" + hashlib.sha256(name.encode()).hexdigest()[:48]
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
        return _MysqlHandle(connection, name)

    def _acquire_file(self, path: Path, register: str, wait_s: float) -> _Handle:
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o640)
        deadline = time.monotonic() + wait_s
        while True:
            try:
                fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return _FileHandle(descriptor)
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    os.close(descriptor)
                    raise RegisterBusy(f"another importer is working on register {register}") from None
                time.sleep(_POLL_S)

    def _acquire_memory(self, register: str, wait_s: float) -> _Handle:
        with self._guard:
            lock = self._memory_locks.setdefault(register, threading.Lock())
        acquired = lock.acquire(timeout=wait_s) if wait_s > 0 else lock.acquire(blocking=False)
        if not acquired:
            raise RegisterBusy(f"another importer is working on register {register}")
        return _ThreadHandle(lock)
