"""The example register's tables: one history table and its ImportStatus table."""

import sqlalchemy as sa

from importer.db import MYSQL_TABLE_OPTIONS
from importer.load.status import import_status_table
from importer.load.temporal import TemporalTable, pid_column, temporal_columns

metadata = sa.MetaData()

example_code = sa.Table(
    "ExampleCode",
    metadata,
    pid_column("ExampleCode"),
    sa.Column("code", sa.String(10), nullable=False),
    sa.Column("name", sa.String(100), nullable=False),
    sa.Column("group", sa.String(20), nullable=False),  # a reserved word in SQL: the engine must quote it
    *temporal_columns(),
    sa.Index("ix_ExampleCode_PID_ModifiedDate", "ExampleCodePID", "ModifiedDate"),
    sa.Index("ix_ExampleCode_code_ValidTo_ValidFrom", "code", "ValidTo", "ValidFrom"),
    sa.Index("ix_ExampleCode_ModifiedDate_PID", "ModifiedDate", "ExampleCodePID"),  # the feed's page order
    **MYSQL_TABLE_OPTIONS,
)

import_status = import_status_table("exampleimporterImportStatus", metadata)

EXAMPLE_CODE = TemporalTable(example_code, key=("code",))
