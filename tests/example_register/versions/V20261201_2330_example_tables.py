"""example: ExampleCode history and exampleimporterImportStatus

Revision ID: V20261201_2330
Revises:
Create Date: 2026-12-01 23:30

A real register's revision lives in `migrations/versions/` with `down_revision` = the chain's head. This one
belongs to a register that exists only in the tests, so it stays out of the real chain (`down_revision = None`,
never seen by Alembic's script directory) and `tests/kit.py` runs its `upgrade()` through Alembic's operations.
"""

from typing import Any

import sqlalchemy as sa
from alembic import op

from migrations.frozen import create_import_status_table_v2

revision = "V20261201_2330"
down_revision = None
branch_labels = None
depends_on = None

MYSQL: dict[str, Any] = {"mysql_engine": "InnoDB", "mysql_charset": "utf8mb4", "mysql_collate": "utf8mb4_bin"}
PID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "ExampleCode",
        sa.Column("ExampleCodePID", PID, primary_key=True, autoincrement=True),
        sa.Column("code", sa.String(10), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("group", sa.String(20), nullable=False),
        sa.Column("CreatedDate", sa.DateTime(), nullable=False),
        sa.Column("ModifiedDate", sa.DateTime(), nullable=False),
        sa.Column("ValidFrom", sa.DateTime(), nullable=False),
        sa.Column("ValidTo", sa.DateTime(), nullable=False),
        **MYSQL,
    )
    op.create_index("ix_ExampleCode_PID_ModifiedDate", "ExampleCode", ["ExampleCodePID", "ModifiedDate"])
    op.create_index("ix_ExampleCode_code_ValidTo_ValidFrom", "ExampleCode", ["code", "ValidTo", "ValidFrom"])
    op.create_index("ix_ExampleCode_ModifiedDate_PID", "ExampleCode", ["ModifiedDate", "ExampleCodePID"])

    create_import_status_table_v2("exampleimporterImportStatus")  # the shape of the engine's status tables today


def downgrade() -> None:
    op.drop_table("exampleimporterImportStatus")
    op.drop_table("ExampleCode")
