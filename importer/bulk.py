"""Bulk loading of a DataFrame into a table, by each dialect's fastest path.

MariaDB/MySQL: the rows are rendered once as tab-separated text and loaded with `LOAD DATA LOCAL INFILE`
inside the caller's transaction (InnoDB makes it transactional). SQLite: one `executemany` of plain
tuples, bypassing per-row work in SQLAlchemy. Either way a million rows cost one statement, not a million.

An import writes the same rows to two databases (and autorisation to two tables), so `Rows` renders them
once per dialect and is reused; a different column list maps the same rendering onto another table.
"""

import csv
import os
import re
import tempfile
import weakref
from collections.abc import Sequence
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import sqlalchemy as sa

from importer.db import is_mysql

_NULL = "\\N"
# What LOAD DATA's default escaping treats specially inside a field.
_SPECIAL = re.compile(r"[\\\t\n\r\x00]")


class Rows:
    """A frame's rows, rendered for a dialect on first use and kept for the next."""

    def __init__(self, frame: pd.DataFrame) -> None:
        self.frame = frame
        self._tsv: str | None = None  # path of the rendered file, removed with this object
        self._tuples: list[tuple[Any, ...]] | None = None

    def __len__(self) -> int:
        return len(self.frame)

    @property
    def columns(self) -> list[str]:
        return [str(column) for column in self.frame.columns]

    def tsv(self) -> str:
        """The path of a LOAD DATA file holding the rows (utf-8, tab-separated, `\\N` for NULL)."""
        if self._tsv is None:
            handle, path = tempfile.mkstemp(prefix="stamdata-load-", suffix=".tsv")
            os.close(handle)
            weakref.finalize(self, _unlink, path)
            if not _write_plain(self.frame, path):
                with open(path, "wb") as file:
                    fields = [_tsv_field(self.frame[column]) for column in self.frame.columns]
                    file.write("".join("\t".join(row) + "\n" for row in zip(*fields, strict=True)).encode("utf-8"))
            self._tsv = path
        return self._tsv

    def tuples(self) -> list[tuple[Any, ...]]:
        if self._tuples is None:
            data = [_column_values(self.frame[column]) for column in self.frame.columns]
            self._tuples = list(zip(*data, strict=True))
        return self._tuples


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
    fixed = tuple(_sql_text(value) for value in constants.values())
    data = rows.tuples()
    connection.exec_driver_sql(statement, [row + fixed for row in data] if fixed else data)
    return len(data)


def _unlink(path: str) -> None:
    Path(path).unlink(missing_ok=True)


def _write_plain(frame: pd.DataFrame, path: str) -> bool:
    """The fast path: pandas' CSV writer, valid only if no value needs LOAD DATA escaping.

    The writer refuses values holding a tab or a line end (nothing to quote with); a backslash, NUL or CR
    in a value shows as more backslashes or those bytes in the output than the NULLs alone account for.
    """
    try:
        frame.to_csv(path, sep="\t", header=False, index=False, na_rep=_NULL, quoting=csv.QUOTE_NONE,
                     escapechar=None, lineterminator="\n", encoding="utf-8", date_format="%Y-%m-%d %H:%M:%S")
    except csv.Error:
        return False
    backslashes = 0
    with open(path, "rb") as file:
        while chunk := file.read(1 << 24):  # in slices: the rendering can be larger than we want in memory
            if b"\x00" in chunk or b"\r" in chunk:
                return False
            backslashes += chunk.count(b"\\")
    return backslashes == int(frame.isna().to_numpy().sum())


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


def _escape(value: str) -> str:
    return (value.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n")
            .replace("\r", "\\r").replace("\x00", "\\0"))


def _load_data(
    connection: sa.Connection, table: sa.Table, rows: Rows, targets: list[str], constants: dict[str, Any]
) -> int:
    quote = connection.dialect.identifier_preparer.quote
    assignments = ", ".join(f"{quote(name)} = %({name})s" for name in constants)
    result = connection.exec_driver_sql(
        f"LOAD DATA LOCAL INFILE %(_path)s INTO TABLE {quote(table.name)} CHARACTER SET utf8mb4 "
        "FIELDS TERMINATED BY '\\t' ESCAPED BY '\\\\' LINES TERMINATED BY '\\n' "
        f"({', '.join(quote(c) for c in targets)})" + (f" SET {assignments}" if assignments else ""),
        {"_path": rows.tsv(), **constants},
    )
    loaded = result.rowcount
    # LOAD DATA LOCAL turns data errors into warnings (it cannot stop the client's upload); a truncated
    # or converted value must never pass silently.
    warnings = connection.exec_driver_sql("SHOW WARNINGS LIMIT 5").all()
    if warnings or loaded != len(rows):
        raise RuntimeError(f"LOAD DATA into {table.name} loaded {loaded} of {len(rows)} rows: {warnings}")
    return loaded
