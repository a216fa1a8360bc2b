"""`stamdata-importer run` end to end: the real daemon in a subprocess, real files, real SQLite and MariaDB.

Outcomes are read from the databases, the inbox folders and the daemon's HTTP endpoints.
"""

import os
import signal
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.engine import make_url

from tests.conftest import Databases, run_cli
from tests.daemon.datasets import big_lines, small, write_lines
from tests.daemon.harness import DaemonProcess, NotifySocket, open_row_count, status_rows, successes, wait_for
from tests.daemon.proxy import TcpProxy
from tests.registers.autorisation.kit import FIRST, write_dump

REGISTER = "autorisation"
BIG_ROWS = 15000  # long enough to act while it imports (a good fraction of a second per database)
KILL_ROWS = 25000  # production must still be loading a few milliseconds after preflight committed

Start = Callable[..., DaemonProcess]


@pytest.fixture
def start_daemon(tmp_path: Path) -> Iterator[Start]:
    """Starts daemons on given databases; whatever is still running at the end gets SIGTERM."""
    started: list[DaemonProcess] = []

    def start(databases: Databases, env: dict[str, str] | None = None, wait_ready: bool = True) -> DaemonProcess:
        daemon = DaemonProcess(databases, tmp_path / "logs", env, name=f"daemon{len(started)}")
        started.append(daemon)
        return daemon.start(wait_ready=wait_ready)

    yield start
    for daemon in started:
        daemon.close()


Proxied = tuple[TcpProxy, Databases]


@pytest.fixture
def through_proxy(mariadb_databases: Databases) -> Iterator[Proxied]:
    """The MariaDB databases as the daemon sees them through a proxy of the test's own (see proxy.py)."""
    databases = mariadb_databases
    proxy = TcpProxy("127.0.0.1", make_url(databases.production_url).port or 3306)
    try:
        yield proxy, Databases("mariadb", _via(proxy, databases.preflight_url), _via(proxy, databases.production_url),
                               databases.inbox)
    finally:
        proxy.close()


def inbox(databases: Databases) -> Path:
    return databases.inbox / REGISTER


def drop_atomically(databases: Databases, name: str, lines: list[str]) -> Path:
    """Write under a hidden name, then rename into the inbox: complete the moment it appears."""
    hidden = write_dump(inbox(databases), f".{name}.part", lines)
    target = inbox(databases) / name
    hidden.rename(target)
    return target


def archived(databases: Databases) -> list[str]:
    return sorted(p.name for p in (inbox(databases) / "processed").glob("*/*") if not p.name.endswith(".sha256"))


def processing(databases: Databases) -> list[str]:
    return sorted(p.name for p in (inbox(databases) / ".processing").iterdir())


def metric_samples(daemon: DaemonProcess) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = daemon.get("/metrics")
    assert response.status_code == 200
    samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


@pytest.mark.mariadb
def test_a_slowly_copied_dataset_is_imported_once_and_only_when_complete(
    mariadb_databases: Databases, start_daemon: Start
) -> None:
    databases = mariadb_databases  # readiness does not depend on the database; run it against the real one
    start_daemon(databases, {"STAMDATA_AUTORISATION_QUIET_PERIOD_S": "1.2"})
    lines = big_lines(400)
    payload = "".join(line + "\n" for line in lines).encode("iso-8859-15")
    target = inbox(databases) / "20261120AutDK.csv"
    chunks = [payload[i : i + len(payload) // 6] for i in range(0, len(payload), len(payload) // 6)]
    with target.open("wb") as stream:  # partial writes over several seconds, each cut mid-line
        for chunk in chunks:
            stream.write(chunk)
            stream.flush()
            time.sleep(0.4)  # the writer's pace (under the quiet period), not a wait for the daemon
            assert status_rows(databases) == [], "imported before the copy was complete"
            assert target.exists()
    wait_for(lambda: successes(databases) == ["20261120AutDK.csv"], 30, "the import")
    rows = status_rows(databases)
    assert len(rows) == 1 and rows[0]["RowsRead"] == len(lines)
    assert open_row_count(databases) == len(lines)
    wait_for(lambda: archived(databases) == ["20261120AutDK.csv"], 10, "the archive")
    digest = next((inbox(databases) / "processed").glob("*/20261120AutDK.csv.sha256")).read_text()
    assert digest.split()[1] == "20261120AutDK.csv" and len(digest.split()[0]) == 64


def test_atomic_renames_and_ready_markers_need_no_quiet_period(
    sqlite_databases: Databases, start_daemon: Start
) -> None:
    databases = sqlite_databases  # lifecycle and file handling; the database-specific paths run on both
    start_daemon(databases, {"STAMDATA_AUTORISATION_QUIET_PERIOD_S": "600"})
    staged = write_dump(databases.inbox.parent / "staging", "20261119AutDK.csv", FIRST)
    staged.rename(inbox(databases) / staged.name)  # from a staging directory outside the inbox
    wait_for(lambda: successes(databases) == ["20261119AutDK.csv"], 20, "the dataset renamed from outside")
    # (renames from a hidden name inside the inbox: test_datasets_renamed_in_newest_first_…)
    small(inbox(databases), "20261121AutDK.csv", which=1)  # written in place: waits for its marker
    (inbox(databases) / "20261121AutDK.csv.READY").touch()
    wait_for(lambda: len(successes(databases)) == 2, 20, "the marked dataset")
    assert successes(databases) == ["20261119AutDK.csv", "20261121AutDK.csv"]
    assert not (inbox(databases) / "20261121AutDK.csv.READY").exists()


def test_datasets_dropped_out_of_order_are_imported_in_name_order_and_counted(
    databases: Databases, start_daemon: Start
) -> None:
    daemon = start_daemon(databases)
    names = ["20261120AutDK.csv", "20261121AutDK.csv", "20261122AutDK.csv"]
    for variant, name in reversed(list(enumerate(names))):
        write_lines(inbox(databases), name, big_lines(50 + variant, variant))
    wait_for(lambda: len(successes(databases)) == 3, 30, "three imports")
    assert successes(databases) == names
    assert [row["Outcome"] for row in status_rows(databases)] == ["SUCCESS"] * 3
    wait_for(lambda: archived(databases) == names, 10, "the archive")

    samples = metric_samples(daemon)
    label = (("register", REGISTER),)
    assert samples[("stamdata_import_datasets_total", label)] == 3
    for path in ("/status", "/metrics"):  # the platform's monitors probe with HEAD
        head = httpx.head(daemon.base + path, timeout=15)
        assert head.status_code == 200 and head.content == b"", path
    rows = status_rows(databases)
    for operation, column in (("insert", "RowsInserted"), ("update", "RowsUpdated"), ("close", "RowsClosed"),
                              ("unchanged", "RowsUnchanged")):
        key = ("stamdata_import_rows_total", (("operation", operation), ("register", REGISTER)))
        assert samples[key] == sum(row[column] for row in rows), operation
    for stage in ("parse", "preflight", "production"):
        assert samples[("stamdata_import_stage_duration_seconds_count",
                        (("register", REGISTER), ("stage", stage)))] == 3
    assert samples[("stamdata_register_locked", label)] == 0
    assert samples[("stamdata_import_pending_datasets", label)] == 0
    assert samples[("stamdata_import_last_success_timestamp_seconds", label)] > 0
    assert ("stamdata_importer_build_info", (("version", "0.1.0"),)) in samples
    assert all("csv" not in value for _, labels in samples for _, value in labels)


def test_datasets_renamed_in_newest_first_are_still_imported_in_name_order(
    sqlite_databases: Databases, start_daemon: Start
) -> None:
    databases = sqlite_databases  # readiness and ordering are the daemon's, whatever the database
    start_daemon(databases, {"STAMDATA_AUTORISATION_QUIET_PERIOD_S": "600"})
    names = ["20261120AutDK.csv", "20261121AutDK.csv", "20261122AutDK.csv"]
    for variant, name in reversed(list(enumerate(names))):
        drop_atomically(databases, name, big_lines(20, variant))
        time.sleep(0.1)  # a dropping script's pace: each rename alone would be ready at once
    wait_for(lambda: len(successes(databases)) == 3, 30, "three imports")
    assert successes(databases) == names
    assert not (inbox(databases) / "LOCKED").exists()


def test_a_bad_dataset_locks_the_register_until_unlocked(databases: Databases, start_daemon: Start) -> None:
    daemon = start_daemon(databases)
    small(inbox(databases), "20261120AutDK.csv")
    write_dump(inbox(databases), "20261121AutDK.csv", [FIRST[0], "0C3D4;0202851234;X;5166"])  # a column short
    small(inbox(databases), "20261122AutDK.csv", which=1)

    lock = inbox(databases) / "LOCKED"
    failed = inbox(databases) / "failed" / "20261121AutDK.csv"
    # The register locks first, then the dataset moves aside (a crash between the two leaves it locked).
    wait_for(lambda: lock.exists() and failed.exists(), 30, "the register to lock and the dataset to move")
    reason = lock.read_text()
    assert "20261121AutDK.csv" in reason and "column-count" in reason
    assert "0202851234" not in reason
    # The refused run has its status row, and /status shows it as the last attempt beside the last success.
    refused = [row for row in status_rows(databases) if row["Outcome"] == "FAILURE"]
    assert [row["Dataset"] for row in refused] == ["20261121AutDK.csv"]
    assert refused[0]["Message"].startswith("refused (column-count): 20261121AutDK.csv:2: column-count")
    status = daemon.get("/status")
    assert status.status_code == 500
    first_line = status.text.splitlines()[0]
    assert REGISTER in first_line and "locked" in first_line
    as_json = daemon.get("/status?format=json")
    assert as_json.status_code == 500 and as_json.json()["registers"][0]["locked"] is True
    register_status = as_json.json()["registers"][0]
    assert register_status["last_import"]["dataset"] == "20261121AutDK.csv"
    assert register_status["last_import"]["outcome"] == "FAILURE"
    assert register_status["last_success"] is not None

    time.sleep(1.5)  # several rescans (0.2 s each) and quiet periods: the later dataset must still wait
    assert (inbox(databases) / "20261122AutDK.csv").exists()
    assert successes(databases) == ["20261120AutDK.csv"]
    samples = metric_samples(daemon)
    assert samples[("stamdata_register_locked", (("register", REGISTER),))] == 1
    started = datetime.fromisoformat(str(refused[0]["StartTime"]))  # SQLite gives text, MariaDB a datetime
    assert samples[("stamdata_import_last_attempt_timestamp_seconds", (("register", REGISTER),))] == (
        started.replace(tzinfo=UTC).timestamp())
    assert samples[("stamdata_import_failures_total", (("reason", "column-count"), ("register", REGISTER)))] == 1

    result = run_cli("unlock", REGISTER, env=daemon.environ)
    assert result.exit_code == 0, result.stderr
    wait_for(lambda: successes(databases) == ["20261120AutDK.csv", "20261122AutDK.csv"], 30, "the import to resume")
    wait_for(lambda: daemon.get("/status").status_code == 200, 10, "the status page to turn green")
    assert daemon.get("/status").text.startswith("OK\n")


def same_rows(databases: Databases, table: str) -> bool:
    """Preflight and production identical row for row, surrogate keys included."""
    return databases.rows("preflight", table, order_by="1") == databases.rows("production", table, order_by="1")


@pytest.mark.mariadb
@pytest.mark.parametrize("stage", ["preflight", "production"])
def test_a_database_outage_during_the_bulk_load_is_retried_without_locking(
    mariadb_databases: Databases, through_proxy: Proxied, start_daemon: Start, stage: str
) -> None:
    databases = mariadb_databases
    proxy, proxied = through_proxy
    daemon = start_daemon(proxied)
    drop_atomically(databases, "20261119AutDK.csv", FIRST)
    wait_for(lambda: successes(databases) == ["20261119AutDK.csv"], 30, "a first import")
    # Each database loads Autorisation2 (autreg2 is filled from it by INSERT ... SELECT): the first load is
    # preflight's, the second production's.
    proxy.cut_when(b"LOAD DATA", occurrence=1 if stage == "preflight" else 2)
    drop_atomically(databases, "20261120AutDK.csv", big_lines(BIG_ROWS))
    wait_for(proxy.triggered.is_set, 30, f"the {stage} bulk load")
    status = daemon.get("/status")
    assert status.status_code == 500 and "unreachable" in status.text.splitlines()[0]
    wait_for(lambda: daemon.saw("infrastructure error, will retry"), 30, "the failed attempt")
    assert not (inbox(databases) / "LOCKED").exists()
    assert not daemon.saw("import failed unexpectedly")
    wait_for(lambda: (inbox(databases) / "20261120AutDK.csv").exists(), 10, "the dataset back in the inbox")
    proxy.restore()

    wait_for(lambda: successes(databases) == ["20261119AutDK.csv", "20261120AutDK.csv"], 60, "the retried import")
    assert not (inbox(databases) / "LOCKED").exists()
    assert open_row_count(databases, "production") == BIG_ROWS
    wait_for(lambda: archived(databases) == ["20261119AutDK.csv", "20261120AutDK.csv"], 10, "the archive")
    wait_for(lambda: daemon.get("/status").status_code == 200, 10, "the status page to recover")
    # The rolled-back load used up auto-increment values; the PIDs are the importer's, so both agree.
    assert same_rows(databases, "Autorisation2") and same_rows(databases, "autreg2")
    failures = [row for row in status_rows(databases) if row["Outcome"] == "FAILURE"]
    assert failures and all(row["Message"].startswith("infrastructure error") for row in failures), failures
    samples = metric_samples(daemon)
    assert samples[("stamdata_import_failures_total", (("reason", "infrastructure"), ("register", REGISTER)))] >= 1
    assert samples[("stamdata_import_datasets_total", (("register", REGISTER),))] == 2


@pytest.mark.mariadb
def test_a_frozen_database_times_out_keeps_the_status_page_answering_and_is_retried(
    mariadb_databases: Databases, through_proxy: Proxied, start_daemon: Start
) -> None:
    """A server stopped with SIGSTOP (or a half-open connection) answers nothing and closes nothing."""
    databases = mariadb_databases
    proxy, proxied = through_proxy
    # The schema first, without the short timeout: it is meant for the import's statements, and on a loaded machine a
    # fresh database's dozens of DDL statements can each take longer (start-up then retries until the test gives up).
    assert run_cli("migrate", env=databases.environ()).exit_code == 0
    daemon = start_daemon(proxied, {"STAMDATA_DB_TIMEOUT_S": "3", "STAMDATA_STATUS_TIMEOUT_S": "1"})
    proxy.freeze_when(b"LOAD DATA")
    drop_atomically(databases, "20261120AutDK.csv", big_lines(BIG_ROWS))
    wait_for(proxy.triggered.is_set, 30, "the bulk load")
    for path in ("/status", "/metrics"):  # answered (red) while the database says nothing
        response = daemon.get(path, timeout=30)
        assert response.status_code == (500 if path == "/status" else 200), path
    assert "did not answer" in daemon.get("/status", timeout=30).text.splitlines()[0]
    assert "stamdata_production_database_up 0.0" in daemon.get("/metrics", timeout=30).text
    wait_for(lambda: daemon.saw("infrastructure error, will retry"), 60, "the timed-out attempt")
    assert not (inbox(databases) / "LOCKED").exists()
    proxy.restore()

    wait_for(lambda: successes(databases) == ["20261120AutDK.csv"], 90, "the retried import")
    assert open_row_count(databases, "production") == BIG_ROWS
    assert same_rows(databases, "Autorisation2")
    assert not (inbox(databases) / "LOCKED").exists()
    wait_for(lambda: daemon.get("/status").status_code == 200, 30, "the status page to recover")


@pytest.mark.mariadb
def test_a_database_down_at_start_up_is_waited_for_with_a_red_status_page(
    mariadb_databases: Databases, through_proxy: Proxied, start_daemon: Start
) -> None:
    databases = mariadb_databases
    proxy, proxied = through_proxy
    proxy.cut()
    daemon = start_daemon(proxied, wait_ready=False)
    daemon.wait_http()
    status = daemon.get("/status")
    assert status.status_code == 500 and "unreachable" in status.text.splitlines()[0]
    proxy.restore()
    wait_for(lambda: daemon.saw("importer running"), 30, "start-up to complete")
    drop_atomically(databases, "20261120AutDK.csv", FIRST)
    wait_for(lambda: successes(databases) == ["20261120AutDK.csv"], 30, "the import")
    assert daemon.get("/status").status_code == 200


def _via(proxy: TcpProxy, url: str) -> str:
    return make_url(url).set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)


def test_kill_9_during_the_production_transaction_then_restart_imports_exactly_once(
    databases: Databases, start_daemon: Start, tmp_path: Path
) -> None:
    system_tmp = tmp_path / "system-tmp"
    system_tmp.mkdir()
    first = start_daemon(databases, {"TMPDIR": str(system_tmp)})
    drop_atomically(databases, "20261119AutDK.csv", FIRST)
    wait_for(lambda: successes(databases) == ["20261119AutDK.csv"], 30, "a first import")
    drop_atomically(databases, "20261120AutDK.csv", big_lines(KILL_ROWS))
    wait_for(lambda: first.saw("preflight committed", dataset="20261120AutDK.csv"), 60, "preflight to commit",
             interval=0.01)
    first.kill9()
    assert successes(databases) == ["20261119AutDK.csv"], "production must not hold the dataset yet"
    assert processing(databases) == ["20261120AutDK.csv"]

    scratch = Path(first.environ["STAMDATA_STATE_DIR"]) / "tmp"
    left = [entry for entry in scratch.iterdir()]
    assert len(left) == 1 and left[0].stat().st_mode & 0o077 == 0, "the killed importer's private scratch directory"

    second = start_daemon(databases, {"TMPDIR": str(system_tmp)})
    wait_for(lambda: archived(databases) == ["20261119AutDK.csv", "20261120AutDK.csv"], 60, "the resumed import")
    assert successes(databases) == ["20261119AutDK.csv", "20261120AutDK.csv"]
    assert open_row_count(databases, "production") == KILL_ROWS
    assert open_row_count(databases, "preflight") == KILL_ROWS
    assert same_rows(databases, "Autorisation2") and same_rows(databases, "autreg2")
    assert processing(databases) == []
    assert all(row["EndTime"] is not None for row in status_rows(databases))
    assert second.get("/status").status_code == 200
    assert not left[0].exists(), "the next start removes what the killed importer left"
    assert list(system_tmp.iterdir()) == [], "nothing with personal data in the shared temporary directory"


def test_a_dataset_committed_just_before_a_crash_is_archived_not_imported_again(
    sqlite_databases: Databases, start_daemon: Start
) -> None:
    databases = sqlite_databases  # lifecycle and file handling; the database-specific paths run on both
    daemon = start_daemon(databases)
    small(inbox(databases), "20261120AutDK.csv")
    wait_for(lambda: archived(databases) == ["20261120AutDK.csv"], 30, "the import")
    daemon.signal(signal.SIGTERM)
    assert daemon.wait_exit(30) == 0
    # As if the process died between the production commit and the archive move:
    archive = next((inbox(databases) / "processed").glob("*/20261120AutDK.csv"))
    archive.rename(inbox(databases) / ".processing" / "20261120AutDK.csv")
    archive.with_name(archive.name + ".sha256").unlink()

    start_daemon(databases)
    wait_for(lambda: archived(databases) == ["20261120AutDK.csv"], 30, "the archive")
    assert successes(databases) == ["20261120AutDK.csv"]
    assert not (inbox(databases) / "LOCKED").exists()


def test_two_daemons_on_the_same_databases_never_import_a_dataset_twice(
    databases: Databases, start_daemon: Start
) -> None:
    # As on two hosts sharing the inbox over a network filesystem: one with inotify, one polling.
    modes = ("native", "polling")
    daemons = [start_daemon(databases, {"STAMDATA_WATCH_MODE": mode}, wait_ready=False) for mode in modes]
    for daemon in daemons:
        daemon.wait_ready()
    names = [f"202611{day:02d}AutDK.csv" for day in range(10, 15)]
    for variant, name in enumerate(names):
        write_lines(inbox(databases), name, big_lines(200, variant))
    wait_for(lambda: len(archived(databases)) == len(names), 60, "every dataset archived")
    rows = status_rows(databases)
    assert [row["Dataset"] for row in rows if row["Outcome"] == "SUCCESS"] == names
    assert all(row["Outcome"] == "SUCCESS" for row in rows), rows
    assert not (inbox(databases) / "LOCKED").exists()


def test_sigterm_lets_the_running_import_finish_and_exits_0(
    sqlite_databases: Databases, start_daemon: Start, tmp_path: Path
) -> None:
    databases = sqlite_databases  # lifecycle and file handling; the database-specific paths run on both
    notify = NotifySocket(tmp_path / "notify.sock")
    try:
        daemon = start_daemon(databases, {"NOTIFY_SOCKET": str(notify.path), "WATCHDOG_USEC": "400000"})
        wait_for(lambda: "READY=1" in notify.lines(), 10, "READY=1")
        wait_for(lambda: "WATCHDOG=1" in notify.lines(), 10, "a watchdog ping")
        drop_atomically(databases, "20261120AutDK.csv", big_lines(BIG_ROWS))
        wait_for(lambda: daemon.saw("dataset parsed"), 30, "the import to start", interval=0.01)
        began = time.monotonic()
        daemon.signal(signal.SIGTERM)
        assert daemon.wait_exit(30) == 0
        assert time.monotonic() - began < 30
        assert successes(databases) == ["20261120AutDK.csv"], "the running import finishes"
        assert archived(databases) == ["20261120AutDK.csv"]
        assert "STOPPING=1" in notify.lines()
        assert any(line.startswith("STATUS=") for line in notify.lines())
    finally:
        notify.close()


def test_sigterm_past_the_stop_timeout_abandons_the_import_which_resumes_at_the_next_start(
    sqlite_databases: Databases, start_daemon: Start
) -> None:
    databases = sqlite_databases  # lifecycle and file handling; the database-specific paths run on both
    daemon = start_daemon(databases, {"STAMDATA_STOP_TIMEOUT_S": "0.2"})
    drop_atomically(databases, "20261120AutDK.csv", big_lines(BIG_ROWS))
    wait_for(lambda: daemon.saw("dataset parsed"), 30, "the import to start", interval=0.01)
    daemon.signal(signal.SIGTERM)
    assert daemon.wait_exit(10) == 0
    assert successes(databases) in ([], ["20261120AutDK.csv"])
    start_daemon(databases)
    wait_for(lambda: archived(databases) == ["20261120AutDK.csv"], 60, "the import after restart")
    assert successes(databases) == ["20261120AutDK.csv"]
    assert open_row_count(databases) == BIG_ROWS


def test_sigint_on_an_idle_daemon_exits_0(sqlite_databases: Databases, start_daemon: Start) -> None:
    databases = sqlite_databases  # lifecycle and file handling; the database-specific paths run on both
    daemon = start_daemon(databases)
    daemon.signal(signal.SIGINT)
    assert daemon.wait_exit(15) == 0
    assert os.path.isdir(inbox(databases) / ".processing")


def test_sigterm_while_the_daemon_is_still_loading_exits_0(sqlite_databases: Databases, start_daemon: Start) -> None:
    daemon = start_daemon(sqlite_databases, wait_ready=False)
    time.sleep(0.3)  # inside the second it takes to load the importer: the window the signal must not kill in
    daemon.signal(signal.SIGTERM)
    assert daemon.wait_exit(30) == 0


def test_symlinks_and_fifos_are_set_aside_and_never_stall_the_register(
    sqlite_databases: Databases, start_daemon: Start, tmp_path: Path
) -> None:
    databases = sqlite_databases  # the inbox's rules, whatever the database
    daemon = start_daemon(databases, {"STAMDATA_DOSERINGSFORSLAG_QUIET_PERIOD_S": "0.6"})
    stray = databases.inbox / "doseringsforslag" / "notes.txt"
    stray.write_text("remember to call the supplier\n")
    (inbox(databases) / "zz-readme.txt").write_text("not a dump\n")
    outside = write_dump(tmp_path / "elsewhere", "20261101AutDK.csv", FIRST)
    (inbox(databases) / "20261119AutDK.csv").symlink_to(outside)  # a dump outside the inbox
    (inbox(databases) / "20261120AutDK.csv").symlink_to("/dev/zero")
    os.mkfifo(inbox(databases) / "20261121AutDK.csv")
    drop_atomically(databases, "20261122AutDK.csv", FIRST)
    wait_for(lambda: successes(databases) == ["20261122AutDK.csv"], 30, "the regular dataset")
    aside = inbox(databases) / "set-aside"
    wait_for(lambda: (aside / "zz-readme.txt").exists(), 30, "the stray file set aside")
    assert sorted(p.name for p in aside.iterdir()) == [
        "20261119AutDK.csv", "20261120AutDK.csv", "20261121AutDK.csv", "zz-readme.txt"]
    assert (aside / "20261119AutDK.csv").is_symlink() and outside.exists(), "the link moved, its target untouched"
    wait_for(lambda: (stray.parent / "set-aside" / "notes.txt").exists(), 30, "the stray file of doseringsforslag")
    for register in ("autorisation", "doseringsforslag"):
        assert not (databases.inbox / register / "LOCKED").exists(), register
    assert daemon.saw("inbox entry set aside: not a dataset", entry="notes.txt", reason="not-a-dataset")
    samples = metric_samples(daemon)
    assert samples[("stamdata_inbox_set_aside_total", (("reason", "symlink"), ("register", REGISTER)))] == 2
    assert samples[("stamdata_inbox_set_aside_total", (("reason", "not-a-regular-file"), ("register", REGISTER)))] == 1
