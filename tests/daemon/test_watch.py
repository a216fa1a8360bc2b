"""File-system events wake the right register's worker, and renames into the inbox are reported as such."""

import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from importer.daemon.watch import InboxWatcher
from importer.errors import UsageError


class Recorder:
    def __init__(self) -> None:
        self.woken: set[str] = set()
        self.moved: set[tuple[str, str]] = set()
        self.event = threading.Event()

    def wake(self, register: str) -> None:
        self.woken.add(register)
        self.event.set()

    def moved_in(self, register: str, dataset: str) -> None:
        self.moved.add((register, dataset))
        self.event.set()


def wait_until(condition: Callable[[], bool], recorder: Recorder, timeout: float = 10) -> bool:
    import time

    deadline = time.monotonic() + timeout
    while not condition():
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        recorder.event.wait(min(remaining, 0.1))
        recorder.event.clear()
    return True


@pytest.mark.parametrize("mode", ["native", "polling"])
def test_a_rename_into_a_register_folder_wakes_it_and_counts_as_atomic(tmp_path: Path, mode: str) -> None:
    root = tmp_path / "inbox"
    (root / "autorisation").mkdir(parents=True)
    (root / "doseringsforslag").mkdir()
    staging = tmp_path / "staging"
    staging.mkdir()
    recorder = Recorder()
    watcher = InboxWatcher(root, mode, recorder.wake, recorder.moved_in)
    watcher.start()
    try:
        hidden = root / "autorisation" / ".20261120AutDK.csv.part"
        hidden.write_text("x\n")
        hidden.rename(root / "autorisation" / "20261120AutDK.csv")
        assert wait_until(lambda: "autorisation" in recorder.woken, recorder)
        if mode == "native":
            # Polling compares snapshots a second apart and may never see the hidden name: there the quiet
            # period decides. inotify sees every rename, also from outside the inbox.
            assert wait_until(lambda: ("autorisation", "20261120AutDK.csv") in recorder.moved, recorder)
            (staging / "20261121AutDK.csv").write_text("y\n")
            (staging / "20261121AutDK.csv").rename(root / "autorisation" / "20261121AutDK.csv")
            assert wait_until(lambda: ("autorisation", "20261121AutDK.csv") in recorder.moved, recorder)
        assert recorder.woken == {"autorisation"}
    finally:
        watcher.stop()


def test_an_unknown_watch_mode_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError):
        InboxWatcher(tmp_path, "fanotify", lambda _: None, lambda _, __: None)


def test_reading_a_file_in_the_inbox_wakes_nobody(tmp_path: Path) -> None:
    """The worker reads its inbox on every pass (a LOCKED file, markers): with full inotify events, waking it on an
    open or an unwritten close made a locked register's worker spin the CPU."""
    root = tmp_path / "inbox"
    locked = root / "autorisation" / "LOCKED"
    locked.parent.mkdir(parents=True)
    locked.write_text("refused\n")
    recorder = Recorder()
    watcher = InboxWatcher(root, "native", recorder.wake, recorder.moved_in)
    watcher.start()
    try:
        for _ in range(20):
            locked.read_text()
        assert not wait_until(lambda: bool(recorder.woken), recorder, timeout=1.0), recorder.woken
        locked.write_text("refused again\n")  # a change still wakes it
        assert wait_until(lambda: recorder.woken == {"autorisation"}, recorder)
    finally:
        watcher.stop()
