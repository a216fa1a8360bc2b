"""Test data (FORMATS.md §6, the platform's DumpRestore): dump what a register holds about one person, history
included, restore it onto the same or another person (optionally moved in time), and reset it.

The history rules hold for test data as for imports. Nothing is deleted: a reset closes the person's open rows,
and the feed carries the change. Every write is stamped with a transaction time later than anything the register
holds (`Pipeline.next_transaction_time`), so the feed stays strictly ordered across imports, restores and resets.
A restored key keeps its value only where the table has no history for it; otherwise it gets the first unused
value of the register's test range, so no two intervals of one key ever overlap and no copied row is rewritten.
Restored keys are remembered as test data (importer/load/test_keys.py), so the next full dump does not close them.
Both databases are written, preflight first, under the register's lock, as an import would.

A register without a person column (doseringsforslag) is dumped and restored whole: a restore makes the dump's
open rows the register's current content from the moment of the restore, through the same delta as an import.

The dump is a versioned JSON document (format, version, register, schema revision, the instant taken, the person,
every table's columns and rows), gzip'd and base64-encoded: the platform's `DumpData`, a file that can move
between environments.
"""

import base64
import binascii
import gzip
import io
import json
import re
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import pandas as pd
import sqlalchemy as sa

from importer.errors import DataError, UsageError
from importer.load import migrate, notifications, test_keys
from importer.load.bulk import Rows, insert_rows
from importer.load.pipeline import Pipeline
from importer.load.plugin import Register, TestDataSpec
from importer.load.status import ImportStatus
from importer.load.temporal import OPEN_END, TEMPORAL_COLUMNS, TableDelta, TemporalTable, apply_delta, compute_delta
from importer.logs import get_logger
from importer.privacy import mask_cpr

log = get_logger(__name__)

FORMAT = "stamdata-testdata"
FORMAT_VERSION = 1
CPR = re.compile(r"^[0-9]{10}$")
MAX_DUMP_BYTES = 256 << 20  # a dump expands to at most this much JSON (a whole dosage release is ~30 MB)


@dataclass(frozen=True)
class Dump:
    register: str
    person: str | None
    taken_at: datetime
    revision: str | None
    tables: dict[str, pd.DataFrame]  # every column but the PID, as stored


@dataclass(frozen=True)
class Restored:
    person: str | None
    rows: int
    keys: dict[str, str]  # the dump's key -> the key restored (a fresh test key where the dump's had history)
    shift_days: int


@dataclass(frozen=True)
class Reset:
    person: str
    closed: int
    keys: list[str]


def check_cpr(cpr: str, what: str = "CPR") -> str:
    if not CPR.match(cpr):
        raise UsageError(f"{what} must be 10 digits")
    return cpr


def spec_of(register: Register) -> TestDataSpec:
    if register.testdata is None:
        raise UsageError(f"register {register.name} has no test data")
    return register.testdata


def _table(register: Register, name: str) -> TemporalTable:
    return next(spec for spec in register.tables if spec.name == name)


# --- The document ---------------------------------------------------------------------------------------------


def encode(dump: Dump) -> str:
    document = {
        "format": FORMAT,
        "formatVersion": FORMAT_VERSION,
        "register": dump.register,
        "schemaRevision": dump.revision,
        "takenAt": dump.taken_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "person": dump.person,
        "tables": {name: {"columns": list(frame.columns),
                          "rows": [[_json(value) for value in row] for row in frame.itertuples(index=False)]}
                   for name, frame in dump.tables.items()},
    }
    raw = json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return base64.b64encode(gzip.compress(raw, mtime=0)).decode("ascii")


def _json(value: Any) -> Any:
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return None
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%dT%H:%M:%S")
    if isinstance(value, date):
        return value.isoformat()
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    return value


def decode(text: str, register: Register) -> Dump:
    """The dump in `text`, checked against `register`; a DataError names what is wrong, and nothing is written."""
    def refuse(rule: str, detail: str) -> DataError:
        return DataError.single(f"dump-{rule}", detail)

    try:
        packed = base64.b64decode("".join(text.split()), validate=True)
    except (binascii.Error, ValueError):
        raise refuse("base64", "DumpData is not base64") from None
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(packed), mode="rb") as stream:
            raw = stream.read(MAX_DUMP_BYTES + 1)
    except (OSError, EOFError, zlib.error):
        raise refuse("gzip", "DumpData is not gzip'd data (or is cut short)") from None
    if len(raw) > MAX_DUMP_BYTES:
        raise refuse("size", f"a dump expands to at most {MAX_DUMP_BYTES} bytes")
    try:
        document = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise refuse("json", "the dump is not a JSON document") from None
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise refuse("format", f"not a {FORMAT} document")
    version = document.get("formatVersion")
    if version != FORMAT_VERSION:
        raise refuse("format-version", f"format version {version!r} is not {FORMAT_VERSION} (this importer's)")
    if document.get("register") != register.name:
        raise refuse("register", f"a dump of register {document.get('register')!r}, not {register.name}")
    person = document.get("person")
    spec = spec_of(register)
    if spec.person_column is not None and (not isinstance(person, str) or not CPR.match(person)):
        raise refuse("person", "the dump names no person (a CPR number of 10 digits)")
    try:
        taken_at = datetime.strptime(str(document.get("takenAt")), "%Y-%m-%dT%H:%M:%SZ")
    except ValueError:
        raise refuse("taken-at", "takenAt is not a time yyyy-MM-ddTHH:mm:ssZ") from None
    tables = document.get("tables")
    expected = {spec.table} if spec.person_column is not None else {table.name for table in register.tables}
    if not isinstance(tables, dict) or set(tables) != expected:
        raise refuse("tables", f"the dump must hold exactly the table(s) {', '.join(sorted(expected))}")
    frames = {name: _frame(_table(register, name), tables[name], refuse) for name in sorted(expected)}
    return Dump(register.name, person if spec.person_column is not None else None, taken_at,
                document.get("schemaRevision"), frames)


def _frame(spec: TemporalTable, content: Any, refuse: Any) -> pd.DataFrame:
    columns = [column.name for column in spec.table.columns if column.name != spec.pid.name]
    if not isinstance(content, dict) or content.get("columns") != columns or not isinstance(content.get("rows"), list):
        raise refuse("columns", f"{spec.name}: the columns must be {', '.join(columns)}")
    rows = content["rows"]
    parsed: list[list[Any]] = []
    for number, row in enumerate(rows, start=1):
        if not isinstance(row, list) or len(row) != len(columns):
            raise refuse("row", f"{spec.name} row {number}: {len(columns)} values expected")
        values = []
        for name, value in zip(columns, row, strict=True):
            column = spec.table.c[name]
            try:
                values.append(_typed(column, value))
            except (TypeError, ValueError):
                raise refuse("value", f"{spec.name} row {number}: {name} = {mask_cpr(repr(value))[:60]} is not "
                                      f"a {column.type}") from None
        parsed.append(values)
    return pd.DataFrame(parsed, columns=columns, dtype=object)


def _typed(column: sa.Column[Any], value: Any) -> Any:
    if value is None:
        if not column.nullable:
            raise ValueError("NULL")
        return None
    python_type = column.type.python_type
    if python_type is datetime:
        return datetime.strptime(value, "%Y-%m-%dT%H:%M:%S")
    if python_type is date:
        return date.fromisoformat(value)
    if python_type is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(value)
        return value
    if not isinstance(value, str):
        raise TypeError(value)
    length = getattr(column.type, "length", None)
    if length is not None and len(value) > length:
        raise ValueError(value)
    return value


# --- The operations ----------------------------------------------------------------------------------------------


class TestData:
    """Dump, restore and reset through a pipeline's databases (production is read for dumps; both are written)."""

    __test__ = False  # not a pytest test class, whatever its name says

    def __init__(self, pipeline: Pipeline, lock_wait_s: float | None = None) -> None:
        self.pipeline = pipeline
        # How long an operation waits for an import holding the register (the CLI's lock_wait_s by default).
        self.lock_wait_s = float(pipeline.settings.daemon["lock_wait_s"]) if lock_wait_s is None else lock_wait_s

    def dump(self, register: Register, cpr: str | None) -> str:
        spec = spec_of(register)
        self.pipeline.migrate()
        names = [spec.table] if spec.person_column is not None else [table.name for table in register.tables]
        if spec.person_column is not None:
            check_cpr(cpr or "")
        with self.pipeline.production.connect() as connection:
            revision = migrate.revision_of(connection)
            frames = {}
            for name in names:
                table = _table(register, name)
                columns = [column for column in table.table.columns if column.name != table.pid.name]
                query = sa.select(*columns).order_by(table.pid)
                if spec.person_column is not None:
                    query = query.where(table.table.c[spec.person_column] == cpr)
                frames[name] = pd.DataFrame([tuple(row) for row in connection.execute(query)],
                                            columns=[column.name for column in columns], dtype=object)
        taken = self.pipeline.clock.now().replace(microsecond=0, tzinfo=None)
        return encode(Dump(register.name, cpr if spec.person_column is not None else None, taken, revision, frames))

    def restore(self, register: Register, text: str, to: str | None = None,
                restore_at: date | None = None) -> Restored:
        spec = spec_of(register)
        dump = decode(text, register)
        today = self.pipeline.clock.now().date()
        if restore_at is not None and restore_at > today:
            raise UsageError(f"RestoreAtDate {restore_at} is in the future (today is {today})")
        shift = (restore_at - dump.taken_at.date()) if restore_at is not None else timedelta(0)
        person = check_cpr(to, "--to") if to is not None else dump.person
        frames = {name: _shifted(frame, shift) for name, frame in dump.tables.items()}
        if spec.person_column is not None:
            frames = {name: frame.assign(**{spec.person_column: person}) for name, frame in frames.items()}
        with self._exclusive(register):
            if spec.person_column is None:
                restored = self._restore_whole(register, frames)
                return Restored(None, restored, {}, shift.days)
            table = _table(register, spec.table)
            keys = self._keys_for(table, spec, frames[spec.table])
            key_column = table.key[0]
            frame = frames[spec.table].assign(**{key_column: frames[spec.table][key_column].map(keys)})
            _check_intervals(table, frame)
            self._write_both(register, lambda connection, at: self._insert_person(
                connection, register, table, frame, person, at),
                notifications.TESTDATA_RESTORE, [person or "", *keys.values()])
            log.info("test data restored", register=register.name, person=mask_cpr(person or ""), rows=len(frame),
                     renumbered={old: new for old, new in keys.items() if old != new}, shift_days=shift.days)
            return Restored(person, len(frame), keys, shift.days)

    def reset(self, register: Register, cpr: str) -> Reset:
        spec = spec_of(register)
        if spec.person_column is None:
            raise UsageError(f"register {register.name} holds no persons: restore a dump of the whole register "
                             "instead of resetting")
        check_cpr(cpr)
        table = _table(register, spec.table)
        with self._exclusive(register):
            with self.pipeline.production.connect() as connection:
                keys = sorted(test_keys.of_person(connection, register.name, cpr))
                open_keys = self._open_keys(connection, table, spec, cpr)
            closed = self._write_both(register, lambda connection, at: self._close_person(
                connection, register, table, spec, cpr, at), notifications.TESTDATA_RESET, [cpr, *open_keys])
        log.info("test data reset", register=register.name, person=mask_cpr(cpr), closed=closed)
        return Reset(cpr, closed, keys)

    # --- how ---

    def _exclusive(self, register: Register) -> Any:
        self.pipeline.migrate()
        return _Exclusive(self.pipeline, register, self.lock_wait_s)

    def _keys_for(self, table: TemporalTable, spec: TestDataSpec, frame: pd.DataFrame) -> dict[str, str]:
        """Each dumped key, kept where the table has no history for it, else the first unused test key."""
        key = table.table.c[table.key[0]]
        wanted = sorted(set(frame[table.key[0]].astype(str)))
        with self.pipeline.production.connect() as connection:
            taken = {str(value) for (value,) in connection.execute(sa.select(key).where(key.in_(wanted)).distinct())}
            in_range = {str(value) for (value,) in connection.execute(
                sa.select(key).where(key.like(f"{spec.key_prefix}%")).distinct())} if spec.key_prefix else set()
        fresh = _candidates(spec, in_range | set(wanted))
        mapping = {}
        for value in wanted:
            if value in taken:
                try:
                    mapping[value] = next(fresh)
                except StopIteration:
                    raise UsageError(f"the test range {spec.key_prefix}… of {table.name} is used up") from None
            else:
                mapping[value] = value
        return mapping

    @staticmethod
    def _open_keys(connection: sa.Connection, table: TemporalTable, spec: TestDataSpec, cpr: str) -> list[str]:
        """The keys of the person's open rows: what a reset closes, so what subscribers may have listed."""
        assert spec.person_column is not None
        columns = table.table.c
        return sorted({str(value) for (value,) in connection.execute(sa.select(columns[table.key[0]]).where(
            columns[spec.person_column] == cpr, columns.ValidTo == OPEN_END))})

    def _write_both(self, register: Register, write: Any, reason: str, ids: list[str] | None) -> Any:
        """One transaction per database, preflight first, at one transaction time later than anything held.

        Production's transaction also tells the subscribers of `ids` (None: of the whole register) that the data
        changed without change notifications (`lost`, `reason`): test data bypasses the import's events."""
        at = self.pipeline.next_transaction_time(register)
        result = None
        for engine in (self.pipeline.preflight, self.pipeline.production):
            with engine.begin() as connection:
                result = write(connection, at)
                if engine is self.pipeline.production:
                    notifications.notify_system(connection, register.name, ids, reason, at)
        self.pipeline.snapshots.forget(register.name)
        return result

    def _insert_person(self, connection: sa.Connection, register: Register, table: TemporalTable,
                       frame: pd.DataFrame, person: str | None, at: datetime) -> int:
        first = int(connection.execute(sa.select(sa.func.coalesce(sa.func.max(table.pid), 0))).scalar_one()) + 1
        rows = frame.reset_index(drop=True)
        rows[table.pid.name] = range(first, first + len(frame))
        rows["CreatedDate"] = at
        rows["ModifiedDate"] = at
        insert_rows(connection, table.table, Rows(rows), {})
        test_keys.add(connection, register.name, frame[table.key[0]].astype(str), person, at)
        opened = rows[rows["ValidTo"] == OPEN_END]
        register.after_load(connection, [_delta(table, opened, pd.DataFrame(columns=list(table.key)), at, at)])
        return len(rows)

    def _close_person(self, connection: sa.Connection, register: Register, table: TemporalTable,
                      spec: TestDataSpec, cpr: str, at: datetime) -> int:
        """The person's open rows end where the register's newest dataset starts (the next dataset starts later,
        so a key it delivers again never overlaps), or where the row itself starts if that is later; rows are
        not deleted: the feed carries the closing with the reset's transaction time."""
        assert spec.person_column is not None
        columns = table.table.c
        previous = ImportStatus.of(register).latest_success(connection)
        cut = previous.valid_from if previous is not None else at
        mine = sa.and_(columns[spec.person_column] == cpr, columns.ValidTo == OPEN_END)
        ends = sa.case((columns.ValidFrom > cut, columns.ValidFrom), else_=sa.literal(cut, columns.ValidTo.type))
        closed = connection.execute(sa.update(table.table).where(mine).values(ValidTo=ends, ModifiedDate=at)).rowcount
        test_keys.forget_person(connection, register.name, cpr)
        register.after_load(connection, None)  # derived tables rebuilt: a reset is rare, and test-only
        return int(closed)

    def _restore_whole(self, register: Register, frames: dict[str, pd.DataFrame]) -> int:
        at = self.pipeline.next_transaction_time(register)
        opened = {name: frame[frame["ValidTo"] == OPEN_END] for name, frame in frames.items()}
        planned: list[TableDelta] | None = None
        for engine in (self.pipeline.preflight, self.pipeline.production):
            with engine.begin() as connection:
                if planned is None:
                    planned = [compute_delta(connection, spec, opened[spec.name], valid_from=at, transaction_time=at)
                               for spec in register.tables]
                for delta in planned:
                    apply_delta(connection, delta, verify_unchanged=engine is self.pipeline.production)
                register.after_load(connection, planned)
                if engine is self.pipeline.production:
                    notifications.notify_system(connection, register.name, None, notifications.TESTDATA_RESTORE, at)
        self.pipeline.snapshots.forget(register.name)
        assert planned is not None
        log.info("test data restored", register=register.name, inserted=sum(d.inserted for d in planned),
                 updated=sum(d.updated for d in planned), closed=sum(d.closed for d in planned))
        return sum(len(frame) for frame in opened.values())


class _Exclusive:
    """The register's lock, and both databases in step, for the length of one operation."""

    def __init__(self, pipeline: Pipeline, register: Register, wait_s: float) -> None:
        self.pipeline = pipeline
        self.register = register
        self.wait_s = wait_s
        self.held: Any = None

    def __enter__(self) -> None:
        self.held = self.pipeline.lock(self.register.name, self.wait_s)
        self.held.__enter__()
        try:
            self.pipeline.end_interrupted_runs(self.register)
            self.pipeline.in_step(self.register)
        except BaseException:
            self.held.__exit__(None, None, None)
            raise

    def __exit__(self, *exc: Any) -> None:
        self.held.__exit__(*exc)


def _delta(table: TemporalTable, new_versions: pd.DataFrame, closed_keys: pd.DataFrame, at: datetime,
           valid_from: datetime) -> TableDelta:
    columns = [*table.value_columns, table.pid.name]
    return TableDelta(spec=table, new_versions=Rows(new_versions[columns].reset_index(drop=True)),
                      closed_keys=closed_keys.reset_index(drop=True), valid_from=valid_from, pid_base=0,
                      transaction_time=at, inserted=len(new_versions), updated=0, closed=len(closed_keys),
                      unchanged=0)


def _shifted(frame: pd.DataFrame, shift: timedelta) -> pd.DataFrame:
    """Every date of the dump moved by `shift`, except the open end (still open) and the bookkeeping columns."""
    if not shift:
        return frame.copy()
    moved = frame.copy()
    for name in moved.columns:
        if name in ("CreatedDate", "ModifiedDate"):
            continue
        moved[name] = [value + shift if isinstance(value, date) and value != OPEN_END else value
                       for value in moved[name]]
    return moved


def _check_intervals(table: TemporalTable, frame: pd.DataFrame) -> None:
    """The dump's versions of one key must not overlap (a dump of this importer's tables never does)."""
    key = table.key[0]
    for value, versions in frame.sort_values([key, "ValidFrom"]).groupby(key, sort=False):
        starts, ends = list(versions["ValidFrom"]), list(versions["ValidTo"])
        for number in range(len(starts)):
            if ends[number] < starts[number] or (number and starts[number] < ends[number - 1]):
                raise DataError.single("dump-intervals", f"{table.name}: the versions of {value} overlap")


def _candidates(spec: TestDataSpec, used: set[str]) -> Iterator[str]:
    """The test range in order: the prefix, then every combination of the alphabet, skipping used values."""
    import itertools

    width = spec.key_length - len(spec.key_prefix)
    for combination in itertools.product(spec.key_alphabet, repeat=width):
        candidate = spec.key_prefix + "".join(combination)
        if candidate not in used:
            used.add(candidate)
            yield candidate


__all__ = ["TEMPORAL_COLUMNS", "Dump", "Reset", "Restored", "TestData", "decode", "encode"]
