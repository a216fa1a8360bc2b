"""Change notifications from real imports, on SQLite and MariaDB: the events an import writes in its transaction,
matching against ID lists, pulls with replay, the 10-day purge with its `lost` notification, and the system
notifications of test data and preflight re-synchronisation."""

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from importer.db import create_engine
from importer.errors import DataError, InfrastructureError
from importer.load import notifications, subscriptions
from importer.load.notifications import TESTDATA_RESET, TESTDATA_RESTORE, notify_system
from importer.load.pipeline import Pipeline
from importer.load.plugin import discover
from importer.load.subscriptions import Notification
from importer.load.testdata import TestData
from registers.autorisation import REGISTER as AUTORISATION
from registers.doseringsforslag import REGISTER as DOSERINGSFORSLAG
from tests.conftest import Databases
from tests.daemon.clock import ManualClock
from tests.registers.autorisation.kit import FIRST, SECOND, write_dump
from tests.registers.doseringsforslag.kit import release_files, write_release

CPR_TYPE = "http://nsi.dk/advis/v10/CPR"
NUMBER_TYPE = "http://nsi.dk/advis/v10/Autorisationsnummer"
AUT = "stamdata/autorisation"
DOSIS = "stamdata/doseringsforslag"
# MariaDB runs the tests that cover its own paths (bulk loads, INSERT IGNORE … SELECT, locking reads); a database
# pair there costs seconds to migrate, so the rules that are the same on both run on SQLite alone.
SQLITE_ONLY = pytest.mark.parametrize("databases", ["sqlite"], indirect=True)


@dataclass
class Subscriber:
    """A client of the notification store, in process, on the production database."""

    engine: sa.Engine
    client: str
    clock: ManualClock
    point: str = ""

    def __post_init__(self) -> None:
        with self.engine.begin() as connection:
            self.point = subscriptions.create_pull_point(connection, self.client, self.clock.now())

    def subscribe(self, name: str, ids: list[str], topic: str = AUT) -> str:
        with self.engine.begin() as connection:
            subscriptions.put_list(connection, self.client, name, ids, self.clock.now())
            return subscriptions.subscribe(connection, self.client, self.point, name, topic, self.clock.now())

    def pull(self, message_id: str, maximum: int = 1000) -> subscriptions.Answer:
        with self.engine.begin() as connection:
            return subscriptions.pull(connection, self.client, self.point, message_id, maximum, self.clock.now())

    def pull_all(self) -> list[Notification]:
        received: list[Notification] = []
        while True:
            answer = self.pull(uuid.uuid4().hex, 2)
            received += answer.notifications
            if not answer.notifications:
                return received


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(datetime(2026, 11, 22, 6, 0, 0))


@pytest.fixture
def pipeline(databases: Databases, clock: ManualClock) -> Iterator[Pipeline]:
    pipeline = Pipeline(databases.settings(), clock)
    pipeline.migrate()
    yield pipeline
    pipeline.close()


@pytest.fixture
def production(databases: Databases) -> Iterator[sa.Engine]:
    engine = create_engine(databases.production_url)
    yield engine
    engine.dispose()


def events(databases: Databases, which: str = "production") -> list[tuple[str, str, str, tuple[tuple[str, str], ...]]]:
    """(datatype, action, modified, ids) of every event, in sequence order."""
    ids: dict[int, list[tuple[str, str]]] = {}
    for row in databases.rows(which, "stamdata_notification_event_id", order_by="Sequence, Position"):
        ids.setdefault(int(row["Sequence"]), []).append((row["IdValue"], row["IdType"]))
    return [(row["Datatype"], row["Action"], str(row["ModifiedDate"]), tuple(ids.get(int(row["Sequence"]), [])))
            for row in databases.rows(which, "stamdata_notification_event", order_by="Sequence")
            if row["Topic"] != notifications.SYSTEM_TOPIC]


def summary(received: list[Notification]) -> list[tuple[str, str | None, str | None]]:
    return [(item.action, item.id, item.id_type) for item in received]


def test_every_register_declares_notification_ids_of_its_own_tables_and_columns() -> None:
    for register in discover().values():
        tables = {spec.name: spec for spec in register.tables}
        for source in register.notification_ids:
            assert source.table in tables, register.name
            columns = set(tables[source.table].table.c.keys())
            assert set(source.ids) <= columns and source.ids, register.name
            assert all(kind.startswith("http://") for kind in source.ids.values())
    assert notifications.topics(discover().values()) == [AUT, DOSIS]


def test_a_production_import_writes_one_event_per_business_key_it_inserted_changed_or_closed(
    databases: Databases, pipeline: Pipeline, production: sa.Engine, tmp_path: Path, clock: ManualClock
) -> None:
    Subscriber(production, "somebody", clock).subscribe("anyone", ["0000000000"])
    first = pipeline.import_dataset(AUTORISATION, write_dump(tmp_path, "20261120AutDK.csv", FIRST))
    clock.advance(60)
    second = pipeline.import_dataset(AUTORISATION, write_dump(tmp_path, "20261121AutDK.csv", SECOND))
    at1, at2 = (f"{summary.transaction_time:%Y-%m-%d %H:%M:%S}" for summary in (first, second))
    assert [(datatype, action, str(modified)[:19], ids) for datatype, action, modified, ids in events(databases)] == [
        ("autorisation", "created", at1, (("09YM8", NUMBER_TYPE), ("0101010001", CPR_TYPE))),
        ("autorisation", "created", at1, (("0A1B2", NUMBER_TYPE), ("0101801234", CPR_TYPE))),
        ("autorisation", "created", at1, (("0C3D4", NUMBER_TYPE), ("0202851234", CPR_TYPE))),
        # The second dump changes 0A1B2's surname, drops 0C3D4 and adds 1G7H8; 09YM8 is untouched: no event.
        ("autorisation", "changed", at2, (("0A1B2", NUMBER_TYPE), ("0101801234", CPR_TYPE))),
        ("autorisation", "closed", at2, (("0C3D4", NUMBER_TYPE), ("0202851234", CPR_TYPE))),
        ("autorisation", "created", at2, (("1G7H8", NUMBER_TYPE), ("1512901234", CPR_TYPE))),
    ]
    # The events carry the rows' ModifiedDate, and nothing of their content.
    modified = {str(row["ModifiedDate"])[:19] for row in databases.rows("production", "Autorisation2")}
    assert modified == {at1, at2}
    kept = " ".join(str(value) for row in databases.rows("production", "stamdata_notification_event")
                    + databases.rows("production", "stamdata_notification_event_id") for value in row.values())
    assert "Jensen" not in kept and "7170" not in kept
    assert events(databases, "preflight") == []  # preflight writes none
    # Nobody subscribes to dosage proposals: their release writes no events (none could ever be delivered).
    pipeline.import_dataset(DOSERINGSFORSLAG, write_release(tmp_path / "r1", release_files(1)))
    assert len(events(databases)) == 6


@SQLITE_ONLY
def test_an_authorisation_moved_to_another_person_is_told_to_both(
    databases: Databases, pipeline: Pipeline, production: sa.Engine, tmp_path: Path, clock: ManualClock
) -> None:
    pipeline.import_dataset(AUTORISATION, write_dump(tmp_path, "20261120AutDK.csv", FIRST))
    old_holder, new_holder = Subscriber(production, "gp-old", clock), Subscriber(production, "gp-new", clock)
    old_holder.subscribe("doctors", ["0202851234"])
    new_holder.subscribe("doctors", ["1512901234"])
    moved = [FIRST[0], "0C3D4;1512901234;Ærø-Sørensen;Øjvind;5166", FIRST[2]]
    pipeline.import_dataset(AUTORISATION, write_dump(tmp_path, "20261121AutDK.csv", moved))

    assert summary(old_holder.pull_all()) == [("changed", "0202851234", CPR_TYPE)]
    # Each is told only the id it listed: not the other holder's CPR, nor the number (a list of public
    # autorisationsnumre must not yield their holders' CPR numbers).
    assert summary(new_holder.pull_all()) == [("changed", "1512901234", CPR_TYPE)]


@SQLITE_ONLY
def test_a_dosage_release_closes_every_drug_of_the_last_and_creates_those_of_the_new(
    databases: Databases, pipeline: Pipeline, production: sa.Engine, tmp_path: Path, clock: ManualClock
) -> None:
    """Every key holds the release number, so each release closes the last one's keys and creates its own."""
    pharmacy = Subscriber(production, "pharmacy", clock)
    pharmacy.subscribe("drugs", ["28100010554"], DOSIS)
    pipeline.import_dataset(DOSERINGSFORSLAG, write_release(tmp_path / "r1", release_files(1)))
    pipeline.import_dataset(DOSERINGSFORSLAG, write_release(tmp_path / "r2", release_files(2)))
    received = pharmacy.pull_all()
    drug = "http://nsi.dk/advis/v10/DrugId"
    assert summary(received) == [("created", "28100010554", drug), ("closed", "28100010554", drug),
                                 ("created", "28100010554", drug)]
    assert {(item.topic, item.register, item.datatype) for item in received} == {(DOSIS, "doseringsforslag", "drug")}
    assert [datatype for datatype, *_ in events(databases)] == ["drug"] * 6  # only the drugs are notified


@SQLITE_ONLY
def test_a_refused_or_validated_dataset_writes_no_events(
    databases: Databases, pipeline: Pipeline, tmp_path: Path
) -> None:
    pipeline.import_dataset(AUTORISATION, write_dump(tmp_path, "20261120AutDK.csv", FIRST), validate_only=True)
    with pytest.raises(DataError):
        pipeline.import_dataset(AUTORISATION, write_dump(tmp_path, "20261121AutDK.csv", [FIRST[0], "0C3D4;12;X;Y;1"]))
    assert events(databases) == [] and events(databases, "preflight") == []


@SQLITE_ONLY
def test_only_events_after_a_subscription_was_made_reach_it(
    databases: Databases, pipeline: Pipeline, production: sa.Engine, tmp_path: Path, clock: ManualClock
) -> None:
    early, late = Subscriber(production, "early", clock), Subscriber(production, "late", clock)
    early.subscribe("mine", ["0101801234", "0202851234"])
    pipeline.import_dataset(AUTORISATION, write_dump(tmp_path, "20261120AutDK.csv", FIRST))
    late.subscribe("mine", ["0101801234", "0202851234"])
    pipeline.import_dataset(AUTORISATION, write_dump(tmp_path, "20261121AutDK.csv", SECOND))
    assert summary(early.pull_all()) == [("created", "0101801234", CPR_TYPE), ("created", "0202851234", CPR_TYPE),
                                         ("changed", "0101801234", CPR_TYPE), ("closed", "0202851234", CPR_TYPE)]
    assert summary(late.pull_all()) == [("changed", "0101801234", CPR_TYPE), ("closed", "0202851234", CPR_TYPE)]


@SQLITE_ONLY
def test_a_pull_point_gets_an_event_once_with_the_first_id_that_matched(
    databases: Databases, pipeline: Pipeline, production: sa.Engine, tmp_path: Path, clock: ManualClock
) -> None:
    both = Subscriber(production, "both", clock)
    both.subscribe("by-number", ["0A1B2"])
    both.subscribe("by-person", ["0A1B2", "0101801234"])
    numbers = Subscriber(production, "numbers", clock)
    numbers.subscribe("by-number", ["0A1B2", "1G7H8"])
    pipeline.import_dataset(AUTORISATION, write_dump(tmp_path, "20261120AutDK.csv", FIRST))
    assert summary(both.pull_all()) == [("created", "0A1B2", NUMBER_TYPE)]  # the key first: it names every version
    assert summary(numbers.pull_all()) == [("created", "0A1B2", NUMBER_TYPE)]


def test_a_pull_answers_in_order_at_most_max_and_the_same_message_id_gets_the_same_answer(
    databases: Databases, pipeline: Pipeline, production: sa.Engine, tmp_path: Path, clock: ManualClock
) -> None:
    gp = Subscriber(production, "gp", clock)
    gp.subscribe("all", ["0101010001", "0101801234", "0202851234", "1512901234"])
    pipeline.import_dataset(AUTORISATION, write_dump(tmp_path, "20261120AutDK.csv", FIRST))
    pipeline.import_dataset(AUTORISATION, write_dump(tmp_path, "20261121AutDK.csv", SECOND))

    first = gp.pull("m-1", 4)
    assert [item.sequence for item in first.notifications] == sorted(item.sequence for item in first.notifications)
    assert len(first.notifications) == 4 and first.more and not first.replayed
    again = gp.pull("m-1", 1)  # lost the answer: the same request again, whatever it asks now
    assert again.notifications == first.notifications and again.more and again.replayed
    rest = gp.pull("m-2", 10)
    assert len(rest.notifications) == 2 and not rest.more
    assert rest.notifications[0].sequence > first.notifications[-1].sequence
    assert gp.pull("m-3", 10).notifications == []
    assert gp.pull("m-2", 10).notifications == rest.notifications

    clock.advance(31 * 60)  # past the replay window the message id is new again: nothing is left
    assert gp.pull("m-1", 10).notifications == []


def test_notifications_unfetched_for_10_days_are_purged_and_the_pull_point_is_told(
    databases: Databases, pipeline: Pipeline, production: sa.Engine, tmp_path: Path, clock: ManualClock
) -> None:
    idle, busy = Subscriber(production, "idle", clock), Subscriber(production, "busy", clock)
    idle.subscribe("mine", ["0101801234"])
    busy.subscribe("mine", ["0101801234"])
    pipeline.import_dataset(AUTORISATION, write_dump(tmp_path, "20261120AutDK.csv", FIRST))
    assert summary(busy.pull_all()) == [("created", "0101801234", CPR_TYPE)]

    clock.advance(9 * 86400)
    assert subscriptions.purge(production, clock.now()) == {}
    with production.connect() as connection:
        assert subscriptions.statistics(connection)[AUT].pending == 1
    clock.advance(86400 + 1)
    assert subscriptions.purge(production, clock.now()) == {AUT: 1}

    (lost,) = idle.pull_all()
    assert (lost.action, lost.topic, lost.register, lost.reason, lost.id) == ("lost", AUT, "autorisation", "purged",
                                                                             None)
    assert busy.pull_all() == []
    # Nobody needs the events any longer: they are gone too, and later ones still arrive.
    assert events(databases) == []
    pipeline.import_dataset(AUTORISATION, write_dump(tmp_path, "20261201AutDK.csv", SECOND))
    assert [item.action for item in idle.pull_all()] == ["changed"]


@SQLITE_ONLY
def test_a_system_notification_reaches_the_pull_points_whose_lists_hold_the_ids(
    databases: Databases, pipeline: Pipeline, production: sa.Engine, tmp_path: Path, clock: ManualClock
) -> None:
    """What the test-data service calls when it resets or restores a person."""
    touched, other = Subscriber(production, "touched", clock), Subscriber(production, "other", clock)
    touched.subscribe("a", ["0101801234"])
    touched.subscribe("b", ["0101801234", "0202851234"])
    other.subscribe("c", ["0202851234"])
    with production.begin() as connection:
        assert notify_system(connection, "autorisation", ["0101801234"], TESTDATA_RESET, clock.now()) == 1
        assert notify_system(connection, "doseringsforslag", ["0101801234"], TESTDATA_RESET, clock.now()) == 0
    (lost,) = touched.pull_all()
    assert (lost.action, lost.reason, lost.modified) == ("lost", TESTDATA_RESET, clock.now())
    assert other.pull_all() == []
    with production.begin() as connection:  # None: the whole register (a restore of a whole release)
        assert notify_system(connection, "autorisation", None, "testdata-restore", clock.now()) == 2


def test_test_data_resets_and_restores_tell_the_subscribers_of_the_person_and_keys(
    databases: Databases, pipeline: Pipeline, production: sa.Engine, tmp_path: Path, clock: ManualClock
) -> None:
    """The real test-data service, in its production transaction: a reset reaches the lists holding the CPR or
    the numbers it closed; a restore onto another person the lists holding that person or the new numbers; a
    whole-register restore every subscriber of that register; nobody else hears of it, and preflight holds none."""
    pipeline.import_dataset(AUTORISATION, write_dump(tmp_path, "20261120AutDK.csv", FIRST))
    by_cpr, by_number = Subscriber(production, "by-cpr", clock), Subscriber(production, "by-number", clock)
    target, bystander = Subscriber(production, "target", clock), Subscriber(production, "bystander", clock)
    pharmacy = Subscriber(production, "pharmacy", clock)
    by_cpr.subscribe("mine", ["0101801234"])
    by_number.subscribe("mine", ["0A1B2"])
    target.subscribe("mine", ["2112111118"])
    bystander.subscribe("mine", ["0202851234"])
    pharmacy.subscribe("drugs", ["28100010554"], DOSIS)
    testdata = TestData(pipeline)

    dump = testdata.dump(AUTORISATION, "0101801234")
    testdata.reset(AUTORISATION, "0101801234")
    for subscriber in (by_cpr, by_number):
        assert [(item.action, item.reason) for item in subscriber.pull_all()] == [("lost", TESTDATA_RESET)]
    testdata.restore(AUTORISATION, dump, to="2112111118")
    assert [(item.action, item.reason) for item in target.pull_all()] == [("lost", TESTDATA_RESTORE)]
    assert by_cpr.pull_all() == [] and by_number.pull_all() == [] and bystander.pull_all() == []

    pipeline.import_dataset(DOSERINGSFORSLAG, write_release(tmp_path / "r1", release_files(1)))
    received = pharmacy.pull_all()
    assert {item.action for item in received} == {"created"}
    testdata.restore(DOSERINGSFORSLAG, testdata.dump(DOSERINGSFORSLAG, None))
    assert [(item.action, item.reason) for item in pharmacy.pull_all()] == [("lost", TESTDATA_RESTORE)]
    assert bystander.pull_all() == [] and target.pull_all() == []
    assert databases.rows("preflight", "stamdata_notification_pending") == []


@SQLITE_ONLY
def test_a_preflight_resynchronisation_tells_every_subscriber_of_the_register(
    databases: Databases, pipeline: Pipeline, production: sa.Engine, tmp_path: Path, clock: ManualClock,
    monkeypatch: pytest.MonkeyPatch
) -> None:
    gp, pharmacy = Subscriber(production, "gp", clock), Subscriber(production, "pharmacy", clock)
    gp.subscribe("mine", ["0101801234"])
    pharmacy.subscribe("drugs", ["28100010554"], DOSIS)
    pipeline.import_dataset(AUTORISATION, write_dump(tmp_path, "20261120AutDK.csv", FIRST))
    real_load = pipeline._load

    def production_fails(engine: Any, database: str, *args: Any, **kwargs: Any) -> Any:
        if database == "production":
            raise InfrastructureError("simulated: production went away after preflight committed")
        return real_load(engine, database, *args, **kwargs)

    monkeypatch.setattr(pipeline, "_load", production_fails)
    second = write_dump(tmp_path, "20261121AutDK.csv", SECOND)
    with pytest.raises(InfrastructureError):
        pipeline.import_dataset(AUTORISATION, second)
    monkeypatch.setattr(pipeline, "_load", real_load)
    pipeline.import_dataset(AUTORISATION, second)  # preflight is re-synchronised first

    assert summary(gp.pull_all()) == [("created", "0101801234", CPR_TYPE), ("lost", None, None),
                                      ("changed", "0101801234", CPR_TYPE)]
    assert pharmacy.pull_all() == []


@SQLITE_ONLY
def test_ids_lists_and_pull_points_belong_to_their_client_and_are_deleted_in_order(
    databases: Databases, pipeline: Pipeline, production: sa.Engine, clock: ManualClock
) -> None:
    gp = Subscriber(production, "gp", clock)
    subscription = gp.subscribe("mine", ["0101801234"])
    with production.begin() as connection:
        for attempt in (
            lambda: subscriptions.pull(connection, "intruder", gp.point, "m", 10, clock.now()),
            lambda: subscriptions.get_list(connection, "intruder", "mine"),
            lambda: subscriptions.subscribe(connection, "intruder", gp.point, "mine", AUT, clock.now()),
            lambda: subscriptions.unsubscribe(connection, "intruder", subscription),
        ):
            with pytest.raises(subscriptions.NotFound):
                attempt()
        with pytest.raises(subscriptions.Conflict):
            subscriptions.delete_list(connection, "gp", "mine")
        with pytest.raises(subscriptions.Conflict):
            subscriptions.delete_pull_point(connection, "gp", gp.point)
        assert subscriptions.put_list(connection, "gp", "mine", ["0202851234", "0101801234"], clock.now()) == (False,
                                                                                                            2)
        assert subscriptions.get_list(connection, "gp", "mine") == ["0101801234", "0202851234"]
        subscriptions.unsubscribe(connection, "gp", subscription)
        subscriptions.delete_list(connection, "gp", "mine")
        subscriptions.delete_pull_point(connection, "gp", gp.point)
        with pytest.raises(subscriptions.NotFound):
            subscriptions.delete_pull_point(connection, "gp", gp.point)


@SQLITE_ONLY
def test_an_id_list_replaced_matches_later_events_only(
    databases: Databases, pipeline: Pipeline, production: sa.Engine, tmp_path: Path, clock: ManualClock
) -> None:
    gp = Subscriber(production, "gp", clock)
    gp.subscribe("mine", ["0202851234"])
    pipeline.import_dataset(AUTORISATION, write_dump(tmp_path, "20261120AutDK.csv", FIRST))
    with production.begin() as connection:  # the events so far meet the list as it was
        subscriptions.put_list(connection, "gp", "mine", ["0101801234"], clock.now())
    pipeline.import_dataset(AUTORISATION, write_dump(tmp_path, "20261121AutDK.csv", SECOND))
    assert summary(gp.pull_all()) == [("created", "0202851234", CPR_TYPE), ("changed", "0101801234", CPR_TYPE)]


@SQLITE_ONLY
def test_matching_is_set_based_one_statement_per_pull_point_and_topic(
    databases: Databases, pipeline: Pipeline, production: sa.Engine, tmp_path: Path, clock: ManualClock
) -> None:
    gp = Subscriber(production, "gp", clock)
    gp.subscribe("one", ["0101801234", "0202851234"])
    gp.subscribe("two", ["1512901234", "0101010001"])
    pipeline.import_dataset(AUTORISATION, write_dump(tmp_path, "20261120AutDK.csv", FIRST))
    pipeline.import_dataset(AUTORISATION, write_dump(tmp_path, "20261121AutDK.csv", SECOND))
    statements: list[str] = []

    def seen(_connection: Any, _cursor: Any, statement: str, *_: Any) -> None:
        statements.append(statement)

    sa.event.listen(production, "before_cursor_execute", seen)
    try:
        received = gp.pull("m", 100).notifications
    finally:
        sa.event.remove(production, "before_cursor_execute", seen)
    assert len(received) == 6
    inserts = [statement for statement in statements if "INSERT" in statement and "notification_pending" in statement]
    matches = [statement for statement in statements if "JOIN stamdata_notification_event_id" in statement]
    assert len(inserts) == 1 and len(matches) == 1  # one join for all subscriptions, one bulk insert
    assert len(statements) < 20  # not one per event, id or list entry


@SQLITE_ONLY
def test_an_import_writes_its_events_set_based(
    databases: Databases, pipeline: Pipeline, tmp_path: Path
) -> None:
    """A few statements whatever the number of keys: bulk loads, not one INSERT per event."""
    people = [f"{number:05d};{1000000000 + number:010d};Jensen;Anne;7170" for number in range(2000)]
    Subscriber(create_engine(databases.production_url), "somebody", ManualClock()).subscribe("anyone", ["0"])
    statements: list[str] = []

    def seen(_connection: Any, _cursor: Any, statement: str, *_: Any) -> None:
        statements.append(statement)

    sa.event.listen(pipeline.production, "before_cursor_execute", seen)
    try:
        pipeline.import_dataset(AUTORISATION, write_dump(tmp_path, "20261120AutDK.csv", people))
    finally:
        sa.event.remove(pipeline.production, "before_cursor_execute", seen)
    assert len(databases.rows("production", "stamdata_notification_event")) == 2000
    assert len(databases.rows("production", "stamdata_notification_event_id")) == 4000
    assert sum("notification" in statement for statement in statements) <= 5


@SQLITE_ONLY
def test_events_survive_only_in_the_transaction_of_their_import(
    databases: Databases, pipeline: Pipeline, production: sa.Engine, tmp_path: Path, clock: ManualClock,
    monkeypatch: pytest.MonkeyPatch
) -> None:
    """An import that fails after writing its events leaves none: they are in its transaction."""
    Subscriber(production, "somebody", clock).subscribe("anyone", ["0101801234"])
    written: list[int] = []
    real = notifications.record_import

    def write_then_fail(*args: Any) -> int:
        written.append(real(*args))
        raise RuntimeError("simulated: the database fails after the events were written")

    monkeypatch.setattr(notifications, "record_import", write_then_fail)
    with pytest.raises(Exception, match="simulated"):
        pipeline.import_dataset(AUTORISATION, write_dump(tmp_path, "20261120AutDK.csv", FIRST))
    assert written == [3] and events(databases) == []


@SQLITE_ONLY
def test_statistics_count_what_waits_per_topic(
    databases: Databases, pipeline: Pipeline, production: sa.Engine, tmp_path: Path, clock: ManualClock
) -> None:
    gp = Subscriber(production, "gp", clock)
    gp.subscribe("mine", ["0101801234", "0202851234"])
    pipeline.import_dataset(AUTORISATION, write_dump(tmp_path, "20261120AutDK.csv", FIRST))
    assert subscriptions.match_all(production) == 2
    with production.connect() as connection:
        found = subscriptions.statistics(connection)
    assert found[AUT].pending == 2 and found[AUT].lost_waiting == 0
    assert found[AUT].oldest is not None and found[AUT].oldest <= clock.now() + timedelta(seconds=1)
