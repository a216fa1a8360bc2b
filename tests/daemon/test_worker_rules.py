"""The daemon's rules that need no process: backoff, locks, the systemd protocol, file moves."""

import socket
import threading
from pathlib import Path

import pytest

from importer.daemon.loop import backoff_delay
from importer.daemon.systemd import Notifier
from importer.load import inbox
from importer.load.locks import RegisterBusy
from importer.load.pipeline import Pipeline
from tests.conftest import Databases


def test_backoff_doubles_from_the_initial_delay_up_to_the_cap() -> None:
    assert [backoff_delay(n, 5, 60) for n in range(7)] == [0, 5, 10, 20, 40, 60, 60]
    assert backoff_delay(10_000, 5, 600) == 600


def test_one_importer_per_register_across_lock_holders(databases: Databases) -> None:
    one, other = Pipeline(databases.settings()), Pipeline(databases.settings())
    try:
        with one.locks.hold("autorisation", wait_s=0):
            with one.locks.hold("autorisation", wait_s=0):  # re-entrant in the holding thread
                pass
            with pytest.raises(RegisterBusy), other.locks.hold("autorisation", wait_s=0):
                pass
            with other.locks.hold("doseringsforslag", wait_s=0):  # registers are independent
                pass
            failures: list[BaseException] = []

            def elsewhere() -> None:
                try:
                    with one.locks.hold("autorisation", wait_s=0):
                        pass
                except RegisterBusy as error:
                    failures.append(error)

            thread = threading.Thread(target=elsewhere)
            thread.start()
            thread.join()
            assert len(failures) == 1, "another thread of the same process must wait too"
        with other.locks.hold("autorisation", wait_s=0):
            pass
    finally:
        one.close()
        other.close()


def test_systemd_notifications_are_datagrams_on_the_notify_socket(tmp_path: Path) -> None:
    path = tmp_path / "notify"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
        server.bind(str(path))
        server.settimeout(2)
        notifier = Notifier({"NOTIFY_SOCKET": str(path), "WATCHDOG_USEC": "3000000"})
        assert notifier.watchdog_s == 3.0
        notifier.ready("watching 2 registers")
        assert server.recv(1024) == b"READY=1\nSTATUS=watching 2 registers"
        notifier.watchdog()
        assert server.recv(1024) == b"WATCHDOG=1"
        notifier.stopping("bye")
        assert server.recv(1024) == b"STOPPING=1\nSTATUS=bye"


def test_without_systemd_notifying_does_nothing() -> None:
    notifier = Notifier({})
    assert not notifier.enabled and notifier.watchdog_s is None
    notifier.ready("x")
    notifier.watchdog()


def test_watchdog_pings_only_for_the_process_systemd_asked() -> None:
    assert Notifier({"NOTIFY_SOCKET": "/x", "WATCHDOG_USEC": "1000000", "WATCHDOG_PID": "1"}).watchdog_s is None


def test_a_refused_dataset_is_locked_before_it_moves_and_archives_keep_their_checksums(tmp_path: Path) -> None:
    root = tmp_path / "inbox"
    inbox.prepare(root, "autorisation")
    dataset = root / "autorisation" / "20261120AutDK.csv"
    dataset.write_text("x\n")
    dataset.chmod(0o644)  # as a supplier (or umask 022) left it
    claimed = inbox.claim(root, "autorisation", dataset)
    assert inbox.claimed(root, "autorisation") == [claimed] and inbox.pending(root, "autorisation") == []
    failed = inbox.fail(root, "autorisation", claimed, "dataset 20261120AutDK.csv refused (cpr): bad")
    assert failed == root / "autorisation" / "failed" / "20261120AutDK.csv"
    assert inbox.lock_reason(root, "autorisation") == "dataset 20261120AutDK.csv refused (cpr): bad\n"

    again = root / "autorisation" / ".processing" / "20261120AutDK.csv"
    again.write_text("y\n")
    hashes = inbox.entry_files(again)
    target = inbox.archive(root, "autorisation", again, 2026, hashes)
    assert target == root / "autorisation" / "processed" / "2026" / "20261120AutDK.csv"
    checksum = target.with_name("20261120AutDK.csv.sha256").read_text()
    assert checksum == f"{hashes['20261120AutDK.csv']}  20261120AutDK.csv\n"
    # Kept datasets hold personal data: private, whatever mode they arrived with.
    for kept in (failed, target):
        assert kept.stat().st_mode & 0o777 == 0o600, kept
    for directory in ("failed", "processed", ".processing"):
        assert (root / "autorisation" / directory).stat().st_mode & 0o777 == 0o700, directory


def test_archiving_a_name_twice_keeps_both(tmp_path: Path) -> None:
    root = tmp_path / "inbox"
    first = inbox.archive(root, "r", _file(root / "r" / ".processing" / "d.csv"), 2026, {"d.csv": "0" * 64})
    second = inbox.archive(root, "r", _file(root / "r" / ".processing" / "d.csv"), 2026, {"d.csv": "1" * 64})
    assert first.name == "d.csv" and second.name == "d.csv.1"


def test_retention_deletes_only_archives_older_than_the_limit(tmp_path: Path) -> None:
    import os

    root = tmp_path / "inbox"
    old = inbox.archive(root, "r", _file(root / "r" / ".processing" / "old.csv"), 2025, {})
    new = inbox.archive(root, "r", _file(root / "r" / ".processing" / "new.csv"), 2026, {})
    os.utime(old.with_name("old.csv.sha256"), (1000, 1000))
    assert inbox.prune_archive(root, "r", older_than=2000) == [old]
    assert not old.exists() and new.exists()


def _file(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("x\n")
    return path


def test_the_example_configuration_is_valid_for_every_register() -> None:
    from importer.config import load_settings
    from importer.load.plugin import discover
    from tests.conftest import REPO

    settings = load_settings(REPO / "ops" / "importer.toml", {})
    assert settings.daemon["watch_mode"] == "native"
    for name, register in discover().items():
        assert settings.for_register(name, register.settings_defaults)["quiet_period_s"] > 0
