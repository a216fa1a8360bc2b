"""`stamdata-importer run` serves the façades next to the importer: what it imports is on the feed at once."""

import re
from pathlib import Path

import httpx

from tests.conftest import Databases
from tests.daemon.harness import DaemonProcess, successes, wait_for
from tests.registers.autorisation.kit import FIRST, write_dump


def test_the_daemon_serves_the_feed_and_lookups_of_what_it_imports(sqlite_databases: Databases, tmp_path: Path) -> None:
    """On the embedded default the first start creates a local development client and prints its token with an
    example request (the newcomer's `make run`); that token reads the façades, and a second start adds none."""
    daemon = DaemonProcess(sqlite_databases, tmp_path / "logs").start()
    try:
        printed = re.search(r"curl -H 'Authorization: Bearer (stm_[A-Za-z0-9_-]+)' http://127.0.0.1:\d+/replication/",
                            daemon.log_text())
        assert printed is not None, daemon.log_text()
        headers = {"Authorization": f"Bearer {printed.group(1)}"}
        assert daemon.get("/replication/autorisationsregisteret/autorisation/v1").status_code == 401
        inbox = sqlite_databases.inbox / "autorisation"
        write_dump(inbox, ".20261120AutDK.csv.part", FIRST).rename(inbox / "20261120AutDK.csv")
        wait_for(lambda: successes(sqlite_databases) == ["20261120AutDK.csv"], 30, "the import")
        feed = httpx.get(f"{daemon.base}/replication/autorisationsregisteret/autorisation/v1", headers=headers)
        assert feed.status_code == 200 and feed.text.count("<entry>") == len(FIRST)
        person = httpx.get(f"{daemon.base}/autorisation/v1/persons/0101801234", headers=headers).json()
        assert [a["identifier"]["value"] for a in person["authorisations"]] == ["0A1B2"]
        assert daemon.get("/openapi.json").status_code == 200
    finally:
        daemon.close()
    assert "010180-****" in daemon.log_text() and "0101801234" not in daemon.log_text()
    again = DaemonProcess(sqlite_databases, tmp_path / "logs", name="again").start()
    try:
        assert "Bearer stm_" not in again.log_text(), "one development client, created once"
        assert httpx.get(f"{again.base}/autorisation/v1/persons/0101801234", headers=headers).status_code == 200
    finally:
        again.close()
