"""The real daemon as a subprocess, as systemd or the acceptance harness runs it, and ways to observe it.

Every wait polls a condition with a deadline; nothing sleeps for a fixed time where a condition can be polled.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import httpx
import sqlalchemy as sa

from tests.conftest import REPO, Databases

T = TypeVar("T")

STATUS_TABLE = "autorisationimporterImportStatus"

# Small enough that tests are quick, large enough to exercise the waits.
FAST = {
    "STAMDATA_AUTORISATION_QUIET_PERIOD_S": "0.6",
    "STAMDATA_RESCAN_INTERVAL_S": "0.2",
    "STAMDATA_RETRY_INITIAL_S": "0.5",
    "STAMDATA_RETRY_MAX_S": "2",
    "STAMDATA_STOP_TIMEOUT_S": "30",
    "STAMDATA_LOCK_WAIT_S": "30",
    # The generated dumps change every surname from one day to the next: the change guard would refuse them.
    "STAMDATA_AUTORISATION_CHANGE_GUARD": "1",
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(condition: Callable[[], T], timeout: float, what: str, interval: float = 0.05) -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


class DaemonProcess:
    def __init__(self, databases: Databases, log_dir: Path, env: dict[str, str] | None = None,
                 name: str = "daemon") -> None:
        self.port = free_port()
        self.log_path = log_dir / f"{name}-{self.port}.log"
        environment = {key: value for key, value in os.environ.items() if not key.startswith("STAMDATA_")}
        environment.pop("NOTIFY_SOCKET", None)
        environment.pop("WATCHDOG_USEC", None)
        environment.update(databases.environ(STAMDATA_LISTEN=f"127.0.0.1:{self.port}", **FAST))
        environment.update(env or {})
        self.environ = environment
        self.base = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None
        self._log_offset = 0

    def start(self, wait_ready: bool = True) -> "DaemonProcess":
        log_dir = self.log_path.parent
        log_dir.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "importer", "run"], env=self.environ, cwd=REPO,
                stdout=log, stderr=subprocess.STDOUT,
            )
        if wait_ready:
            self.wait_ready()
        return self

    def wait_ready(self) -> None:
        """Migrated, watching and serving: what READY=1 tells systemd."""
        self.wait_http()
        wait_for(self._running, 60, "the daemon to be ready")

    def _running(self) -> bool:
        self.check_alive()
        return self.saw("importer running")

    def wait_http(self) -> None:
        wait_for(self._answers, 60, "the daemon to serve HTTP")

    def _answers(self) -> bool:
        self.check_alive()
        try:
            httpx.get(self.base + "/status", timeout=2)
            return True
        except httpx.HTTPError:
            return False

    def check_alive(self) -> None:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(f"daemon exited with {self.process.returncode}: {self.log_text()[-3000:]}")

    def get(self, path: str, timeout: float = 15) -> httpx.Response:
        return httpx.get(self.base + path, timeout=timeout)

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    def log_events(self) -> list[dict[str, Any]]:
        events = []
        for line in self.log_text().splitlines():
            if line.startswith("{"):
                try:
                    events.append(json.loads(line))
                except ValueError:
                    continue
        return events

    def saw(self, event: str, **fields: Any) -> bool:
        return any(
            item.get("event") == event and all(item.get(k) == v for k, v in fields.items())
            for item in self.log_events()
        )

    def signal(self, signum: int) -> None:
        assert self.process is not None
        self.process.send_signal(signum)

    def kill9(self) -> None:
        assert self.process is not None
        self.process.kill()
        self.process.wait(10)

    def wait_exit(self, timeout: float) -> int:
        assert self.process is not None
        return self.process.wait(timeout)

    def close(self) -> None:
        """Teardown: stop if still running; echo the log into pytest's capture for the personal-data scan."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        sys.stderr.write(self.log_text())


class NotifySocket:
    """Stands in for systemd: a datagram socket that records every notification."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.2)
        self.messages: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._receive, daemon=True)
        self._thread.start()

    def _receive(self) -> None:
        while not self._stop.is_set():
            try:
                self.messages.append(self.sock.recv(4096).decode())
            except TimeoutError:
                continue
            except OSError:
                return

    def lines(self) -> list[str]:
        return [line for message in list(self.messages) for line in message.splitlines()]

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.sock.close()


def status_rows(databases: Databases, which: str = "production") -> list[dict[str, Any]]:
    return databases.rows(which, STATUS_TABLE, order_by="Id")


def successes(databases: Databases, which: str = "production") -> list[str]:
    return [row["Dataset"] for row in status_rows(databases, which) if row["Outcome"] == "SUCCESS"]


def open_row_count(databases: Databases, which: str = "production") -> int:
    """Currently valid authorisations, counted by the database (the big dumps are too many rows to fetch)."""
    engine = sa.create_engine(databases.production_url if which == "production" else databases.preflight_url)
    try:
        with engine.connect() as connection:
            return int(connection.execute(
                sa.text("SELECT COUNT(*) FROM Autorisation2 WHERE ValidTo >= :open"), {"open": "2999-01-01"}
            ).scalar_one())
    finally:
        engine.dispose()
