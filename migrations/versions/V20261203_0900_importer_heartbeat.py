"""beyond one machine: the importers' heartbeat, which tells a façade on a replica how far behind it is

Revision ID: V20261203_0900
Revises: V20261202_0300
Create Date: 2026-12-03 09:00

Each importer host rewrites its row every heartbeat_interval_s and after every import; replication carries it to
the replicas, where a façade compares the newest beat with its clock (README, "Beyond one machine").
"""

import sqlalchemy as sa
from alembic import op

revision = "V20261203_0900"
down_revision = "V20261202_0300"
branch_labels = None
depends_on = None

# Frozen here (a revision must not change when the code's types do); the same as importer/db.py's today.
MYSQL_TABLE_OPTIONS = {"mysql_engine": "InnoDB", "mysql_charset": "utf8mb4", "mysql_collate": "utf8mb4_bin"}
DateTimeSeconds = sa.DateTime()


def upgrade() -> None:
    op.create_table(
        "stamdata_heartbeat",
        sa.Column("Host", sa.String(255), primary_key=True),
        sa.Column("Beat", DateTimeSeconds, nullable=False),
        sa.Column("Pid", sa.Integer, nullable=False),
        sa.Column("Version", sa.String(50), nullable=False),
        **MYSQL_TABLE_OPTIONS,
    )


def downgrade() -> None:
    op.drop_table("stamdata_heartbeat")
