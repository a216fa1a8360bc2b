"""`stamdata-importer serve` as an operator runs it: a subprocess reading through the read-only façade account
(on MariaDB a user with nothing but SELECT, created as README "Façades" says), stopping cleanly on SIGTERM,
with CPR numbers masked in its access log. And whatever account it is given, a façade session cannot write."""

import gc
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from importer.config import load_settings
from importer.http.database import FacadeDatabase
from importer.http.serve import serve
from importer.load.pipeline import Pipeline
from importer.load.plugin import discover
from tests.conftest import MARIADB_URL, REPO, Databases
from tests.daemon.harness import free_port, wait_for
from tests.http.server import add_client, import_sample, serve_process
from tests.registers.autorisation.kit import FIRST, SECOND, write_dump


@contextmanager
def read_only_account(databases: Databases) -> Iterator[str]:
    """On MariaDB, a user granted SELECT on the production database only (README's recipe); else production."""
    if databases.backend != "mariadb":
        yield databases.production_url
        return
    database = make_url(databases.production_url).database
    user, password = f"facade_{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    server = sa.create_engine(MARIADB_URL)
    with server.begin() as connection:
        connection.execute(sa.text(f"CREATE USER '{user}'@'%' IDENTIFIED BY '{password}'"))
        connection.execute(sa.text(f"CREATE USER '{user}'@'localhost' IDENTIFIED BY '{password}'"))
        connection.execute(sa.text(f"GRANT SELECT ON `{database}`.* TO '{user}'@'%'"))
        connection.execute(sa.text(f"GRANT SELECT ON `{database}`.* TO '{user}'@'localhost'"))
    url = make_url(MARIADB_URL).set(username=user, password=password, database=database)
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with server.begin() as connection:
            connection.execute(sa.text(f"DROP USER IF EXISTS '{user}'@'%', '{user}'@'localhost'"))
        server.dispose()


def test_serve_answers_through_the_read_only_account_and_stops_on_sigterm(databases: Databases, tmp_path: Path) -> None:
    registers = discover()
    pipeline = Pipeline(databases.settings())
    try:
        pipeline.import_dataset(registers["autorisation"], write_dump(tmp_path, "20261120AutDK.csv", FIRST))
        pipeline.import_dataset(registers["autorisation"], write_dump(tmp_path, "20261121AutDK.csv", SECOND))
    finally:
        pipeline.close()
    token = add_client(databases, "serve-test", "lookup:autorisation", "feed:autorisation")
    credentials = {"Authorization": f"Bearer {token}"}

    with read_only_account(databases) as facade_url, \
            serve_process(databases, tmp_path, STAMDATA_FACADE_URL=facade_url) as (base, log_path):
        person = httpx.get(f"{base}/autorisation/v1/persons/0101801234", headers=credentials).json()
        assert [a["identifier"]["value"] for a in person["authorisations"]] == ["0A1B2"]
        assert person["surname"] == "Jensen-Holm"
        feed = httpx.get(f"{base}/replication/autorisationsregisteret/autorisation/v1", params={"maxRecords": 2},
                         headers=credentials)
        assert feed.status_code == 200 and feed.text.count("<entry>") == 2
        status = httpx.get(f"{base}/status")
        assert status.status_code == 200 and status.text.startswith("OK"), status.text
    output = log_path.read_text()
    assert "010180-****" in output and "0101801234" not in output


WRITES = [
    "INSERT INTO autreg2 (cpr, given_name, surname, aut_id, edu_id) VALUES ('0101801234', 'x', 'y', 'ZZZZZ', '7170')",
    "DELETE FROM autreg2",
    "UPDATE Autorisation2 SET Efternavn = 'x'",
]


def test_a_facade_session_cannot_write_even_with_an_account_that_could(databases: Databases, tmp_path: Path) -> None:
    pipeline = Pipeline(databases.settings())
    try:
        pipeline.import_dataset(discover()["autorisation"], write_dump(tmp_path, "20261120AutDK.csv", FIRST))
    finally:
        pipeline.close()
    facades = FacadeDatabase(databases.production_url)  # the importer's own account
    try:
        for statement in WRITES:
            with pytest.raises(sa.exc.DBAPIError), facades.connect() as connection:
                connection.exec_driver_sql(statement)
    finally:
        facades.close()
    assert len(databases.rows("production", "autreg2")) == len(FIRST)
    assert {row["Efternavn"] for row in databases.rows("production", "Autorisation2")} != {"x"}


def test_serve_on_a_missing_database_creates_nothing_and_is_red(databases: Databases, tmp_path: Path) -> None:
    port = free_port()
    missing = databases.production_url + "_missing" if databases.backend == "mariadb" else \
        f"sqlite:///{tmp_path / 'absent' / 'production.sqlite'}"
    environment = {key: value for key, value in os.environ.items() if not key.startswith("STAMDATA_")}
    environment.update(databases.environ(STAMDATA_LISTEN=f"127.0.0.1:{port}", STAMDATA_PRODUCTION_URL=missing))
    process = subprocess.Popen([sys.executable, "-m", "importer", "serve"], env=environment, cwd=REPO,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        def status() -> httpx.Response | None:
            try:
                return httpx.get(f"http://127.0.0.1:{port}/status", timeout=10)
            except httpx.HTTPError:
                assert process.poll() is None
                return None

        answer = wait_for(status, 30, "serve to answer")
        assert answer.status_code == 500 and "unreachable" in answer.text.splitlines()[0]
    finally:
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=30)
    sys.stdout.write(output.decode())
    assert process.returncode == 0
    if databases.backend == "mariadb":
        server = sa.create_engine(MARIADB_URL)
        try:
            with server.connect() as connection:
                name = make_url(missing).database
                assert connection.execute(sa.text("SELECT COUNT(*) FROM information_schema.schemata WHERE "
                                                  "schema_name = :name"), {"name": name}).scalar() == 0
        finally:
            server.dispose()
    else:
        assert not (tmp_path / "absent").exists()


def test_a_serving_process_exempts_what_it_set_up_from_full_collections(sqlite_databases: Databases,
                                                                        tmp_path: Path) -> None:
    """A full collection walked every object of the app (100-115 ms, a stall of every request in flight, every few
    seconds under load); once serving, what was set up is frozen out of it (gc.freeze)."""
    import_sample(sqlite_databases, tmp_path / "drops")
    settings = load_settings(None, sqlite_databases.environ(STAMDATA_LISTEN=f"127.0.0.1:{free_port()}"))
    stop, frozen = threading.Event(), []

    def watch() -> None:
        deadline = time.monotonic() + 60
        while not gc.get_freeze_count() and time.monotonic() < deadline:
            time.sleep(0.05)
        frozen.append(gc.get_freeze_count())
        stop.set()

    gc.unfreeze()
    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        serve(settings, discover(), stop)  # in the main thread: it owns the signals
    finally:
        stop.set()
        watcher.join()
        gc.unfreeze()
    assert frozen and frozen[0] > 10_000, "the app, its routes and modules are out of the full collections"
