"""`FacadeDatabase.fetch`: the look-ups' single statements, straight through the driver on autocommit connections.

They must answer exactly what SQLAlchemy's own execution answers (types converted the same way on both backends),
see every import committed after the connection was last used (no transaction left open on a pooled connection),
send no ROLLBACK where none is needed, and recover from a connection the server dropped.
"""

from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pymysql
import pytest
import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st

from importer.db import create_engine
from importer.http.database import FacadeDatabase, Query
from registers.autorisation import lookups
from registers.autorisation import tables as schema
from tests.conftest import Databases
from tests.http.server import import_sample

HISTORY = Query(sa.select(schema.autorisation2.c.Autorisationsnummer, schema.autorisation2.c.CPR,
                          schema.autorisation2.c.ValidFrom, schema.autorisation2.c.ValidTo)
                .where(schema.autorisation2.c.ValidFrom <= sa.bindparam("at"))
                .order_by(schema.autorisation2.c.Autorisationsnummer, schema.autorisation2.c.ValidFrom)
                .limit(50))


def facade_url(databases: Databases) -> str:
    return databases.facade_url or databases.production_url


@pytest.fixture
def imported(databases: Databases, tmp_path: Path) -> Iterator[FacadeDatabase]:
    import_sample(databases, tmp_path / "drops")
    database = FacadeDatabase(facade_url(databases))
    try:
        yield database
    finally:
        database.close()


def test_fetch_answers_what_sqlalchemy_answers_on_both_backends(imported: FacadeDatabase) -> None:
    with imported.connect() as connection:
        moments = [row[0] for row in connection.execute(sa.select(schema.autorisation2.c.ValidFrom).distinct())]

    @settings(max_examples=25, deadline=None)
    @given(st.sampled_from(moments), st.integers(-3, 3))
    def same(moment: datetime, seconds: int) -> None:
        at = moment + timedelta(seconds=seconds)
        with imported.connect() as connection:
            expected = [tuple(row) for row in connection.execute(HISTORY.statement, {"at": at})]
        fetched = imported.fetch(HISTORY, at=at)
        assert [tuple(row) for row in fetched] == expected
        assert all(isinstance(row.ValidFrom, datetime) and isinstance(row.ValidTo, datetime) for row in fetched)

    same()


def test_the_lookups_read_through_fetch(imported: FacadeDatabase) -> None:
    person = lookups.person(imported, "0101801234")
    assert [item.number for item in person.authorisations] == ["0A1B2"]
    assert (person.given_name, person.surname) == ("Anne Marie", "Jensen-Holm")
    assert lookups.person(imported, "0202851234").authorisations == ()  # no longer valid
    found = lookups.authorisation_at(imported, "0A1B2", datetime(2026, 11, 21, 12))
    assert found is not None and found.CPR == "0101801234" and found.ValidTo == datetime(2999, 12, 31)
    assert lookups.authorisation_at(imported, "0A1B2", datetime(1999, 1, 1)) is None


def test_a_pooled_connection_sees_what_was_committed_after_its_last_use(imported: FacadeDatabase,
                                                                       databases: Databases) -> None:
    before = lookups.person(imported, "0101801234")  # every pooled connection that answers has read once
    for _ in range(30):
        lookups.person(imported, "0101801234")
    writer = create_engine(databases.production_url)
    try:
        with writer.begin() as connection:
            connection.execute(schema.autreg2.delete().where(schema.autreg2.c.aut_id == "0A1B2"))
    finally:
        writer.dispose()
    for _ in range(30):  # whichever pooled connection answers, none keeps an old snapshot
        after = lookups.person(imported, "0101801234")
        assert [item.number for item in after.authorisations] == [] != \
            [item.number for item in before.authorisations]


def test_no_rollback_is_sent_after_a_single_statement_but_one_is_after_an_explicit_transaction(
    mariadb_databases: Databases, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import_sample(mariadb_databases, tmp_path / "drops")
    database = FacadeDatabase(facade_url(mariadb_databases))
    rollbacks: list[int] = []
    original = pymysql.connections.Connection.rollback

    def counted(connection: pymysql.connections.Connection) -> None:
        rollbacks.append(connection.thread_id())
        original(connection)

    monkeypatch.setattr(pymysql.connections.Connection, "rollback", counted)
    try:
        lookups.person(database, "0101801234")  # SQLAlchemy's first connect sends one while it looks around
        rollbacks.clear()
        for _ in range(10):
            lookups.person(database, "0101801234")
        assert rollbacks == []
        engine = database._members[0].statements.get()
        raw = engine.raw_connection()
        cursor = raw.cursor()
        cursor.execute("BEGIN")  # a transaction opened explicitly on an autocommit session is ended when given back
        cursor.close()
        raw.close()
        assert len(rollbacks) == 1
        again = engine.raw_connection()
        assert not again.dbapi_connection.server_status & pymysql.constants.SERVER_STATUS.SERVER_STATUS_IN_TRANS
        again.close()
    finally:
        database.close()


def test_a_connection_the_server_dropped_fails_one_statement_at_most_and_is_replaced(
    mariadb_databases: Databases, tmp_path: Path
) -> None:
    import_sample(mariadb_databases, tmp_path / "drops")
    database = FacadeDatabase(facade_url(mariadb_databases))
    try:
        engine = database._members[0].statements.get()
        raw = engine.raw_connection()
        victim = raw.dbapi_connection.thread_id()
        raw.close()
        admin = create_engine(mariadb_databases.production_url)
        try:
            with admin.connect() as connection:
                connection.exec_driver_sql(f"KILL {int(victim)}")
        finally:
            admin.dispose()
        try:
            lookups.person(database, "0101801234")  # pinged first if it lay idle over a second, else it fails
        except sa.exc.DBAPIError as error:  # answered 503 by the façades
            assert error.connection_invalidated
        assert [item.number for item in lookups.person(database, "0101801234").authorisations] == ["0A1B2"]
    finally:
        database.close()
