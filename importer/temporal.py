"""Full-dump history, computed set-based.

One bulk read of a table's open rows, one in-memory comparison with the new dataset (pandas), then
chunked UPDATEs for the rows to close and multi-row INSERTs for the new versions. Never one SELECT per line.

A key that is new is inserted; a key whose columns changed has its open row closed and a new version
inserted; an unchanged key is not touched (its ModifiedDate stays); a key that disappeared is closed.
"""

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pandas as pd
import sqlalchemy as sa

from importer.bulk import insert_frame
from importer.db import DateTimeSeconds, PidType, chunks

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


@dataclass
class TableDelta:
    spec: TemporalTable
    new_versions: pd.DataFrame  # rows to insert: new keys and new versions of changed keys
    close_pids: list[int]  # open rows to close: changed and removed keys
    inserted: int
    updated: int
    closed: int
    unchanged: int

    @property
    def rows_written(self) -> int:
        return len(self.new_versions) + len(self.close_pids)


def compute_delta(connection: sa.Connection, spec: TemporalTable, frame: pd.DataFrame) -> TableDelta:
    columns = spec.value_columns
    missing = set(columns) - set(frame.columns)
    if missing:
        raise ValueError(f"{spec.name}: parsed frame lacks column(s) {sorted(missing)}")
    frame = frame[columns]
    if frame.duplicated(subset=list(spec.key)).any():
        raise ValueError(f"{spec.name}: parsed frame has duplicate business keys; the parser must refuse them")

    result = connection.execute(
        sa.select(spec.pid, *(spec.table.c[c] for c in columns)).where(spec.table.c.ValidTo == OPEN_END)
    )
    current = pd.DataFrame(result.all(), columns=[spec.pid.name, *columns], dtype=object)
    if current.duplicated(subset=list(spec.key)).any():
        raise RuntimeError(f"{spec.name}: more than one open row for a key; the table's history is damaged")

    new = frame.astype(object)
    merged = new.merge(
        current, on=list(spec.key), how="outer", suffixes=("", "__old"), indicator=True, sort=False
    )
    added = merged["_merge"] == "left_only"
    removed = merged["_merge"] == "right_only"
    both = merged["_merge"] == "both"

    differs = pd.Series(False, index=merged.index)
    for column in columns:
        if column in spec.key:
            continue
        left, right = merged[column], merged[f"{column}__old"]
        same = (left == right) | (left.isna() & right.isna())
        differs |= ~same
    changed = both & differs

    new_versions = merged.loc[added | changed, columns]
    close_pids = [int(pid) for pid in merged.loc[changed | removed, spec.pid.name]]
    return TableDelta(
        spec=spec,
        new_versions=new_versions,
        close_pids=close_pids,
        inserted=int(added.sum()),
        updated=int(changed.sum()),
        closed=int(removed.sum()),
        unchanged=int((both & ~differs).sum()),
    )


def apply_delta(connection: sa.Connection, delta: TableDelta, valid_from: datetime, now: datetime) -> None:
    """Close, then insert, all stamped with this import's transaction time."""
    table = delta.spec.table
    for pids in chunks(delta.close_pids):
        connection.execute(
            sa.update(table)
            .where(delta.spec.pid.in_(pids))
            .values(ValidTo=valid_from, ModifiedDate=now)
        )
    stamp = {"CreatedDate": now, "ModifiedDate": now, "ValidFrom": valid_from, "ValidTo": OPEN_END}
    insert_frame(connection, table, delta.new_versions, stamp)
