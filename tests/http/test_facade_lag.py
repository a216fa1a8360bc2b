"""Façades beyond one machine (README, "Beyond one machine"), on the suite's usual databases: the settings, the
daemon's heartbeat, the lag /status reports (503 past max_lag_s), a feed page answered only by a database that has
reached the client's token, and a façade spreading over several databases. The same on a real primary and replica:
tests/replication/."""

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from importer.config import ConfigurationError, load_settings
from importer.daemon.heartbeat import HeartbeatWriter
from importer.db import create_engine
from importer.http import feed as feeds
from importer.http.app import FacadeServices, create_app
from importer.http.audit import Auditor
from importer.http.database import FacadeDatabase
from importer.http.health import HealthChecker
from importer.http.metrics import ImporterMetrics
from importer.load import heartbeat, migrate
from importer.load.plugin import discover
from tests.conftest import Databases
from tests.daemon.clock import ManualClock
from tests.daemon.harness import wait_for
from tests.http.client import parse_page
from tests.http.server import add_client, import_sample

REGISTERS = discover()
FEED = next(view for view in feeds.bind_views(REGISTERS.values())
            if view.path == "autorisationsregisteret/autorisation/v1")
SOAP_PATH = "/stamdata-batch-copy-ws/service/StamdataReplication"
NOWHERE = "mysql+pymysql://reader:secret@127.0.0.1:1/stamdata"


def test_facade_url_may_name_several_databases_and_the_lag_and_takeover_settings_are_checked(tmp_path: Path) -> None:
    two = load_settings(None, {"STAMDATA_FACADE_URL": "mysql+pymysql://r@replica1/stamdata, "
                                                      "mysql+pymysql://r@replica2/stamdata"})
    assert two.facade_database_urls == ["mysql+pymysql://r@replica1/stamdata", "mysql+pymysql://r@replica2/stamdata"]
    config = tmp_path / "importer.toml"
    config.write_text('facade_url = ["mysql+pymysql://r@replica1/stamdata", "mysql+pymysql://r@replica2/stamdata"]\n'
                      "max_lag_s = 120.0\ntakeover_s = 10.0\n", encoding="utf-8")
    listed = load_settings(config, {})
    assert listed.facade_database_urls == two.facade_database_urls
    assert (listed.daemon["max_lag_s"], listed.daemon["takeover_s"], listed.daemon["heartbeat_interval_s"]) == \
        (120.0, 10.0, 60.0)
    assert load_settings(None, {}).facade_database_urls == ["sqlite:///var/production.sqlite"]

    with pytest.raises(ConfigurationError, match=r"facade_url = .*\(from \$STAMDATA_FACADE_URL\): not a database URL"):
        load_settings(None, {"STAMDATA_FACADE_URL": "mysql+pymysql://r@replica1/stamdata, nonsense"})
    with pytest.raises(ConfigurationError, match=r"max_lag_s = 30.0 .*must exceed heartbeat_interval_s \(60\)"):
        load_settings(None, {"STAMDATA_MAX_LAG_S": "30"})
    assert load_settings(None, {"STAMDATA_MAX_LAG_S": "0"}).daemon["max_lag_s"] == 0  # report only
    with pytest.raises(ConfigurationError, match=r"takeover_s = 1.0 .*from 2 to 86400 seconds"):
        load_settings(None, {"STAMDATA_TAKEOVER_S": "1"})


def test_the_daemons_heartbeat_beats_at_start_every_interval_and_soon_after_an_import(
    sqlite_databases: Databases
) -> None:
    engine = create_engine(sqlite_databases.production_url)
    migrate.upgrade(engine)
    clock = ManualClock(datetime(2026, 11, 22, 6, 0, 0))
    stopping = threading.Event()
    writer = HeartbeatWriter(engine, clock, 60.0, stopping)

    def beat() -> datetime | None:
        with engine.connect() as connection:
            return heartbeat.newest(connection)

    try:
        writer.start()
        wait_for(lambda: beat() == datetime(2026, 11, 22, 6, 0, 0), 10, "the first beat")
        clock.advance(59)
        writer.now(datetime(2026, 11, 22, 6, 0, 30))  # an import committed, at this transaction time
        wait_for(lambda: beat() == datetime(2026, 11, 22, 6, 0, 59), 10, "the beat after an import")
        with engine.connect() as connection:  # which it names, as every later beat does
            assert heartbeat.reached(connection) == datetime(2026, 11, 22, 6, 0, 30)
        clock.advance(59)  # the interval counts from the last beat
        wait_for(lambda: writer._asked.is_set() is False, 1, "the writer to idle")
        assert beat() == datetime(2026, 11, 22, 6, 0, 59)
        clock.advance(1)
        wait_for(lambda: beat() == datetime(2026, 11, 22, 6, 1, 59), 10, "the beat a minute later")
        with engine.connect() as connection:
            (host,) = heartbeat.hosts(connection)
        assert host["Host"] == heartbeat.host_name() and host["Pid"] > 0
    finally:
        stopping.set()
        writer.thread.join(5)
        engine.dispose()


@contextmanager
def facade(databases: Databases, urls: list[str], clock: ManualClock, max_lag_s: float = 300
           ) -> Iterator[TestClient]:
    """The app `serve` runs on a host reading `urls`."""
    settings = databases.settings()
    database = FacadeDatabase(", ".join(urls), clock, max_lag_s=max_lag_s)
    health = HealthChecker(settings, REGISTERS, clock, facades=database, status_urls=database.urls)
    services = FacadeServices(database, Auditor(settings.service_database_url, clock))
    try:
        with TestClient(create_app(health, ImporterMetrics(REGISTERS), services, list(REGISTERS.values()))) as client:
            yield client
    finally:
        database.close()
        services.close()
        health.close()


def beat(databases: Databases, moment: datetime, reached: datetime | None = None) -> None:
    engine = create_engine(databases.production_url)
    try:
        heartbeat.beat(engine, moment, host="importer-1", reached=reached)
    finally:
        engine.dispose()


@pytest.mark.mariadb
def test_status_reports_how_far_its_database_is_behind_and_answers_503_past_max_lag(
    mariadb_databases: Databases, tmp_path: Path
) -> None:
    databases = mariadb_databases
    import_sample(databases, tmp_path / "drops")
    beat(databases, datetime(2026, 11, 22, 6, 0, 0))
    clock = ManualClock(datetime(2026, 11, 22, 6, 0, 0))
    with facade(databases, [databases.facade_url], clock) as client:
        clock.advance(300)
        ok = client.get("/status")
        assert ok.status_code == 200 and ok.text.startswith("OK\n")
        assert "lag: 300 s behind the importers (newest heartbeat 2026-11-22 06:00:00; limit 300 s)\n" in ok.text
        clock.advance(1)
        late = client.get("/status")
        assert late.status_code == 503
        assert late.text.splitlines()[0] == ("ERROR database is 301 s behind the importers (newest heartbeat "
                                             "2026-11-22 06:00:00; limit max_lag_s = 300 s)")
        body = client.get("/status?format=json").json()
        assert body["lagging"] is True and body["max_lag_s"] == 300
        assert body["lag"] == [{"database": databases.facade_url.replace(
            sa.engine.make_url(databases.facade_url).password or "", "***"), "lag_s": 301.0,
            "heartbeat": "2026-11-22 06:00:00", "measured": True, "error": None}]
        metrics = client.get("/metrics").text
        assert "stamdata_facade_database_lag_seconds 301.0" in metrics
        assert "stamdata_facade_database_lagging 1.0" in metrics
        beat(databases, clock.now())
        assert client.get("/status").status_code == 200


def test_a_facade_on_sqlite_reads_the_importers_own_file_and_has_no_lag(sqlite_databases: Databases,
                                                                         tmp_path: Path) -> None:
    import_sample(sqlite_databases, tmp_path / "drops")
    beat(sqlite_databases, datetime(2026, 11, 1))
    with facade(sqlite_databases, [sqlite_databases.production_url], ManualClock(datetime(2026, 11, 22))) as client:
        status = client.get("/status")
        assert status.status_code == 200
        assert "lag: none (the façades read the importer's own SQLite database)" in status.text


def head(databases: Databases) -> feeds.Token:
    engine = create_engine(databases.production_url)
    try:
        with engine.connect() as connection:
            found = feeds.read_head(connection, FEED)
    finally:
        engine.dispose()
    assert found is not None
    return found


def replicate(offset: str) -> str:
    return ('<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body>'
            '<ReplicationRequest xmlns="http://nsi.dk/2011/10/21/StamdataKrs/"><register>autorisationsregisteret'
            f"</register><datatype>autorisation</datatype><version>1</version><offset>{offset}</offset>"
            "</ReplicationRequest></soap:Body></soap:Envelope>")


def test_a_feed_page_is_answered_only_by_a_database_that_has_reached_the_clients_token(
    databases: Databases, tmp_path: Path
) -> None:
    import_sample(databases, tmp_path / "drops")
    token = add_client(databases, "copy", "feed:autorisation")
    auth = {"Authorization": f"Bearer {token}"}
    newest = head(databases)
    ahead = feeds.Token(newest.modified + 100, 1)  # read from a database further ahead than this one
    with facade(databases, [databases.facade_url or databases.production_url], ManualClock()) as client:
        def page(after: feeds.Token) -> tuple[int, list[feeds.Token]]:
            response = client.get(f"/replication/{FEED.path}", params={"offset": str(after)}, headers=auth)
            return response.status_code, ([entry[0] for entry in parse_page(FEED, response.content)]
                                          if response.status_code == 200 else [])

        assert page(newest) == (200, [])  # its own head: reached
        assert page(ahead) == (200, [])  # no heartbeat at all: nothing tells it is behind (as before)

        # Its heartbeat is later than the token, but names no import at or after it: an import of the token's time
        # may be committing on the primary as the beat was written. Not there yet.
        beat(databases, newest.modified_at + timedelta(seconds=200), reached=newest.modified_at)
        behind = client.get(f"/replication/{FEED.path}", params={"offset": str(ahead)}, headers=auth)
        assert behind.status_code == 503
        beat(databases, newest.modified_at + timedelta(seconds=200), newest.modified_at + timedelta(seconds=99))
        behind = client.get(f"/replication/{FEED.path}", params={"offset": str(ahead)}, headers=auth)
        assert behind.status_code == 503 and behind.headers["Retry-After"] == "5"
        assert behind.json()["title"] == "Service Unavailable" and "not yet reached" in behind.json()["detail"]
        soap = client.post(SOAP_PATH, content=replicate(str(ahead)), headers={**auth, "Content-Type": "text/xml"})
        assert soap.status_code == 503 and soap.headers["Retry-After"] == "5"
        assert "<faultcode>soap:Server</faultcode>" in soap.text
        assert page(feeds.START)[0] == 200 and page(newest) == (200, [])  # what it has, it answers

        # A later beat without an import keeps naming the last one; then one names an import of the token's time.
        beat(databases, newest.modified_at + timedelta(seconds=300))
        assert page(ahead) == (503, [])
        beat(databases, newest.modified_at + timedelta(seconds=300), newest.modified_at + timedelta(seconds=100))
        assert page(ahead) == (200, [])
        soap = client.post(SOAP_PATH, content=replicate(str(ahead)), headers={**auth, "Content-Type": "text/xml"})
        assert soap.status_code == 200


def test_a_facade_spreads_over_its_databases_and_passes_over_one_that_does_not_answer(
    databases: Databases, tmp_path: Path
) -> None:
    import_sample(databases, tmp_path / "drops")
    token = add_client(databases, "copy", "feed:autorisation")
    own = databases.facade_url or databases.production_url
    with facade(databases, [NOWHERE, own], ManualClock()) as client:
        for _ in range(4):  # each database's turn comes; the one that does not answer is passed over
            response = client.get(f"/replication/{FEED.path}", headers={"Authorization": f"Bearer {token}"})
            assert response.status_code == 200 and parse_page(FEED, response.content)
        status = client.get("/status")
        assert status.status_code == 200, status.text
        assert "lag of mysql+pymysql://reader:***@127.0.0.1:1/stamdata: unknown, the database cannot be read" in \
            status.text
    with facade(databases, [NOWHERE], ManualClock()) as client:  # none answers: 503, as with one database
        response = client.get(f"/replication/{FEED.path}", headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 503 and response.headers["Retry-After"] == "5"
