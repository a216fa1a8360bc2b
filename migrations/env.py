"""Alembic environment: runs on the connection the importer hands over, and records history.

Every applied revision gets a row in `db_migrations` (version, description, installed_on, checksum),
in the same transaction as the revision itself, so the history never disagrees with the schema.
"""

import hashlib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import context

import migrations.rerunnable  # noqa: F401  (makes every revision's schema operations re-runnable)
from importer.load.migrate import db_migrations_table

connection: sa.Connection = context.config.attributes["connection"]
history = db_migrations_table(sa.MetaData())


def record(ctx: Any, step: Any, heads: Any, run_args: Any) -> None:
    if not step.is_upgrade:
        connection.execute(history.delete().where(history.c.version == step.down_revision_ids[0]))
        return
    script = step.up_revision
    checksum = hashlib.sha256(Path(script.path).read_bytes()).hexdigest()
    # A revision run again after an interrupted attempt (see migrations/rerunnable.py) is recorded once.
    connection.execute(history.delete().where(history.c.version == step.up_revision_id))
    connection.execute(
        history.insert().values(
            version=step.up_revision_id,
            description=(script.doc or "").strip()[:200],
            installed_on=datetime.now(UTC).replace(tzinfo=None, microsecond=0),
            checksum=checksum,
        )
    )


context.configure(connection=connection, on_version_apply=record, transaction_per_migration=True)
with context.begin_transaction():
    context.run_migrations()
