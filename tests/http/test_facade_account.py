"""Least privilege for the façades: `serve` and the daemon refuse to start with a database account that can write
(exit 2, a message that says why and how to fix it, the password hidden), start with a SELECT-only one, and start
with a writable one only when allow_writable_facade says so. And the reason it matters: the session's read-only
flag can be switched off by the session itself; only the account (or SQLite's read-only file) stops the write."""

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
import structlog
from sqlalchemy.engine import make_url

from importer.db import LazyEngine, create_engine
from importer.errors import UsageError
from importer.http.database import FacadeDatabase, parse_grant, writable_grants
from importer.load.pipeline import Pipeline
from tests.conftest import MARIADB_URL, Databases, run_cli
from tests.daemon.harness import free_port
from tests.http.server import serve_process

PROBE = "facade_probe"


def prepare(databases: Databases) -> None:
    """Migrated databases (what the façades read) and a table to try writing to."""
    pipeline = Pipeline(databases.settings())
    try:
        pipeline.migrate()
    finally:
        pipeline.close()
    engine = create_engine(databases.production_url)
    try:
        with engine.begin() as connection:
            connection.exec_driver_sql(f"CREATE TABLE {PROBE} (x INTEGER)")
    finally:
        engine.dispose()


def probe_rows(databases: Databases) -> int:
    return len(databases.rows("production", PROBE))


@contextmanager
def account(databases: Databases, *grants: str) -> Iterator[str]:
    """A MariaDB user with a password and these grants (`{db}` is the production database); yields its URL."""
    database = make_url(databases.production_url).database
    user, password = f"facade_{uuid.uuid4().hex[:10]}", f"secret{uuid.uuid4().hex}"
    hosts = ("%", "localhost")
    server = sa.create_engine(MARIADB_URL)
    try:
        with server.begin() as connection:
            for host in hosts:
                connection.execute(sa.text(f"CREATE USER '{user}'@'{host}' IDENTIFIED BY '{password}'"))
                for grant in grants:
                    connection.execute(sa.text(grant.format(db=database, user=f"'{user}'@'{host}'")))
        yield make_url(databases.production_url).set(username=user, password=password).render_as_string(
            hide_password=False)
    finally:
        with server.begin() as connection:
            connection.execute(sa.text(f"DROP USER IF EXISTS '{user}'@'%', '{user}'@'localhost'"))
        server.dispose()


@contextmanager
def role(*grants: str) -> Iterator[str]:
    name = f"facade_role_{uuid.uuid4().hex[:10]}"
    server = sa.create_engine(MARIADB_URL)
    try:
        with server.begin() as connection:
            connection.execute(sa.text(f"CREATE ROLE {name}"))
            for grant in grants:
                connection.execute(sa.text(grant.format(role=name)))
        yield name
    finally:
        with server.begin() as connection:
            connection.execute(sa.text(f"DROP ROLE IF EXISTS {name}"))
        server.dispose()


def environment(databases: Databases, **extra: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("STAMDATA_")}
    env.update(databases.environ(**extra))
    return env


def refused(command: str, databases: Databases, **extra: str) -> str:
    """Runs `command` expecting the start-up refusal; returns what it printed."""
    result = run_cli(command, env=databases.environ(STAMDATA_LISTEN=f"127.0.0.1:{free_port()}", **extra), timeout=60)
    assert result.exit_code == 2, result.stdout + result.stderr
    return result.stdout + result.stderr


# --- start-up -----------------------------------------------------------------------------------------------


@pytest.mark.mariadb
@pytest.mark.parametrize("command", ["serve", "run"])
def test_a_writable_account_is_refused_with_exit_2_and_a_clear_message(mariadb_databases: Databases,
                                                                       command: str) -> None:
    databases = mariadb_databases
    prepare(databases)
    output = refused(command, databases, STAMDATA_FACADE_URL=databases.production_url)  # root: everything
    assert "UsageError" in output and "can write" in output and "ALL PRIVILEGES on *.*" in output, output
    assert "SELECT only" in output and "README" in output and "allow_writable_facade" in output, output
    with account(databases, "GRANT SELECT, INSERT ON `{db}`.* TO {user}") as writer:
        output = refused(command, databases, STAMDATA_FACADE_URL=writer)
        password = make_url(writer).password
        assert password and password not in output and "***" in output, output
        assert f"INSERT on {make_url(writer).database}.*" in output, output
    assert probe_rows(databases) == 0


@pytest.mark.mariadb
def test_serve_starts_with_the_select_only_account_and_with_a_writable_one_when_allowed(
    mariadb_databases: Databases, tmp_path: Path
) -> None:
    databases = mariadb_databases
    prepare(databases)
    assert make_url(databases.facade_url).username != make_url(databases.production_url).username
    with serve_process(databases, tmp_path) as (base, log_path):  # the fixture's account: SELECT on production only
        assert httpx.get(f"{base}/status").status_code == 200
    assert "account cannot write" in log_path.read_text()
    with serve_process(databases, tmp_path, STAMDATA_FACADE_URL=databases.production_url,
                 STAMDATA_ALLOW_WRITABLE_FACADE="true") as (base, log_path):
        assert httpx.get(f"{base}/status").status_code == 200
    output = log_path.read_text()
    assert "account can write; allowed by allow_writable_facade" in output, output


def test_serve_starts_on_sqlite_whose_file_the_facades_open_read_only(sqlite_databases: Databases,
                                                                     tmp_path: Path) -> None:
    prepare(sqlite_databases)
    with serve_process(sqlite_databases, tmp_path) as (base, log_path):
        assert httpx.get(f"{base}/status").status_code == 200
    assert "account cannot write" in log_path.read_text()
    assert probe_rows(sqlite_databases) == 0


def test_an_unreachable_database_is_no_reason_to_refuse_to_start(tmp_path: Path) -> None:
    missing = tmp_path / "absent" / "production.sqlite"
    with structlog.testing.capture_logs() as logs:
        FacadeDatabase("mysql+pymysql://facade:pw@127.0.0.1:1/stamdata").check_cannot_write(False)
        FacadeDatabase(f"sqlite:///{missing}").check_cannot_write(False)
    assert [event["log_level"] for event in logs] == ["warning", "info"]
    assert "unreachable" in logs[0]["event"] and "pw" not in repr(logs[0])
    assert not missing.parent.exists()  # not created by the check


def test_a_sqlite_engine_that_could_write_is_caught(sqlite_databases: Databases) -> None:
    """If a change ever opened the façades' SQLite file for writing, the start-up check would say so."""
    prepare(sqlite_databases)
    facades = FacadeDatabase(sqlite_databases.production_url)
    # What the façades must never get: an engine that opens the file for writing.
    facades._members[0].engine = LazyEngine(lambda: create_engine(sqlite_databases.production_url))
    try:
        with pytest.raises(UsageError, match=r"can write .*a table could be created"):
            facades.check_cannot_write(False)
        with structlog.testing.capture_logs() as logs:
            facades.check_cannot_write(True)
        assert [event["log_level"] for event in logs] == ["warning"]
    finally:
        facades.close()
    tables = create_engine(sqlite_databases.production_url)
    try:
        assert not [name for name in sa.inspect(tables).get_table_names() if "probe_" in name]  # rolled back
    finally:
        tables.dispose()


# --- hostile sessions ---------------------------------------------------------------------------------------


def test_sqlite_a_session_that_switches_query_only_off_still_cannot_write(sqlite_databases: Databases) -> None:
    databases = sqlite_databases
    prepare(databases)
    facades = FacadeDatabase(databases.settings().facade_database_url)  # the production file, opened read-only
    try:
        with pytest.raises(sa.exc.OperationalError, match="readonly"), facades.connect() as connection:
            connection.exec_driver_sql("PRAGMA query_only = OFF")
            connection.exec_driver_sql(f"INSERT INTO {PROBE} (x) VALUES (1)")
            connection.exec_driver_sql("COMMIT")
        facades.check_cannot_write(False)  # and the start-up check agrees
    finally:
        facades.close()
    assert probe_rows(databases) == 0


@pytest.mark.mariadb
def test_mariadb_a_session_that_switches_read_write_still_cannot_write_with_the_select_only_account(
    mariadb_databases: Databases
) -> None:
    databases = mariadb_databases
    prepare(databases)

    def hostile(facades: FacadeDatabase) -> None:
        """What an injected statement could do: turn the session read-write, then write and commit."""
        with facades.connect() as connection:
            connection.exec_driver_sql("SET SESSION TRANSACTION READ WRITE")
            connection.exec_driver_sql("COMMIT")  # the read-only transaction ends; the next one may write
            connection.exec_driver_sql(f"INSERT INTO {PROBE} (x) VALUES (1)")
            connection.exec_driver_sql("COMMIT")

    reader = FacadeDatabase(databases.settings().facade_database_url)  # the fixture's SELECT-only account
    try:
        with pytest.raises(sa.exc.DBAPIError, match="INSERT command denied"):
            hostile(reader)
        reader.check_cannot_write(False)
    finally:
        reader.close()
    assert probe_rows(databases) == 0

    # The same session with the importer's own account commits its write: the flag alone protects nothing,
    # which is why the start-up check refuses that account.
    writer = FacadeDatabase(databases.production_url)
    try:
        hostile(writer)
        with pytest.raises(UsageError):
            writer.check_cannot_write(False)
    finally:
        writer.close()
    assert probe_rows(databases) == 1


# --- what counts as writing ---------------------------------------------------------------------------------


@pytest.mark.mariadb
def test_roles_count_as_the_account_does(mariadb_databases: Databases) -> None:
    """A role granted to the account (active or not, nested or not) counts; so does a grant to PUBLIC."""
    databases = mariadb_databases
    prepare(databases)
    database = make_url(databases.production_url).database

    def check(url: str) -> None:
        facades = FacadeDatabase(url)
        try:
            facades.check_cannot_write(False)
        finally:
            facades.close()

    with role(f"GRANT SELECT ON `{database}`.* TO {{role}}") as reading, \
            account(databases, f"GRANT {reading} TO {{user}}") as url:
        check(url)
    with role(f"GRANT SELECT, UPDATE ON `{database}`.* TO {{role}}") as updating, \
            account(databases, f"GRANT {updating} TO {{user}}") as url, pytest.raises(UsageError, match="UPDATE on"):
        check(url)
    with role(f"GRANT DELETE ON `{database}`.`{PROBE}` TO {{role}}") as inner, \
            role(f"GRANT {inner} TO {{role}}") as outer, \
            account(databases, f"GRANT {outer} TO {{user}}", f"SET DEFAULT ROLE {outer} FOR {{user}}") as url, \
            pytest.raises(UsageError, match=f"DELETE on {database}.{PROBE}"):
        check(url)
    with account(databases, "GRANT SELECT ON `{db}`.* TO {user}") as url:
        check(url)
        server = sa.create_engine(MARIADB_URL)
        try:
            with server.begin() as connection:
                connection.execute(sa.text(f"GRANT INSERT ON `{database}`.* TO PUBLIC"))
        except sa.exc.DBAPIError:
            server.dispose()
            return  # a server without PUBLIC (before MariaDB 10.11)
        try:
            with pytest.raises(UsageError, match="INSERT on"):
                check(url)
        finally:
            with server.begin() as connection:
                connection.execute(sa.text(f"REVOKE INSERT ON `{database}`.* FROM PUBLIC"))
            server.dispose()


MARIADB_ROOT = [
    "GRANT ALL PRIVILEGES ON *.* TO `root`@`localhost` IDENTIFIED VIA unix_socket OR mysql_native_password "
    "WITH GRANT OPTION",
    "GRANT PROXY ON ``@`%` TO `root`@`localhost` WITH GRANT OPTION",
]


@pytest.mark.parametrize(("lines", "expected"), [
    (["GRANT USAGE ON *.* TO `f`@`%` IDENTIFIED BY PASSWORD '*AB'", "GRANT SELECT ON `stamdata`.* TO `f`@`%`"], []),
    (["GRANT SELECT, SHOW VIEW, PROCESS, BINLOG MONITOR, SLAVE MONITOR ON *.* TO `f`@`%`"], []),
    (["GRANT SELECT, INSERT ON `other`.* TO `f`@`%`", "GRANT UPDATE ON `other`.`t` TO `f`@`%`"], []),
    (["GRANT SELECT, INSERT ON `stamdata`.* TO `f`@`%`"], ["INSERT on stamdata.*"]),
    (["GRANT INSERT ON `stamdat_`.* TO `f`@`%`"], ["INSERT on stamdat_.*"]),  # `_` and `%` are wildcards
    (["GRANT INSERT ON `stam%`.* TO `f`@`%`"], ["INSERT on stam%.*"]),
    (["GRANT INSERT ON `stamdat\\_`.* TO `f`@`%`"], []),  # …unless escaped
    (["GRANT SELECT (`a`), UPDATE (`b`, `c`) ON `stamdata`.`t` TO `f`@`%`"], ["UPDATE on stamdata.t"]),
    (["GRANT EXECUTE ON PROCEDURE `stamdata`.`p` TO `f`@`%`"], ["EXECUTE on PROCEDURE stamdata.p"]),
    (["GRANT SELECT ON *.* TO `f`@`%` WITH GRANT OPTION"], ["GRANT OPTION on *.*"]),
    (["GRANT LOCK TABLES, CREATE TEMPORARY TABLES ON `stamdata`.* TO `f`@`%`"],
     ["LOCK TABLES, CREATE TEMPORARY TABLES on stamdata.*"]),
    (["GRANT `r` TO `f`@`%`", "UNCHECKED `r`"], ["role `r`, whose grants cannot be read"]),
    (["GRANT INSERT ON `stamdata`.* TO PUBLIC"], ["INSERT on stamdata.*"]),
    (["GRANT SELECT ON stamdata TO x"], []),  # a table of the default database at grant time: any
    (["GRANT FROB ON *.* TO `f`@`%`"], ["FROB on *.*"]),  # unknown privileges are not read-only
    (["GRANT BACKUP_ADMIN,SYSTEM_VARIABLES_ADMIN ON *.* TO `root`@`%` WITH GRANT OPTION"],
     ["BACKUP_ADMIN, SYSTEM_VARIABLES_ADMIN on *.*", "GRANT OPTION on *.*"]),  # MySQL 8's dynamic privileges
    (["GRANT ON *.* TO x"], ["a grant not understood: GRANT ON *.* TO x"]),
    (["SET DEFAULT ROLE `r` FOR `f`@`%`", "REVOKE INSERT ON `mysql`.* FROM `f`@`%`"], []),
    (MARIADB_ROOT, ["ALL PRIVILEGES on *.*", "GRANT OPTION on *.*", "PROXY (it may act as another account)"]),
])
def test_what_counts_as_writing(lines: list[str], expected: list[str]) -> None:
    assert writable_grants(lines, "stamdata") == expected


def test_a_role_grant_and_its_grantee_are_read() -> None:
    grant = parse_grant("GRANT `reader`, `r2`@`%` TO `facade`@`10.0.0.%` WITH ADMIN OPTION")
    assert grant is not None
    assert grant.roles == (("reader", None), ("r2", "%")) and grant.grantee == ("facade", "10.0.0.%")
    assert grant.with_option == "ADMIN OPTION"
    assert writable_grants(["GRANT `reader` TO `facade`@`%`"], "stamdata") == []
