"""Full-dump history, computed set-based.

One bulk read of a table's open rows, one in-memory comparison with the new dataset (pandas), then
chunked UPDATEs (by business key) for the rows to close and one bulk load of the new versions. Never one
SELECT per line. Because rows are closed by key, not by surrogate, the delta computed against preflight
is applied unchanged to production, with counts checked so a production that is not in step is noticed.

A key that is new is inserted; a key whose columns changed has its open row closed and a new version
inserted; an unchanged key is not touched (its ModifiedDate stays); a key that disappeared is closed.
"""

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa

from importer.bulk import Rows, insert_rows
from importer.db import DateTimeSeconds, PidType, chunks
from importer.errors import InfrastructureError

OPEN_END = datetime(2999, 12, 31)
TEMPORAL_COLUMNS = ("CreatedDate", "ModifiedDate", "ValidFrom", "ValidTo")


def pid_column(name: str) -> sa.Column[Any]:
    return sa.Column(f"{name}PID", PidType, primary_key=True, autoincrement=True)


def temporal_columns() -> list[sa.Column[Any]]:
    return [sa.Column(name, DateTimeSeconds, nullable=False) for name in TEMPORAL_COLUMNS]


@dataclass(frozen=True)
class TemporalTable:
    """A history table and the business key that identifies one thing across its versions."""

    table: sa.Table
    key: tuple[str, ...]

    @property
    def name(self) -> str:
        return self.table.name

    @property
    def pid(self) -> sa.Column[Any]:
        """The surrogate key (`<Table>PID`, though some registers' names differ: `AutorisationPID`)."""
        (column,) = self.table.primary_key.columns
        return column

    @property
    def value_columns(self) -> list[str]:
        """The register's own columns (key included): everything but the surrogate and the time columns."""
        return [c.name for c in self.table.columns if c.name != self.pid.name and c.name not in TEMPORAL_COLUMNS]


class OutOfStep(InfrastructureError):
    """A database's history is not what the delta was computed from: re-synchronise, then import again."""


@dataclass
class TableDelta:
    """What one import changes in one table, independent of the database it is applied to."""

    spec: TemporalTable
    new_versions: Rows  # rows to insert: new keys and new versions of changed keys, in key order
    closed_rows: pd.DataFrame  # the open rows this import closes (changed and removed keys), old values
    inserted: int
    updated: int
    closed: int
    unchanged: int


def compute_delta(
    connection: sa.Connection, spec: TemporalTable, frame: pd.DataFrame, known_open: pd.DataFrame | None = None
) -> TableDelta:
    """`known_open`: the table's open rows if the caller knows them (see importer/snapshot.py); otherwise
    they are read from the database in one bulk read."""
    columns = spec.value_columns
    key = list(spec.key)
    missing = set(columns) - set(frame.columns)
    if missing:
        raise ValueError(f"{spec.name}: parsed frame lacks column(s) {sorted(missing)}")
    frame = frame[columns].astype(object)
    new_keys = _key_index(frame, key)
    if not new_keys.is_unique:
        raise ValueError(f"{spec.name}: parsed frame has duplicate business keys; the parser must refuse them")

    current = _open_rows(connection, spec, columns) if known_open is None else known_open[columns].astype(object)
    old_keys = _key_index(current, key)
    if not old_keys.is_unique:
        raise RuntimeError(f"{spec.name}: more than one open row for a key; the table's history is damaged")

    # Hash look-ups instead of a merge: for each new row the position of its key's open row, or -1.
    position = old_keys.get_indexer(new_keys)
    matched = position >= 0
    kept = np.zeros(len(current), dtype=bool)
    kept[position[matched]] = True
    new_matched = frame[matched]
    old_matched = current.iloc[position[matched]]
    differs = np.zeros(len(new_matched), dtype=bool)
    for column in columns:
        if column not in spec.key:
            left = new_matched[column].to_numpy(dtype=object)
            right = old_matched[column].to_numpy(dtype=object)
            differs |= ~((left == right) | (pd.isna(left) & pd.isna(right)))

    added = frame[~matched]
    return TableDelta(
        spec=spec,
        new_versions=Rows(_in_key_order(pd.concat([added, new_matched[differs]]), key)),
        # Closing in key order walks the key index (and, after a key-ordered load, the table) forwards.
        closed_rows=_in_key_order(pd.concat([old_matched[differs], current[~kept]]), key),
        inserted=len(added),
        updated=int(differs.sum()),
        closed=int((~kept).sum()),
        unchanged=int((~differs).sum()),
    )


def _key_index(frame: pd.DataFrame, key: list[str]) -> pd.Index:
    index: pd.Index = (
        pd.Index(frame[key[0]].to_numpy(dtype=object)) if len(key) == 1 else pd.MultiIndex.from_frame(frame[key])
    )
    return index


def _in_key_order(frame: pd.DataFrame, key: list[str]) -> pd.DataFrame:
    """Inserting in key order keeps the (key, ValidTo, ValidFrom) index append-mostly: fewer page splits."""
    if len(key) == 1 and pd.api.types.infer_dtype(frame[key[0]], skipna=False) == "string":
        # numpy sorts fixed-width text in C; pandas would compare Python objects one by one.
        order = np.argsort(frame[key[0]].to_numpy(dtype=str), kind="stable")
        return frame.iloc[order]
    return frame.sort_values(key, kind="stable")


def _open_rows(connection: sa.Connection, spec: TemporalTable, columns: list[str]) -> pd.DataFrame:
    """One bulk read of the open rows, as plain DBAPI tuples.

    Building SQLAlchemy Row objects for a million rows costs more than the database does; the only
    conversions needed are the types' own result processors (e.g. DATE stored as text on SQLite), applied
    column by column.
    """
    selected = [spec.table.c[c] for c in columns]
    result = connection.execute(sa.select(*selected).where(spec.table.c.ValidTo == OPEN_END))
    rows = result.cursor.fetchall() if result.cursor is not None else []
    result.close()
    data: dict[str, list[Any]] = {column.name: [] for column in selected}
    if rows:
        for column, values in zip(selected, zip(*rows, strict=True), strict=True):
            process = column.type.result_processor(connection.dialect, None)
            data[column.name] = [process(v) for v in values] if process is not None else list(values)
    return pd.DataFrame(data, dtype=object)


def apply_delta(
    connection: sa.Connection, delta: TableDelta, valid_from: datetime, now: datetime, *, verify_unchanged: bool
) -> None:
    """Close, then insert, all stamped with this import's transaction time.

    Every key to close must have exactly one open row here. With `verify_unchanged` (a delta computed in
    another database) the rows left open must also number exactly the unchanged ones: a database whose
    history differs from the one the delta came from is refused, not silently diverged further.
    """
    spec = delta.spec
    table = spec.table
    key_columns = [table.c[name] for name in spec.key]
    target = key_columns[0] if len(key_columns) == 1 else sa.tuple_(*key_columns)
    keys = list(delta.closed_rows[list(spec.key)].itertuples(index=False, name=None))
    if len(key_columns) == 1:
        keys = [value for (value,) in keys]
    closed = 0
    for chunk in chunks(keys):
        result = connection.execute(
            sa.update(table)
            .where(table.c.ValidTo == OPEN_END, target.in_(chunk))
            .values(ValidTo=valid_from, ModifiedDate=now)
        )
        closed += result.rowcount
    if closed != len(keys):
        raise OutOfStep(f"{spec.name}: closed {closed} open rows, expected {len(keys)}; "
                                  "preflight and production are not in step")
    if verify_unchanged:
        still_open = connection.execute(
            sa.select(sa.func.count()).select_from(table).where(table.c.ValidTo == OPEN_END)
        ).scalar_one()
        if still_open != delta.unchanged:
            raise OutOfStep(f"{spec.name}: {still_open} rows remain open, expected {delta.unchanged}; "
                                      "preflight and production are not in step")
    stamp = {"CreatedDate": now, "ModifiedDate": now, "ValidFrom": valid_from, "ValidTo": OPEN_END}
    insert_rows(connection, table, delta.new_versions, stamp)
