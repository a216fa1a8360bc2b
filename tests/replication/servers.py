"""A MariaDB primary and a replica of its own, for the tests of README's "Beyond one machine".

`mariadb-install-db` into a temporary data directory (once; the replica starts from a copy), `mariadbd` on free
ports with their own sockets, GTID replication (`MASTER_USE_GTID = slave_pos`) from the primary's binary log. The
shared server on port 3306 is never touched. The binaries are on every machine of this kind: a missing one fails
the tests, it does not skip them.

Each server, and `mariadb-install-db`'s bootstrap server, gets a temporary directory of its own (`private_tmpdir`):
a starting `mariadbd` deletes every `#sql*` file in its tmpdir, taking them for its own leftovers. With the default,
the system's /tmp, that removed the internal temporary tables of the shared server on port 3306 while it used them,
and MariaDB 10.11 crashes (signal 11 in `ha_maria::drop_table`) when an on-disk temporary table it has just created
is gone before it opens it — as for every `DESCRIBE`, whose information-schema table has blob columns.
"""

import contextlib
import os
import shutil
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from tests.daemon.harness import free_port, wait_for

FACADE_USER, FACADE_PASSWORD = "stamdata_facade", "facade-reads-only"
REPLICATION_USER, REPLICATION_PASSWORD = "stamdata_repl", "replicates"


def _binary(name: str) -> str:
    found = shutil.which(name) or (f"/usr/sbin/{name}" if Path("/usr/sbin", name).exists() else None)
    if found is None:
        raise AssertionError(f"MariaDB binary {name} not found: the replication tests need a MariaDB server installed")
    return found


def private_tmpdir(base: Path) -> Path:
    """A temporary directory for one MariaDB server (or bootstrap) alone; see the module's docstring."""
    tmpdir = base / "tmp"
    tmpdir.mkdir(parents=True, exist_ok=True)
    return tmpdir


def server_environment(tmpdir: Path) -> dict[str, str]:
    """The environment a MariaDB child runs in: TMPDIR is its default tmpdir (mariadb-install-db has no option)."""
    return {**os.environ, "TMPDIR": str(tmpdir)}


class Server:
    """One `mariadbd` child on its own port, socket and data directory."""

    def __init__(self, base: Path, server_id: int, *extra: str) -> None:
        self.base = base
        self.datadir = base / "data"
        self.port = free_port()
        self.server_id = server_id
        self.extra = extra
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        tmpdir = private_tmpdir(self.base)
        self.process = subprocess.Popen(
            [_binary("mariadbd"), "--no-defaults", f"--datadir={self.datadir}", f"--socket={self.base / 'sock'}",
             f"--tmpdir={tmpdir}", f"--port={self.port}", "--bind-address=127.0.0.1", "--user=root",
             "--skip-name-resolve",
             f"--server-id={self.server_id}", "--innodb-buffer-pool-size=64M", "--innodb-flush-log-at-trx-commit=2",
             "--max-connections=300", f"--pid-file={self.base / 'pid'}", f"--log-error={self.base / 'error.log'}",
             "--log-bin=binlog", "--binlog-format=ROW", "--log-slave-updates", "--gtid-strict-mode=1",
             "--sync-binlog=0", *self.extra],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
            env=server_environment(tmpdir),
        )
        wait_for(self._answers, 120, f"MariaDB on port {self.port} to start ({self.error_log()[-500:]})", 0.1)

    def _answers(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(f"mariadbd exited: {self.error_log()[-2000:]}")
        engine = sa.create_engine(self.url(""), connect_args={"connect_timeout": 2})
        try:
            with engine.connect():
                return True
        except sa.exc.OperationalError:
            return False
        finally:
            engine.dispose()

    def error_log(self) -> str:
        try:
            return (self.base / "error.log").read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def url(self, database: str, user: str = "root", password: str = "") -> str:
        credentials = f"{user}:{password}" if password else user
        return f"mysql+pymysql://{credentials}@127.0.0.1:{self.port}/{database}"

    def execute(self, *statements: str) -> list[dict[str, Any]]:
        """Run statements as root; the rows of the last one."""
        engine = sa.create_engine(self.url(""), connect_args={"connect_timeout": 5, "read_timeout": 60})
        try:
            with engine.connect() as connection:
                rows: list[dict[str, Any]] = []
                for statement in statements:
                    result = connection.exec_driver_sql(statement.replace("%", "%%"))
                    rows = [dict(row) for row in result.mappings()] if result.returns_rows else []
                connection.commit()
                return rows
        finally:
            engine.dispose()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(OSError):
                self.process.send_signal(signal.SIGCONT)
            self.process.terminate()
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(30)


def install_datadir(base: Path) -> Path:
    """A fresh data directory (`base/installed`) made by mariadb-install-db, whose bootstrap server works in a
    temporary directory under `base`, never the system's."""
    install = base / "installed"
    completed = subprocess.run(
        [_binary("mariadb-install-db"), "--no-defaults", f"--datadir={install}", "--user=root",
         "--auth-root-authentication-method=normal", "--skip-test-db"],
        capture_output=True, text=True, timeout=300, env=server_environment(private_tmpdir(base / "install")),
    )
    assert completed.returncode == 0, f"mariadb-install-db failed: {completed.stderr[-2000:]}"
    return install


class Pair:
    """A primary and a replica replicating from it with GTIDs."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.primary = Server(base / "primary", 1)
        self.replica = Server(base / "replica", 2, "--read-only=1", "--relay-log=relay", "--skip-slave-start")

    def start(self) -> None:
        install = install_datadir(self.base)
        for server in (self.primary, self.replica):
            server.base.mkdir(parents=True)
            shutil.copytree(install, server.datadir, symlinks=True)
            server.start()
        # Accounts made on the primary reach the replica through replication, like everything else.
        self.primary.execute(
            f"CREATE USER '{REPLICATION_USER}'@'%' IDENTIFIED BY '{REPLICATION_PASSWORD}'",
            f"GRANT REPLICATION SLAVE ON *.* TO '{REPLICATION_USER}'@'%'",
            f"CREATE USER '{FACADE_USER}'@'%' IDENTIFIED BY '{FACADE_PASSWORD}'",
            f"GRANT SELECT ON *.* TO '{FACADE_USER}'@'%'",
        )
        self.replica.execute(
            f"CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT={self.primary.port}, "
            f"MASTER_USER='{REPLICATION_USER}', MASTER_PASSWORD='{REPLICATION_PASSWORD}', "
            "MASTER_USE_GTID=slave_pos, MASTER_CONNECT_RETRY=1",
            "START SLAVE",
        )
        wait_for(self.replicating, 60, "the replica to replicate")
        self.wait_caught_up()

    def replicating(self) -> bool:
        status = self.replica.execute("SHOW SLAVE STATUS")
        if status and status[0]["Last_SQL_Error"]:
            raise AssertionError(f"replication stopped: {status[0]['Last_SQL_Error']}")
        return bool(status) and status[0]["Slave_IO_Running"] == "Yes" and status[0]["Slave_SQL_Running"] == "Yes"

    def gtid(self) -> str:
        return str(self.primary.execute("SELECT @@GLOBAL.gtid_binlog_pos AS pos")[0]["pos"])

    def wait_caught_up(self, timeout: float = 60) -> None:
        """Until the replica has applied everything the primary has written so far."""
        position = self.gtid()
        if not position:
            return
        rows = self.replica.execute(f"SELECT MASTER_GTID_WAIT('{position}', {timeout}) AS waited")
        assert rows[0]["waited"] == 0, f"the replica did not reach {position} within {timeout} s"

    def pause(self) -> None:
        """The replica stops applying (it keeps receiving): it falls behind."""
        self.replica.execute("STOP SLAVE SQL_THREAD")

    def resume(self) -> None:
        self.replica.execute("START SLAVE SQL_THREAD")

    def facade_url(self, server: Server, database: str) -> str:
        return server.url(database, FACADE_USER, FACADE_PASSWORD)

    def stop(self) -> None:
        for server in (self.replica, self.primary):
            server.stop()


@contextlib.contextmanager
def primary_and_replica(base: Path) -> Iterator[Pair]:
    pair = Pair(base)
    try:
        pair.start()
        yield pair
    finally:
        pair.stop()
