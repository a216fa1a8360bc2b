"""testdata: the business keys restored as test data, per register, so full dumps do not close them

Revision ID: V20261202_0200
Revises: V20261202_0100
Create Date: 2026-12-02 02:00

A restored person's rows are test data: the next full dump of the register lacks them, and without this table
the import would close them as removed. A reset closes the person's open rows and forgets their keys here.
"""

import sqlalchemy as sa
from alembic import op

revision = "V20261202_0200"
down_revision = "V20261202_0100"
branch_labels = None
depends_on = None

MYSQL_TABLE_OPTIONS = {"mysql_engine": "InnoDB", "mysql_charset": "utf8mb4", "mysql_collate": "utf8mb4_bin"}


def upgrade() -> None:
    op.create_table(
        "stamdata_testdata_key",
        sa.Column("Register", sa.String(50), primary_key=True),
        sa.Column("KeyValue", sa.String(100), primary_key=True),
        sa.Column("CPR", sa.CHAR(10)),
        sa.Column("CreatedDate", sa.DateTime(), nullable=False),
        **MYSQL_TABLE_OPTIONS,
    )
    op.create_index("ix_stamdata_testdata_key_cpr", "stamdata_testdata_key", ["Register", "CPR"])


def downgrade() -> None:
    op.drop_table("stamdata_testdata_key")
