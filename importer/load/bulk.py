"""Bulk loading of a DataFrame into a table, by each dialect's fastest path.

MariaDB/MySQL: the rows are rendered once as tab-separated text and loaded with `LOAD DATA LOCAL INFILE`
inside the caller's transaction (InnoDB makes it transactional). SQLite: one `executemany` of plain
tuples, bypassing per-row work in SQLAlchemy. Either way a million rows cost one statement, not a million.

An import writes the same rows to two databases (and autorisation to two tables), so `Rows` renders them
once per dialect and is reused; a different column list maps the same rendering onto another table.
"""

import os
import re
import tempfile
import weakref
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import date, datetime
from itertools import repeat
from pathlib import Path
from typing import Any

import pandas as pd
import sqlalchemy as sa

from importer.db import is_mysql

# The engine execution option naming the directory load files are written to (default: the system's).
SCRATCH_OPTION = "stamdata_scratch_dir"
_NULL = "\\N"
_SLICE = 100_000  # rows rendered per write
# What LOAD DATA's default escaping treats specially inside a field.
_SPECIAL = re.compile(r"[\\\t\n\r\x00]")


class Rows:
    """A frame's rows, rendered for a dialect a slice at a time: what is held at once is the frame and one
    slice's text or values, never a second copy of every row. The LOAD DATA file, written once, is kept for the
    next database (and table) that loads the same rows."""

    def __init__(self, frame: pd.DataFrame) -> None:
        self.frame = frame
        self._tsv: str | None = None  # path of the rendered file, removed with this object

    def __len__(self) -> int:
        return len(self.frame)

    @property
    def columns(self) -> list[str]:
        return [str(column) for column in self.frame.columns]

    def tsv(self, directory: str | None = None) -> str:
        """The path of a LOAD DATA file holding the rows (utf-8, tab-separated, `\\N` for NULL), written in
        `directory` (the importer's private scratch directory; see importer/load/scratch.py)."""
        if self._tsv is None:
            handle, path = tempfile.mkstemp(prefix="stamdata-load-", suffix=".tsv", dir=directory)
            weakref.finalize(self, _unlink, path)
            with os.fdopen(handle, "wb") as file:
                # Joined in C a slice at a time: several times faster than pandas' CSV writer, which formats
                # every cell in Python, and the text of a slice is all that is held at once.
                for part in self._slices():
                    fields = [_tsv_field(part[column]) for column in part.columns]
                    file.write(("\n".join(map("\t".join, zip(*fields, strict=True))) + "\n").encode("utf-8"))
            self._tsv = path
        return self._tsv

    def tuples(self, constants: Sequence[Any] = ()) -> Iterator[tuple[Any, ...]]:
        """The rows as tuples of plain Python values (then `constants`), made a slice at a time as they are sent."""
        fixed = [repeat(value) for value in constants]
        for part in self._slices():
            yield from zip(*(_column_values(part[column]) for column in part.columns), *fixed, strict=False)

    def _slices(self) -> Iterator[pd.DataFrame]:
        for start in range(0, len(self.frame), _SLICE):
            yield self.frame.iloc[start : start + _SLICE]


def insert_frame(connection: sa.Connection, table: sa.Table, frame: pd.DataFrame, constants: dict[str, Any]) -> int:
    return insert_rows(connection, table, Rows(frame), constants)


def insert_rows(
    connection: sa.Connection,
    table: sa.Table,
    rows: Rows,
    constants: dict[str, Any],
    columns: Sequence[str] | None = None,
) -> int:
    """Insert `rows` into `table`; `columns` names the target column of each frame column (default: same
    names), `constants` gives every other column one value."""
    if not len(rows):
        return 0
    targets = list(columns) if columns is not None else rows.columns
    if is_mysql(connection):
        return _load_data(connection, table, rows, targets, constants)
    return _executemany(connection, table, rows, targets, constants)


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


def _executemany(
    connection: sa.Connection, table: sa.Table, rows: Rows, targets: list[str], constants: dict[str, Any]
) -> int:
    quote = connection.dialect.identifier_preparer.quote
    names = [*targets, *constants]
    statement = (
        f"INSERT INTO {quote(table.name)} ({', '.join(quote(c) for c in names)}) "
        f"VALUES ({', '.join('?' for _ in names)})"
    )
    # Straight to the driver, which takes the rows as they are made: a million parameter tuples are never
    # held at once, and SQLAlchemy's per-row parameter handling is skipped.
    cursor: Any = connection.connection.cursor()  # sqlite3 takes any iterable, not only a sequence
    try:
        with _indexes_built_after_if_empty(cursor, table.name, len(rows)):
            cursor.executemany(statement, rows.tuples([_sql_text(value) for value in constants.values()]))
            inserted: int = cursor.rowcount
    finally:
        cursor.close()
    if inserted != len(rows):
        raise RuntimeError(f"INSERT into {table.name} wrote {inserted} of {len(rows)} rows")
    return inserted


# Below this many rows, indexes are kept and filled row by row: dropping and rebuilding them costs more.
SQLITE_BULK_ROWS = 10_000


@contextmanager
def _indexes_built_after_if_empty(cursor: Any, table: str, rows: int) -> Iterator[None]:
    """SQLite's counterpart of InnoDB's bulk mode: into an empty table, a large load goes in without the
    table's secondary indexes, which are then created again from their own definitions (sqlite_master), each
    by one sort, instead of being updated row by row in random order. All of it happens in the caller's
    transaction: SQLite's DDL is transactional, so readers see the old table until the commit and a rollback
    restores the indexes with the data. A unique index that the rows violate fails its creation, and with it
    the load, as the insert would have."""
    if rows < SQLITE_BULK_ROWS or cursor.execute(f'SELECT EXISTS (SELECT 1 FROM "{table}")').fetchone()[0]:
        yield
        return
    indexes = cursor.execute(
        "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = ? AND sql IS NOT NULL",
        (table,),
    ).fetchall()
    for name, _ in indexes:
        cursor.execute(f'DROP INDEX "{name}"')
    yield
    for _, sql in indexes:
        cursor.execute(sql)


def _unlink(path: str) -> None:
    Path(path).unlink(missing_ok=True)


def _tsv_field(series: "pd.Series[Any]") -> list[str]:
    """One column as LOAD DATA text. Plain text and integer columns (the common case) take a fast path."""
    missing = series.isna()
    kind = None if missing.any() else pd.api.types.infer_dtype(series, skipna=False)
    values: list[str]
    if kind == "string":
        values = series.astype(object).tolist()
    elif kind == "integer":
        values = [str(value) for value in series.tolist()]
    else:
        values = [_NULL if value is None else str(_sql_text(value))
                  for value in series.astype(object).where(~missing, None).tolist()]
    if _SPECIAL.search("\x1f".join(values)) is None:  # one C-level scan instead of one per value
        return values
    return [value if null else _escape(value) for value, null in zip(values, missing.tolist(), strict=True)]


def insert_from_select(connection: sa.Connection, table: sa.Table, columns: Sequence[str], select: sa.Select[Any],
                       rows_hint: int) -> int:
    """`INSERT INTO table (columns) SELECT ...`, within the database: rows the transaction has already written
    elsewhere reach a derived table without a trip through Python. Into an empty table it takes the loads' bulk
    path (InnoDB's bulk mode; on SQLite the indexes built afterwards when `rows_hint` is large). Returns the rows
    inserted."""
    statement = table.insert().from_select(list(columns), select)
    if is_mysql(connection):
        with _bulk_mode_if_empty(connection, connection.dialect.identifier_preparer.quote(table.name)):
            return int(connection.execute(statement).rowcount)
    cursor: Any = connection.connection.cursor()
    try:
        with _indexes_built_after_if_empty(cursor, table.name, rows_hint):
            return int(connection.execute(statement).rowcount)
    finally:
        cursor.close()


def _escape(value: str) -> str:
    return (value.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n")
            .replace("\r", "\\r").replace("\x00", "\\0"))


@contextmanager
def _bulk_mode_if_empty(connection: sa.Connection, quoted_table: str) -> Iterator[None]:
    """Into an empty table, InnoDB (MariaDB >= 10.6) loads in bulk: it sorts each index and builds it page
    by page at the end of the statement, undoing the load as a whole on rollback, instead of inserting into
    every index row by row. It does so only with unique and foreign-key checks switched off for the
    session. A duplicate in a unique index still fails the statement (checked while the index is built),
    and the loads here have no foreign keys, so nothing is accepted that would otherwise be refused; the
    session's settings are restored at once. An initial import or a rebuilt derived table takes this path.
    """
    empty, unique_checks, foreign_key_checks = connection.exec_driver_sql(
        f"SELECT NOT EXISTS (SELECT 1 FROM {quoted_table}), @@SESSION.unique_checks, @@SESSION.foreign_key_checks"
    ).one()
    if not empty:
        yield
        return
    connection.exec_driver_sql("SET SESSION unique_checks = 0, foreign_key_checks = 0")

    def restore() -> None:
        connection.exec_driver_sql(
            "SET SESSION unique_checks = %(u)s, foreign_key_checks = %(f)s",
            {"u": unique_checks, "f": foreign_key_checks},
        )

    try:
        yield
    except BaseException:
        # The load failed, perhaps because the connection is gone. Restoring must not replace that error
        # with one of its own; a session that cannot be restored is discarded, never pooled with checks off.
        try:
            restore()
        except Exception:
            connection.invalidate()
        raise
    restore()


def _load_data(
    connection: sa.Connection, table: sa.Table, rows: Rows, targets: list[str], constants: dict[str, Any]
) -> int:
    quote = connection.dialect.identifier_preparer.quote
    assignments = ", ".join(f"{quote(name)} = %({name})s" for name in constants)
    statement = (
        f"LOAD DATA LOCAL INFILE %(_path)s INTO TABLE {quote(table.name)} CHARACTER SET utf8mb4 "
        "FIELDS TERMINATED BY '\\t' ESCAPED BY '\\\\' LINES TERMINATED BY '\\n' "
        f"({', '.join(quote(c) for c in targets)})" + (f" SET {assignments}" if assignments else "")
    )
    with _bulk_mode_if_empty(connection, quote(table.name)):
        scratch = connection.get_execution_options().get(SCRATCH_OPTION)
        result = connection.exec_driver_sql(statement, {"_path": rows.tsv(scratch), **constants})
    loaded = result.rowcount
    # LOAD DATA LOCAL turns data errors into warnings (it cannot stop the client's upload); a truncated
    # or converted value must never pass silently.
    warnings = connection.exec_driver_sql("SHOW WARNINGS LIMIT 5").all()
    if warnings or loaded != len(rows):
        raise RuntimeError(f"LOAD DATA into {table.name} loaded {loaded} of {len(rows)} rows: {warnings}")
    return loaded
