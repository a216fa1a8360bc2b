"""autorisation: Autorisation2 history, autreg2 snapshot and autorisationimporterImportStatus

Revision ID: V20261122_1200
Revises:
Create Date: 2026-11-22 12:00
"""

import sqlalchemy as sa
from alembic import op

from migrations.frozen import create_import_status_table_v1

revision = "V20261122_1200"
down_revision = None
branch_labels = None
depends_on = None

MYSQL = {"mysql_engine": "InnoDB", "mysql_charset": "utf8mb4", "mysql_collate": "utf8mb4_bin"}
PID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "Autorisation2",
        sa.Column("AutorisationPID", PID, primary_key=True, autoincrement=True),
        sa.Column("Autorisationsnummer", sa.CHAR(5), nullable=False),
        sa.Column("CPR", sa.CHAR(10), nullable=False),
        sa.Column("Fornavn", sa.String(100), nullable=False),
        sa.Column("Efternavn", sa.String(100), nullable=False),
        sa.Column("UddannelsesKode", sa.String(4), nullable=False),
        sa.Column("CreatedDate", sa.DateTime(), nullable=False),
        sa.Column("ModifiedDate", sa.DateTime(), nullable=False),
        sa.Column("ValidFrom", sa.DateTime(), nullable=False),
        sa.Column("ValidTo", sa.DateTime(), nullable=False),
        **MYSQL,
    )
    op.create_index("ix_Autorisation2_PID_ModifiedDate", "Autorisation2", ["AutorisationPID", "ModifiedDate"])
    op.create_index(
        "ix_Autorisation2_Autorisationsnummer_ValidTo_ValidFrom",
        "Autorisation2",
        ["Autorisationsnummer", "ValidTo", "ValidFrom"],
    )

    op.create_table(
        "autreg2",
        sa.Column("id", PID, primary_key=True, autoincrement=True),
        sa.Column("cpr", sa.CHAR(10), nullable=False),
        sa.Column("given_name", sa.String(100), nullable=False),
        sa.Column("surname", sa.String(100), nullable=False),
        sa.Column("aut_id", sa.CHAR(5), nullable=False),
        sa.Column("edu_id", sa.CHAR(4), nullable=False),
        **MYSQL,
    )
    op.create_index("cpr_aut_id", "autreg2", ["cpr", "aut_id"])

    create_import_status_table_v1("autorisationimporterImportStatus")


def downgrade() -> None:
    op.drop_table("autorisationimporterImportStatus")
    op.drop_table("autreg2")
    op.drop_table("Autorisation2")
