"""Bulk loading round-trips any value exactly, on SQLite (executemany) and MariaDB (LOAD DATA LOCAL INFILE)."""

import sqlite3
from datetime import date, datetime

import pandas as pd
import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from importer.db import MYSQL_TABLE_OPTIONS, DateTimeSeconds, PidType, create_engine
from importer.load.bulk import insert_frame
from tests.conftest import Databases

metadata = sa.MetaData()
sample = sa.Table(
    "bulk_sample",
    metadata,
    sa.Column("id", PidType, primary_key=True, autoincrement=True),
    sa.Column("text", sa.String(50)),
    sa.Column("number", sa.BigInteger),
    sa.Column("day", sa.Date),
    sa.Column("stamp", DateTimeSeconds, nullable=False),
    **MYSQL_TABLE_OPTIONS,
)

# Any text MariaDB's utf8mb4 and SQLite store, including the characters LOAD DATA treats specially.
text = st.one_of(st.none(), st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=50))
row = st.tuples(text, st.one_of(st.none(), st.integers(-(2**62), 2**62)), st.one_of(st.none(), st.dates()))


@pytest.mark.parametrize("databases", ["sqlite", pytest.param("mariadb", marks=pytest.mark.mariadb)], indirect=True)
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(row, min_size=1, max_size=40))
def test_insert_frame_round_trips_every_value(databases: Databases, rows: list[tuple[object, ...]]) -> None:
    engine = create_engine(databases.production_url)
    stamp = datetime(2026, 11, 22, 12, 30, 5)
    try:
        with engine.begin() as connection:
            metadata.create_all(connection)
            connection.execute(sample.delete())
            frame = pd.DataFrame(rows, columns=["text", "number", "day"], dtype=object)
            frame["number"] = frame["number"].astype("Int64")
            assert insert_frame(connection, sample, frame, {"stamp": stamp}) == len(rows)
        with engine.connect() as connection:
            stored = connection.execute(
                sa.select(sample.c.text, sample.c.number, sample.c.day, sample.c.stamp).order_by(sample.c.id)
            ).all()
    finally:
        engine.dispose()
    assert [tuple(r) for r in stored] == [(t, n, d, stamp) for t, n, d in rows]


def test_a_value_the_column_cannot_hold_is_an_error_not_a_truncation(mariadb_databases: Databases) -> None:
    """LOAD DATA LOCAL downgrades data errors to warnings; the loader must not let them pass."""
    engine = create_engine(mariadb_databases.production_url)
    try:
        with engine.begin() as connection:
            metadata.create_all(connection)
        with pytest.raises(Exception, match=r"bulk_sample|Data too long"), engine.begin() as connection:
            frame = pd.DataFrame({"text": ["x" * 51], "number": [1], "day": [date(2026, 1, 1)]})
            insert_frame(connection, sample, frame, {"stamp": datetime(2026, 1, 1)})
    finally:
        engine.dispose()


unique_sample = sa.Table(
    "bulk_unique_sample",
    metadata,
    sa.Column("id", PidType, primary_key=True, autoincrement=True),
    sa.Column("code", sa.String(10), nullable=False, unique=True),
    **MYSQL_TABLE_OPTIONS,
)


def test_loading_into_an_empty_table_takes_the_bulk_path_and_still_refuses_duplicates(
    mariadb_databases: Databases,
) -> None:
    """An empty table is loaded with unique checks off for the statement (InnoDB's bulk path); a duplicate
    in a unique index must still fail, and the session's settings must be back afterwards."""
    engine = create_engine(mariadb_databases.production_url)
    try:
        with engine.begin() as connection:
            metadata.create_all(connection)
            connection.execute(unique_sample.delete())
        with engine.begin() as connection:
            assert insert_frame(connection, unique_sample, pd.DataFrame({"code": ["a", "b", "c"]}), {}) == 3
            assert connection.exec_driver_sql("SELECT @@unique_checks, @@foreign_key_checks").one() == (1, 1)
            assert insert_frame(connection, unique_sample, pd.DataFrame({"code": ["d"]}), {}) == 1  # not empty now
            connection.exec_driver_sql("CREATE TABLE bulk_unique_copy LIKE bulk_unique_sample")
        try:
            with pytest.raises(sa.exc.OperationalError, match="1180"), engine.begin() as connection:
                copy = sa.Table("bulk_unique_copy", sa.MetaData(), *(c._copy() for c in unique_sample.columns))
                insert_frame(connection, copy, pd.DataFrame({"code": ["x", "y", "x"]}), {})
            with engine.connect() as connection:
                assert connection.exec_driver_sql("SELECT COUNT(*) FROM bulk_unique_copy").scalar() == 0
        finally:
            with engine.begin() as connection:
                connection.exec_driver_sql("DROP TABLE bulk_unique_copy")
        with engine.connect() as connection:
            codes = connection.execute(sa.select(unique_sample.c.code).order_by(unique_sample.c.code)).scalars().all()
            assert connection.exec_driver_sql("SELECT @@unique_checks, @@foreign_key_checks").one() == (1, 1)
    finally:
        engine.dispose()
    assert codes == ["a", "b", "c", "d"]


indexed_sample = sa.Table(
    "bulk_indexed_sample",
    metadata,
    sa.Column("id", PidType, primary_key=True, autoincrement=True),
    sa.Column("code", sa.String(10), nullable=False),
    sa.Column("name", sa.String(20), nullable=False),
    sa.Index("ix_bulk_indexed_code", "code", unique=True),
    sa.Index("ix_bulk_indexed_name_code", "name", "code"),
    **MYSQL_TABLE_OPTIONS,
)


REFUSED = (sa.exc.IntegrityError, sqlite3.IntegrityError)  # the load goes to the driver itself


def _index_definitions(connection: sa.Connection) -> list[tuple[str, str]]:
    return [tuple(row) for row in connection.exec_driver_sql(  # type: ignore[misc]
        "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'bulk_indexed_sample' ORDER BY name")]


def test_sqlite_loads_an_empty_table_before_building_its_indexes_in_the_same_transaction(
    sqlite_databases: Databases, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Into an empty table, SQLite's large loads drop the secondary indexes and create them again from their own
    definitions afterwards, inside the caller's transaction: the indexes come back unchanged, a duplicate in a
    unique index still refuses the load, and a rollback restores the indexes along with the empty table."""
    monkeypatch.setattr("importer.load.bulk.SQLITE_BULK_ROWS", 3)
    engine = create_engine(sqlite_databases.production_url)
    try:
        with engine.begin() as connection:
            metadata.create_all(connection)
            before = _index_definitions(connection)
        assert [name for name, _ in before] == ["ix_bulk_indexed_code", "ix_bulk_indexed_name_code"]

        duplicate = pd.DataFrame({"code": ["a", "b", "a", "c"], "name": ["x", "y", "z", "w"]})
        with pytest.raises(REFUSED, match="UNIQUE"), engine.begin() as connection:
            insert_frame(connection, indexed_sample, duplicate, {})
        with engine.connect() as connection:
            assert connection.execute(sa.select(sa.func.count()).select_from(indexed_sample)).scalar() == 0
            assert _index_definitions(connection) == before

        with engine.begin() as connection:
            frame = pd.DataFrame({"code": ["c", "a", "b", "d"], "name": ["x", "y", "x", "y"]})
            assert insert_frame(connection, indexed_sample, frame, {}) == 4
            # Not empty any more: rows go into the indexes as they are inserted, and a duplicate is refused.
            assert insert_frame(connection, indexed_sample, pd.DataFrame({"code": list("efg"), "name": list("zzz")}),
                                {}) == 3
        with pytest.raises(REFUSED, match="UNIQUE"), engine.begin() as connection:
            insert_frame(connection, indexed_sample, pd.DataFrame({"code": list("hia"), "name": list("zzz")}), {})
        with engine.connect() as connection:
            assert _index_definitions(connection) == before
            assert connection.execute(sa.select(indexed_sample.c.code).where(indexed_sample.c.name == "x")
                                      .order_by(indexed_sample.c.code)).scalars().all() == ["b", "c"]
            plan = " ".join(str(row[-1]) for row in connection.exec_driver_sql(
                "EXPLAIN QUERY PLAN SELECT code FROM bulk_indexed_sample WHERE name = 'x'"))
            assert "ix_bulk_indexed_name_code" in plan
            assert connection.exec_driver_sql("PRAGMA integrity_check").scalar() == "ok"
    finally:
        engine.dispose()
