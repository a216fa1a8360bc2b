"""The subscriber's side of change notifications: ID lists, pull points, subscriptions and pulls, and the daemon's
housekeeping (matching, the retention purge with its `lost` notification, the replay window).

Everything here runs in the caller's transaction on the writable connection to the primary (the services' account,
`service_url`), never through the façades' read-only one. ID lists, pull points and subscriptions belong to the
client that made them; another client's are "not found".

**Matching** is set-based and lazy: a subscription's cursor is the highest event of its topic it has been matched
against. Whenever its pull point is pulled (and when the daemon's housekeeping runs), everything of the topic
between the cursor and the topic's highest visible event is matched against the subscription's ID list in one
SELECT (the list's ids against the events' ids, or the new events' ids against every list that holds them,
whichever the database finds cheaper), bulk-inserted onto the pull point, and the cursor moves to that event.
Because a topic's events are committed in sequence order (importer/load/notifications.py), nothing is skipped. Lock
order, wherever several are taken: pull points (ascending), then their subscriptions.

A **pull** answers the pull point's oldest unanswered notifications, at most `max`, marks them with the pull and
keeps them for the replay window: the same message id again within it gets the same answer.
"""

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa

from importer.db import chunks
from importer.load.notifications import (
    ACTIONS,
    IDS,
    PURGED,
    SYSTEM_TOPIC,
    TOPIC_PREFIX,
    E,
    entry_table,
    event_id_table,
    event_table,
    highest_event,
    idlist_table,
    lost_to,
    metadata,
    pending_table,
    pull_table,
    pullpoint_table,
    subscription_table,
)
from importer.logs import get_logger

log = get_logger(__name__)

RETENTION = timedelta(days=10)  # notifications not fetched within this are purged (NAS: 10 days)
REPLAY = timedelta(minutes=30)  # the same message id within this gets the same answer (NAS: 30 minutes)
MAX_PULL = 10_000  # the most notifications one pull answers
MAX_LIST = 100_000  # the most ids one ID list holds
MATCH_BATCH = 500  # pull points matched in one transaction by the housekeeping

L = idlist_table.c
ENTRY = entry_table.c
POINT = pullpoint_table.c
S = subscription_table.c
P = pending_table.c
PULL = pull_table.c


class NotFound(Exception):
    """No such ID list, pull point or subscription of this client."""


class Conflict(Exception):
    """The ID list or pull point is still used by a subscription (delete the subscription first)."""


@dataclass(frozen=True)
class Notification:
    sequence: int
    topic: str
    action: str  # created | changed | closed | lost
    register: str
    datatype: str | None  # None for a system notification
    id: str | None  # the id that matched the subscriber's list (None for a system notification)
    id_type: str | None
    modified: datetime  # the rows' ModifiedDate; a system notification's moment
    reason: str | None = None  # a system notification's reason


@dataclass(frozen=True)
class Answer:
    pull_point: str
    message_id: str
    notifications: list[Notification]
    more: bool  # more were waiting when it was answered
    replayed: bool  # the answer to an earlier request with the same message id


@dataclass(frozen=True)
class TopicStatistics:
    pending: int  # unfetched notifications on pull points
    oldest: datetime | None  # the CreatedDate of the oldest of them
    lost_waiting: int  # unfetched `lost` system notifications


def _public_id() -> str:
    return uuid.uuid4().hex


# --- ID lists --------------------------------------------------------------------------------------------------


def put_list(connection: sa.Connection, client: str, name: str, ids: Iterable[str], now: datetime) -> tuple[bool,
                                                                                                             int]:
    """Create or replace the client's ID list `name`; returns (created, size). Events up to now are matched against
    the list as it was before it is replaced, so a replacement changes what later events match."""
    wanted = set(ids)
    row = connection.execute(sa.select(L.Id).where(L.Client == client, L.Name == name).with_for_update()).first()
    if row is None:
        number = connection.execute(idlist_table.insert().values(
            Client=client, Name=name, Size=len(wanted), CreatedDate=now, ModifiedDate=now)).inserted_primary_key
        assert number is not None
        list_id, existing, created = int(number[0]), set[str](), True
    else:
        list_id, created = int(row.Id), False
        users = connection.execute(sa.select(S.PullPoint, S.Topic).where(S.IdList == list_id)).all()
        points = sorted({int(user.PullPoint) for user in users})
        _lock_pull_points(connection, points)
        for topic in sorted({user.Topic for user in users}):
            _catch_up(connection, topic, points, id_list=list_id)
        existing = {str(value) for (value,) in connection.execute(
            sa.select(ENTRY.IdValue).where(ENTRY.IdList == list_id))}
        connection.execute(idlist_table.update().where(L.Id == list_id).values(Size=len(wanted), ModifiedDate=now))
    for chunk in chunks(sorted(existing - wanted)):
        connection.execute(entry_table.delete().where(ENTRY.IdList == list_id, ENTRY.IdValue.in_(chunk)))
    for chunk in chunks(sorted(wanted - existing)):
        connection.execute(entry_table.insert(), [{"IdList": list_id, "IdValue": value} for value in chunk])
    return created, len(wanted)


def get_list(connection: sa.Connection, client: str, name: str) -> list[str]:
    list_id = _list_id(connection, client, name)
    return [str(value) for (value,) in connection.execute(
        sa.select(ENTRY.IdValue).where(ENTRY.IdList == list_id).order_by(ENTRY.IdValue))]


def delete_list(connection: sa.Connection, client: str, name: str) -> None:
    list_id = _list_id(connection, client, name, lock=True)
    if connection.execute(sa.select(S.Id).where(S.IdList == list_id).limit(1)).first() is not None:
        raise Conflict(f"the ID list {name} is used by a subscription; delete the subscription first")
    connection.execute(entry_table.delete().where(ENTRY.IdList == list_id))
    connection.execute(idlist_table.delete().where(L.Id == list_id))


def _list_id(connection: sa.Connection, client: str, name: str, lock: bool = False) -> int:
    query = sa.select(L.Id).where(L.Client == client, L.Name == name)
    row = connection.execute(query.with_for_update() if lock else query).first()
    if row is None:
        raise NotFound(f"no ID list {name} of this client")
    return int(row.Id)


# --- Pull points and subscriptions ---------------------------------------------------------------------------------


def create_pull_point(connection: sa.Connection, client: str, now: datetime) -> str:
    public = _public_id()
    connection.execute(pullpoint_table.insert().values(PublicId=public, Client=client, CreatedDate=now))
    return public


def _pull_point(connection: sa.Connection, client: str, public: str, lock: bool = False) -> int:
    query = sa.select(POINT.Id).where(POINT.PublicId == public, POINT.Client == client)
    row = connection.execute(query.with_for_update() if lock else query).first()
    if row is None:
        raise NotFound("no pull point of this client with this id")
    return int(row.Id)


def pull_point_info(connection: sa.Connection, client: str, public: str) -> dict[str, object]:
    point = _pull_point(connection, client, public)
    row = connection.execute(sa.select(POINT.CreatedDate, POINT.LastPullDate).where(POINT.Id == point)).one()
    subscriptions = [str(value) for (value,) in connection.execute(
        sa.select(S.PublicId).where(S.PullPoint == point).order_by(S.Id))]
    return {"id": public, "created": row.CreatedDate, "last_pull": row.LastPullDate, "subscriptions": subscriptions}


def delete_pull_point(connection: sa.Connection, client: str, public: str) -> None:
    point = _pull_point(connection, client, public, lock=True)
    if connection.execute(sa.select(S.Id).where(S.PullPoint == point).limit(1)).first() is not None:
        raise Conflict("the pull point is used by a subscription; delete the subscription first")
    connection.execute(pending_table.delete().where(P.PullPoint == point))
    connection.execute(pull_table.delete().where(PULL.PullPoint == point))
    connection.execute(pullpoint_table.delete().where(POINT.Id == point))


def subscribe(connection: sa.Connection, client: str, pull_point: str, list_name: str, topic: str,
              now: datetime) -> str:
    """Bind the client's pull point and ID list to a topic. Only events after this moment reach it: its cursor
    starts at the topic's highest visible event, and a topic's later events are all numbered above it."""
    point = _pull_point(connection, client, pull_point, lock=True)
    list_id = _list_id(connection, client, list_name)
    public = _public_id()
    connection.execute(subscription_table.insert().values(
        PublicId=public, Client=client, PullPoint=point, IdList=list_id, Topic=topic, CreatedDate=now,
        Cursor=highest_event(connection, topic)))
    return public


def subscription_info(connection: sa.Connection, client: str, public: str) -> dict[str, object]:
    row = connection.execute(
        sa.select(S.Topic, S.CreatedDate, POINT.PublicId.label("point"), L.Name.label("list"))
        .join(pullpoint_table, POINT.Id == S.PullPoint).join(idlist_table, L.Id == S.IdList)
        .where(S.PublicId == public, S.Client == client)).first()
    if row is None:
        raise NotFound("no subscription of this client with this id")
    return {"id": public, "pull_point": row.point, "id_list": row.list, "topic": row.Topic, "created": row.CreatedDate}


def unsubscribe(connection: sa.Connection, client: str, public: str) -> None:
    """What the subscription collected until now stays on its pull point; nothing more is collected."""
    row = connection.execute(sa.select(S.Id, S.PullPoint, S.Topic).where(S.PublicId == public,
                                                                          S.Client == client)).first()
    if row is None:
        raise NotFound("no subscription of this client with this id")
    _lock_pull_points(connection, [int(row.PullPoint)])
    _catch_up(connection, row.Topic, [int(row.PullPoint)], subscription=int(row.Id))
    connection.execute(subscription_table.delete().where(S.Id == row.Id))


# --- Matching ------------------------------------------------------------------------------------------------------


def _lock_pull_points(connection: sa.Connection, points: Sequence[int]) -> None:
    for chunk in chunks(sorted(set(points))):
        connection.execute(sa.select(POINT.Id).where(POINT.Id.in_(chunk)).order_by(POINT.Id).with_for_update()).all()


def _catch_up(connection: sa.Connection, topic: str, points: Sequence[int], *, id_list: int | None = None,
              subscription: int | None = None) -> int:
    """Match the topic's events the subscriptions of `points` (locked by the caller; optionally only those of one
    ID list, or one subscription) have not been matched against, up to the topic's highest visible event, onto
    their pull points; returns the notifications added. One set-based SELECT (joining the lists' ids with the
    events' ids) and bulk inserts: a pull point that two subscriptions or two ids of one event match gets the event
    once, with the first matching id (in the register's order).

    The SELECT is a consistent read, not a locking one, so an import writing its events meanwhile never waits for a
    pull, nor a pull for it (a locking INSERT … SELECT could deadlock the two)."""
    horizon = highest_event(connection, topic)
    conditions = [S.Topic == topic, S.Cursor < horizon, S.PullPoint.in_(sorted(set(points)))]
    if id_list is not None:
        conditions.append(S.IdList == id_list)
    if subscription is not None:
        conditions.append(S.Id == subscription)
    lagging = connection.execute(sa.select(S.Id, S.Cursor).where(*conditions).order_by(S.Id)
                                 .with_for_update()).all()
    if not lagging:
        return 0
    low = min(int(row.Cursor) for row in lagging)
    matched = (
        sa.select(S.PullPoint, IDS.Sequence, IDS.IdValue, IDS.IdType, E.CreatedDate)
        .select_from(subscription_table)
        .join(entry_table, ENTRY.IdList == S.IdList)
        .join(event_id_table, sa.and_(IDS.Topic == topic, IDS.IdValue == ENTRY.IdValue, IDS.Sequence > low,
                                      IDS.Sequence <= horizon, IDS.Sequence > S.Cursor))
        .join(event_table, E.Sequence == IDS.Sequence)
        .where(*conditions)
        .order_by(IDS.Sequence, IDS.Position)
    )
    rows: list[dict[str, object]] = []
    seen: set[tuple[int, int]] = set()
    for point, sequence, value, kind, created in connection.execute(matched):
        if (point, sequence) not in seen:
            seen.add((point, sequence))
            rows.append({"PullPoint": point, "Sequence": sequence, "Topic": topic, "IdValue": value, "IdType": kind,
                         "CreatedDate": created})
    # IGNORE: an event already on a pull point (matched there by another subscription) stays as it was.
    statement = pending_table.insert().prefix_with("IGNORE", dialect="mysql").prefix_with("OR IGNORE",
                                                                                          dialect="sqlite")
    added = 0
    for chunk in chunks(rows):
        added += connection.execute(statement, list(chunk)).rowcount
    ahead = sa.case((S.Cursor < horizon, horizon), else_=S.Cursor)
    for numbers in chunks([int(row.Id) for row in lagging]):
        connection.execute(subscription_table.update().where(S.Id.in_(numbers)).values(Cursor=ahead))
    return added


def match_all(engine: sa.Engine, batch: int = MATCH_BATCH) -> int:
    """Housekeeping: match every lagging subscription, a batch of pull points per transaction (so pulls, which
    match their own pull point, never wait long). Returns the notifications added."""
    added = 0
    with engine.connect() as connection:
        topics = [str(topic) for (topic,) in connection.execute(sa.select(S.Topic).distinct())]
    for topic in topics:
        with engine.connect() as connection:
            horizon = highest_event(connection, topic)
            points = [int(point) for (point,) in connection.execute(
                sa.select(S.PullPoint).where(S.Topic == topic, S.Cursor < horizon).distinct())]
        for chunk in chunks(sorted(points), batch):
            with engine.begin() as connection:
                _lock_pull_points(connection, chunk)
                added += _catch_up(connection, topic, chunk)
    return added


# --- Pulls ---------------------------------------------------------------------------------------------------------


def pull(connection: sa.Connection, client: str, public: str, message_id: str, maximum: int,
         now: datetime) -> Answer:
    """The pull point's oldest unfetched notifications, at most `maximum`, in sequence order, removed from the pull
    point; the same `message_id` within the replay window gets the same answer again (and removes nothing more)."""
    point = _pull_point(connection, client, public, lock=True)
    _forget_answers(connection, now - REPLAY, point)
    previous = connection.execute(sa.select(PULL.Id, PULL.More).where(PULL.PullPoint == point,
                                                                       PULL.MessageId == message_id)).first()
    if previous is not None:
        return Answer(public, message_id, _answered(connection, point, int(previous.Id)), bool(previous.More), True)
    for (topic,) in connection.execute(sa.select(S.Topic).where(S.PullPoint == point).distinct()).all():
        _catch_up(connection, str(topic), [point])
    number = connection.execute(pull_table.insert().values(
        PullPoint=point, MessageId=message_id, CreatedDate=now, More=False)).inserted_primary_key
    assert number is not None
    pull_id = int(number[0])
    waiting = [int(sequence) for (sequence,) in connection.execute(
        sa.select(P.Sequence).where(P.PullPoint == point, P.Pull.is_(None)).order_by(P.Sequence)
        .limit(maximum + 1))]
    more = len(waiting) > maximum
    if waiting:
        last = waiting[:maximum][-1]
        connection.execute(pending_table.update().where(P.PullPoint == point, P.Pull.is_(None), P.Sequence <= last)
                           .values(Pull=pull_id))
    if more:
        connection.execute(pull_table.update().where(PULL.Id == pull_id).values(More=True))
    connection.execute(pullpoint_table.update().where(POINT.Id == point).values(LastPullDate=now))
    return Answer(public, message_id, _answered(connection, point, pull_id), more, False)


def _answered(connection: sa.Connection, point: int, pull_id: int) -> list[Notification]:
    rows = connection.execute(
        sa.select(P.Sequence, P.Topic, P.IdValue, P.IdType, E.Register, E.Datatype, E.Action, E.ModifiedDate,
                  E.Reason)
        .join(event_table, E.Sequence == P.Sequence)
        .where(P.PullPoint == point, P.Pull == pull_id).order_by(P.Sequence)).all()
    return [Notification(sequence=int(row.Sequence), topic=row.Topic, action=row.Action, register=row.Register,
                         datatype=row.Datatype, id=row.IdValue, id_type=row.IdType, modified=row.ModifiedDate,
                         reason=row.Reason)
            for row in rows]


def _forget_answers(connection: sa.Connection, before: datetime, point: int | None = None) -> int:
    """Answers older than the replay window are gone for good (their message ids may be used again)."""
    query = sa.select(PULL.Id).where(PULL.CreatedDate < before)
    if point is not None:
        query = query.where(PULL.PullPoint == point)
    expired = [int(number) for (number,) in connection.execute(query)]
    for chunk in chunks(expired):
        connection.execute(pending_table.delete().where(P.Pull.in_(chunk)))
        connection.execute(pull_table.delete().where(PULL.Id.in_(chunk)))
    return len(expired)


# --- Housekeeping --------------------------------------------------------------------------------------------------


def purge(engine: sa.Engine, now: datetime, batch: int = MATCH_BATCH) -> dict[str, int]:
    """The daemon's housekeeping: match what is unmatched, then delete notifications left unfetched for RETENTION
    (each pull point that lost some gets one `lost` system notification per topic), forget answers past the replay
    window, and delete events no subscription can still need. Returns the notifications purged, by topic."""
    cutoff = now - RETENTION
    match_all(engine, batch)
    lost: dict[str, int] = {}
    with engine.connect() as connection:
        stale = sorted({int(point) for (point,) in connection.execute(
            sa.select(P.PullPoint).where(P.Pull.is_(None), P.IdValue.is_not(None), P.CreatedDate < cutoff)
            .distinct())})
    for chunk in chunks(stale, batch):
        with engine.begin() as connection:
            _lock_pull_points(connection, chunk)
            old = sa.and_(P.PullPoint.in_(chunk), P.Pull.is_(None), P.IdValue.is_not(None), P.CreatedDate < cutoff)
            counted = connection.execute(sa.select(P.Topic, P.PullPoint, sa.func.count()).where(old)
                                         .group_by(P.Topic, P.PullPoint)).all()
            connection.execute(pending_table.delete().where(old))
            by_topic: dict[str, list[int]] = {}
            for topic, point, count in counted:
                by_topic.setdefault(str(topic), []).append(int(point))
                lost[str(topic)] = lost.get(str(topic), 0) + int(count)
            for topic, points in by_topic.items():
                lost_to(connection, topic.removeprefix(TOPIC_PREFIX), {topic: points}, PURGED, now)
    with engine.begin() as connection:
        _forget_answers(connection, now - REPLAY)
    _purge_events(engine, cutoff)
    if engine.dialect.name == "sqlite":  # MariaDB keeps its statistics itself; SQLite's planner needs them
        with engine.begin() as connection:
            for table in metadata.sorted_tables:
                connection.exec_driver_sql(f'ANALYZE "{table.name}"')
    for topic, count in lost.items():
        log.warning("notifications purged unfetched; their pull points were told to bootstrap again", topic=topic,
                    notifications=count)
    return lost


def _purge_events(engine: sa.Engine, cutoff: datetime, batch: int = 5000) -> int:
    """Events older than the retention that no pull point holds and every subscription of their topic has been
    matched against (a subscription lagging behind keeps them until it has)."""
    deleted = 0
    with engine.connect() as connection:
        topics = [str(topic) for (topic,) in connection.execute(sa.select(E.Topic).distinct())]
        limits = {str(topic): int(cursor) for topic, cursor in connection.execute(
            sa.select(S.Topic, sa.func.min(S.Cursor)).group_by(S.Topic))}
    for topic in topics:
        after = 0
        while True:
            with engine.begin() as connection:
                query = (sa.select(E.Sequence)
                         .where(E.Topic == topic, E.Sequence > after, E.CreatedDate < cutoff,
                                ~sa.exists().where(P.Sequence == E.Sequence))
                         .order_by(E.Sequence).limit(batch))
                if topic in limits and topic != SYSTEM_TOPIC:
                    query = query.where(E.Sequence <= limits[topic])
                numbers = [int(number) for (number,) in connection.execute(query)]
                if not numbers:
                    break
                connection.execute(event_id_table.delete().where(IDS.Sequence.in_(numbers)))
                connection.execute(event_table.delete().where(E.Sequence.in_(numbers)))
                deleted += len(numbers)
                after = numbers[-1]
    return deleted


def statistics(connection: sa.Connection) -> dict[str, TopicStatistics]:
    """Per topic: unfetched notifications on pull points, the oldest one's age, and unfetched `lost` ones."""
    waiting = P.Pull.is_(None)
    data = {str(topic): (int(count), oldest) for topic, count, oldest in connection.execute(
        sa.select(P.Topic, sa.func.count(), sa.func.min(P.CreatedDate))
        .where(waiting, P.IdValue.is_not(None)).group_by(P.Topic))}
    system = {str(topic): int(count) for topic, count in connection.execute(
        sa.select(P.Topic, sa.func.count()).where(waiting, P.IdValue.is_(None)).group_by(P.Topic))}
    return {topic: TopicStatistics(data.get(topic, (0, None))[0], data.get(topic, (0, None))[1],
                                   system.get(topic, 0))
            for topic in sorted({*data, *system})}


__all__ = ["ACTIONS", "Answer", "Conflict", "NotFound", "Notification", "TopicStatistics"]
