"""Schema operations that may run again: what makes a migration interrupted on MariaDB/MySQL resumable.

MariaDB commits every DDL statement at once, so a process killed in the middle of a revision leaves the
tables and indexes it had created while `alembic_version` still names the revision before. Running that
revision again must finish it, not fail on "1050 Table … already exists" for ever. So creating a table,
an index or a column that exists, or dropping one that does not, is skipped here for every revision, and
the revision re-runs to completion. (On SQLite a revision's DDL is transactional and rolls back whole.)

Operations this cannot make safe — raw SQL, data changes — must be written re-runnable by their revision.
"""

from typing import Any

import sqlalchemy as sa
from alembic.operations import Operations, ops, toimpl


def _inspector(operations: Operations) -> sa.Inspector:
    return sa.inspect(operations.get_bind())  # a new inspector each time: nothing cached across statements


def _has_table(operations: Operations, name: str, schema: str | None) -> bool:
    return _inspector(operations).has_table(name, schema=schema)


def _has_column(operations: Operations, table: str, column: str, schema: str | None) -> bool:
    return _has_table(operations, table, schema) and column in {
        item["name"] for item in _inspector(operations).get_columns(table, schema=schema)
    }


def _has_index(operations: Operations, table: str | None, name: str | None, schema: str | None) -> bool:
    if table is None or name is None or not _has_table(operations, table, schema):
        return False
    return _inspector(operations).has_index(table, name, schema=schema)


@Operations.implementation_for(ops.CreateTableOp, replace=True)
def create_table(operations: Operations, operation: ops.CreateTableOp) -> sa.Table:
    if _has_table(operations, operation.table_name, operation.schema):
        return operation.to_table(operations.migration_context)
    return toimpl.create_table(operations, operation)


@Operations.implementation_for(ops.DropTableOp, replace=True)
def drop_table(operations: Operations, operation: ops.DropTableOp) -> None:
    if _has_table(operations, operation.table_name, operation.schema):
        toimpl.drop_table(operations, operation)


@Operations.implementation_for(ops.CreateIndexOp, replace=True)
def create_index(operations: Operations, operation: ops.CreateIndexOp) -> None:
    if not _has_index(operations, operation.table_name, operation.index_name, operation.schema):
        toimpl.create_index(operations, operation)


@Operations.implementation_for(ops.DropIndexOp, replace=True)
def drop_index(operations: Operations, operation: ops.DropIndexOp) -> None:
    if _has_index(operations, operation.table_name, operation.index_name, operation.schema):
        toimpl.drop_index(operations, operation)


@Operations.implementation_for(ops.AddColumnOp, replace=True)
def add_column(operations: Operations, operation: ops.AddColumnOp) -> None:
    if not _has_column(operations, operation.table_name, operation.column.name, operation.schema):
        toimpl.add_column(operations, operation)


@Operations.implementation_for(ops.DropColumnOp, replace=True)
def drop_column(operations: Operations, operation: ops.DropColumnOp) -> Any:
    if _has_column(operations, operation.table_name, operation.column_name, operation.schema):
        toimpl.drop_column(operations, operation)
