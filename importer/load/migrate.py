"""Bring a database to the newest schema: Alembic revisions `VYYYYMMDD_HHMM`, history in `db_migrations`.

Alembic keeps its own one-row pointer (`alembic_version`); `db_migrations` is the audit trail an operator
reads: which revision, what it does, when it ran, and the checksum of the file that ran.

Two processes may start on the same databases at once (two daemons, a daemon and a CLI command). Each revision
commits on its own (`transaction_per_migration`), so the check "not at head yet" and the upgrade must be one
critical section across processes: `GET_LOCK` on MariaDB/MySQL, an `flock` on a file next to the database file on
SQLite (`<db>.migrations.lock`). Without it both saw the same old revision and both ran the revisions; the later
one's stamp found the version row already moved ("expected to match one row ... 0 found") and its daemon exited.
"""

import contextlib
import functools
import os
from collections.abc import Iterator
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from alembic.util import CommandError

from importer.db import MYSQL_TABLE_OPTIONS, DateTimeSeconds, get_lock, is_mysql, table_exists
from importer.errors import InfrastructureError
from importer.load.locks import lock_file
from migrations import LOCATION

LOCK_NAME = "stamdata_migrations"
VERSION_TABLE = "alembic_version"  # alembic's default
LOCK_TIMEOUT_S = 300
_FILE_LOCK_POLL_S = 0.05


def db_migrations_table(metadata: sa.MetaData) -> sa.Table:
    return sa.Table(
        "db_migrations",
        metadata,
        sa.Column("version", sa.String(50), primary_key=True),
        sa.Column("description", sa.String(200), nullable=False),
        sa.Column("installed_on", DateTimeSeconds, nullable=False),
        sa.Column("checksum", sa.CHAR(64), nullable=False),
        **MYSQL_TABLE_OPTIONS,
    )


def alembic_config(connection: sa.Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(LOCATION))
    config.set_main_option("path_separator", "os")
    config.set_main_option("version_locations", str(Path(LOCATION) / "versions"))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


@functools.cache
def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def current_revision(engine: sa.Engine) -> str | None:
    with engine.connect() as connection:
        return revision_of(connection)


def revision_of(connection: sa.Connection) -> str | None:
    """The revision `alembic_version` names, None for a database never migrated. Reads, never creates."""
    if not table_exists(connection, VERSION_TABLE):
        return None
    # Read here, not through MigrationContext, which asks has_table again (a DESCRIBE on MariaDB): the status page
    # asks on every probe.
    heads = [str(head) for head in connection.execute(sa.text(f"SELECT version_num FROM {VERSION_TABLE}")).scalars()]
    if len(heads) > 1:
        raise CommandError(f"the database is at several heads ({', '.join(sorted(heads))}): not a revision")
    return heads[0] if heads else None


@contextlib.contextmanager
def _sqlite_migration_lock(engine: sa.Engine) -> Iterator[None]:
    """Across processes and threads (flock belongs to the open file), for a SQLite database file; nothing to do
    for a server database (GET_LOCK) or an in-memory one."""
    database = engine.url.database
    if is_mysql(engine) or not database or database == ":memory:" or database.startswith("file:"):
        yield
        return
    descriptor = lock_file(Path(f"{database}.migrations.lock"), LOCK_TIMEOUT_S, 0o600, _FILE_LOCK_POLL_S)
    if descriptor is None:
        raise InfrastructureError("another process holds the migration lock")
    try:
        yield
    finally:
        os.close(descriptor)  # releases the flock


def upgrade(engine: sa.Engine) -> None:
    """Idempotent: a database already at head is left as it is. Concurrent callers are serialised."""
    try:
        with _sqlite_migration_lock(engine), engine.connect() as connection:
            if is_mysql(connection) and not get_lock(connection, LOCK_NAME, LOCK_TIMEOUT_S):
                raise InfrastructureError("another process holds the migration lock")
            try:
                if revision_of(connection) != head_revision():
                    if not table_exists(connection, "db_migrations"):
                        db_migrations_table(sa.MetaData()).create(connection)
                    connection.commit()
                    command.upgrade(alembic_config(connection), "head")
                    connection.commit()
            except BaseException:
                connection.invalidate()  # the server drops the session's lock with it; nothing to mask the error
                raise
            if is_mysql(connection):
                connection.execute(sa.text("SELECT RELEASE_LOCK(:name)"), {"name": LOCK_NAME})
            connection.rollback()
    except (sa.exc.SQLAlchemyError, CommandError) as error:
        # Whatever stops a migration (the server, a lock, a revision that fails), it is no dataset's fault:
        # the importer cannot start, says so on /status, and tries again.
        detail = getattr(error, "orig", None) or error
        raise InfrastructureError(f"cannot migrate {engine.url.render_as_string()}: {detail}") from error
