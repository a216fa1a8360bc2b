"""The audit trail under load: look-ups made at the same time share one commit of their rows (group commit), yet
every look-up answers only once its own row is committed, and a commit that fails fails every look-up in it."""

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from importer.db import create_engine
from importer.http.audit import Auditor, audit_table
from importer.load.pipeline import Pipeline
from tests.conftest import Databases
from tests.daemon.clock import ManualClock
from tests.http.server import import_sample, serve


def _rows(url: str, client: str | None = None) -> list[tuple[str, str, str]]:
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            table = audit_table.c
            query = sa.select(table.Client, table.CPR, table.Endpoint)
            if client is not None:
                query = query.where(table.Client == client)
            return [tuple(row) for row in connection.execute(query.order_by(table.Id))]  # type: ignore[misc]
    finally:
        engine.dispose()


@pytest.fixture
def migrated(databases: Databases) -> Databases:
    pipeline = Pipeline(databases.settings())
    try:
        pipeline.migrate()
    finally:
        pipeline.close()
    return databases


def test_concurrent_records_share_a_commit_and_each_returns_only_after_its_own(migrated: Databases,
                                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    auditor = Auditor(migrated.production_url, ManualClock(datetime(2026, 12, 2, 12)))
    commit = auditor._commit
    batches: list[int] = []
    first_held, release = threading.Event(), threading.Event()

    def held_commit(batch: list[Any]) -> None:
        batches.append(len(batch))
        if len(batches) == 1:  # the first commit waits until the others are queued behind it
            first_held.set()
            release.wait(30)
        commit(batch)

    monkeypatch.setattr(auditor, "_commit", held_commit)
    try:
        first = auditor.submit("client-0", "0101800000", "/test")
        assert first is not None and first_held.wait(30)
        waiting = [auditor.submit(f"client-{n}", f"01018{n:05d}", "/test") for n in range(1, 21)]
        assert not any(pending.done() for pending in waiting if pending is not None), "nothing before its commit"
        assert _rows(migrated.production_url) == [], "nothing committed while the first commit is held"
        release.set()
        for pending in [first, *waiting]:
            assert pending is not None
            pending.result(30)
        assert batches == [1, 20], "the twenty rows that waited went into one transaction"
        assert sorted(client for client, _, _ in _rows(migrated.production_url)) == sorted(
            f"client-{n}" for n in range(21))
    finally:
        auditor.close()


def test_each_record_is_committed_when_it_returns_from_many_threads(migrated: Databases) -> None:
    auditor = Auditor(migrated.production_url)

    def look_up(number: int) -> bool:
        auditor.record(f"thread-{number}", [f"02028{number:05d}", f"03038{number:05d}"], "/threads")
        return len(_rows(migrated.production_url, f"thread-{number}")) == 2  # visible to another connection now

    try:
        with ThreadPoolExecutor(16) as pool:
            assert all(pool.map(look_up, range(64)))
        assert len(_rows(migrated.production_url)) == 128
    finally:
        auditor.close()


def test_a_failed_commit_fails_every_record_in_it_and_the_next_ones_are_written(migrated: Databases) -> None:
    auditor = Auditor(migrated.production_url)
    try:
        auditor.record("before", "0101801234", "/test")
        engine = create_engine(migrated.production_url)
        with engine.begin() as connection:
            connection.exec_driver_sql("ALTER TABLE stamdata_audit RENAME TO stamdata_audit_away")
        failures = []
        with ThreadPoolExecutor(8) as pool:
            for future in [pool.submit(auditor.record, f"lost-{n}", "0101801234", "/test") for n in range(8)]:
                try:
                    future.result(30)
                except sa.exc.SQLAlchemyError as error:
                    failures.append(error)
        assert len(failures) == 8, "no look-up is told its row was written when it was not"
        with engine.begin() as connection:
            connection.exec_driver_sql("ALTER TABLE stamdata_audit_away RENAME TO stamdata_audit")
        engine.dispose()
        auditor.record("after", "0101801234", "/test")  # the writer lives on
        assert [client for client, _, _ in _rows(migrated.production_url)] == ["before", "after"]
    finally:
        auditor.close()


def test_close_commits_what_is_waiting_and_a_later_record_starts_a_new_writer(migrated: Databases) -> None:
    auditor = Auditor(migrated.production_url)
    pending = [auditor.submit(f"closing-{n}", "0101801234", "/test") for n in range(5)]
    auditor.close()
    assert all(item is not None and item.done() and item.exception() is None for item in pending)
    auditor.record("reopened", "0101801234", "/test")
    auditor.close()
    assert len(_rows(migrated.production_url)) == 6


def test_every_concurrent_look_up_has_its_row_when_its_answer_arrives(sqlite_databases: Databases,
                                                                      tmp_path: Path) -> None:
    import_sample(sqlite_databases, tmp_path / "drops")
    with serve(sqlite_databases) as served:
        paths = ["/autorisation/v1/persons/0101801234", "/autorisation/v1/authorisations/0A1B2",
                 "/autorisation/v1/persons/0202851234", "/autorisation/v1/persons/9999999999"]

        def look_up(number: int) -> bool:
            client = f"epj-{number}"
            token = served.add_client(client, "lookup:autorisation")
            path = paths[number % len(paths)]
            response = httpx.get(f"{served.base}{path}", headers={"Authorization": f"Bearer {token}"}, timeout=60)
            assert response.status_code == 200, response.text
            return len(_rows(sqlite_databases.production_url, client)) == 1  # already there as the answer arrives

        with ThreadPoolExecutor(12) as pool:
            assert all(pool.map(look_up, range(36)))
