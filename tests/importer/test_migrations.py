"""Migrations: names sort like the revision chain, upgrades are idempotent, both dialects get one schema."""

import re
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic.script import ScriptDirectory

from importer import migrate
from importer.db import create_engine
from migrations import LOCATION
from tests.conftest import Databases

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
