"""Migrations: names sort like the revision chain, upgrades are idempotent, both dialects get one schema."""

import re
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.operations import toimpl
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from importer.clock import SystemClock
from importer.db import create_engine, table_exists
from importer.http import audit, clients  # noqa: F401  (audit adds its table to the metadata)
from importer.http.health import HealthChecker
from importer.load import heartbeat, migrate, notifications, test_keys
from importer.load.plugin import discover
from migrations import LOCATION
from tests.conftest import REPO, Databases

FILE_NAME = re.compile(r"^(V\d{8}_\d{4})_[a-z0-9_]+\.py$")


def test_file_names_are_versioned_and_name_order_is_revision_order() -> None:
    files = sorted(p.name for p in (Path(LOCATION) / "versions").glob("*.py") if not p.name.startswith("__"))
    assert files, "no migrations found"
    for name in files:
        assert FILE_NAME.match(name), f"{name} does not follow VYYYYMMDD_HHMM_description.py"
    by_name = [FILE_NAME.match(name).group(1) for name in files]  # type: ignore[union-attr]

    scripts = ScriptDirectory.from_config(migrate.alembic_config())
    chain = [script.revision for script in scripts.walk_revisions()][::-1]  # base first
    assert chain == by_name
    assert len(scripts.get_heads()) == 1, "the revision chain must not branch"


def schema_of(url: str) -> dict[str, Any]:
    engine = create_engine(url)
    try:
        inspector = sa.inspect(engine)
        schema: dict[str, Any] = {}
        for table in sorted(inspector.get_table_names()):
            columns = {
                c["name"]: (type(c["type"]).__name__.upper(), c["nullable"], getattr(c["type"], "length", None))
                for c in inspector.get_columns(table)
            }
            indexes = {i["name"]: tuple(i["column_names"]) for i in inspector.get_indexes(table)}
            primary = tuple(inspector.get_pk_constraint(table)["constrained_columns"])
            schema[table] = {"columns": columns, "indexes": indexes, "primary": primary}
        return schema
    finally:
        engine.dispose()


def history(url: str) -> list[tuple[Any, ...]]:
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(
                sa.text("SELECT version, description, checksum FROM db_migrations ORDER BY version")
            )
            return [tuple(row) for row in rows]
    finally:
        engine.dispose()


def test_two_processes_starting_at_once_migrate_in_turn(databases: Databases, monkeypatch: Any) -> None:
    """Two daemons started together on fresh databases: each revision commits on its own, so while one is between
    its check ("not at head") and its revisions, another process must wait, not read the old revision and run the
    revisions too (then one failed on the version row, "expected to match one row ... 0 found", and its daemon
    exited). The first is held right there; a second process started meanwhile finishes only after it."""
    url = databases.production_url
    first_upgrading, go_on = threading.Event(), threading.Event()
    run_revisions = command.upgrade

    def upgrade(config: Any, revision: str) -> None:
        first_upgrading.set()
        go_on.wait(60)
        run_revisions(config, revision)

    monkeypatch.setattr(migrate.command, "upgrade", upgrade)
    errors: list[BaseException] = []

    def first_start() -> None:
        engine = create_engine(url)
        try:
            migrate.upgrade(engine)
        except BaseException as error:
            errors.append(error)
        finally:
            engine.dispose()

    first = threading.Thread(target=first_start)
    first.start()
    try:
        assert first_upgrading.wait(60)
        second = subprocess.Popen(
            [sys.executable, "-c", "import sys; from importer.db import create_engine; from importer.load import "
             "migrate; migrate.upgrade(create_engine(sys.argv[1]))", url],
            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            with pytest.raises(subprocess.TimeoutExpired):  # it waits for the first
                second.wait(5)
        finally:
            go_on.set()
            output, _ = second.communicate(timeout=120)
    finally:
        go_on.set()
        first.join(120)
    assert errors == []
    assert second.returncode == 0, output
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            assert connection.exec_driver_sql("SELECT version_num FROM alembic_version").scalars().all() == [
                migrate.head_revision()]
    finally:
        engine.dispose()
    versions = [row[0] for row in history(url)]
    assert len(versions) == len(set(versions)) == len(list(ScriptDirectory.from_config(
        migrate.alembic_config()).walk_revisions()))


def test_upgrade_records_history_and_twice_is_a_no_op(databases: Databases) -> None:
    engine = create_engine(databases.production_url)
    try:
        migrate.upgrade(engine)
        first_schema, first_history = schema_of(databases.production_url), history(databases.production_url)
        migrate.upgrade(engine)
        assert schema_of(databases.production_url) == first_schema
        assert history(databases.production_url) == first_history
        assert migrate.current_revision(engine) == migrate.head_revision()
    finally:
        engine.dispose()
    versions = [version for version, _, _ in first_history]
    scripts = ScriptDirectory.from_config(migrate.alembic_config())
    assert versions == sorted(script.revision for script in scripts.walk_revisions())
    assert all(len(checksum) == 64 and description for _, description, checksum in first_history)


def normalised(schema: dict[str, Any]) -> dict[str, Any]:
    """Types as SQLite and MariaDB report them differ in spelling only; compare their families."""
    families = {
        "INTEGER": "INTEGER",
        "BIGINT": "INTEGER",
        "TINYINT": "INTEGER",
        "BOOLEAN": "INTEGER",
        "SMALLINT": "INTEGER",
        "CHAR": "CHAR",
        "VARCHAR": "VARCHAR",
        "TEXT": "TEXT",
        "DATETIME": "DATETIME",
        "DATE": "DATE",
    }
    result = {}
    for table, parts in schema.items():
        columns = {
            name: (families.get(kind, kind), nullable, length)
            for name, (kind, nullable, length) in parts["columns"].items()
        }
        result[table] = {**parts, "columns": columns}
    return result


def test_sqlite_and_mariadb_get_the_same_schema(sqlite_databases: Databases, mariadb_databases: Databases) -> None:
    for url in (sqlite_databases.production_url, mariadb_databases.production_url):
        engine = create_engine(url)
        migrate.upgrade(engine)
        engine.dispose()
    lite = normalised(schema_of(sqlite_databases.production_url))
    maria = normalised(schema_of(mariadb_databases.production_url))
    assert lite.keys() == maria.keys()
    for table in lite:
        assert lite[table] == maria[table], table


class Killed(BaseException):
    """Stands for kill -9: nothing after it runs, whatever the migration's clean-up would do."""


def _empty(url: str) -> None:
    engine = create_engine(url)
    try:
        metadata = sa.MetaData()
        metadata.reflect(engine)
        metadata.drop_all(engine, checkfirst=False)  # just reflected: no DESCRIBE per table
    finally:
        engine.dispose()


def test_a_migration_interrupted_after_any_statement_completes_when_run_again(
    databases: Databases, monkeypatch: Any
) -> None:
    """MariaDB commits each DDL statement at once: a crash inside a revision leaves its first tables behind while
    alembic_version names the revision before. The next start must finish the revision, not fail for ever."""
    url = databases.production_url
    engine = create_engine(url)
    try:
        migrate.upgrade(engine)
        clean_schema, clean_history = schema_of(url), history(url)
        statements = {"count": 0}
        originals = {name: getattr(toimpl, name) for name in ("create_table", "create_index")}

        def counting(name: str, limit: int | None) -> Any:
            def run(operations: Any, operation: Any) -> Any:
                if limit is not None and statements["count"] >= limit:
                    raise Killed
                statements["count"] += 1
                return originals[name](operations, operation)
            return run

        _empty(url)
        for name in originals:
            monkeypatch.setattr(toimpl, name, counting(name, None))
        migrate.upgrade(engine)
        total = statements["count"]
        assert total > 10

        for limit in sorted({1, total // 3, total // 2 + 1, total - 1}):
            _empty(url)
            statements["count"] = 0
            for name in originals:
                monkeypatch.setattr(toimpl, name, counting(name, limit))
            with pytest.raises(Killed):
                migrate.upgrade(engine)
            for name, original in originals.items():
                monkeypatch.setattr(toimpl, name, original)
            migrate.upgrade(engine)  # the restart
            assert migrate.current_revision(engine) == migrate.head_revision(), limit
            assert schema_of(url) == clean_schema, limit
            assert [row[0] for row in history(url)] == [row[0] for row in clean_history], limit
    finally:
        engine.dispose()


def test_the_status_page_is_red_while_the_database_is_behind_the_expected_schema(databases: Databases) -> None:
    engine = create_engine(databases.production_url)
    try:
        with engine.connect() as connection:
            migrate.db_migrations_table(sa.MetaData()).create(connection)
            command.upgrade(migrate.alembic_config(connection), "V20261122_1200")
            connection.commit()
    finally:
        engine.dispose()
    report = HealthChecker(databases.settings(), discover(), SystemClock()).check()
    assert not report.ok
    assert report.reason == (f"production database at schema revision V20261122_1200, "
                             f"expected {migrate.head_revision()}")


def test_the_status_check_and_the_schema_revision_send_no_describe(databases: Databases) -> None:
    """`DESCRIBE` (SQLAlchemy's MySQL `has_table`) makes MariaDB create and drop an on-disk temporary table each
    time; the status page asks on every probe. `table_exists` answers without one, on both backends alike."""
    engine = create_engine(databases.production_url)
    statements: list[str] = []

    def record(_connection: Any, _cursor: Any, statement: str, *_: Any) -> None:
        statements.append(statement)

    try:
        migrate.upgrade(engine)
        sa.event.listen(sa.Engine, "before_cursor_execute", record)
        try:
            report = HealthChecker(databases.settings(), discover(), SystemClock()).check()
            with engine.connect() as connection:
                assert migrate.revision_of(connection) == migrate.head_revision()
                assert table_exists(connection, "alembic_version")
                assert not table_exists(connection, "no_such_table")
                assert connection.exec_driver_sql("SELECT COUNT(*) FROM alembic_version").scalar() == 1  # still usable
        finally:
            sa.event.remove(sa.Engine, "before_cursor_execute", record)
    finally:
        engine.dispose()
    assert report.database_error is None, report.database_error
    assert statements
    assert [statement for statement in statements if statement.lstrip().upper().startswith("DESCRIBE")] == []


def schema_drift(url: str, metadata: sa.MetaData) -> list[Any]:
    """What Alembic finds between a migrated database and a register's declared tables (that register's only)."""
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={
                "compare_type": True,
                "include_name": lambda name, kind, parent: kind != "table" or name in metadata.tables,
            })
            return list(compare_metadata(context, metadata))
    finally:
        engine.dispose()


def test_the_migrations_build_exactly_what_every_register_declares(databases: Databases) -> None:
    engine = create_engine(databases.production_url)
    try:
        migrate.upgrade(engine)
    finally:
        engine.dispose()
    for name, register in discover().items():
        assert schema_drift(databases.production_url, register.metadata) == [], name
    assert schema_drift(databases.production_url, clients.metadata) == [], "the access tables (clients, audit)"
    assert schema_drift(databases.production_url, test_keys.metadata) == [], "the test-data keys"
    assert schema_drift(databases.production_url, heartbeat.metadata) == [], "the importers' heartbeat"
    assert schema_drift(databases.production_url, notifications.metadata) == [], "the change notifications"

    # And the check sees a drift: a copy of a register's tables with one index more.
    drifted = sa.MetaData()
    for table in discover()["autorisation"].metadata.tables.values():
        table.to_metadata(drifted)
    sa.Index("ix_drifted", drifted.tables["autreg2"].c.surname)
    assert [change[0] for change in schema_drift(databases.production_url, drifted)] == ["add_index"]
