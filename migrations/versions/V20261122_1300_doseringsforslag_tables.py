"""doseringsforslag: the five dosage history tables (Dosage*, DrugDosageStructureRelation) and status table

Revision ID: V20261122_1300
Revises: V20261122_1200
Create Date: 2026-11-22 13:00
"""

import sqlalchemy as sa
from alembic import op

from migrations.frozen import create_import_status_table_v1

revision = "V20261122_1300"
down_revision = "V20261122_1200"
branch_labels = None
depends_on = None

MYSQL = {"mysql_engine": "InnoDB", "mysql_charset": "utf8mb4", "mysql_collate": "utf8mb4_bin"}
PID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
# Two VARCHAR(10000) utf8mb4 columns exceed MySQL's 65,535-byte row limit: TEXT everywhere, one schema;
# the importer enforces the 10,000-character limit.
LONG_TEXT = sa.Text()


def temporal() -> list[sa.Column]:
    return [sa.Column(name, sa.DateTime(), nullable=False)
            for name in ("CreatedDate", "ModifiedDate", "ValidFrom", "ValidTo")]


def indexes(table: str, key: str) -> None:
    op.create_index(f"ix_{table}_PID_ModifiedDate", table, [f"{table}PID", "ModifiedDate"])
    op.create_index(f"ix_{table}_{key}_ValidTo_ValidFrom", table, [key, "ValidTo", "ValidFrom"])


def upgrade() -> None:
    op.create_table(
        "DosageVersion",
        sa.Column("DosageVersionPID", PID, primary_key=True, autoincrement=True),
        sa.Column("daDate", sa.Date(), nullable=False),
        sa.Column("lmsDate", sa.Date(), nullable=False),
        sa.Column("releaseDate", sa.Date(), nullable=False),
        sa.Column("releaseNumber", sa.BigInteger(), nullable=False),
        *temporal(),
        **MYSQL,
    )
    indexes("DosageVersion", "releaseNumber")

    op.create_table(
        "DosageUnit",
        sa.Column("DosageUnitPID", PID, primary_key=True, autoincrement=True),
        sa.Column("releaseNumber", sa.BigInteger(), nullable=False),
        sa.Column("code", sa.Integer(), nullable=False),
        sa.Column("textSingular", sa.String(100), nullable=False),
        sa.Column("textPlural", sa.String(100), nullable=False),
        *temporal(),
        **MYSQL,
    )
    indexes("DosageUnit", "code")

    op.create_table(
        "DosageDrug",
        sa.Column("DosageDrugPID", PID, primary_key=True, autoincrement=True),
        sa.Column("releaseNumber", sa.BigInteger(), nullable=False),
        sa.Column("drugId", sa.BigInteger(), nullable=False),
        sa.Column("dosageUnitCode", sa.BigInteger(), nullable=False),
        sa.Column("drugName", sa.String(200), nullable=False),
        *temporal(),
        **MYSQL,
    )
    indexes("DosageDrug", "drugId")

    op.create_table(
        "DrugDosageStructureRelation",
        sa.Column("DrugDosageStructureRelationPID", PID, primary_key=True, autoincrement=True),
        sa.Column("id", sa.String(200), nullable=False),
        sa.Column("drugId", sa.BigInteger(), nullable=False),
        sa.Column("dosageStructureCode", sa.BigInteger(), nullable=False),
        sa.Column("releaseNumber", sa.BigInteger(), nullable=False),
        *temporal(),
        **MYSQL,
    )
    indexes("DrugDosageStructureRelation", "id")

    op.create_table(
        "DosageStructure",
        sa.Column("DosageStructurePID", PID, primary_key=True, autoincrement=True),
        sa.Column("releaseNumber", sa.BigInteger(), nullable=False),
        sa.Column("code", sa.String(11), nullable=False),
        sa.Column("type", sa.String(100), nullable=False),
        sa.Column("simpleString", sa.String(100)),
        sa.Column("supplementaryText", sa.String(200)),
        sa.Column("xml", LONG_TEXT, nullable=False),
        sa.Column("shortTranslation", sa.String(70)),
        sa.Column("longTranslation", LONG_TEXT),
        *temporal(),
        **MYSQL,
    )
    indexes("DosageStructure", "code")

    create_import_status_table_v1("doseringimporterImportStatus")


def downgrade() -> None:
    for table in ("doseringimporterImportStatus", "DosageStructure", "DrugDosageStructureRelation", "DosageDrug",
                  "DosageUnit", "DosageVersion"):
        op.drop_table(table)
