"""status: DatasetDigest, the sha256 of the inbox entry as delivered, on every ImportStatus table

Revision ID: V20261201_2300
Revises: V20261122_1430
Create Date: 2026-12-01 23:00

After a crash between the production commit and the archive move, the importer must tell whether the
dataset left in .processing/ is already in production. InputFiles holds what the parser read (a ZIP's
members), which the entry's own files need not match, so the answer used to need a second parse of the
whole dataset; the entry's own digest answers it by one comparison.
"""

import sqlalchemy as sa
from alembic import op

revision = "V20261201_2300"
down_revision = "V20261122_1430"
branch_labels = None
depends_on = None

STATUS_TABLES = ("autorisationimporterImportStatus", "doseringimporterImportStatus")


def upgrade() -> None:
    for table in STATUS_TABLES:
        op.add_column(table, sa.Column("DatasetDigest", sa.CHAR(64)))


def downgrade() -> None:
    for table in STATUS_TABLES:
        op.drop_column(table, "DatasetDigest")
