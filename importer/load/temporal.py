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

from importer.db import DateTimeSeconds, PidType, chunks
from importer.errors import InfrastructureError
from importer.load.bulk import Rows, insert_rows

OPEN_END = datetime(2999, 12, 31)
TEMPORAL_COLUMNS = ("CreatedDate", "ModifiedDate", "ValidFrom", "ValidTo")
DIGEST_SLICE = 100_000  # rows hashed at a time


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
    new_versions: Rows  # rows to insert: new keys and new versions of changed keys, in key order, with their PIDs
    closed_keys: pd.DataFrame  # business keys of the open rows this import closes (changed and removed), in order
    valid_from: datetime  # closed rows end and new versions start here
    pid_base: int  # the table's highest PID before this import; new versions are numbered on from it
    transaction_time: datetime  # ModifiedDate of every row written, CreatedDate of the new versions
    inserted: int
    updated: int
    closed: int
    unchanged: int
    kept_open: int = 0  # open rows the dataset lacks but that stay open (test data, see compute_delta)


def row_digests(spec: TemporalTable, frame: pd.DataFrame) -> np.ndarray:
    """A 64-bit digest of each row's value columns (pandas' SipHash of every column, combined), so that a
    remembered import needs only its keys and one number a row. A changed row goes unnoticed only if its
    digest collides with its own previous version's: about 1 in 1.8e19 a row."""
    values = frame[spec.value_columns]
    # A slice at a time: hashing text keeps an encoded copy of every value of a column until the column is
    # done, a second copy of the dump's text. A row's digest does not depend on the other rows.
    parts = [pd.util.hash_pandas_object(values.iloc[start : start + DIGEST_SLICE], index=False, categorize=False)
             .to_numpy() for start in range(0, len(values), DIGEST_SLICE)]
    digests: np.ndarray = np.concatenate(parts) if parts else np.zeros(0, dtype=np.uint64)
    return digests


@dataclass(frozen=True)
class OpenState:
    """What a snapshot keeps of a table's open rows: each row's business key and the digest of its values.

    A text key is one fixed-width numpy array rather than a Python string per row, and is matched by
    sorting rather than hashing: for a million keys that is a third of the memory, and it is stored as one
    buffer.
    """

    keys: dict[str, np.ndarray]  # key column -> values, aligned with `digests`
    digests: np.ndarray

    def __len__(self) -> int:
        return len(self.digests)

    def key_frame(self, positions: np.ndarray) -> pd.DataFrame:
        return pd.DataFrame({column: _expand(values[positions]) for column, values in self.keys.items()})


def open_state(spec: TemporalTable, frame: pd.DataFrame, digests: np.ndarray) -> OpenState:
    return OpenState({column: _compact(frame[column]) for column in spec.key}, digests)


def _compact(values: "pd.Series[Any]") -> np.ndarray:
    """Short text as a fixed-width array: bytes if it is ASCII (a quarter of the size), else unicode; only
    where that is lossless (numpy drops trailing NULs). Anything else as objects."""
    objects: np.ndarray = values.to_numpy(dtype=object)
    if pd.api.types.infer_dtype(values, skipna=False) == "string":
        lengths = values.str.len().to_numpy()
        for kind in ("S", "U"):
            try:
                text = np.asarray(objects, dtype=kind)
            except UnicodeEncodeError:
                continue
            if text.dtype.itemsize <= 4 * 64 and (np.char.str_len(text) == lengths).all():
                return text
    return objects


def _expand(values: np.ndarray) -> np.ndarray:
    """`_compact` undone: Python strings again (bytes decoded)."""
    return values.astype(str).astype(object) if values.dtype.kind in "SU" else values


def compute_delta(
    connection: sa.Connection,
    spec: TemporalTable,
    frame: pd.DataFrame,
    *,
    valid_from: datetime,
    transaction_time: datetime,
    known_open: OpenState | None = None,
    digests: np.ndarray | None = None,
    keep_open: frozenset[str] | None = None,
) -> TableDelta:
    """`known_open`: the table's open rows as `open_state` describes them, if the caller knows them (see
    importer/load/snapshot.py), compared by digest (`digests`: the new rows', if already computed); otherwise the
    open rows are read from the database in one bulk read and compared value by value. `keep_open`: values of a
    single-column business key that the dataset's absence does not close (restored test data)."""
    columns = spec.value_columns
    key = list(spec.key)
    missing = set(columns) - set(frame.columns)
    if missing:
        raise ValueError(f"{spec.name}: parsed frame lacks column(s) {sorted(missing)}")
    frame = frame[columns].reset_index(drop=True)

    if known_open is not None:
        position, differs = _compare_with_state(spec, known_open, frame, digests)
        open_count, keys_at = len(known_open), known_open.key_frame
    else:
        current = _open_rows(connection, spec, columns)
        position, differs = _compare_with_rows(spec, current, frame)
        open_count, keys_at = len(current), lambda positions: current[key].iloc[positions]
    matched = position >= 0
    old_position = position[matched]
    kept = np.zeros(open_count, dtype=bool)
    kept[old_position] = True
    kept_open = 0
    if keep_open:
        absent = np.flatnonzero(~kept)
        spared = absent[keys_at(absent)[key[0]].astype(str).isin(keep_open).to_numpy()]
        kept[spared] = True
        kept_open = len(spared)
    changed = np.flatnonzero(matched)[differs]
    closed_positions = np.concatenate([old_position[differs], np.flatnonzero(~kept)])
    new_versions = _in_key_order(frame.iloc[np.concatenate([np.flatnonzero(~matched), changed])], key)
    # Surrogate keys are given here, not by the database: an auto-increment counter also counts loads that
    # were rolled back, so preflight and production would number the same rows differently.
    pid_base = highest_pid(connection, spec)
    new_versions[spec.pid.name] = np.arange(pid_base + 1, pid_base + 1 + len(new_versions), dtype=np.int64)
    return TableDelta(
        spec=spec,
        new_versions=Rows(new_versions),
        # Closing in key order walks the key index (and, after a key-ordered load, the table) forwards.
        closed_keys=_in_key_order(keys_at(closed_positions).reset_index(drop=True), key),
        valid_from=valid_from,
        pid_base=pid_base,
        transaction_time=transaction_time,
        inserted=int((~matched).sum()),
        updated=int(differs.sum()),
        closed=int((~kept).sum()),
        unchanged=int((~differs).sum()),
        kept_open=kept_open,
    )


def _compare_with_state(
    spec: TemporalTable, state: OpenState, frame: pd.DataFrame, digests: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    """For each new row the position of its key's open row (or -1), and for the matched rows whether their
    digest differs from the remembered one."""
    position = _match_state(spec, state, frame)
    matched = position >= 0
    new_digests = row_digests(spec, frame) if digests is None else digests
    differs: np.ndarray = new_digests[matched] != state.digests[position[matched]]
    return position, differs


def _compare_with_rows(
    spec: TemporalTable, current: pd.DataFrame, frame: pd.DataFrame
) -> tuple[np.ndarray, np.ndarray]:
    """`_compare_with_state` against open rows read from the database, value by value."""
    key = list(spec.key)
    position = _match_hashed(spec, _key_index(current, key), _key_index(frame, key))
    matched = position >= 0
    differs = np.zeros(int(matched.sum()), dtype=bool)
    for column in spec.value_columns:
        if column not in spec.key:
            left = frame[column].to_numpy(dtype=object)[matched]
            right = current[column].to_numpy(dtype=object)[position[matched]]
            differs |= ~((left == right) | (pd.isna(left) & pd.isna(right)))
    return position, differs


def _match_state(spec: TemporalTable, state: OpenState, frame: pd.DataFrame) -> np.ndarray:
    key = list(spec.key)
    if len(key) == 1 and state.keys[key[0]].dtype.kind in "SU":
        new = _compact(frame[key[0]])
        if new.dtype.kind == state.keys[key[0]].dtype.kind:
            return _match_sorted(spec, state.keys[key[0]], new)
    old_keys: pd.Index = (
        pd.Index(_expand(state.keys[key[0]])) if len(key) == 1
        else pd.MultiIndex.from_arrays([_expand(state.keys[column]) for column in key])
    )
    return _match_hashed(spec, old_keys, _key_index(frame, key))


def _match_hashed(spec: TemporalTable, old_keys: pd.Index, new_keys: pd.Index) -> np.ndarray:
    if not new_keys.is_unique:
        raise ValueError(f"{spec.name}: parsed frame has duplicate business keys; the parser must refuse them")
    new_keys = new_keys.copy()  # drops the hash table the check built: one alive at a time is enough
    if not old_keys.is_unique:
        raise RuntimeError(f"{spec.name}: more than one open row for a key; the table's history is damaged")
    position: np.ndarray = old_keys.get_indexer(new_keys)
    return position


def _match_sorted(spec: TemporalTable, old: np.ndarray, new: np.ndarray) -> np.ndarray:
    """`_match_hashed` for fixed-width text: a sort-merge in numpy, without a Python object per key."""
    order = np.argsort(old, kind="stable")
    ordered = old[order]
    if len(ordered) > 1 and (ordered[1:] == ordered[:-1]).any():
        raise RuntimeError(f"{spec.name}: more than one open row for a key; the table's history is damaged")
    position: np.ndarray = np.full(len(new), -1, dtype=np.intp)
    if len(ordered):
        at = np.searchsorted(ordered, new)
        np.minimum(at, len(ordered) - 1, out=at)
        found = ordered[at] == new
        del ordered
        position[found] = order[at[found]]
    # A key twice in the new rows: either both found the same open row, or both are new.
    added = np.sort(new[position < 0])
    if np.bincount(position[position >= 0], minlength=len(old)).max(initial=0) > 1 or (added[1:] == added[:-1]).any():
        raise ValueError(f"{spec.name}: parsed frame has duplicate business keys; the parser must refuse them")
    return position


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


def highest_pid(connection: sa.Connection, spec: TemporalTable) -> int:
    return int(connection.execute(sa.select(sa.func.coalesce(sa.func.max(spec.pid), 0))).scalar_one())


def apply_delta(connection: sa.Connection, delta: TableDelta, *, verify_unchanged: bool) -> None:
    """Close, then insert, all stamped with this import's transaction time.

    Every key to close must have exactly one open row here. With `verify_unchanged` (a delta computed in
    another database) the rows left open must also number exactly the unchanged ones: a database whose
    history differs from the one the delta came from is refused, not silently diverged further.
    """
    spec = delta.spec
    table = spec.table
    key_columns = [table.c[name] for name in spec.key]
    target = key_columns[0] if len(key_columns) == 1 else sa.tuple_(*key_columns)
    keys = list(delta.closed_keys.itertuples(index=False, name=None))
    if len(key_columns) == 1:
        keys = [value for (value,) in keys]
    if verify_unchanged:
        pid_base = highest_pid(connection, spec)
        if pid_base != delta.pid_base:
            raise OutOfStep(f"{spec.name}: the highest PID is {pid_base}, expected {delta.pid_base}; "
                            "preflight and production are not in step")
        # Counted before closing: afterwards nearly every index page holds this transaction's changes, and
        # InnoDB would have to confirm each entry in the table itself rather than read the index alone.
        open_rows = connection.execute(
            sa.select(sa.func.count()).select_from(table).where(table.c.ValidTo == OPEN_END)
        ).scalar_one()
        expected = delta.unchanged + len(keys) + delta.kept_open
        if open_rows != expected:
            raise OutOfStep(f"{spec.name}: {open_rows} rows are open, expected {expected}; "
                            "preflight and production are not in step")
    closed = 0
    for chunk in chunks(keys):
        result = connection.execute(
            sa.update(table)
            .where(table.c.ValidTo == OPEN_END, target.in_(chunk))
            .values(ValidTo=delta.valid_from, ModifiedDate=delta.transaction_time)
        )
        closed += result.rowcount
    if closed != len(keys):
        raise OutOfStep(f"{spec.name}: closed {closed} open rows, expected {len(keys)}; "
                        "preflight and production are not in step")
    now = delta.transaction_time
    stamp = {"CreatedDate": now, "ModifiedDate": now, "ValidFrom": delta.valid_from, "ValidTo": OPEN_END}
    insert_rows(connection, table, delta.new_versions, stamp)
