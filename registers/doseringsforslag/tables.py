"""The doseringsforslag register's tables, exactly as the platform names them (FORMATS.md §2).

Every business key includes `releaseNumber`: codes are renumbered in each release, so a release is a
snapshot, and keying on the release makes the engine's full-dump delta close all of the previous
release's rows and insert the new ones, without a special mode in the engine.
"""

import sqlalchemy as sa

from importer.db import MYSQL_TABLE_OPTIONS
from importer.load.status import import_status_table
from importer.load.temporal import TemporalTable, pid_column, temporal_columns

metadata = sa.MetaData()

# The platform's two VARCHAR(10000) columns cannot both exist in one utf8mb4 row (40,000 bytes each, the
# row limit is 65,535), so they are TEXT (65,535 bytes: room for 10,000 four-byte characters) on every
# backend, keeping one schema everywhere; the parser enforces the 10,000-character limit.
LongText = sa.Text


def _indexes(table: str, key: str) -> list[sa.Index]:
    return [
        sa.Index(f"ix_{table}_PID_ModifiedDate", f"{table}PID", "ModifiedDate"),
        sa.Index(f"ix_{table}_{key}_ValidTo_ValidFrom", key, "ValidTo", "ValidFrom"),
        sa.Index(f"ix_{table}_ModifiedDate_PID", "ModifiedDate", f"{table}PID"),  # the feed's page order
    ]


dosage_version = sa.Table(
    "DosageVersion",
    metadata,
    pid_column("DosageVersion"),
    sa.Column("daDate", sa.Date, nullable=False),
    sa.Column("lmsDate", sa.Date, nullable=False),
    sa.Column("releaseDate", sa.Date, nullable=False),
    sa.Column("releaseNumber", sa.BigInteger, nullable=False),
    *temporal_columns(),
    *_indexes("DosageVersion", "releaseNumber"),
    **MYSQL_TABLE_OPTIONS,
)

dosage_unit = sa.Table(
    "DosageUnit",
    metadata,
    pid_column("DosageUnit"),
    sa.Column("releaseNumber", sa.BigInteger, nullable=False),
    sa.Column("code", sa.Integer, nullable=False),
    sa.Column("textSingular", sa.String(100), nullable=False),
    sa.Column("textPlural", sa.String(100), nullable=False),
    *temporal_columns(),
    *_indexes("DosageUnit", "code"),
    **MYSQL_TABLE_OPTIONS,
)

dosage_drug = sa.Table(
    "DosageDrug",
    metadata,
    pid_column("DosageDrug"),
    sa.Column("releaseNumber", sa.BigInteger, nullable=False),
    sa.Column("drugId", sa.BigInteger, nullable=False),
    sa.Column("dosageUnitCode", sa.BigInteger, nullable=False),
    sa.Column("drugName", sa.String(200), nullable=False),
    *temporal_columns(),
    *_indexes("DosageDrug", "drugId"),
    **MYSQL_TABLE_OPTIONS,
)

drug_dosage_structure_relation = sa.Table(
    "DrugDosageStructureRelation",
    metadata,
    pid_column("DrugDosageStructureRelation"),
    sa.Column("id", sa.String(200), nullable=False),
    sa.Column("drugId", sa.BigInteger, nullable=False),
    sa.Column("dosageStructureCode", sa.BigInteger, nullable=False),
    sa.Column("releaseNumber", sa.BigInteger, nullable=False),
    *temporal_columns(),
    *_indexes("DrugDosageStructureRelation", "id"),
    **MYSQL_TABLE_OPTIONS,
)

dosage_structure = sa.Table(
    "DosageStructure",
    metadata,
    pid_column("DosageStructure"),
    sa.Column("releaseNumber", sa.BigInteger, nullable=False),
    sa.Column("code", sa.String(11), nullable=False),
    sa.Column("type", sa.String(100), nullable=False),
    sa.Column("simpleString", sa.String(100)),
    sa.Column("supplementaryText", sa.String(200)),
    sa.Column("xml", LongText, nullable=False),
    sa.Column("shortTranslation", sa.String(70)),
    sa.Column("longTranslation", LongText),
    *temporal_columns(),
    *_indexes("DosageStructure", "code"),
    **MYSQL_TABLE_OPTIONS,
)

import_status = import_status_table("doseringimporterImportStatus", metadata)

VERSION = TemporalTable(dosage_version, key=("releaseNumber",))
UNIT = TemporalTable(dosage_unit, key=("releaseNumber", "code"))
DRUG = TemporalTable(dosage_drug, key=("releaseNumber", "drugId"))
STRUCTURE = TemporalTable(dosage_structure, key=("releaseNumber", "code"))
RELATION = TemporalTable(drug_dosage_structure_relation, key=("releaseNumber", "id"))

# In the order FORMATS.md lists them; the engine writes them in this order within one transaction.
ALL = (VERSION, UNIT, DRUG, STRUCTURE, RELATION)
