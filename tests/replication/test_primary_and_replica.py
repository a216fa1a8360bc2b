"""README, "Beyond one machine", on real servers the suite starts itself: a MariaDB primary and a GTID replica.

Imports on the primary reach the replica; a façade there reports its lag and answers a feed page only once its
database has reached the client's token; a copy paging the feed from façades on the replica (and on a list of the
replica and the primary) while the daemon imports converges on the primary's table; and two importer daemons on
one inbox hand a register over when the active one is killed (kill -9) or hangs (SIGSTOP), every dataset imported
once, the one the dead daemon half imported finished by the other.
"""

import signal
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from fastapi.testclient import TestClient

from importer.clock import Clock, SystemClock
from importer.http import feed as feeds
from importer.http.app import FacadeServices, WebServer, create_app
from importer.http.audit import Auditor
from importer.http.database import FacadeDatabase
from importer.http.health import HealthChecker
from importer.load import heartbeat
from importer.load.pipeline import Pipeline
from importer.load.plugin import discover
from tests.conftest import Databases
from tests.daemon.clock import ManualClock
from tests.daemon.datasets import big_lines
from tests.daemon.harness import DaemonProcess, free_port, wait_for
from tests.http.client import parse_page
from tests.http.server import add_client
from tests.http.test_replication_client import source_rows
from tests.registers.autorisation.kit import FIRST, SECOND, write_dump
from tests.registers.doseringsforslag.kit import release_files, write_release
from tests.replication.conftest import databases_on
from tests.replication.servers import Pair

pytestmark = pytest.mark.replication

REGISTERS = discover()
AUTORISATION = REGISTERS["autorisation"]
FEED = next(view for view in feeds.bind_views(REGISTERS.values())
            if view.path == "autorisationsregisteret/autorisation/v1")
REPLICATE = "/stamdata-batch-copy-ws/service/StamdataReplication"


def register_tables() -> list[str]:
    names = ["stamdata_heartbeat", "stamdata_client"]
    for register in REGISTERS.values():
        names += [spec.name for spec in register.tables]
        names += [table.name for table in register.derived_tables()]
        names.append(register.status_table_name)
    return names


def rows(url: str, table: str) -> list[dict[str, Any]]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as connection:
            return [dict(row) for row in connection.exec_driver_sql(f"SELECT * FROM `{table}` ORDER BY 1").mappings()]
    finally:
        engine.dispose()


def on_replica(pair: Pair, url: str, facade: bool = True) -> str:
    """The same database on the replica (through the façade account, or as root)."""
    database = sa.engine.make_url(url).database or ""
    return pair.facade_url(pair.replica, database) if facade else pair.replica.url(database)


@contextmanager
def facade_app(databases: Databases, urls: list[str], clock: Clock, max_lag_s: float = 300) -> Iterator[FastAPI]:
    """The app `serve` runs on a host reading `urls` (importer/http/serve.py builds it the same way)."""
    settings = databases.settings()
    database = FacadeDatabase(", ".join(urls), clock, max_lag_s=max_lag_s)
    health = HealthChecker(settings, REGISTERS, clock, facades=database, status_urls=database.urls)
    services = FacadeServices(database, Auditor(settings.service_database_url, clock))
    try:
        yield create_app(health, None, services, list(REGISTERS.values()))
    finally:
        database.close()
        services.close()
        health.close()


@contextmanager
def facade(databases: Databases, urls: list[str], clock: Clock, max_lag_s: float = 300) -> Iterator[TestClient]:
    with facade_app(databases, urls, clock, max_lag_s) as app, TestClient(app) as client:
        yield client


@contextmanager
def facade_host(databases: Databases, urls: list[str], max_lag_s: float) -> Iterator[str]:
    """The same over real HTTP (uvicorn in a thread, as `serve` runs it), on the system clock."""
    with facade_app(databases, urls, SystemClock(), max_lag_s) as app:
        server = WebServer(app, f"127.0.0.1:{free_port()}")
        server.start()
        try:
            yield f"http://{server.listen}"
        finally:
            server.stop()


def soap_replicate(offset: str) -> str:
    return (
        '<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body>'
        '<ReplicationRequest xmlns="http://nsi.dk/2011/10/21/StamdataKrs/"><register>autorisationsregisteret'
        f"</register><datatype>autorisation</datatype><version>1</version><offset>{offset}</offset>"
        "<maxRecords>100</maxRecords></ReplicationRequest></soap:Body></soap:Envelope>"
    )


def head_of(url: str) -> feeds.Token:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as connection:
            head = feeds.read_head(connection, FEED)
    finally:
        engine.dispose()
    assert head is not None
    return head


def test_imports_on_the_primary_reach_the_replica_whose_facade_shows_its_lag_and_waits_for_a_clients_token(
    pair: Pair, tmp_path: Path
) -> None:
    databases = databases_on(pair, tmp_path)
    clock = ManualClock(datetime(2026, 11, 20, 6, 0, 0))
    pipeline = Pipeline(databases.settings(), clock)
    try:
        pipeline.import_dataset(AUTORISATION, write_dump(tmp_path / "drops", "20261120AutDK.csv", FIRST))
        last = pipeline.import_dataset(REGISTERS["doseringsforslag"], write_release(tmp_path / "r1", release_files(1)))
        # What the daemon does after every import: a beat naming it.
        heartbeat.beat(pipeline.production, clock.now(), reached=last.transaction_time)
        token = add_client(databases, f"copy-{uuid.uuid4().hex[:6]}", "feed:autorisation")
        pair.wait_caught_up()
        for table in register_tables():  # the replica holds the primary's rows, surrogate keys included
            assert rows(databases.production_url, table) == rows(on_replica(pair, databases.production_url, False),
                                                                 table), table

        replica = on_replica(pair, databases.production_url)
        auth = {"Authorization": f"Bearer {token}"}
        with facade(databases, [replica], clock) as host:
            status = host.get("/status")
            assert status.status_code == 200, status.text
            assert "lag: 0 s behind the importers (newest heartbeat 2026-11-20 06:00:00; limit 300 s)" in status.text
            assert host.get("/status?format=json").json()["lag"][0]["lag_s"] == 0

            # The replica stops applying; the primary imports a further dump. A copy that read the primary up to
            # its new head must not be told "caught up" by the replica: 503, ask again.
            pair.pause()
            clock.advance(120)
            last = pipeline.import_dataset(AUTORISATION, write_dump(tmp_path / "drops", "20261121AutDK.csv", SECOND))
            heartbeat.beat(pipeline.production, clock.now(), reached=last.transaction_time)
            ahead = head_of(databases.production_url)
            page = host.get(f"/replication/{FEED.path}", params={"offset": str(ahead)}, headers=auth)
            assert page.status_code == 503 and page.headers["Retry-After"] == "5", page.text
            assert page.headers["content-type"] == "application/problem+json"
            assert "has not yet reached" in page.json()["detail"]
            soap = host.post(REPLICATE, content=soap_replicate(str(ahead)), headers={**auth, "SOAPAction": "x",
                                                                                     "Content-Type": "text/xml"})
            assert soap.status_code == 503 and soap.headers["Retry-After"] == "5" and "soap:Server" in soap.text
            older = host.get(f"/replication/{FEED.path}", params={"offset": "0"}, headers=auth)
            assert older.status_code == 200 and len(parse_page(FEED, older.content)) == len(FIRST)

            assert host.get("/status").status_code == 200  # 120 s behind: within the limit
            clock.advance(400)
            behind = host.get("/status")
            assert behind.status_code == 503
            assert behind.text.startswith("ERROR database is 520 s behind the importers (newest heartbeat "
                                          "2026-11-20 06:00:00; limit max_lag_s = 300 s)"), behind.text

        # A host spreading over the replica and the primary reads the token's page from the one that reached it.
        heartbeat.beat(pipeline.production, clock.now())
        both = [replica, pair.facade_url(pair.primary, sa.engine.make_url(databases.production_url).database or "")]
        with facade(databases, both, clock) as host:
            for _ in range(4):  # whichever database's turn it is
                page = host.get(f"/replication/{FEED.path}", params={"offset": str(ahead)}, headers=auth)
                assert page.status_code == 200 and parse_page(FEED, page.content) == []
            status = host.get("/status")
            assert status.status_code == 200, status.text
            assert sum(line.startswith("lag of mysql+pymysql://") for line in status.text.splitlines()) == 2

        pair.resume()
        pair.wait_caught_up()
        with facade(databases, [replica], clock) as host:
            page = host.get(f"/replication/{FEED.path}", params={"offset": str(ahead)}, headers=auth)
            assert page.status_code == 200 and parse_page(FEED, page.content) == []
            assert host.get("/status").status_code == 200
    finally:
        pair.resume()
        pipeline.close()


# --- a copy paging façades on the replica while the daemon imports ------------------------------------------------


def successes(databases: Databases) -> list[str]:
    return [row["Dataset"] for row in databases.rows("production", AUTORISATION.status_table_name, order_by="Id")
            if row["Outcome"] == "SUCCESS"]


def drop(inbox: Path, name: str, lines: list[str]) -> None:
    """Complete the moment it appears: written under a hidden name, then renamed into the inbox."""
    hidden = write_dump(inbox, f".{name}.part", lines)
    hidden.rename(inbox / name)


def dumps(count: int, rows: int) -> list[tuple[str, list[str]]]:
    """Day after day: every surname changes, a few keys disappear, a few are new."""
    return [(f"202611{10 + day:02d}AutDK.csv", big_lines(rows + 10 * day, day)[5 * day:]) for day in range(count)]


def archived(inbox: Path) -> list[str]:
    return sorted(p.name for p in (inbox / "processed").glob("*/*") if not p.name.endswith(".sha256"))


def test_a_copy_paging_facades_on_the_replica_while_the_daemon_imports_converges_on_the_primarys_table(
    pair: Pair, tmp_path: Path
) -> None:
    databases = databases_on(pair, tmp_path)
    inbox = databases.inbox / "autorisation"
    quick = {"STAMDATA_HEARTBEAT_INTERVAL_S": "1", "STAMDATA_MAX_LAG_S": "60"}
    stack = ExitStack()
    database = sa.engine.make_url(databases.production_url).database or ""
    replica, primary = pair.facade_url(pair.replica, database), pair.facade_url(pair.primary, database)
    # The replica applies every transaction a second after the primary committed it: consecutive pages from
    # different databases see different moments.
    pair.replica.execute("STOP SLAVE", "CHANGE MASTER TO MASTER_DELAY = 1", "START SLAVE")
    daemon = DaemonProcess(databases, tmp_path / "logs", quick)
    try:
        daemon.start()
        token = add_client(databases, f"copy-{uuid.uuid4().hex[:6]}", "feed:autorisation")
        pair.wait_caught_up()  # clients are rows in production: a new one reaches the replicas like the rest
        auth = {"Authorization": f"Bearer {token}"}
        hosts = [stack.enter_context(facade_host(databases, urls, 60)) for urls in ([replica], [replica, primary])]
        series = dumps(6, 300)
        for name, lines in series:  # a week of dumps at once: the daemon imports them one after another
            drop(inbox, name, lines)
        copy: dict[int, tuple[datetime, dict[str, Any]]] = {}
        seen: set[feeds.Token] = set()
        answers = {"200": 0, "503": 0, "empty": 0}
        position, turn, caught_up = feeds.START, 0, False
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            host = hosts[turn % 2]  # a balancer's turns: a page from each host in turn
            turn += 1
            response = httpx.get(f"{host}/replication/{FEED.path}", headers=auth, timeout=30,
                                 params={"offset": str(position), "maxRecords": 40})
            if response.status_code == 503:  # that host's databases have not reached the token yet
                assert response.headers["Retry-After"], response.text
                answers["503"] += 1
                continue
            assert response.status_code == 200, response.text
            answers["200"] += 1
            entries = parse_page(FEED, response.content)
            for entry_token, updated, values in entries:
                assert entry_token > position and entry_token not in seen, "never a row version twice"
                seen.add(entry_token)
                copy[entry_token.pid] = (updated, values)
                position = entry_token
            if entries:
                continue
            answers["empty"] += 1
            if caught_up and host is hosts[0]:
                break
            if not caught_up and archived(inbox) == [name for name, _ in series]:
                pair.wait_caught_up()  # every import applied on the replica: the next empty page is the end
                caught_up = True
            time.sleep(0.05)
        assert caught_up, f"the imports did not end in time ({answers})"
        status = httpx.get(f"{hosts[0]}/status", timeout=30)
        assert status.status_code == 200 and "behind the importers" in status.text, status.text
        primary_rows = source_rows(sa.create_engine(databases.production_url), FEED)
        copied = [(pid, updated, *values.values()) for pid, (updated, values) in sorted(copy.items())]
        assert copied == primary_rows, answers
        assert successes(databases) == [name for name, _ in series]
    finally:
        stack.close()
        pair.replica.execute("STOP SLAVE", "CHANGE MASTER TO MASTER_DELAY = 0", "START SLAVE")
        daemon.close()


# --- two importer hosts ------------------------------------------------------------------------------------------

TAKEOVER_S = 3


def same_rows(databases: Databases, table: str) -> bool:
    return databases.rows("preflight", table, order_by="1") == databases.rows("production", table, order_by="1")


@contextmanager
def production_held_up(databases: Databases) -> Iterator[Callable[[], int]]:
    """Holds production's autreg2 (LOCK TABLES) so that an import stops inside its production transaction, after
    writing Autorisation2 and before autreg2: half imported, for as long as the test likes. Yields a function that
    waits until an importer's session is stuck there and returns its session id; leaving the block lets it go."""
    database = sa.engine.make_url(databases.production_url).database
    engine = sa.create_engine(databases.production_url)
    holder = engine.connect()
    holder.exec_driver_sql("LOCK TABLES autreg2 WRITE")

    def stuck() -> int:
        def waiting() -> int | None:
            return holder.execute(sa.text(
                "SELECT ID FROM information_schema.PROCESSLIST WHERE DB = :db AND STATE LIKE 'Waiting for table "
                "metadata lock%'"), {"db": database}).scalar()

        found = wait_for(waiting, 60, "an import to reach production's autreg2")
        return int(found)

    try:
        yield stuck
    finally:
        holder.exec_driver_sql("UNLOCK TABLES")
        holder.close()
        engine.dispose()


def importing(daemons: list[DaemonProcess], dataset: str) -> DaemonProcess:
    """The daemon whose preflight committed `dataset` (the one in its production stage)."""
    found = wait_for(lambda: next((daemon for daemon in daemons if daemon.saw("preflight committed",
                                                                                 dataset=dataset)), None),
                     10, f"the daemon importing {dataset}")
    assert found is not None
    return found


def test_two_importer_daemons_hand_a_register_over_when_the_active_one_hangs_or_is_killed(
    pair: Pair, tmp_path: Path
) -> None:
    databases = databases_on(pair, tmp_path)
    inbox = databases.inbox / "autorisation"
    daemons = [DaemonProcess(databases, tmp_path / "logs", {"STAMDATA_TAKEOVER_S": str(TAKEOVER_S)}, name=name)
               for name in ("a", "b")]  # two hosts on one shared inbox and the same databases
    try:
        for daemon in daemons:
            daemon.start(wait_ready=False)
        for daemon in daemons:
            daemon.wait_ready()
        drop(inbox, "20261119AutDK.csv", big_lines(300))
        wait_for(lambda: successes(databases) == ["20261119AutDK.csv"], 60, "a first import")

        # SIGSTOP half way through the production transaction. The hung daemon's lock session times out after
        # takeover_s; the other daemon takes the register over, ends the hung one's open transaction (it rolls
        # back) and imports the dataset. Woken up, the hung one finds its lock gone and commits nothing.
        with production_held_up(databases) as stuck:
            drop(inbox, "20261120AutDK.csv", big_lines(300, 1))
            session = stuck()
            hung = importing(daemons, "20261120AutDK.csv")
            hung.signal(signal.SIGSTOP)
            stopped_at = time.monotonic()
        successor = daemons[1] if hung is daemons[0] else daemons[0]
        try:
            assert successes(databases) == ["20261119AutDK.csv"], "production does not hold it yet"
            wait_for(lambda: "20261120AutDK.csv" in successes(databases), 60, "the take-over from the hung daemon")
            assert time.monotonic() - stopped_at >= TAKEOVER_S - 1, "nobody takes the register of a live holder"
            assert successor.saw("taking over a register: ending the database session of the importer that held it",
                                 register="autorisation", session=session)
        finally:
            hung.signal(signal.SIGCONT)
        wait_for(lambda: hung.saw("lost the register lock during the import (this host hung or was cut off): "
                                  "another importer took the register over; leaving the dataset to it"), 60,
                 "the woken daemon to find its lock gone")
        wait_for(lambda: archived(inbox) == ["20261119AutDK.csv", "20261120AutDK.csv"], 60, "the archive")

        # kill -9 half way through the production transaction: the other daemon finishes the dataset the dead one
        # left in .processing/ (its session's open transaction ended first, again).
        with production_held_up(databases) as stuck:
            drop(inbox, "20261121AutDK.csv", big_lines(300, 2))
            stuck()
            killed = importing(daemons, "20261121AutDK.csv")
            killed.kill9()
        survivor = daemons[1] if killed is daemons[0] else daemons[0]
        wait_for(lambda: "20261121AutDK.csv" in archived(inbox), 60, "the take-over from the killed daemon")
        assert survivor.get("/status").status_code == 200

        assert successes(databases) == ["20261119AutDK.csv", "20261120AutDK.csv", "20261121AutDK.csv"], \
            "every dataset exactly once"
        assert list((inbox / ".processing").iterdir()) == [] and not (inbox / "LOCKED").exists()
        assert same_rows(databases, "Autorisation2") and same_rows(databases, "autreg2")

        # The replica holds what the primary holds: a copy paging it gets the primary's table.
        pair.wait_caught_up()
        copy: dict[int, tuple[Any, ...]] = {}
        position = feeds.START
        engine = sa.create_engine(on_replica(pair, databases.production_url))
        try:
            while True:
                with engine.connect() as connection:
                    page = feeds.read_page(connection, FEED, position, 2000)
                if not page:
                    break
                for entry in page:
                    copy[entry.token.pid] = (entry.modified, *(value for _, value in entry.values))
                position = page[-1].token
        finally:
            engine.dispose()
        assert [(pid, *values) for pid, values in sorted(copy.items())] == \
            source_rows(sa.create_engine(databases.production_url), FEED)
    finally:
        for daemon in daemons:
            daemon.close()
