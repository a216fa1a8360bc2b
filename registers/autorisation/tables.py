"""The autorisation register's tables, exactly as the platform names them (FORMATS.md §1)."""

import sqlalchemy as sa

from importer.db import MYSQL_TABLE_OPTIONS, PidType
from importer.load.status import import_status_table
from importer.load.temporal import TemporalTable, pid_column, temporal_columns

metadata = sa.MetaData()

autorisation2 = sa.Table(
    "Autorisation2",
    metadata,
    pid_column("Autorisation"),
    sa.Column("Autorisationsnummer", sa.CHAR(5), nullable=False),
    sa.Column("CPR", sa.CHAR(10), nullable=False),
    sa.Column("Fornavn", sa.String(100), nullable=False),
    sa.Column("Efternavn", sa.String(100), nullable=False),
    sa.Column("UddannelsesKode", sa.String(4), nullable=False),
    *temporal_columns(),
    sa.Index("ix_Autorisation2_PID_ModifiedDate", "AutorisationPID", "ModifiedDate"),
    sa.Index("ix_Autorisation2_Autorisationsnummer_ValidTo_ValidFrom", "Autorisationsnummer", "ValidTo", "ValidFrom"),
    sa.Index("ix_Autorisation2_ModifiedDate_PID", "ModifiedDate", "AutorisationPID"),  # the feed's page order
    **MYSQL_TABLE_OPTIONS,
)

# The currently valid authorisations, indexed for the token service's (cpr, aut_id) look-ups.
autreg2 = sa.Table(
    "autreg2",
    metadata,
    sa.Column("id", PidType, primary_key=True, autoincrement=True),
    sa.Column("cpr", sa.CHAR(10), nullable=False),
    sa.Column("given_name", sa.String(100), nullable=False),
    sa.Column("surname", sa.String(100), nullable=False),
    sa.Column("aut_id", sa.CHAR(5), nullable=False),
    sa.Column("edu_id", sa.CHAR(4), nullable=False),
    sa.Index("cpr_aut_id", "cpr", "aut_id"),
    **MYSQL_TABLE_OPTIONS,
)

import_status = import_status_table("autorisationimporterImportStatus", metadata)

AUTORISATION = TemporalTable(autorisation2, key=("Autorisationsnummer",))
