"""Change notifications (FORMATS.md §7, the platform's NAS applied to stamdata): the tables, the events every
production import writes in its own transaction (an outbox), and the system notifications that tell subscribers
to bootstrap again.

An **event** is one business key an import inserted (`created`), changed (`changed`: its open row closed and a new
version opened) or closed (`closed`), about one of the register's datatypes, with the ids the register declares
for it (`Register.notification_ids`, e.g. autorisation: the CPR and the autorisationsnummer) and the import's
transaction time, which is the rows' ModifiedDate. Nothing else of the row is kept: no names, no content. Events
are numbered by one database sequence; their ids are kept beside them (one row per id) for matching. Preflight
writes none.

The topic of a register's events is `stamdata/<register>`. Imports of one register hold its lock from their
start to their commit, so the events of one topic are committed in the order of their sequence numbers: what is
visible of a topic is always everything up to its highest visible number. A subscription therefore keeps a plain
cursor (the highest event of its topic it has been matched against); importer/load/subscriptions.py matches events
to ID lists set-based when a pull point is pulled (or the daemon's housekeeping runs), never one event at a time.

A **system notification** (`lost`) goes to pull points directly: when notifications were purged unfetched, or the
data changed behind the subscribers' back (test data reset or restored, preflight re-synchronised).
"""

import time
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa

from importer.clock import SystemClock, whole_seconds
from importer.db import MYSQL_TABLE_OPTIONS, DateTimeSeconds, PidType, chunks
from importer.load.bulk import Rows, insert_rows
from importer.load.plugin import NotificationIds, Register
from importer.load.temporal import OPEN_END, TableDelta
from importer.logs import get_logger

log = get_logger(__name__)

ACTIONS = ("created", "changed", "closed")
LOST = "lost"
# The events of system notifications are numbered in the same sequence but kept out of every register's topic: a
# topic's highest number must stay that of its imports' events (see the module's docstring).
SYSTEM_TOPIC = "stamdata/system"
TOPIC_PREFIX = "stamdata/"

# Reasons of a system notification, as its `reason` says.
PURGED = "purged"  # notifications not fetched within the retention were deleted
TESTDATA_RESET = "testdata-reset"
TESTDATA_RESTORE = "testdata-restore"
RESYNCHRONISED = "resynchronised"  # preflight re-synchronised from production

ID_LENGTH = 64  # the longest id an ID list or an event holds

metadata = sa.MetaData()

# SQLite: AUTOINCREMENT, so a number is never given twice, not even after the newest rows were purged.
_SEQUENCE_OPTIONS: dict[str, Any] = {**MYSQL_TABLE_OPTIONS, "sqlite_autoincrement": True}

event_table = sa.Table(
    "stamdata_notification_event",
    metadata,
    sa.Column("Sequence", PidType, primary_key=True, autoincrement=True),
    sa.Column("Topic", sa.String(100), nullable=False),
    sa.Column("Register", sa.String(50), nullable=False),
    sa.Column("Datatype", sa.String(100)),  # NULL for a system notification
    sa.Column("Action", sa.String(10), nullable=False),  # created | changed | closed | lost
    sa.Column("ModifiedDate", DateTimeSeconds, nullable=False),  # the rows' ModifiedDate; a system one's moment
    sa.Column("CreatedDate", DateTimeSeconds, nullable=False),  # when it was written (retention counts from it)
    sa.Column("Reason", sa.String(100)),  # a system notification's reason
    sa.Index("ix_stamdata_notification_event_topic", "Topic", "Sequence"),
    sa.Index("ix_stamdata_notification_event_created", "CreatedDate"),
    **_SEQUENCE_OPTIONS,
)

event_id_table = sa.Table(
    "stamdata_notification_event_id",
    metadata,
    sa.Column("Sequence", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("Position", sa.SmallInteger, primary_key=True, autoincrement=False),  # the order a subscriber is told
    sa.Column("Topic", sa.String(100), nullable=False),
    sa.Column("IdValue", sa.String(ID_LENGTH), nullable=False),
    sa.Column("IdType", sa.String(200), nullable=False),
    # Matching looks an ID list's ids up here (the id first: a planner without statistics must not take the topic,
    # which nearly every row shares, for a selective condition).
    sa.Index("ix_stamdata_notification_event_id_match", "IdValue", "Topic", "Sequence"),
    **MYSQL_TABLE_OPTIONS,
)

# ID lists, pull points and subscriptions belong to the client that made them (its name, as in stamdata_client).
idlist_table = sa.Table(
    "stamdata_notification_idlist",
    metadata,
    sa.Column("Id", PidType, primary_key=True, autoincrement=True),
    sa.Column("Client", sa.String(100), nullable=False),
    sa.Column("Name", sa.String(100), nullable=False),
    sa.Column("Size", sa.Integer, nullable=False),
    sa.Column("CreatedDate", DateTimeSeconds, nullable=False),
    sa.Column("ModifiedDate", DateTimeSeconds, nullable=False),
    sa.Index("ux_stamdata_notification_idlist_name", "Client", "Name", unique=True),
    **MYSQL_TABLE_OPTIONS,
)

entry_table = sa.Table(
    "stamdata_notification_idlist_entry",
    metadata,
    sa.Column("IdList", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("IdValue", sa.String(ID_LENGTH), primary_key=True),
    sa.Index("ix_stamdata_notification_idlist_entry_value", "IdValue", "IdList"),
    **MYSQL_TABLE_OPTIONS,
)

pullpoint_table = sa.Table(
    "stamdata_notification_pullpoint",
    metadata,
    sa.Column("Id", PidType, primary_key=True, autoincrement=True),
    sa.Column("PublicId", sa.CHAR(32), nullable=False),  # what the client knows it by: random, not guessable
    sa.Column("Client", sa.String(100), nullable=False),
    sa.Column("CreatedDate", DateTimeSeconds, nullable=False),
    sa.Column("LastPullDate", DateTimeSeconds),
    sa.Index("ux_stamdata_notification_pullpoint_public", "PublicId", unique=True),
    sa.Index("ix_stamdata_notification_pullpoint_client", "Client"),
    **MYSQL_TABLE_OPTIONS,
)

subscription_table = sa.Table(
    "stamdata_notification_subscription",
    metadata,
    sa.Column("Id", PidType, primary_key=True, autoincrement=True),
    sa.Column("PublicId", sa.CHAR(32), nullable=False),
    sa.Column("Client", sa.String(100), nullable=False),
    sa.Column("PullPoint", sa.BigInteger, nullable=False),
    sa.Column("IdList", sa.BigInteger, nullable=False),
    sa.Column("Topic", sa.String(100), nullable=False),
    sa.Column("CreatedDate", DateTimeSeconds, nullable=False),
    # The highest event of the topic this subscription has been matched against: at first the topic's highest
    # event when it was created, so only later events reach it.
    sa.Column("Cursor", sa.BigInteger, nullable=False),
    sa.Index("ux_stamdata_notification_subscription_public", "PublicId", unique=True),
    sa.Index("ix_stamdata_notification_subscription_pullpoint", "PullPoint"),
    sa.Index("ix_stamdata_notification_subscription_idlist", "IdList", "Topic"),
    sa.Index("ix_stamdata_notification_subscription_topic", "Topic", "Cursor"),
    **MYSQL_TABLE_OPTIONS,
)

# What a pull point holds: matched events (with the id that matched) and system notifications (no id), until a
# pull answers them (`Pull`); an answered row is kept for the replay window, so the same request gets it again.
pending_table = sa.Table(
    "stamdata_notification_pending",
    metadata,
    sa.Column("PullPoint", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("Sequence", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("Topic", sa.String(100), nullable=False),
    sa.Column("IdValue", sa.String(ID_LENGTH)),  # NULL: a system notification
    sa.Column("IdType", sa.String(200)),
    sa.Column("CreatedDate", DateTimeSeconds, nullable=False),  # the event's: the retention counts from it
    sa.Column("Pull", sa.BigInteger),  # the pull that answered it; NULL while unfetched
    sa.Index("ix_stamdata_notification_pending_pull", "PullPoint", "Pull", "Sequence"),
    sa.Index("ix_stamdata_notification_pending_sequence", "Sequence"),
    **MYSQL_TABLE_OPTIONS,
)

# Every answered pull, by its message id, for the replay window.
pull_table = sa.Table(
    "stamdata_notification_pull",
    metadata,
    sa.Column("Id", PidType, primary_key=True, autoincrement=True),
    sa.Column("PullPoint", sa.BigInteger, nullable=False),
    sa.Column("MessageId", sa.String(200), nullable=False),
    sa.Column("CreatedDate", DateTimeSeconds, nullable=False),
    sa.Column("More", sa.Boolean, nullable=False),
    sa.Index("ux_stamdata_notification_pull_message", "PullPoint", "MessageId", unique=True),
    sa.Index("ix_stamdata_notification_pull_created", "CreatedDate"),
    **_SEQUENCE_OPTIONS,
)

E = event_table.c
IDS = event_id_table.c


def topic_of(register: str) -> str:
    return f"{TOPIC_PREFIX}{register}"


def topics(registers: Iterable[Register]) -> list[str]:
    """The topics there are: one per register that declares notifications."""
    return sorted(topic_of(register.name) for register in registers if register.notification_ids)


def highest_event(connection: sa.Connection, topic: str) -> int:
    """The topic's highest visible event number (0 before its first)."""
    return int(connection.execute(sa.select(sa.func.coalesce(sa.func.max(E.Sequence), 0))
                                  .where(E.Topic == topic)).scalar_one())


# --- Events of an import ---------------------------------------------------------------------------------------


def closed_ids(connection: sa.Connection, register: Register, deltas: Sequence[TableDelta]) -> dict[str,
                                                                                                 pd.DataFrame]:
    """Before an import closes rows: the key and id columns of the open rows it is about to close, per notified
    table, read by business key as the UPDATE that closes them will (which then finds their pages in memory: the
    read costs the import next to nothing). For `record_import`."""
    found: dict[str, pd.DataFrame] = {}
    sources = {source.table: source for source in register.notification_ids}
    for delta in deltas:
        source = sources.get(delta.spec.name)
        if source is None or not len(delta.closed_keys):
            continue
        spec = delta.spec
        table = spec.table
        columns = [*spec.key, *(column for column in source.ids if column not in spec.key)]
        key_columns = [table.c[name] for name in spec.key]
        target = key_columns[0] if len(key_columns) == 1 else sa.tuple_(*key_columns)
        keys = list(delta.closed_keys.itertuples(index=False, name=None))
        if len(key_columns) == 1:
            keys = [value for (value,) in keys]
        rows: list[tuple[Any, ...]] = []
        for chunk in chunks(keys):
            rows += [tuple(row) for row in connection.execute(
                sa.select(*(table.c[column] for column in columns))
                .where(table.c.ValidTo == OPEN_END, target.in_(chunk)))]
        found[spec.name] = pd.DataFrame(rows, columns=columns, dtype=object)
    return found


def record_import(connection: sa.Connection, register: Register, deltas: Sequence[TableDelta],
                  closed: Mapping[str, pd.DataFrame] | None = None) -> int:
    """Write the events of an import, in its (production) transaction, after its history tables were written: one
    per business key of each notified table it inserted, changed or closed. Returns how many.

    Set-based: the new versions come from the delta, the closed rows' ids from `closed` (`closed_ids`, read before
    they were closed) or else from one read of the rows this import stamped (the feed's (ModifiedDate, PID) index),
    and events and ids are bulk-loaded."""
    began = time.perf_counter()
    sources = {source.table: source for source in register.notification_ids}
    topic = topic_of(register.name)
    if not sources or not _subscribed(connection, topic):
        return 0
    batches: list[tuple[NotificationIds, TableDelta, pd.DataFrame, pd.DataFrame]] = []
    for delta in deltas:
        source = sources.get(delta.spec.name)
        if source is not None and (len(delta.new_versions) or len(delta.closed_keys)):
            actions, ids = _events_of(connection, source, delta, (closed or {}).get(delta.spec.name))
            if len(actions):
                batches.append((source, delta, actions, ids))
    if not batches:
        return 0
    before = highest_event(connection, topic)
    for source, delta, actions, _ in batches:
        moment = delta.transaction_time
        insert_rows(connection, event_table, Rows(actions[["Action"]]), {
            "Topic": topic, "Register": register.name, "Datatype": source.datatype,
            "ModifiedDate": moment, "CreatedDate": moment})
    # Numbered in the order they were loaded (one statement each, one writer of this topic): read them back so.
    numbers = [int(number) for (number,) in connection.execute(
        sa.select(E.Sequence).where(E.Topic == topic, E.Sequence > before).order_by(E.Sequence))]
    written = sum(len(actions) for _, _, actions, _ in batches)
    if len(numbers) != written:
        raise RuntimeError(f"{topic}: {written} events written, {len(numbers)} read back")
    offset = 0
    frames = []
    for _, _, actions, ids in batches:
        sequences = pd.Series(numbers[offset:offset + len(actions)], dtype="int64")
        frames.append(ids.assign(Sequence=sequences.to_numpy()[ids["Event"].to_numpy()]).drop(columns="Event"))
        offset += len(actions)
    identified = pd.concat(frames, ignore_index=True)[["Sequence", "Position", "IdValue", "IdType"]]
    insert_rows(connection, event_id_table, Rows(identified), {"Topic": topic})
    log.info("change notifications recorded", topic=topic, events=written, ids=len(identified),
             seconds=round(time.perf_counter() - began, 3))
    return written


def _subscribed(connection: sa.Connection, topic: str) -> bool:
    """Whether anyone subscribes to the topic. Nobody: the import writes no events, since no subscription could
    ever receive them (a subscription gets only events after its creation). The read locks: on MariaDB it holds the
    index gap a new subscription of the topic would go into (REPEATABLE READ) until this transaction ends, on SQLite
    the import holds the database's write lock throughout; either way a subscription made meanwhile waits for this
    import's commit, and the consumer's bootstrap after it sees the import."""
    subscriptions = subscription_table.c
    query = sa.select(subscriptions.Id).where(subscriptions.Topic == topic).limit(1)
    return connection.execute(query.with_for_update(read=True)).first() is not None


def _events_of(connection: sa.Connection, source: NotificationIds, delta: TableDelta,
               before: pd.DataFrame | None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One row per business key with its Action (in key order), and the ids of each (Event: that row's position,
    Position, IdValue, IdType): the business key's own ids first, then the others as they are now, in the register's
    order, then the old values of those that changed (a subscriber of the old CPR learns that the authorisation
    left it).

    A subscriber is told the first of them in its list. The key names the record in every version, so it comes
    first; an old value comes after every current one. Told a CPR where it also listed the number, a subscriber
    looking the CPR up would not learn where the authorisation went or that it ended (the property test of
    subscribe, bootstrap and pull found both)."""
    spec = delta.spec
    key = list(spec.key)
    columns = sorted(source.ids, key=lambda column: column not in key)  # stable: the register's order otherwise
    needed = [*key, *(column for column in columns if column not in key)]
    opened = _as_text(delta.new_versions.frame, needed)
    if len(delta.closed_keys):
        rows = before if before is not None else _closed_rows(connection, delta, needed)
        closed = _as_text(rows, needed)
        merged = opened.merge(closed, on=key, how="outer", suffixes=("", "_old"), indicator=True, sort=True)
        side = merged["_merge"].astype(str).to_numpy()
        action = np.select([side == "both", side == "left_only"], ["changed", "created"], "closed").astype(object)
    else:  # an import that only inserts (the first one): no read, no merge
        merged = opened
        action = np.full(len(merged), "created", dtype=object)
    events: list[np.ndarray] = []
    positions: list[np.ndarray] = []
    values: list[np.ndarray] = []
    types: list[np.ndarray] = []

    def add(found: np.ndarray, position: np.ndarray, id_type: str) -> None:
        present = pd.notna(found)
        events.append(np.flatnonzero(present))
        positions.append(position[present])
        values.append(found[present])
        types.append(np.full(int(present.sum()), id_type, dtype=object))

    for rank, column in enumerate(columns):
        new = merged[column].to_numpy(dtype=object)
        add(new, np.full(len(new), 2 * rank, dtype=np.int64), source.ids[column])
        if column not in key and f"{column}_old" in merged:
            old = merged[f"{column}_old"].to_numpy(dtype=object).copy()
            old[old == new] = None  # told once, as the new version's
            # A closed key's ids are its old ones and keep their place; a changed one's old value goes after all.
            add(old, np.where(pd.notna(new), 2 * len(columns) + rank, 2 * rank + 1).astype(np.int64),
                source.ids[column])
    event = np.concatenate(events)
    position = np.concatenate(positions)
    order = np.lexsort((position, event))
    ids = pd.DataFrame({"Event": event[order], "Position": position[order],
                        "IdValue": np.concatenate(values)[order], "IdType": np.concatenate(types)[order]})
    return pd.DataFrame({"Action": action}), ids


def _closed_rows(connection: sa.Connection, delta: TableDelta, columns: list[str]) -> pd.DataFrame:
    """The key and id columns of the rows this import closed: stamped with its transaction time, numbered before it
    (the feed's (ModifiedDate, PID) index finds them; only they are read, not the new versions)."""
    spec = delta.spec
    table = spec.table
    at = delta.transaction_time
    rows = connection.execute(sa.select(*(table.c[column] for column in columns))
                              .where(table.c.ModifiedDate == at, spec.pid <= delta.pid_base)).all()
    if len(rows) != len(delta.closed_keys):
        log.warning("closed rows read back differ from the delta", table=table.name, read=len(rows),
                    expected=len(delta.closed_keys))
    return pd.DataFrame([tuple(row) for row in rows], columns=columns, dtype=object)


def _as_text(frame: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """Key and id values as the text an ID list holds (a drug id 28103211611, not 28103211611.0), None if missing."""
    texts: dict[str, np.ndarray] = {}
    for column in columns:
        series = frame[column].reset_index(drop=True)
        if pd.api.types.is_integer_dtype(series.dtype):
            texts[column] = series.astype(str).to_numpy(dtype=object)
        elif pd.api.types.infer_dtype(series, skipna=False) == "string":
            texts[column] = series.to_numpy(dtype=object)
        else:
            texts[column] = np.array([_text(value) for value in series.tolist()], dtype=object)
    return pd.DataFrame(texts, dtype=object)


def _text(value: Any) -> str | None:
    if value is None or (isinstance(value, float) and value != value):  # NaN
        return None
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


# --- System notifications --------------------------------------------------------------------------------------


def notify_system(connection: sa.Connection, register: str, ids: Iterable[str] | None, reason: str,
                  now: datetime | None = None) -> int:
    """A `lost` system notification to every pull point with a subscription to the register's topic whose ID list
    holds one of `ids` (None: every subscription of the topic), in the caller's transaction: the register's data
    changed without change notifications (test data reset or restored, preflight re-synchronised), so those
    subscribers must bootstrap again. Returns the number of pull points notified.

    The test-data service calls it in its production transaction with the person's CPR number and the keys it
    restored or closed (`reason` TESTDATA_RESET or TESTDATA_RESTORE); a whole-register restore passes None."""
    topic = topic_of(register)
    subscriptions = subscription_table.c
    wanted = None if ids is None else sorted({str(value) for value in ids if value is not None})
    if wanted is not None and not wanted:
        return 0
    points: set[int] = set()
    if wanted is None:
        points.update(int(point) for (point,) in connection.execute(
            sa.select(subscriptions.PullPoint).where(subscriptions.Topic == topic).distinct()))
    else:
        entries = entry_table.c
        for chunk in chunks(wanted):
            points.update(int(point) for (point,) in connection.execute(
                sa.select(subscriptions.PullPoint)
                .join(entry_table, entries.IdList == subscriptions.IdList)
                .where(subscriptions.Topic == topic, entries.IdValue.in_(chunk)).distinct()))
    if not points:
        return 0
    moment = whole_seconds(now if now is not None else SystemClock().now())
    lost_to(connection, register, {topic: sorted(points)}, reason, moment)
    log.warning("system notification: subscribers must bootstrap again", register=register, reason=reason,
                pull_points=len(points))
    return len(points)


def lost_to(connection: sa.Connection, register: str, pull_points: dict[str, list[int]], reason: str,
            moment: datetime) -> None:
    """One `lost` system event per topic, handed to each of its pull points (once, however many subscriptions)."""
    for topic, points in pull_points.items():
        if not points:
            continue
        number = connection.execute(event_table.insert().values(
            Topic=SYSTEM_TOPIC, Register=register, Datatype=None, Action=LOST, ModifiedDate=moment,
            CreatedDate=moment, Reason=reason)).inserted_primary_key
        assert number is not None
        sequence = int(number[0])
        for chunk in chunks(sorted(set(points))):
            connection.execute(pending_table.insert(), [
                {"PullPoint": point, "Sequence": sequence, "Topic": topic, "IdValue": None, "IdType": None,
                 "CreatedDate": moment, "Pull": None} for point in chunk])
