"""Subscribe, then bootstrap from the feed, then pull: nothing falls between, and nothing from before arrives.

For any sequence of generated full dumps, any moment of subscribing and any ID list (CPR numbers and
autorisationsnumre mixed), a consumer that subscribes, then copies the register from the replication feed, then
pulls, receives exactly one notification for each business key every later import inserted, changed or closed whose
ids (the old or new CPR, the number) are in its list — and its copy brought up to date by looking those keys up
equals the register. The same holds when the subscription and the bootstrap happen while an import is committing.
"""

import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from importer.clock import SystemClock
from importer.db import create_engine
from importer.http.feed import Feed, Token, bind_views, read_page
from importer.load import notifications, subscriptions
from importer.load.pipeline import Pipeline
from importer.load.temporal import OPEN_END
from registers.autorisation import REGISTER
from tests.conftest import Databases
from tests.registers.autorisation.kit import write_dump

KEYS = ["0A1B2", "0C3D4", "0E5F6", "1G7H8", "2J9K0", "09YM8"]
CPRS = ["0101801234", "0202851234", "1512901234", "0101010001"]

State = dict[str, tuple[str, str, str]]  # autorisationsnummer -> (cpr, surname, education code)

person = st.tuples(st.sampled_from(CPRS), st.sampled_from(["Jensen", "Ærø", "Holm"]), st.sampled_from(["7170", "5166"]))
dump = st.dictionaries(st.sampled_from(KEYS), person, min_size=1, max_size=len(KEYS))


def reset(databases: Databases) -> None:
    tables = ["Autorisation2", "autreg2", "autorisationimporterImportStatus",
              *(table.name for table in notifications.metadata.sorted_tables)]
    for url in (databases.preflight_url, databases.production_url):
        engine = sa.create_engine(url)
        with engine.begin() as connection:
            for table in tables:
                connection.execute(sa.text(f"DELETE FROM {table}"))
        engine.dispose()


def feed_of(view: str = "autorisationsregisteret/autorisation/v1") -> Feed:
    (feed,) = [feed for feed in bind_views([REGISTER]) if feed.path == view]
    return feed


def bootstrap(engine: sa.Engine) -> State:
    """A copy of the register from the replication feed, page by page, kept by PID as the protocol says."""
    feed, after, rows = feed_of(), Token.parse("0"), {}
    with engine.connect() as connection:
        while page := read_page(connection, feed, after, 2):
            for entry in page:
                rows[entry.token.pid] = dict(entry.values)
            after = page[-1].token
    return {row["autorisationsnummer"]: (row["cpr"], row["efternavn"], row["uddannelseskode"])
            for row in rows.values() if row["validTo"] == OPEN_END}


def changes(before: State, after: State) -> list[tuple[str, str, list[str]]]:
    """What a full dump does, key by key: (number, action, the ids its event names in order: the number, the CPR
    as it is now — a closed key's as it was — then the old CPR where it changed)."""
    found = []
    for key in sorted({*before, *after}):
        old, new = before.get(key), after.get(key)
        if old == new:
            continue
        action = "created" if old is None else "closed" if new is None else "changed"
        current = (new or old)[0]  # type: ignore[index]
        moved = [old[0]] if old is not None and new is not None and old[0] != new[0] else []
        found.append((key, action, [key, current, *moved]))
    return found


def lines_of(content: State) -> list[str]:
    return [f"{key};{cpr};{'' if key == '09YM8' else surname};Anne;{code}"
            for key, (cpr, surname, code) in content.items()]


def normalised(content: dict[str, tuple[str, str, str]]) -> State:
    return {key: (cpr, "" if key == "09YM8" else surname, code) for key, (cpr, surname, code) in content.items()}


class Consumer:
    def __init__(self, engine: sa.Engine, ids: list[str]) -> None:
        self.engine, self.ids, self.client = engine, ids, f"consumer-{uuid.uuid4().hex[:8]}"
        self.copy: State = {}

    def subscribe_and_bootstrap(self) -> None:
        now = SystemClock().now().replace(microsecond=0)
        with self.engine.begin() as connection:
            subscriptions.put_list(connection, self.client, "mine", self.ids, now)
            self.point = subscriptions.create_pull_point(connection, self.client, now)
            subscriptions.subscribe(connection, self.client, self.point, "mine", "stamdata/autorisation", now)
        self.copy = bootstrap(self.engine)

    def pull_all(self) -> list[subscriptions.Notification]:
        received = []
        while True:
            with self.engine.begin() as connection:
                answer = subscriptions.pull(connection, self.client, self.point, uuid.uuid4().hex, 3,
                                            SystemClock().now().replace(microsecond=0))
            received += answer.notifications
            if not answer.more:
                return received


def check(consumer: Consumer, states: list[State], first_notified: int, final: State) -> None:
    """`states[i]`: the register after import i; imports from `first_notified` on came after the subscription."""
    wanted = set(consumer.ids)
    expected = Counter((next(value for value in ids if value in wanted), action)
                       for index in range(max(first_notified, 0), len(states))
                       for key, action, ids in changes(states[index - 1] if index else {}, states[index])
                       if wanted.intersection(ids))
    received = consumer.pull_all()
    assert Counter((item.id, item.action) for item in received) == expected
    # No gap: the bootstrapped copy, with every notified id looked up again (a CPR: the person's authorisations;
    # a number: that authorisation), is the register.
    copy = dict(consumer.copy)
    for notified in {item.id for item in received}:
        copy = {key: value for key, value in copy.items() if notified not in (key, value[0])}
        copy.update({key: value for key, value in final.items() if notified in (key, value[0])})
    relevant = {key for key, value in {**final, **copy}.items() if key in wanted or value[0] in wanted}
    assert {key: copy.get(key) for key in relevant} == {key: final.get(key) for key in relevant}


@pytest.fixture
def engine(databases: Databases) -> Iterator[sa.Engine]:
    engine = create_engine(databases.production_url)
    yield engine
    engine.dispose()


@pytest.mark.parametrize("databases", ["sqlite"], indirect=True)
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])
@given(sequence=st.lists(dump, min_size=1, max_size=4), moment=st.integers(min_value=0, max_value=4),
       ids=st.sets(st.sampled_from(KEYS + CPRS), min_size=1, max_size=4))
def test_subscribe_then_bootstrap_then_pull_leaves_no_gap(
    databases: Databases, engine: sa.Engine, tmp_path_factory: pytest.TempPathFactory,
    sequence: list[dict[str, tuple[str, str, str]]], moment: int, ids: set[str],
) -> None:
    pipeline = Pipeline(databases.settings(STAMDATA_AUTORISATION_REDUCTION_GUARD="1000",
                                           STAMDATA_AUTORISATION_CHANGE_GUARD="1"))
    directory: Path = tmp_path_factory.mktemp("dumps")
    consumer = Consumer(engine, sorted(ids))
    moment = min(moment, len(sequence))
    states: list[State] = []
    try:
        pipeline.migrate()
        reset(databases)
        pipeline.snapshots.forget(REGISTER.name)
        day = date(2026, 1, 1)
        for index, content in enumerate(sequence):
            if index == moment:
                consumer.subscribe_and_bootstrap()
            day += timedelta(days=1)
            pipeline.import_dataset(REGISTER, write_dump(directory, f"{day:%Y%m%d}AutDK.csv",
                                                         lines_of(normalised(content))))
            states.append(normalised(content))
        if moment == len(sequence):
            consumer.subscribe_and_bootstrap()
    finally:
        pipeline.close()
    check(consumer, states, moment, states[-1])


@pytest.mark.parametrize("others", [True, False], ids=["others-subscribed", "nobody-subscribed"])
def test_a_subscription_and_bootstrap_made_while_an_import_commits_miss_nothing(
    databases: Databases, engine: sa.Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, others: bool
) -> None:
    """The race the cursor is for. On MariaDB, where others subscribe to the topic, the consumer subscribes and
    copies the feed while the import's transaction, its events written, is still open: the events must reach the
    consumer, whose copy lacks the import. Where nobody subscribes the import writes no events, and the consumer's
    subscription waits for the import's commit (so its copy has the import); on SQLite it always waits."""
    first = {"0A1B2": ("0101801234", "Jensen", "7170"), "0C3D4": ("0202851234", "Holm", "5166")}
    second = {"0A1B2": ("0101801234", "Jensen", "5166"), "1G7H8": ("0202851234", "Ærø", "7170")}
    consumer = Consumer(engine, ["0202851234", "0101801234"])
    pipeline = Pipeline(databases.settings())
    real = notifications.record_import
    mariadb = databases.backend != "sqlite"
    concurrent = mariadb and others
    worker: list[threading.Thread] = []

    failures: list[BaseException] = []

    def subscribe_and_bootstrap() -> None:
        try:
            consumer.subscribe_and_bootstrap()
        except BaseException as error:
            failures.append(error)
            raise

    def record_then_subscribe(connection: sa.Connection, *args: Any) -> int:
        written = real(connection, *args)
        thread = threading.Thread(target=subscribe_and_bootstrap)
        thread.start()
        worker.append(thread)
        if concurrent:
            thread.join(30)  # subscribed and bootstrapped before this import commits
            assert not thread.is_alive()
        elif mariadb:
            assert written == 0
            waiting_for_lock(engine, failures)  # the subscription waits for this import's commit
        return written

    try:
        pipeline.import_dataset(REGISTER, write_dump(tmp_path, "20261120AutDK.csv", lines_of(first)))
        if others:
            Consumer(engine, ["0101010001"]).subscribe_and_bootstrap()
        hook: Callable[..., int] = record_then_subscribe
        monkeypatch.setattr(notifications, "record_import", hook)
        pipeline.import_dataset(REGISTER, write_dump(tmp_path, "20261121AutDK.csv", lines_of(second)))
    finally:
        pipeline.close()
    worker[0].join(60)
    assert consumer.copy == (first if concurrent else second)
    check(consumer, [first, second], 1 if concurrent else 2, second)


def waiting_for_lock(engine: sa.Engine, failures: list[BaseException], timeout_s: float = 30) -> None:
    """Until a MariaDB transaction waits for a lock (the consumer's, for the import's)."""
    deadline = time.monotonic() + timeout_s
    with engine.connect() as connection:
        while connection.exec_driver_sql("SELECT COUNT(*) FROM information_schema.INNODB_TRX "
                                         "WHERE trx_state = 'LOCK WAIT'").scalar() == 0:
            assert not failures, failures
            assert time.monotonic() < deadline, "the subscription did not wait for the import"
            connection.rollback()
            time.sleep(0.25)  # INNODB_TRX is a cache refreshed only when not read for 0.1 s


@pytest.mark.parametrize("databases", ["sqlite"], indirect=True)
def test_the_checks_of_the_property_see_a_gap(databases: Databases, engine: sa.Engine, tmp_path: Path) -> None:
    """A consumer that subscribes after bootstrapping misses an import in between: the check must notice."""
    first = {"0A1B2": ("0101801234", "Jensen", "7170")}
    second = {"0A1B2": ("0101801234", "Holm", "7170")}
    consumer = Consumer(engine, ["0101801234"])
    pipeline = Pipeline(databases.settings())
    try:
        pipeline.import_dataset(REGISTER, write_dump(tmp_path, "20261120AutDK.csv", lines_of(first)))
        copy = bootstrap(engine)
        pipeline.import_dataset(REGISTER, write_dump(tmp_path, "20261121AutDK.csv", lines_of(second)))
        consumer.subscribe_and_bootstrap()
        consumer.copy = copy  # the copy taken before subscribing
    finally:
        pipeline.close()
    with pytest.raises(AssertionError):
        check(consumer, [first, second], 2, second)
