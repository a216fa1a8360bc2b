"""The register lock between importer hosts (MariaDB/MySQL): a lock that a hung holder loses, and writes that die
with it.

`GET_LOCK` belongs to a database session, and the server ends a session only when its connection closes or has
been silent for `wait_timeout`. A killed process closes its connections at once; a host that hangs (SIGSTOP, a
frozen VM, a cut network) closes nothing, and the default `wait_timeout` is eight hours. So:

- **The lock's session times out.** It gets `wait_timeout = takeover_s`, and a keeper thread pings it every quarter
  of that: a live holder keeps it, a hung one loses it within `takeover_s`, and another host's next attempt gets
  the lock.
- **A holder that lost its lock commits nothing.** Every transaction that writes a register's data (the import in
  each database, a re-synchronisation) first takes a second named lock, the register's *work* lock, on its own
  session, and then checks that the register lock is still its own. A host that takes the register over ends
  (`KILL CONNECTION`) whatever session still holds the work lock — the hung predecessor's open transaction, which
  rolls back — and waits until it is gone, before it reads anything. So a predecessor either committed before the
  take-over (and its successor sees that commit: the dataset counts as imported), or never commits: its session is
  gone, and a new work lock would find the register lock no longer its own.

Both importer hosts use the same database account: a session may end another session of its own account without
any privilege (otherwise grant CONNECTION ADMIN).
"""

import hashlib
import math
import threading
import time

import sqlalchemy as sa

from importer.logs import get_logger

log = get_logger(__name__)

MYSQL_LOCK_NAME_MAX = 64
_EVICT_POLL_S = 0.05


def lock_name(database: str, register: str, suffix: str = "") -> str:
    """The server-wide name of a register's lock in one database (`suffix` ":work" for its work lock)."""
    name = f"stamdata:{database}:{register}{suffix}"
    if len(name) > MYSQL_LOCK_NAME_MAX:  # server-wide name; keep it unique per database and register
        name = "stamdata:" + hashlib.sha256(name.encode()).hexdigest()[:48] + suffix
    return name


def work_lock_name(connection: sa.Connection | sa.Engine, register: str) -> str:
    return lock_name(connection.engine.url.database or "", register, ":work")


class KeptSession:
    """The session holding a register lock: a short `wait_timeout`, kept alive by a thread that pings it."""

    def __init__(self, connection: sa.Connection, name: str, takeover_s: float) -> None:
        self.connection = connection
        self.name = name
        self._mutex = threading.Lock()  # the connection is shared by the keeper and the holder's checks
        self._stop = threading.Event()
        self.lost = False
        connection.execute(sa.text(f"SET SESSION wait_timeout = {max(1, math.ceil(takeover_s))}"))
        self.session_id = int(connection.execute(sa.text("SELECT CONNECTION_ID()")).scalar_one())
        connection.rollback()
        self._interval_s = max(0.2, takeover_s / 4)
        self._keeper = threading.Thread(target=self._keep, name=f"lock-keeper-{name}", daemon=True)
        self._keeper.start()

    def _keep(self) -> None:
        while not self._stop.wait(self._interval_s):
            with self._mutex:
                if self._stop.is_set() or self.lost:
                    return
                try:
                    self.connection.connection.dbapi_connection.ping(reconnect=False)  # type: ignore[union-attr]
                except Exception as error:
                    self.lost = True
                    log.warning("register lock lost: its database session is gone", lock=self.name,
                                reason=str(error).splitlines()[0] if str(error) else type(error).__name__)
                    return

    def alive(self) -> bool:
        """Whether this session is alive and still owns the lock (a question to the server, not a memory)."""
        with self._mutex:
            if self.lost:
                return False
            try:
                mine = self.connection.execute(
                    sa.text("SELECT IS_USED_LOCK(:name) = CONNECTION_ID()"), {"name": self.name}).scalar()
                self.connection.rollback()
            except sa.exc.SQLAlchemyError:
                mine = False
            if not mine:
                self.lost = True
            return bool(mine)

    def release(self) -> None:
        self._stop.set()
        with self._mutex:
            try:
                self.connection.execute(sa.text("SELECT RELEASE_LOCK(:name)"), {"name": self.name})
                # Back to the pool as an ordinary session: an import must not be cut off after takeover_s idle.
                self.connection.execute(sa.text("SET SESSION wait_timeout = @@GLOBAL.wait_timeout"))
                self.connection.rollback()
                self.connection.close()
            except sa.exc.SQLAlchemyError:
                # The session is gone (an outage, or it timed out while this host hung); the server released the
                # lock with it.
                self.connection.invalidate()
                self.connection.close()
        self._keeper.join(5)


def evict(engine: sa.Engine, register: str, wait_s: float) -> str | None:
    """Called by the new holder of a register lock, before it reads anything: end the session that still holds the
    register's work lock in this database (a predecessor that hung inside a transaction) and wait until it is gone.
    Returns why that failed, or None."""
    name = work_lock_name(engine, register)
    with engine.connect() as connection:
        holder = connection.execute(sa.text("SELECT IS_USED_LOCK(:name)"), {"name": name}).scalar()
        if holder is None:
            return None
        log.warning("taking over a register: ending the database session of the importer that held it",
                    register=register, session=int(holder), database=engine.url.database)
        try:
            connection.exec_driver_sql(f"KILL CONNECTION {int(holder)}")
        except sa.exc.DBAPIError as error:
            code = error.orig.args[0] if error.orig is not None and error.orig.args else None
            if code != 1094:  # 1094: unknown thread id, it ended by itself meanwhile
                return f"cannot end session {int(holder)} of the importer that held it: {error.orig}"
        deadline = time.monotonic() + wait_s
        while connection.execute(sa.text("SELECT IS_USED_LOCK(:name)"), {"name": name}).scalar() is not None:
            if time.monotonic() > deadline:
                return f"session {int(holder)} of the importer that held it did not end within {wait_s:g} s"
            time.sleep(_EVICT_POLL_S)
        connection.rollback()
    return None
