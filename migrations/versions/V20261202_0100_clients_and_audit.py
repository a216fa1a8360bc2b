"""access: API clients (token hashes, certificate subjects, scopes) and the audit trail of person look-ups

Revision ID: V20261202_0100
Revises: V20261201_2300
Create Date: 2026-12-02 01:00

Every data endpoint needs a client with a scope, and every look-up of a person is traced. Both tables live in
production so every façade host sees the same clients and every host's look-ups land in one trail.
"""

import sqlalchemy as sa
from alembic import op

revision = "V20261202_0100"
down_revision = "V20261201_2300"
branch_labels = None
depends_on = None

# Frozen here (a revision must not change when the code's types do); the same as importer/db.py's today.
MYSQL_TABLE_OPTIONS = {"mysql_engine": "InnoDB", "mysql_charset": "utf8mb4", "mysql_collate": "utf8mb4_bin"}
PidType = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
DateTimeSeconds = sa.DateTime()


def upgrade() -> None:
    op.create_table(
        "stamdata_client",
        sa.Column("Name", sa.String(100), primary_key=True),
        sa.Column("TokenHash", sa.CHAR(64)),
        sa.Column("CertificateSubject", sa.String(500)),
        sa.Column("Scopes", sa.String(2000), nullable=False),
        sa.Column("CreatedDate", DateTimeSeconds, nullable=False),
        sa.Column("RevokedDate", DateTimeSeconds),
        **MYSQL_TABLE_OPTIONS,
    )
    op.create_index("ux_stamdata_client_token", "stamdata_client", ["TokenHash"], unique=True)
    op.create_index("ux_stamdata_client_subject", "stamdata_client", ["CertificateSubject"], unique=True)
    op.create_table(
        "stamdata_audit",
        sa.Column("Id", PidType, primary_key=True, autoincrement=True),
        sa.Column("AccessTime", DateTimeSeconds, nullable=False),
        sa.Column("Client", sa.String(300), nullable=False),
        sa.Column("CPR", sa.CHAR(10), nullable=False),
        sa.Column("Endpoint", sa.String(200), nullable=False),
        **MYSQL_TABLE_OPTIONS,
    )
    op.create_index("ix_stamdata_audit_cpr_time", "stamdata_audit", ["CPR", "AccessTime"])


def downgrade() -> None:
    op.drop_table("stamdata_audit")
    op.drop_table("stamdata_client")
