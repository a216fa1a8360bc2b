"""Table shapes as they were when the revisions that create them were written, shared between revisions.

A revision must build the same table forever, so it never imports the application's current tables (those move
on; importer/load/status.py's `import_status_table` is the live one, and a test compares the two after
migrating). What several revisions create alike lives here once, frozen: change it only by a new revision.
"""

from typing import Any

import sqlalchemy as sa
from alembic import op

MYSQL: dict[str, Any] = {"mysql_engine": "InnoDB", "mysql_charset": "utf8mb4", "mysql_collate": "utf8mb4_bin"}
PID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def create_import_status_table_v1(name: str) -> None:
    """A register's ImportStatus table as of V20261122_1200: the platform's columns and the importer's own."""
    op.create_table(
        name,
        sa.Column("Id", PID, primary_key=True, autoincrement=True),
        sa.Column("StartTime", sa.DateTime(), nullable=False),
        sa.Column("EndTime", sa.DateTime()),
        sa.Column("Outcome", sa.String(20)),
        sa.Column("RunId", sa.String(64)),
        sa.Column("Dataset", sa.String(255)),
        sa.Column("DatasetVersion", sa.String(32)),
        sa.Column("InputFiles", sa.Text()),
        sa.Column("TransactionTime", sa.DateTime()),
        sa.Column("ValidFrom", sa.DateTime()),
        sa.Column("RowsRead", sa.BigInteger()),
        sa.Column("RowsInserted", sa.BigInteger()),
        sa.Column("RowsUpdated", sa.BigInteger()),
        sa.Column("RowsClosed", sa.BigInteger()),
        sa.Column("RowsUnchanged", sa.BigInteger()),
        sa.Column("Warnings", sa.Integer()),
        sa.Column("Forced", sa.Boolean()),
        sa.Column("Message", sa.String(4000)),
        **MYSQL,
    )
    op.create_index(f"ix_{name}_StartTime", name, ["StartTime"])


def create_import_status_table_v2(name: str) -> None:
    """A register's ImportStatus table as of V20261201_2300 (v1 and `DatasetDigest`): what a new register's
    revision creates. V20261201_2300 brought the tables of the registers before it to this shape."""
    create_import_status_table_v1(name)
    op.add_column(name, sa.Column("DatasetDigest", sa.CHAR(64)))
