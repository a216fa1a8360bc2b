"""One register worker in-process, on a manual clock: backoff and crash recovery without sleeping."""

import threading

from importer.daemon.loop import Options, RegisterWorker, Shared
from importer.daemon.readiness import SETTLE_S
from importer.daemon.systemd import Notifier
from importer.http.metrics import ImporterMetrics
from importer.load import inbox
from importer.load.pipeline import Pipeline
from importer.load.plugin import discover
from tests.conftest import Databases
from tests.daemon.clock import ManualClock
from tests.daemon.harness import successes
from tests.registers.autorisation.kit import FIRST, write_dump

REGISTER = discover()["autorisation"]


def test_an_archive_failure_after_the_commit_backs_off_and_then_archives_without_importing_again(
    databases: Databases,
) -> None:
    settings = databases.settings(STAMDATA_AUTORISATION_QUIET_PERIOD_S="0", STAMDATA_RETRY_INITIAL_S="5")
    clock = ManualClock()
    pipeline = Pipeline(settings, clock)
    try:
        pipeline.migrate()
        root = settings.inbox
        inbox.prepare(root, REGISTER.name)
        processed = root / REGISTER.name / "processed"
        processed.rmdir()
        processed.write_text("not a directory: archiving fails like a full disk would\n")
        write_dump(root / REGISTER.name, "20261120AutDK.csv", FIRST)
        worker = RegisterWorker(REGISTER, Shared(pipeline, settings, Options.from_settings(settings), clock,
                                                 ImporterMetrics([REGISTER.name]), Notifier({}), threading.Event()))

        assert not worker.step(), "nothing is claimed before the inbox has settled"
        clock.advance(SETTLE_S)
        assert not worker.step()
        assert successes(databases) == ["20261120AutDK.csv"]
        claimed = root / REGISTER.name / ".processing" / "20261120AutDK.csv"
        assert claimed.exists() and not (root / REGISTER.name / "LOCKED").exists()

        processed.unlink()
        processed.mkdir()
        clock.advance(4.9)
        assert not worker.step(), "still backing off"
        assert claimed.exists()
        clock.advance(0.1)
        assert worker.step()
        assert not claimed.exists()
        assert sorted(p.name for p in processed.glob("*/*")) == ["20261120AutDK.csv", "20261120AutDK.csv.sha256"]
        assert successes(databases) == ["20261120AutDK.csv"], "archived, not imported a second time"
    finally:
        pipeline.close()


def test_a_refused_dataset_locks_and_the_next_waits(sqlite_databases: Databases) -> None:
    databases = sqlite_databases
    settings = databases.settings(STAMDATA_AUTORISATION_QUIET_PERIOD_S="0")
    clock = ManualClock()
    pipeline = Pipeline(settings, clock)
    try:
        pipeline.migrate()  # as the daemon does before it starts any worker
        root = settings.inbox
        inbox.prepare(root, REGISTER.name)
        write_dump(root / REGISTER.name, "20261120AutDK.csv", [FIRST[0], "0C3D4;12345;X;Y;5166"])
        write_dump(root / REGISTER.name, "20261121AutDK.csv", FIRST)
        metrics = ImporterMetrics([REGISTER.name])
        worker = RegisterWorker(REGISTER, Shared(pipeline, settings, Options.from_settings(settings), clock, metrics,
                                                 Notifier({}), threading.Event()))
        worker.step()
        clock.advance(SETTLE_S)
        assert worker.step()
        reason = inbox.lock_reason(root, REGISTER.name)
        assert reason is not None and reason.startswith("dataset 20261120AutDK.csv refused (cpr)")
        assert (root / REGISTER.name / "failed" / "20261120AutDK.csv").exists()
        clock.advance(3600)
        assert not worker.step()
        assert (root / REGISTER.name / "20261121AutDK.csv").exists()
        assert metrics.failures.labels(REGISTER.name, "cpr")._value.get() == 1
    finally:
        pipeline.close()
