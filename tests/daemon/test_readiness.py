"""Readiness: a dataset is imported only once it is complete, judged on the injected clock."""

import os
from pathlib import Path

from importer.daemon.readiness import Readiness
from tests.daemon.clock import ManualClock


def dataset(directory: Path, name: str = "20261120AutDK.csv", content: bytes = b"a;b\n") -> Path:
    path = directory / name
    path.write_bytes(content)
    return path


def test_a_dataset_is_ready_once_unchanged_for_the_quiet_period(tmp_path: Path) -> None:
    clock = ManualClock()
    readiness = Readiness(clock)
    path = dataset(tmp_path)
    assert not readiness.is_ready(path, 10, recognised=True)
    clock.advance(9.9)
    assert not readiness.is_ready(path, 10, recognised=True)
    clock.advance(0.1)
    assert readiness.is_ready(path, 10, recognised=True)


def test_a_write_during_the_quiet_period_starts_it_again(tmp_path: Path) -> None:
    clock = ManualClock()
    readiness = Readiness(clock)
    path = dataset(tmp_path)
    assert not readiness.is_ready(path, 10, recognised=True)
    clock.advance(8)
    with path.open("ab") as stream:
        stream.write(b"c;d\n")
    assert not readiness.is_ready(path, 10, recognised=True)
    clock.advance(8)
    assert not readiness.is_ready(path, 10, recognised=True)
    clock.advance(2)
    assert readiness.is_ready(path, 10, recognised=True)


def test_a_touch_without_new_bytes_also_restarts_the_quiet_period(tmp_path: Path) -> None:
    clock = ManualClock()
    readiness = Readiness(clock)
    path = dataset(tmp_path)
    readiness.is_ready(path, 10, recognised=True)
    clock.advance(9)
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    assert not readiness.is_ready(path, 10, recognised=True)


def test_a_dataset_moved_in_atomically_is_ready_at_once_if_recognised(tmp_path: Path) -> None:
    readiness = Readiness(ManualClock())
    path = dataset(tmp_path)
    readiness.moved_in(path.name)
    assert not readiness.is_ready(path, 10, recognised=False)
    assert readiness.is_ready(path, 10, recognised=True)


def test_markers_make_a_dataset_ready_at_once(tmp_path: Path) -> None:
    readiness = Readiness(ManualClock())
    file = dataset(tmp_path)
    assert not readiness.is_ready(file, 10, recognised=True)
    (tmp_path / f"{file.name}.READY").touch()
    assert readiness.is_ready(file, 10, recognised=True)

    directory = tmp_path / "release-42"
    directory.mkdir()
    dataset(directory, "data.json")
    assert not readiness.is_ready(directory, 10, recognised=True)
    (directory / "READY").touch()
    assert readiness.is_ready(directory, 10, recognised=True)


def test_a_batch_marker_covers_only_what_was_written_before_it(tmp_path: Path) -> None:
    readiness = Readiness(ManualClock())
    before = dataset(tmp_path, "20261120AutDK.csv")
    marker = tmp_path / "READY"
    marker.touch()
    os.utime(marker, ns=(before.stat().st_mtime_ns + 10**9,) * 2)
    after = dataset(tmp_path, "20261121AutDK.csv")
    os.utime(after, ns=(before.stat().st_mtime_ns + 2 * 10**9,) * 2)
    assert readiness.is_ready(before, 10, recognised=True)
    assert not readiness.is_ready(after, 10, recognised=True)


def test_a_dataset_that_vanished_is_not_ready(tmp_path: Path) -> None:
    readiness = Readiness(ManualClock())
    assert not readiness.is_ready(tmp_path / "gone.csv", 0, recognised=True)


def test_a_sidecar_marker_may_drop_the_dataset_suffix(tmp_path: Path) -> None:
    readiness = Readiness(ManualClock())
    file = dataset(tmp_path)
    (tmp_path / "20261120AutDK.READY").touch()
    assert readiness.is_ready(file, 10, recognised=True)


def test_the_quiet_period_runs_while_a_dataset_waits_behind_another(tmp_path: Path) -> None:
    clock = ManualClock()
    readiness = Readiness(clock)
    later = dataset(tmp_path, "20261121AutDK.csv")
    readiness.observe(later)
    clock.advance(10)
    assert readiness.is_ready(later, 10, recognised=True)


def test_nothing_is_ready_until_the_inbox_has_settled_after_an_arrival(tmp_path: Path) -> None:
    clock = ManualClock()
    readiness = Readiness(clock, settle_s=1)
    newest = dataset(tmp_path, "20261122AutDK.csv")
    readiness.prune({newest.name})
    readiness.moved_in(newest.name)
    assert not readiness.is_ready(newest, 10, recognised=True), "an older dataset may be arriving right now"
    clock.advance(0.5)
    older = dataset(tmp_path, "20261121AutDK.csv")
    readiness.prune({newest.name, older.name})
    readiness.moved_in(older.name)
    clock.advance(0.9)
    assert not readiness.is_ready(older, 10, recognised=True)
    clock.advance(0.1)
    assert readiness.is_ready(older, 10, recognised=True)


def test_a_claimed_dataset_leaving_the_inbox_does_not_hold_up_the_next(tmp_path: Path) -> None:
    clock = ManualClock()
    readiness = Readiness(clock, settle_s=1)
    first, second = dataset(tmp_path, "20261120AutDK.csv"), dataset(tmp_path, "20261121AutDK.csv")
    readiness.prune({first.name, second.name})
    readiness.moved_in(second.name)
    clock.advance(1)
    readiness.prune({second.name})
    assert readiness.is_ready(second, 10, recognised=True)
