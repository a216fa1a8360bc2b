"""`stamdata-importer run` serves the façades next to the importer: what it imports is on the feed at once."""

from pathlib import Path

from tests.conftest import Databases
from tests.daemon.harness import DaemonProcess, successes, wait_for
from tests.registers.autorisation.kit import FIRST, write_dump


def test_the_daemon_serves_the_feed_and_lookups_of_what_it_imports(sqlite_databases: Databases, tmp_path: Path) -> None:
    daemon = DaemonProcess(sqlite_databases, tmp_path / "logs").start()
    try:
        inbox = sqlite_databases.inbox / "autorisation"
        write_dump(inbox, ".20261120AutDK.csv.part", FIRST).rename(inbox / "20261120AutDK.csv")
        wait_for(lambda: successes(sqlite_databases) == ["20261120AutDK.csv"], 30, "the import")
        feed = daemon.get("/replication/autorisationsregisteret/autorisation/v1")
        assert feed.status_code == 200 and feed.text.count("<entry>") == len(FIRST)
        person = daemon.get("/autorisation/v1/persons/0101801234").json()
        assert [a["identifier"]["value"] for a in person["authorisations"]] == ["0A1B2"]
        assert daemon.get("/openapi.json").status_code == 200
    finally:
        daemon.close()
    assert "010180-****" in daemon.log_text() and "0101801234" not in daemon.log_text()
