"""Bulk loading of a DataFrame into a table, by each dialect's fastest path.

MariaDB/MySQL: the frame is written as a tab-separated file and loaded with `LOAD DATA LOCAL INFILE`,
inside the caller's transaction (InnoDB makes it transactional). SQLite: one `executemany` of plain tuples,
bypassing per-row work in SQLAlchemy. Either way a million rows cost one statement, not a million.
"""

import os
import tempfile
from datetime import date, datetime
from typing import Any

import pandas as pd
import sqlalchemy as sa

from importer.db import is_mysql

_NULL = "\\N"
# What LOAD DATA's default escaping treats specially inside a field.
_SPECIAL = r"[\\\t\n\r\x00]"


def insert_frame(connection: sa.Connection, table: sa.Table, frame: pd.DataFrame, constants: dict[str, Any]) -> int:
    """Insert every row of `frame` (columns named as the table's) with `constants` for the other columns."""
    if frame.empty:
        return 0
    if is_mysql(connection):
        return _load_data(connection, table, frame, constants)
    return _executemany(connection, table, frame, constants)


def _sql_text(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, date):
        return value.isoformat()
    return value


def _column_values(series: "pd.Series[Any]") -> list[Any]:
    """Plain Python values (no numpy scalars, None for missing), dates as the text SQLite stores."""
    values: list[Any] = series.astype(object).where(series.notna(), None).tolist()
    sample = next((value for value in values if value is not None), None)
    if isinstance(sample, date):
        values = [_sql_text(value) for value in values]
    return values


def _executemany(connection: sa.Connection, table: sa.Table, frame: pd.DataFrame, constants: dict[str, Any]) -> int:
    columns = [*frame.columns, *constants]
    quote = connection.dialect.identifier_preparer.quote
    statement = (
        f"INSERT INTO {quote(table.name)} ({', '.join(quote(c) for c in columns)}) "
        f"VALUES ({', '.join('?' for _ in columns)})"
    )
    fixed = [_sql_text(value) for value in constants.values()]
    data = [_column_values(frame[column]) for column in frame.columns]
    rows = [(*values, *fixed) for values in zip(*data, strict=True)]
    connection.exec_driver_sql(statement, rows)
    return len(rows)


def _tsv_field(series: "pd.Series[Any]") -> list[str]:
    text = series.astype(object).where(series.notna(), None)
    values = [_NULL if value is None else str(_sql_text(value)) for value in text.tolist()]
    column = pd.Series(values, dtype=object)
    special = column.str.contains(_SPECIAL, regex=True) & (column != _NULL)
    if special.any():
        column[special] = (
            column[special]
            .str.replace("\\", "\\\\", regex=False)
            .str.replace("\t", "\\t", regex=False)
            .str.replace("\n", "\\n", regex=False)
            .str.replace("\r", "\\r", regex=False)
            .str.replace("\x00", "\\0", regex=False)
        )
    result: list[str] = column.tolist()
    return result


def _load_data(connection: sa.Connection, table: sa.Table, frame: pd.DataFrame, constants: dict[str, Any]) -> int:
    quote = connection.dialect.identifier_preparer.quote
    fields = [_tsv_field(frame[column]) for column in frame.columns]
    payload = ("\n".join("\t".join(row) for row in zip(*fields, strict=True)) + "\n").encode("utf-8")
    assignments = ", ".join(f"{quote(name)} = %({name})s" for name in constants)
    handle, path = tempfile.mkstemp(prefix="stamdata-load-", suffix=".tsv")
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(payload)
        result = connection.exec_driver_sql(
            f"LOAD DATA LOCAL INFILE %(_path)s INTO TABLE {quote(table.name)} CHARACTER SET utf8mb4 "
            "FIELDS TERMINATED BY '\\t' ESCAPED BY '\\\\' LINES TERMINATED BY '\\n' "
            f"({', '.join(quote(c) for c in frame.columns)})" + (f" SET {assignments}" if assignments else ""),
            {"_path": path, **constants},
        )
        loaded = result.rowcount
        # LOAD DATA LOCAL turns data errors into warnings (it cannot stop the client's upload); a truncated
        # or converted value must never pass silently.
        warnings = connection.exec_driver_sql("SHOW WARNINGS LIMIT 5").all()
    finally:
        os.unlink(path)
    if warnings or loaded != len(frame):
        raise RuntimeError(f"LOAD DATA into {table.name} loaded {loaded} of {len(frame)} rows: {warnings}")
    return loaded
