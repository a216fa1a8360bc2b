"""Shared fixtures: real SQLite files and real MariaDB databases, the CLI in-process and as a subprocess.

MariaDB tests use `STAMDATA_TEST_MARIADB_URL` (default: root on 127.0.0.1:3306). Where no server answers
they skip with the reason, except when `STAMDATA_TEST_REQUIRE_MARIADB` is set (CI), where they fail.
"""

import os
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from importer.config import Settings, load_settings
from importer.db import table_exists
from importer.load.plugin import Register

MARIADB_URL = os.environ.get("STAMDATA_TEST_MARIADB_URL", "mysql+pymysql://root@127.0.0.1:3306/")
REQUIRE_MARIADB = bool(os.environ.get("STAMDATA_TEST_REQUIRE_MARIADB"))
BACKENDS = ["sqlite", pytest.param("mariadb", marks=pytest.mark.mariadb)]
REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO.parent / "shared" / "data"

_mariadb_reason: list[str | None] = []


def mariadb_or_skip() -> None:
    """Skip (or, in CI, fail) when no MariaDB server answers."""
    if not _mariadb_reason:
        engine = sa.create_engine(MARIADB_URL, connect_args={"connect_timeout": 3})
        try:
            with engine.connect() as connection:
                connection.execute(sa.text("SELECT 1"))
            _mariadb_reason.append(None)
        except Exception as error:  # any failure to connect means: no server for these tests
            _mariadb_reason.append(
                f"no MariaDB/MySQL server at {MARIADB_URL} ({type(error).__name__}); set STAMDATA_TEST_MARIADB_URL"
            )
        finally:
            engine.dispose()
    reason = _mariadb_reason[0]
    if reason is not None:
        if REQUIRE_MARIADB:
            pytest.fail(f"MariaDB is required here (STAMDATA_TEST_REQUIRE_MARIADB is set): {reason}")
        pytest.skip(reason)


# Production database name -> (user, password) of its read-only façade account, for Databases made from the
# fixture's by hand (through a proxy, say): they get the same account, at their own address.
_FACADE_ACCOUNTS: dict[str, tuple[str, str]] = {}


@dataclass(frozen=True)
class Databases:
    """A preflight and a production database, fresh for one test; on MariaDB also the façades' account, granted
    SELECT only on production (README, "Façades"): the daemon and `serve` refuse to start with a writable one."""

    backend: str
    preflight_url: str
    production_url: str
    inbox: Path
    facade_url: str = ""  # empty on SQLite, where the façades open the production file read-only

    def __post_init__(self) -> None:
        if not self.facade_url and self.backend == "mariadb":
            account = _FACADE_ACCOUNTS.get(make_url(self.production_url).database or "")
            if account is not None:
                object.__setattr__(self, "facade_url", _with_account(self.production_url, *account))

    def environ(self, **extra: str) -> dict[str, str]:
        environment = {
            "STAMDATA_PREFLIGHT_URL": self.preflight_url,
            "STAMDATA_PRODUCTION_URL": self.production_url,
            "STAMDATA_INBOX": str(self.inbox),
            "STAMDATA_STATE_DIR": str(self.inbox.parent / "state"),
            **extra,
        }
        if self.facade_url and "STAMDATA_FACADE_URL" not in extra:
            # The façades read whatever production the test says, with the read-only account.
            production = make_url(environment["STAMDATA_PRODUCTION_URL"])
            if production.get_backend_name() in {"mysql", "mariadb"}:
                account = make_url(self.facade_url)
                environment["STAMDATA_FACADE_URL"] = _with_account(
                    environment["STAMDATA_PRODUCTION_URL"], account.username or "", account.password or "")
        return environment

    def settings(self, **extra: str) -> Settings:
        return load_settings(None, self.environ(**extra))

    def rows(self, which: str, table: str, order_by: str | None = None) -> list[dict[str, Any]]:
        url = self.production_url if which == "production" else self.preflight_url
        engine = sa.create_engine(url)
        try:
            with engine.connect() as connection:
                if not table_exists(connection, table):
                    return []
                query = f"SELECT * FROM {connection.dialect.identifier_preparer.quote(table)}"
                if order_by:
                    query += f" ORDER BY {order_by}"
                return [dict(row) for row in connection.exec_driver_sql(query).mappings()]
        finally:
            engine.dispose()

    def production_rows(self, register: Register) -> dict[str, list[dict[str, Any]]]:
        """Every row of a register's tables in production, in a fixed order, and its successful status rows: what
        a refusal must leave as it was (it adds only its own FAILURE status row, see `failed_runs`)."""
        tables = [*(spec.name for spec in register.tables), *(table.name for table in register.derived_tables())]
        rows = {table: self.rows("production", table, order_by="1") for table in tables}
        status = self.rows("production", register.status_table_name, order_by="1")
        rows[register.status_table_name] = [row for row in status if row["Outcome"] != "FAILURE"]
        return rows

    def failed_runs(self, which: str, register: Register) -> list[dict[str, Any]]:
        return [row for row in self.rows(which, register.status_table_name, order_by="Id")
                if row["Outcome"] == "FAILURE"]


def _with_account(url: str, user: str, password: str) -> str:
    return make_url(url).set(username=user, password=password).render_as_string(hide_password=False)


def _mariadb_databases(tmp_path: Path) -> Iterator[Databases]:
    mariadb_or_skip()
    stem = f"stamdata_test_{uuid.uuid4().hex[:10]}"
    names = (f"{stem}_pre", f"{stem}_prod")
    # The façades' account, as README's recipe makes it: SELECT on the production database and nothing else.
    user, password = f"facade_{uuid.uuid4().hex[:12]}", uuid.uuid4().hex
    hosts = ("%", "localhost")
    server = sa.create_engine(MARIADB_URL)
    try:
        with server.begin() as connection:
            for name in names:
                connection.exec_driver_sql(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin")
            pattern = names[1].replace("_", "\\_")  # in a database-wide grant `_` is a wildcard
            for host in hosts:
                connection.execute(sa.text(f"CREATE USER '{user}'@'{host}' IDENTIFIED BY '{password}'"))
                connection.execute(sa.text(f"GRANT SELECT ON `{pattern}`.* TO '{user}'@'{host}'"))
        _FACADE_ACCOUNTS[names[1]] = (user, password)
        yield Databases("mariadb", MARIADB_URL + names[0], MARIADB_URL + names[1], tmp_path / "inbox",
                        _with_account(MARIADB_URL + names[1], user, password))
    finally:
        _FACADE_ACCOUNTS.pop(names[1], None)
        with server.begin() as connection:
            for name in names:
                connection.exec_driver_sql(f"DROP DATABASE IF EXISTS `{name}`")
            connection.execute(sa.text(f"DROP USER IF EXISTS {', '.join(f'{user!r}@{host!r}' for host in hosts)}"))
        server.dispose()


def _sqlite_databases(tmp_path: Path) -> Databases:
    return Databases(
        "sqlite",
        f"sqlite:///{tmp_path / 'var' / 'preflight.sqlite'}",
        f"sqlite:///{tmp_path / 'var' / 'production.sqlite'}",
        tmp_path / "inbox",
    )


@pytest.fixture(params=BACKENDS)
def databases(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Databases]:
    """Fresh preflight and production databases on each backend."""
    if request.param == "sqlite":
        yield _sqlite_databases(tmp_path)
    else:
        yield from _mariadb_databases(tmp_path)


@pytest.fixture
def sqlite_databases(tmp_path: Path) -> Databases:
    return _sqlite_databases(tmp_path)


@pytest.fixture
def mariadb_databases(tmp_path: Path) -> Iterator[Databases]:
    yield from _mariadb_databases(tmp_path)


@dataclass
class CliResult:
    exit_code: int
    stdout: str
    stderr: str


def run_cli(*args: str, env: dict[str, str], cwd: Path | None = None, timeout: float = 120) -> CliResult:
    """The real console entry point in a subprocess, as an operator or a harness would run it."""
    environment = {key: value for key, value in os.environ.items() if not key.startswith("STAMDATA_")}
    environment.update(env)
    completed = subprocess.run(
        [sys.executable, "-m", "importer", *args],
        env=environment,
        cwd=cwd or REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    # Echo into pytest's capture so the suite-wide personal-data scan sees subprocess output too.
    sys.stdout.write(completed.stdout)
    sys.stderr.write(completed.stderr)
    return CliResult(completed.returncode, completed.stdout, completed.stderr)


# --- Personal data: nothing the suite prints may hold an unmasked CPR number. ---------------------------

_UNMASKED_CPR = re.compile(r"[0-9a-fA-F]{32,}|(?<![\d.:-])\d{6}-?\d{4}(?!\d)")
_leaks: list[str] = []


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    for section, text in report.sections:
        if "Captured" not in section:
            continue
        for match in _UNMASKED_CPR.finditer(text):
            if len(match.group(0)) >= 32:
                continue  # a digest, not a number
            _leaks.append(f"{report.nodeid} [{section}]: …{text[max(0, match.start() - 60):match.end() + 20]}…")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if _leaks:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line(f"\nUnmasked CPR-like numbers in captured output ({len(_leaks)}):", red=True)
            for leak in _leaks[:20]:
                reporter.write_line(f"  {leak}", red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
