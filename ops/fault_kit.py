"""Building blocks of the fault suite (`ops/faults.py`): generated dumps, a private MariaDB instance, the daemon
as a real subprocess, and the checks of the end state (exactly once, preflight = production, history).

Nothing here touches the shared MariaDB on port 3306: the suite installs and runs its own server in a
temporary data directory, on its own port and socket, so it may kill, stop and restart it at will.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import httpx
import sqlalchemy as sa

REPO = Path(__file__).resolve().parent.parent
REGISTER = "autorisation"
STATUS_TABLE = "autorisationimporterImportStatus"
OPEN_END = "2999-12-31 00:00:00"
ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
SPECIAL_NUMBERS = frozenset({"09YM8", "09YM9", "09YMB"})

T = TypeVar("T")

# Like tests/daemon/harness.py's FAST: short waits so the suite is quick, long enough to exercise them.
FAST: dict[str, str] = {
    "STAMDATA_AUTORISATION_QUIET_PERIOD_S": "0.6",
    "STAMDATA_RESCAN_INTERVAL_S": "0.2",
    "STAMDATA_RETRY_INITIAL_S": "0.5",
    "STAMDATA_RETRY_MAX_S": "2",
    "STAMDATA_STOP_TIMEOUT_S": "30",
    "STAMDATA_LOCK_WAIT_S": "30",
    "STAMDATA_ARCHIVE_RETENTION_DAYS": "0",
    "STAMDATA_AUTORISATION_REDUCTION_GUARD": "100000",
    "STAMDATA_AUTORISATION_MAX_AGE_DAYS": "0",
    # Bounds on a hung database (SIGSTOP): the importer's read/write timeout and /status's own bound.
    "STAMDATA_DB_TIMEOUT_S": "10",
    "STAMDATA_STATUS_TIMEOUT_S": "5",
    "STAMDATA_LOG_LEVEL": "info",
}

_started = time.monotonic()


def say(message: str) -> None:
    """Progress on stderr (stdout carries the one JSON line)."""
    sys.stderr.write(f"[faults {time.monotonic() - _started:7.1f}s] {message}\n")
    sys.stderr.flush()


def python() -> str:
    venv = REPO / ".venv" / "bin" / "python"
    return str(venv) if venv.exists() else sys.executable


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(condition: Callable[[], T], timeout: float, interval: float = 0.05) -> T | None:
    """Poll `condition` until it is truthy or the deadline passes (then None)."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            return None
        time.sleep(interval)


# --- Day-to-day autorisation dumps ---------------------------------------------------------------------------

SURNAMES = ["Jensen", "Nielsen", "Hansen", "Ærø-Sørensen", "Pedersen", "Østergaard", "Læsø", "Andersen", "Bøgh"]
GIVEN = ["Anne Marie", "Øjvind", "Lars", "Søren", "Åse", "Mette", "Jens Peter", "Birgitte", "Ærlig"]
CODES = ["7170", "5166", "5151", "5433", "4498", "5175", "9999"]

Row = tuple[str, str, str, str, str]  # Autorisationsnummer, CPR, Efternavn, Fornavn, UddannelsesKode


class DumpSeries:
    """Full dumps of one register, a day apart: each day some rows change, some go, some arrive."""

    def __init__(self, rng: random.Random, rows: int, first_day: date, all_cprs: set[str]) -> None:
        self.rng = rng
        self.day = first_day
        self.cprs = all_cprs
        self.rows: dict[str, Row] = {}
        self.next_key = 1000
        for _ in range(rows):
            self._add()
        self.last: dict[str, Row] | None = None
        self.pending_first = True

    def _cpr(self) -> str:
        born = date(1940, 1, 1) + timedelta(days=self.rng.randrange(0, 365 * 65))
        value = f"{born:%d%m%y}{self.rng.randrange(0, 10000):04d}"
        self.cprs.add(value)
        return value

    def _key(self) -> str:
        number = self.next_key
        self.next_key += self.rng.randrange(1, 7)
        digits = []
        for _ in range(5):
            number, rest = divmod(number, len(ALPHABET))
            digits.append(ALPHABET[rest])
        key = "".join(reversed(digits))
        return key if key not in SPECIAL_NUMBERS else self._key()

    def _add(self) -> None:
        key = self._key()
        self.rows[key] = (key, self._cpr(), self.rng.choice(SURNAMES), self.rng.choice(GIVEN), self.rng.choice(CODES))

    def next_dump(self) -> tuple[str, dict[str, Row]]:
        """The next day's file name and content (the first call gives the initial dump)."""
        if not self.pending_first:
            self.day += timedelta(days=1)
            keys = list(self.rows)
            count = len(keys)
            for key in self.rng.sample(keys, max(1, count // 50)):  # 2 % change
                old = self.rows[key]
                self.rows[key] = (key, old[1], self.rng.choice(SURNAMES) + f"-{self.day:%d%m}", old[3],
                                  self.rng.choice(CODES))
            for key in self.rng.sample(list(self.rows), max(1, count // 200)):  # 0.5 % go
                del self.rows[key]
            for _ in range(max(1, count // 100)):  # 1 % arrive
                self._add()
        self.pending_first = False
        self.last = dict(self.rows)
        return f"{self.day:%Y%m%d}AutDK.csv", self.last

    @staticmethod
    def encode(rows: dict[str, Row]) -> bytes:
        return "".join(";".join(row) + "\n" for row in rows.values()).encode("iso-8859-15")


def drop_atomically(directory: Path, name: str, payload: bytes) -> Path:
    """Write under a hidden name, then rename in: the dataset is complete the moment it appears."""
    directory.mkdir(parents=True, exist_ok=True)
    hidden = directory / f".{name}.part"
    hidden.write_bytes(payload)
    target = directory / name
    hidden.rename(target)
    return target


# --- A private MariaDB server ---------------------------------------------------------------------------------


class MariaDB:
    """`mariadb-install-db` into a temporary datadir; `mariadbd` on its own port and socket, as a child."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.datadir = base / "data"
        self.socket = base / "mysqld.sock"
        self.port = free_port()
        self.log = base / "error.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.stopped = False  # SIGSTOPped

    def install(self) -> None:
        for binary in ("mariadb-install-db", "mariadbd", "mysqladmin"):
            if shutil.which(binary) is None and not Path("/usr/sbin", binary).exists():
                raise RuntimeError(f"MariaDB binary {binary} not found")
        self.base.mkdir(parents=True, exist_ok=True)
        completed = subprocess.run(
            ["mariadb-install-db", "--no-defaults", f"--datadir={self.datadir}", "--user=root",
             "--auth-root-authentication-method=normal", "--skip-test-db"],
            capture_output=True, text=True, timeout=180, env=self._environment(),
        )
        if completed.returncode != 0:
            raise RuntimeError(f"mariadb-install-db failed: {completed.stderr[-2000:]}")

    def _tmpdir(self) -> Path:
        """Its own: a starting mariadbd deletes every #sql* file in its tmpdir, and in the system's /tmp those are
        another server's live temporary tables (MariaDB 10.11 then crashes under a DESCRIBE)."""
        tmpdir = self.base / "tmp"
        tmpdir.mkdir(parents=True, exist_ok=True)
        return tmpdir

    def _environment(self) -> dict[str, str]:
        return {**os.environ, "TMPDIR": str(self._tmpdir())}  # mariadb-install-db's bootstrap server has no option

    def _binary(self) -> str:
        return shutil.which("mariadbd") or "/usr/sbin/mariadbd"

    def start(self, wait: bool = True) -> None:
        assert self.process is None or self.process.poll() is not None, "server already running"
        self.process = subprocess.Popen(
            [self._binary(), "--no-defaults", f"--datadir={self.datadir}", f"--socket={self.socket}",
             f"--port={self.port}", "--bind-address=127.0.0.1", "--user=root", "--skip-name-resolve",
             "--innodb-buffer-pool-size=64M", "--innodb-log-file-size=32M", "--skip-log-bin",
             "--max-connections=200", "--innodb-flush-log-at-trx-commit=1",
             f"--pid-file={self.base / 'mysqld.pid'}", f"--log-error={self.log}", f"--tmpdir={self._tmpdir()}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True, env=self._environment(),
        )
        self.stopped = False
        if wait and not wait_for(self.ping, 120, interval=0.1):
            raise RuntimeError(f"private MariaDB did not come up: {self.error_log_tail()}")
        if wait:
            self.create_facade_account()

    def error_log_tail(self) -> str:
        try:
            return self.log.read_text(errors="replace")[-1500:]
        except FileNotFoundError:
            return ""

    def ping(self) -> bool:
        if self.process is None or self.process.poll() is not None:
            return False
        completed = subprocess.run(
            ["mysqladmin", "--no-defaults", "--protocol=tcp", "-h", "127.0.0.1", "-P", str(self.port), "-u", "root",
             "--connect-timeout=2", "ping"],
            capture_output=True, timeout=10,
        )
        return completed.returncode == 0

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def send(self, signum: int) -> None:
        assert self.process is not None
        self.process.send_signal(signum)
        if signum == signal.SIGSTOP:
            self.stopped = True
        elif signum == signal.SIGCONT:
            self.stopped = False

    def kill(self) -> None:
        """SIGKILL: a crash; InnoDB recovers at the next start."""
        if self.running():
            assert self.process is not None
            self.process.kill()
            self.process.wait(30)

    def terminate(self, timeout: float = 60, wait: bool = True) -> None:
        """SIGTERM: an orderly shutdown (client sessions are killed, open transactions rolled back)."""
        if self.running():
            assert self.process is not None
            if self.stopped:
                self.send(signal.SIGCONT)
            self.process.terminate()
            if not wait:
                return
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(30)

    def url(self, database: str) -> str:
        return f"mysql+pymysql://root@127.0.0.1:{self.port}/{database}"

    # The façades' account (README, "Façades"): it may read and nothing else, or the daemon refuses to start.
    FACADE_USER, FACADE_PASSWORD = "facade", "facade-read-only"

    def facade_url(self, database: str) -> str:
        return f"mysql+pymysql://{self.FACADE_USER}:{self.FACADE_PASSWORD}@127.0.0.1:{self.port}/{database}"

    def create_facade_account(self) -> None:
        """SELECT on every database of this private server; idempotent (the data directory outlives restarts)."""
        engine = sa.create_engine(self.url(""), connect_args={"connect_timeout": 5, "read_timeout": 60})
        try:
            with engine.begin() as connection:
                connection.execute(sa.text(f"CREATE USER IF NOT EXISTS '{self.FACADE_USER}'@'%' "
                                           f"IDENTIFIED BY '{self.FACADE_PASSWORD}'"))
                connection.execute(sa.text(f"GRANT SELECT ON *.* TO '{self.FACADE_USER}'@'%'"))
        finally:
            engine.dispose()

    def drop_databases(self, *names: str) -> None:
        engine = sa.create_engine(self.url(""), connect_args={"connect_timeout": 5, "read_timeout": 60})
        try:
            with engine.begin() as connection:
                for name in names:
                    connection.exec_driver_sql(f"DROP DATABASE IF EXISTS `{name}`")
        finally:
            engine.dispose()

    def close(self) -> None:
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(OSError):
                self.process.send_signal(signal.SIGCONT)
            self.terminate(60)


# --- An environment: two databases, an inbox, a state dir, a TMPDIR ------------------------------------------


@dataclass
class Env:
    """One pair of databases with its own inbox, state directory and temporary directory."""

    backend: str
    root: Path
    name: str
    mariadb: MariaDB | None
    logs: Path
    extra: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for directory in (self.inbox, self.state_dir, self.tmpdir, self.logs):
            directory.mkdir(parents=True, exist_ok=True)

    @property
    def inbox(self) -> Path:
        return self.root / "inbox"

    @property
    def register_dir(self) -> Path:
        return self.inbox / REGISTER

    @property
    def state_dir(self) -> Path:
        return self.root / "state"

    @property
    def tmpdir(self) -> Path:
        return self.root / "tmp"

    def url(self, which: str) -> str:
        if self.backend == "sqlite":
            return f"sqlite:///{self.root / 'var' / (which + '.sqlite')}"
        assert self.mariadb is not None
        return self.mariadb.url(f"{self.name}_{'prod' if which == 'production' else 'pre'}")

    def facade_environ(self) -> dict[str, str]:
        """On MariaDB the façades read through the server's read-only account (SQLite: the file, read-only)."""
        if self.backend == "sqlite":
            return {}
        assert self.mariadb is not None
        return {"STAMDATA_FACADE_URL": self.mariadb.facade_url(f"{self.name}_prod")}

    def environ(self, port: int, **extra: str) -> dict[str, str]:
        environment = {key: value for key, value in os.environ.items() if not key.startswith("STAMDATA_")}
        for key in ("NOTIFY_SOCKET", "WATCHDOG_USEC"):
            environment.pop(key, None)
        environment.update(FAST)
        environment.update({
            "STAMDATA_PRODUCTION_URL": self.url("production"),
            "STAMDATA_PREFLIGHT_URL": self.url("preflight"),
            "STAMDATA_INBOX": str(self.inbox),
            "STAMDATA_STATE_DIR": str(self.state_dir),
            "STAMDATA_LISTEN": f"127.0.0.1:{port}",
            "TMPDIR": str(self.tmpdir),
            "PYTHONUNBUFFERED": "1",
            **self.facade_environ(),
        })
        environment.update(self.extra)
        environment.update(extra)
        return environment

    def drop(self) -> None:
        if self.backend == "mariadb" and self.mariadb is not None and self.mariadb.running():
            with contextlib.suppress(Exception):
                self.mariadb.drop_databases(f"{self.name}_prod", f"{self.name}_pre")

    # --- reading the outcome ---

    def engine(self, which: str) -> sa.Engine:
        url = self.url(which)
        if self.backend == "sqlite":
            return sa.create_engine(url, connect_args={"timeout": 60})
        return sa.create_engine(url, connect_args={"connect_timeout": 5, "read_timeout": 120})

    def rows(self, which: str, table: str, order_by: str | None = None) -> list[dict[str, Any]]:
        engine = self.engine(which)
        try:
            with engine.connect() as connection:
                if not sa.inspect(connection).has_table(table):
                    return []
                query = f"SELECT * FROM {connection.dialect.identifier_preparer.quote(table)}"
                if order_by:
                    query += f" ORDER BY {order_by}"
                return [dict(row) for row in connection.exec_driver_sql(query).mappings()]
        finally:
            engine.dispose()

    def successes(self, which: str = "production") -> list[str]:
        return [str(row["Dataset"]) for row in self.rows(which, STATUS_TABLE, "Id") if row["Outcome"] == "SUCCESS"]

    def safe_successes(self) -> list[str] | None:
        try:
            return self.successes()
        except Exception:  # the database may be down or hung; the caller polls again
            return None

    def archived(self) -> list[str]:
        base = self.register_dir / "processed"
        if not base.is_dir():
            return []
        return sorted(p.name for p in base.glob("*/*") if not p.name.endswith(".sha256") and not p.name.startswith("."))

    def processing(self) -> list[str]:
        directory = self.register_dir / ".processing"
        return sorted(p.name for p in directory.iterdir()) if directory.is_dir() else []

    def waiting(self) -> list[str]:
        if not self.register_dir.is_dir():
            return []
        return sorted(p.name for p in self.register_dir.iterdir()
                      if p.is_file() and not p.name.startswith(".") and p.name not in {"LOCKED", "READY"})

    def failed(self) -> list[str]:
        directory = self.register_dir / "failed"
        return sorted(p.name for p in directory.iterdir()) if directory.is_dir() else []

    def locked(self) -> bool:
        return (self.register_dir / "LOCKED").exists()

    def lock_reason(self) -> str:
        try:
            return (self.register_dir / "LOCKED").read_text(errors="replace").splitlines()[0]
        except (FileNotFoundError, IndexError):
            return ""

    def done(self, names: list[str]) -> bool:
        """Every name imported and archived, nothing claimed: the daemon has finished them."""
        successes = self.safe_successes()
        if successes is None:
            return False
        return set(names) <= set(successes) and set(names) <= set(self.archived()) and not self.processing()


# --- The daemon as a real subprocess --------------------------------------------------------------------------


class Daemon:
    """`python -m importer run`, configured by environment only; its JSON log lines read as they come."""

    count = 0

    def __init__(self, env: Env, label: str, **extra: str) -> None:
        Daemon.count += 1
        self.env = env
        self.port = free_port()
        self.environ = env.environ(self.port, **extra)
        self.log_path = env.logs / f"{env.name}-{label}-{Daemon.count}.log"
        self.base = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None
        self._offset = 0
        self._partial = b""
        self.events: list[dict[str, Any]] = []
        self.started_at = 0.0

    def start(self) -> Daemon:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [python(), "-m", "importer", "run"], env=self.environ, cwd=REPO,
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )
        self.started_at = time.monotonic()
        return self

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def poll_events(self) -> list[dict[str, Any]]:
        try:
            with self.log_path.open("rb") as stream:
                stream.seek(self._offset)
                chunk = stream.read()
        except FileNotFoundError:
            return self.events
        self._offset += len(chunk)
        data = self._partial + chunk
        lines = data.split(b"\n")
        self._partial = lines.pop()
        for line in lines:
            if line.startswith(b"{"):
                try:
                    self.events.append(json.loads(line))
                except ValueError:
                    continue
        return self.events

    def saw(self, event: str, dataset: str | None = None) -> bool:
        return any(item.get("event") == event and (dataset is None or item.get("dataset") == dataset)
                   for item in self.poll_events())

    def count_events(self, *prefixes: str) -> int:
        return sum(1 for item in self.poll_events() if str(item.get("event", "")).startswith(prefixes))

    def wait_event(self, event: str, dataset: str | None, timeout: float, interval: float = 0.005) -> bool:
        return bool(wait_for(lambda: self.saw(event, dataset) or not self.alive(), timeout, interval)) and \
            self.saw(event, dataset)

    def wait_ready(self, timeout: float = 120) -> bool:
        return self.wait_event("importer running", None, timeout, 0.05)

    def answers_http(self) -> bool:
        try:
            httpx.get(self.base + "/status", timeout=12)  # /status may take its own timeout to say "red"
            return True
        except httpx.HTTPError:
            return False

    def status(self, timeout: float = 10) -> tuple[int | None, float, str]:
        """(HTTP code or None if no answer within `timeout`, seconds taken, first line)."""
        began = time.monotonic()
        try:
            response = httpx.get(self.base + "/status", timeout=timeout)
            return response.status_code, time.monotonic() - began, response.text.splitlines()[0] if response.text \
                else ""
        except httpx.HTTPError as error:
            return None, time.monotonic() - began, type(error).__name__

    def kill9(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(30)

    def stop(self, timeout: float = 40) -> int | None:
        """SIGTERM and wait; SIGKILL past the timeout."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(30)
                return None
        return self.process.returncode

    def event_time(self, event: str, dataset: str) -> float | None:
        """Epoch seconds of the first such log line (the daemon logs UTC ISO timestamps)."""
        for item in self.poll_events():
            if item.get("event") == event and item.get("dataset") == dataset and isinstance(item.get("timestamp"), str):
                with contextlib.suppress(ValueError):
                    return datetime.fromisoformat(item["timestamp"].replace("Z", "+00:00")).timestamp()
        return None

    def stage_seconds(self, dataset: str) -> dict[str, float]:
        """How long each stage of `dataset` took, from the timestamps of this daemon's log lines."""
        moments: dict[str, float] = {}
        for item in self.poll_events():
            if item.get("dataset") == dataset and isinstance(item.get("timestamp"), str):
                with contextlib.suppress(ValueError):
                    moments.setdefault(str(item.get("event")),
                                       datetime.fromisoformat(item["timestamp"].replace("Z", "+00:00")).timestamp())
        seconds: dict[str, float] = {}
        for stage, (begin, end) in {"parse": ("dataset claimed", "dataset parsed"),
                                    "preflight": ("dataset parsed", "preflight committed"),
                                    "production": ("preflight committed", "production committed"),
                                    "archive": ("production committed", "dataset archived")}.items():
            if begin in moments and end in moments:
                seconds[stage] = max(0.0, moments[end] - moments[begin])
        return seconds

    def log_tail(self, lines: int = 15) -> str:
        try:
            text = self.log_path.read_text(errors="replace").splitlines()
        except FileNotFoundError:
            return ""
        return "\n".join(line[:400] for line in text[-lines:])


# --- Checking the end state -----------------------------------------------------------------------------------


@dataclass
class Verdict:
    inconsistent: list[str] = field(default_factory=list)
    lost: list[str] = field(default_factory=list)
    doubled: list[str] = field(default_factory=list)
    locked: list[str] = field(default_factory=list)
    leftovers: list[str] = field(default_factory=list)

    def problems(self) -> list[str]:
        return [*self.inconsistent, *self.lost, *self.doubled, *self.locked, *self.leftovers]


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def history_problems(rows: list[dict[str, Any]], which: str) -> list[str]:
    problems: list[str] = []
    by_key: dict[str, list[tuple[str, str]]] = {}
    for row in rows:
        valid_from, valid_to = _text(row["ValidFrom"]), _text(row["ValidTo"])
        if valid_from > valid_to:
            problems.append(f"{which}: inverted interval for {row['Autorisationsnummer']} ({valid_from} > {valid_to})")
        by_key.setdefault(str(row["Autorisationsnummer"]), []).append((valid_from, valid_to))
    for key, intervals in by_key.items():
        if sum(1 for _, end in intervals if end == OPEN_END) > 1:
            problems.append(f"{which}: {key} has more than one open row")
        intervals.sort()
        for (_, end), (start, _) in itertools.pairwise(intervals):
            if start < end:
                problems.append(f"{which}: overlapping intervals for {key}")
                break
    return problems[:20]


def verify(env: Env, expected: list[str], last_dump: dict[str, Row] | None) -> Verdict:
    """The end state after the daemon finished `expected` (every dataset dropped so far, in order)."""
    verdict = Verdict()
    production = env.rows("production", STATUS_TABLE, "Id")
    preflight = env.rows("preflight", STATUS_TABLE, "Id")
    succeeded = [str(row["Dataset"]) for row in production if row["Outcome"] == "SUCCESS"]
    for name in expected:
        count = succeeded.count(name)
        if count == 0:
            verdict.lost.append(f"{name}: no SUCCESS row in production")
        elif count > 1:
            verdict.doubled.append(f"{name}: {count} SUCCESS rows in production")
    for name in sorted(set(succeeded) - set(expected)):
        verdict.doubled.append(f"{name}: SUCCESS in production but never dropped")
    if succeeded != sorted(succeeded):
        verdict.inconsistent.append(f"production imported out of name order: {succeeded}")
    pre_succeeded = [str(row["Dataset"]) for row in preflight if row["Outcome"] == "SUCCESS"]
    if sorted(pre_succeeded) != sorted(succeeded):
        verdict.inconsistent.append(
            f"preflight SUCCESS rows {len(pre_succeeded)} differ from production's {len(succeeded)}: "
            f"only preflight {sorted(set(pre_succeeded) - set(succeeded))[:3]}, "
            f"only production {sorted(set(succeeded) - set(pre_succeeded))[:3]}")
    running = [row["RunId"] for row in production + preflight if row["EndTime"] is None]
    if running:
        verdict.inconsistent.append(f"status rows never ended: {running[:3]}")

    archived = env.archived()
    base_names = [re.sub(r"\.\d+$", "", name) for name in archived]
    for name in expected:
        copies = base_names.count(name)
        if copies == 0:
            if name not in succeeded:
                pass  # already counted as lost
            else:
                verdict.lost.append(f"{name}: imported but not archived")
        elif copies > 1:
            verdict.doubled.append(f"{name}: archived {copies} times")
    for name in env.processing():
        verdict.leftovers.append(f"{name} left in .processing/")
    for name in env.waiting():
        verdict.lost.append(f"{name} still waiting in the inbox")
    for name in env.failed():
        verdict.locked.append(f"{name} moved to failed/")
    if env.locked():
        verdict.locked.append(f"register LOCKED: {env.lock_reason()}")
    for checksum in (env.register_dir / "processed").glob("*/*.sha256"):
        fields = checksum.read_text(errors="replace").split()
        dataset = checksum.with_name(checksum.name.removesuffix(".sha256"))
        if len(fields) != 2 or len(fields[0]) != 64:
            verdict.leftovers.append(f"half-written checksum file {checksum.name}")
        elif dataset.is_file() and hashlib.sha256(dataset.read_bytes()).hexdigest() != fields[0]:
            verdict.leftovers.append(f"archived {dataset.name} does not match its checksum")
    for hidden in (env.register_dir / "processed").glob("*/.*"):
        verdict.leftovers.append(f"half-written file {hidden.name} in the archive")

    # Preflight and production identical, row for row, surrogate keys included.
    for table, order in (("Autorisation2", "AutorisationPID"), ("autreg2", "id")):
        pre = [tuple(_text(v) for v in row.values()) for row in env.rows("preflight", table, order)]
        prod = [tuple(_text(v) for v in row.values()) for row in env.rows("production", table, order)]
        if pre != prod:
            without = sorted(row[1:] for row in pre) == sorted(row[1:] for row in prod)
            verdict.inconsistent.append(
                f"{table}: preflight ({len(pre)} rows) differs from production ({len(prod)} rows)"
                + (" only in surrogate keys" if without else " in content"))
    history = env.rows("production", "Autorisation2", "AutorisationPID")
    verdict.inconsistent.extend(history_problems(history, "production"))
    verdict.inconsistent.extend(history_problems(env.rows("preflight", "Autorisation2", "AutorisationPID"),
                                                 "preflight"))
    open_rows = {(str(r["Autorisationsnummer"]), str(r["CPR"]), str(r["Efternavn"]), str(r["Fornavn"]),
                  str(r["UddannelsesKode"])) for r in history if _text(r["ValidTo"]) == OPEN_END}
    if last_dump is not None and open_rows != set(last_dump.values()):
        missing = len(set(last_dump.values()) - open_rows)
        extra = len(open_rows - set(last_dump.values()))
        verdict.inconsistent.append(f"open rows differ from the last dump: {missing} missing, {extra} extra")
    derived = {(str(r["aut_id"]), str(r["cpr"]), str(r["surname"]), str(r["given_name"]), str(r["edu_id"]))
               for r in env.rows("production", "autreg2")}
    if derived != open_rows:
        verdict.inconsistent.append(f"autreg2 ({len(derived)}) differs from the open rows ({len(open_rows)})")

    # Temporary load files: never left in TMPDIR; the engine's own <state_dir>/tmp is private and cleared.
    for leftover in env.tmpdir.glob("stamdata-load-*"):
        verdict.leftovers.append(f"temporary load file {leftover.name} left in TMPDIR")
    for leftover in env.state_dir.glob("*.tmp*"):
        verdict.leftovers.append(f"half-written state file {leftover.name}")
    return verdict


def state_tmp_entries(env: Env) -> set[str]:
    directory = env.state_dir / "tmp"
    return {p.name for p in directory.iterdir()} if directory.is_dir() else set()


def state_tmp_problems(env: Env, before_restart: set[str]) -> list[str]:
    """After a restart the engine's temporary directory holds nothing the killed process left there."""
    directory = env.state_dir / "tmp"
    if not directory.exists():
        return []
    problems = []
    mode = directory.stat().st_mode & 0o777
    if mode & 0o077:
        problems.append(f"{directory} has mode {mode:o}, not 0700")
    problems.extend(f"{name} (left by the killed daemon) still in <state_dir>/tmp after the restart"
                    for name in sorted(before_restart & state_tmp_entries(env)))
    return problems


_TEN_DIGITS = re.compile(rb"(?<![0-9])[0-9]{10}(?![0-9])")


def cpr_leaks(paths: Iterator[Path] | list[Path], cprs: set[str]) -> tuple[int, list[str]]:
    """Lines holding a full CPR number from the generated dumps."""
    wanted = {cpr.encode() for cpr in cprs}
    count, examples = 0, list[str]()
    for path in paths:
        try:
            data = path.read_bytes()
        except OSError:
            continue
        for line in data.splitlines():
            if any(match.group(0) in wanted for match in _TEN_DIGITS.finditer(line)):
                count += 1
                if len(examples) < 3:
                    examples.append(f"{path.name}: {line[:160].decode(errors='replace')}")
    return count, examples


# --- Disk full -------------------------------------------------------------------------------------------------


def mount_tmpfs(directory: Path, size_kib: int) -> bool:
    directory.mkdir(parents=True, exist_ok=True)
    completed = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_kib}k,mode=0755", "tmpfs",
                                str(directory)], capture_output=True, timeout=30)
    return completed.returncode == 0


def umount(directory: Path) -> None:
    completed = subprocess.run(["umount", str(directory)], capture_output=True, timeout=30)
    if completed.returncode != 0:
        subprocess.run(["umount", "-l", str(directory)], capture_output=True, timeout=30)


def fill(directory: Path) -> Path:
    """Write a filler file until the file system is full (unbuffered, so nothing is left to flush on close)."""
    filler = directory / ".filler"
    with filler.open("wb", buffering=0) as stream:
        for size in (1 << 20, 65536, 4096, 512):
            try:
                while True:
                    stream.write(b"\0" * size)
            except OSError:
                continue
    return filler
