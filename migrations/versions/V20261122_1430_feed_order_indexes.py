"""feed: (ModifiedDate, PID) indexes on every table a replication view reads

Revision ID: V20261122_1430
Revises: V20261122_1300
Create Date: 2026-11-22 14:30

The copy-register page query orders by (ModifiedDate, PID) and starts after a token. The platform's
(PID, ModifiedDate) index cannot serve that order, so without this index every page sorted the whole
table: a full replication cost pages x table size. With it a page reads only its own rows.
"""

from alembic import op

revision = "V20261122_1430"
down_revision = "V20261122_1300"
branch_labels = None
depends_on = None

# Table -> its surrogate key (the autorisation register's does not follow the <Table>PID pattern).
FEED_TABLES = {
    "Autorisation2": "AutorisationPID",
    "DosageVersion": "DosageVersionPID",
    "DosageUnit": "DosageUnitPID",
    "DosageDrug": "DosageDrugPID",
    "DosageStructure": "DosageStructurePID",
    "DrugDosageStructureRelation": "DrugDosageStructureRelationPID",
}


def upgrade() -> None:
    for table, pid in FEED_TABLES.items():
        op.create_index(f"ix_{table}_ModifiedDate_PID", table, ["ModifiedDate", pid])


def downgrade() -> None:
    for table in FEED_TABLES:
        op.drop_index(f"ix_{table}_ModifiedDate_PID", table_name=table)
