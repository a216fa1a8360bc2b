"""`stamdata-importer run`: the long-running importer, one worker thread per register.

Each worker loops: rescan its inbox (the truth; file-system events only wake it early), pick the first
dataset in name order, and if it is ready take the register lock, claim it into `.processing/`, import it
through preflight and production, and archive it. Under the register lock anything already in
`.processing/` was left by an importer that died, and is finished first: archived if production already
holds it (same dataset name and input sha256s), imported otherwise. So a crash at any instant leads to
exactly one import.

A data error locks the register (LOCKED + `failed/`); an infrastructure error gives the dataset back to the
inbox and retries with exponential backoff; neither affects other registers.
"""

import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType

import structlog

from importer.clock import Clock, SystemClock, whole_seconds
from importer.config import Settings
from importer.daemon.heartbeat import HeartbeatWriter
from importer.daemon.notifications import NotificationHousekeeper
from importer.daemon.readiness import Readiness
from importer.daemon.systemd import Notifier
from importer.daemon.watch import InboxWatcher
from importer.errors import DataError, InfrastructureError, as_infrastructure
from importer.http.app import WebServer, create_app, facade_services, freeze_the_heap
from importer.http.dashboard import Waiting, explain_queue
from importer.http.database import FacadeDatabase
from importer.http.health import HealthChecker
from importer.http.metrics import ImporterMetrics
from importer.http.tls import tls_options
from importer.load import inbox
from importer.load.locks import RegisterBusy
from importer.load.pipeline import Pipeline
from importer.load.plugin import Register
from importer.logs import get_logger
from importer.privacy import mask_cpr
from importer.signals import stop_requested_early

log = get_logger(__name__)

RETENTION_EVERY = timedelta(hours=1)
NOT_READY_RECHECK_S = 0.5
STARTING = "the importer is starting (migrating the databases, or waiting for them): nothing is imported yet"


@dataclass(frozen=True)
class Options:
    """The daemon's knobs from the configuration (see importer/config.py DAEMON_DEFAULTS)."""

    watch_mode: str
    rescan_interval_s: float
    stop_timeout_s: float
    retry_initial_s: float
    retry_max_s: float
    archive_retention_days: float

    @classmethod
    def from_settings(cls, settings: Settings) -> "Options":
        d = settings.daemon
        return cls(
            watch_mode=str(d["watch_mode"]),
            rescan_interval_s=float(d["rescan_interval_s"]),
            stop_timeout_s=float(d["stop_timeout_s"]),
            retry_initial_s=float(d["retry_initial_s"]),
            retry_max_s=float(d["retry_max_s"]),
            archive_retention_days=float(d["archive_retention_days"]),
        )


def backoff_delay(failures: int, initial_s: float, max_s: float) -> float:
    """Exponential: initial, 2x, 4x, … capped, so a long outage costs at most one attempt per `max_s`."""
    if failures <= 0:
        return 0.0
    return float(min(max_s, initial_s * 2 ** min(failures - 1, 32)))


def after_import(heartbeat: HeartbeatWriter, housekeeper: NotificationHousekeeper) -> Callable[[datetime], None]:
    """What follows every committed import: a heartbeat naming it, and the notifications matched at once (so a pull
    finds them waiting instead of matching them itself)."""
    def follow(at: datetime) -> None:
        heartbeat.now(at)
        housekeeper.wake()
    return follow


@dataclass(frozen=True)
class Shared:
    """What every register's worker shares with the daemon that runs it."""

    pipeline: Pipeline
    settings: Settings
    options: Options
    clock: Clock
    metrics: ImporterMetrics
    notifier: Notifier
    stopping: threading.Event
    report: Callable[[str, str | None], None] = lambda _source, _problem: None
    # After every import, with its transaction time: the heartbeat names it, the notification matcher wakes.
    imported: Callable[[datetime], None] = lambda _at: None


class RegisterWorker:
    """Imports one register's datasets, strictly in name order, independently of every other register."""

    def __init__(self, register: Register, shared: "Shared", readiness: Readiness | None = None) -> None:
        self.register = register
        self.name = register.name
        self.pipeline = shared.pipeline
        self.root = shared.settings.inbox
        self.config = shared.settings.for_register(register.name, register.settings_defaults)
        self.options = shared.options
        self.clock = shared.clock
        self.metrics = shared.metrics
        self.notifier = shared.notifier
        self.stopping = shared.stopping
        # Tells /status what keeps this register from importing (None: nothing any more).
        self.report = shared.report
        self.imported = shared.imported
        self.readiness = readiness or Readiness(shared.clock)
        self.wake = threading.Event()
        self.failures = 0
        self.retry_at: datetime | None = None
        self.not_ready_yet = False  # the head of the queue is settling or quiet: look again soon
        self.busy = False
        self.heartbeat = time.monotonic()
        self.thread = threading.Thread(target=self.run, name=f"worker-{register.name}", daemon=True)

    # --- the loop -----------------------------------------------------------------------------------------

    def run(self) -> None:
        structlog.contextvars.bind_contextvars(register=self.name)
        while not self.stopping.is_set():
            self.heartbeat = time.monotonic()
            try:
                worked = self.step()
            except Exception:  # a bug must not kill the thread silently: log, back off, try again
                log.exception("worker step failed")
                self._back_off("unexpected error in the worker loop")
                worked = False
            if worked:
                continue
            self.wake.wait(self._wait_s())
            self.wake.clear()

    def _wait_s(self) -> float:
        wait = self.options.rescan_interval_s
        if self.not_ready_yet:
            # Settling and quiet periods end without any file-system event to say so.
            wait = min(wait, NOT_READY_RECHECK_S)
        if self.retry_at is not None:
            until_retry = (self.retry_at - self.clock.now()).total_seconds()
            wait = min(wait, max(until_retry, 0.05))
        return wait

    def step(self) -> bool:
        """One rescan; True if a dataset was dealt with (so the loop goes on without waiting)."""
        self.not_ready_yet = False
        waiting = self._set_aside_irregular(inbox.pending(self.root, self.name))
        claimed = inbox.claimed(self.root, self.name)
        self.metrics.pending.labels(self.name).set(len(waiting) + len(claimed))
        self.readiness.prune({entry.name for entry in waiting})
        for entry in waiting[1:]:
            self.readiness.observe(entry)
        if inbox.lock_reason(self.root, self.name) is not None:
            return False
        if self.retry_at is not None and self.clock.now() < self.retry_at:
            return False
        if not claimed and not waiting:
            (inbox.register_dir(self.root, self.name) / inbox.MARKER).unlink(missing_ok=True)  # batch done
            return False
        if not claimed and not self._ready(waiting[0]):
            self.not_ready_yet = True
            return False  # nothing overtakes a dataset that is not ready yet
        if self.stopping.is_set():
            return False
        try:
            with self.pipeline.lock(self.name, wait_s=0):
                return self._under_lock()
        except RegisterBusy:
            log.info("register busy in another importer, waiting")
            return False
        except InfrastructureError as error:
            self._back_off(str(error))
            return False
        except OSError as error:  # claiming, archiving or locking on a full or failing disk: not the data's fault
            self._back_off(f"file system error: {error}")
            return False

    def _set_aside_irregular(self, waiting: list[Path]) -> list[Path]:
        """Entries that are no regular dataset (a symlink, a FIFO, …) would stall the queue or read what is not
        in the inbox: move them aside, say so, and go on with the rest. Nothing about them locks the register."""
        regular = []
        for entry in waiting:
            try:
                reason = inbox.irregular(entry)
                if reason is None:
                    regular.append(entry)
                    continue
                self._set_aside(entry, reason, "symbolic links are never followed; only regular files and "
                                "directories are read")
            except FileNotFoundError:
                continue  # gone since the scan
        return regular

    def _set_aside(self, entry: Path, reason: str, explanation: str) -> None:
        target = inbox.set_aside(self.root, self.name, entry)
        self.metrics.set_aside.labels(self.name, reason).inc()
        log.warning("inbox entry set aside: not a dataset", entry=entry.name, reason=reason, why=explanation,
                    moved_to=str(target.relative_to(self.root)))

    def _ready(self, dataset: Path) -> bool:
        return self.readiness.is_ready(dataset, float(self.config["quiet_period_s"]), self._recognised(dataset))

    def _recognised(self, dataset: Path) -> bool:
        try:
            return self.register.recognise(dataset) is not None
        except Exception:  # a half-written dataset may trip a plugin; it is just not complete yet
            return False

    # --- what the operator's page shows -------------------------------------------------------------------

    def queue(self) -> list[Waiting]:
        """This register's waiting datasets and why each is not imported yet. Asked from the HTTP thread: it reads
        what the loop keeps and changes none of it."""
        return explain_queue(self.root, self.name, self._head_reason, busy=self.busy)

    def _head_reason(self, dataset: Path) -> str:
        """Why the first dataset in the queue is not taken yet, by the rules `step` applies."""
        retry_at = self.retry_at
        if retry_at is not None and self.clock.now() < retry_at:
            return (f"waiting to retry after an infrastructure error (attempt {self.failures}): next at "
                    f"{retry_at:%H:%M:%S} UTC")
        try:
            irregular = inbox.irregular(dataset)
        except FileNotFoundError:
            return "gone from the inbox"
        if irregular is not None:
            return f"no regular dataset ({irregular}): set aside at the next rescan"
        why = self.readiness.why_not_ready(dataset, float(self.config["quiet_period_s"]), self._recognised(dataset))
        if why is not None:
            return why
        if not self.register.could_be_dataset(dataset):
            return f"not a dataset of {self.name} ({self.register.dataset_description}): set aside at the next rescan"
        return "ready: imported at the next rescan"

    def _under_lock(self) -> bool:
        """Re-read everything: another importer may have acted between the scan and the lock."""
        if inbox.lock_reason(self.root, self.name) is not None:
            return False
        self.pipeline.end_interrupted_runs(self.register)
        claimed = inbox.claimed(self.root, self.name)
        if claimed:
            dataset = claimed[0]
            log.warning("resuming a dataset claimed by an importer that stopped", dataset=dataset.name)
        else:
            waiting = inbox.pending(self.root, self.name)
            if not waiting or not self._ready(waiting[0]) or self.stopping.is_set():
                return False
            if not self.register.could_be_dataset(waiting[0]):
                self._set_aside(waiting[0], "not-a-dataset", self.register.dataset_description)
                return True
            try:
                dataset = inbox.claim(self.root, self.name, waiting[0])
            except FileNotFoundError:  # taken away (by an operator) since the scan: rescan
                return False
            self.readiness.forget(dataset.name)
            log.info("dataset claimed", dataset=dataset.name)
        self.busy = True
        try:
            return self._import(dataset)
        finally:
            self.busy = False

    # --- one dataset ---------------------------------------------------------------------------------------

    def _import(self, dataset: Path) -> bool:
        hashes = inbox.entry_files(dataset)
        if self.pipeline.already_imported(self.register, dataset, hashes):
            log.warning("dataset already in production, archiving it without importing again", dataset=dataset.name)
            self._archive(dataset, hashes)
            return True
        self.notifier.status(f"{self.name}: importing {dataset.name}")
        try:
            summary = self.pipeline.import_dataset(self.register, dataset, entry_files=hashes)
        except DataError as error:
            if self._taken_over(dataset, hashes):
                return False
            self._refuse(dataset, error.rule, str(error))
            return True
        except Exception as error:
            if self._taken_over(dataset, hashes):
                return False
            infrastructure = as_infrastructure(error, f"importing {dataset.name}")
            if infrastructure is None:  # a parser bug or unforeseen input: stop the register so someone looks
                log.exception("import failed unexpectedly", dataset=dataset.name)
                self._refuse(dataset, "internal-error", f"internal error: {type(error).__name__}: {error}")
                return True
            back = inbox.give_back(self.root, self.name, dataset)
            self.readiness.moved_in(back.name)  # we put it there whole: ready as soon as the backoff ends
            self._back_off(str(infrastructure))
            return False
        self.metrics.imported(summary)
        self.imported(summary.transaction_time)
        if self._taken_over(dataset, hashes):
            return True
        self._archive(dataset, hashes)
        self.failures, self.retry_at = 0, None
        self.report(f"register {self.name}", None)
        self.notifier.status(f"{self.name}: imported {dataset.name}")
        return True

    def _taken_over(self, dataset: Path, hashes: dict[str, str]) -> bool:
        """Whether another importer host took the register over while this one hung (README, "Beyond one machine"):
        then the dataset is that host's to finish (a shared inbox) or found imported (this host's own copy, archived
        when this host next holds the lock): this one refuses, gives back and archives nothing."""
        if not self.pipeline.taken_over(self.register, dataset, hashes):
            return False
        log.warning("lost the register lock during the import (this host hung or was cut off): another importer "
                    "took the register over; leaving the dataset to it", dataset=dataset.name)
        return True

    def _archive(self, dataset: Path, hashes: dict[str, str]) -> None:
        target = inbox.archive(self.root, self.name, dataset, self.clock.now().year, hashes)
        log.info("dataset archived", dataset=dataset.name, archived=str(target.relative_to(self.root)))

    def _refuse(self, dataset: Path, rule: str, message: str) -> None:
        when = whole_seconds(self.clock.now())
        first = message.splitlines()[0] if message else rule
        reason = mask_cpr(
            f"dataset {dataset.name} refused ({rule}): {first}\n"
            f"refused at {when:%Y-%m-%d %H:%M:%S} UTC; moved to failed/.\n"
            f"{message}\n"
            f"Fix or remove the cause, then run: stamdata-importer unlock {self.name}\n"
        )
        target = inbox.fail(self.root, self.name, dataset, reason)
        self.metrics.failed(self.name, rule)
        self.metrics.locked.labels(self.name).set(1)
        log.error("register locked", dataset=dataset.name, rule=rule, failed=str(target.relative_to(self.root)))
        self.notifier.status(f"{self.name}: LOCKED by {dataset.name}")

    def _back_off(self, reason: str) -> None:
        self.failures += 1
        delay = backoff_delay(self.failures, self.options.retry_initial_s, self.options.retry_max_s)
        self.retry_at = self.clock.now() + timedelta(seconds=delay)
        self.metrics.failed(self.name, "infrastructure")
        log.warning("infrastructure error, will retry", reason=mask_cpr(reason), attempt=self.failures,
                    retry_in_s=delay)
        self.report(f"register {self.name}", f"register {self.name} is retrying after an infrastructure error "
                    f"(attempt {self.failures}, next in {delay:g} s): {mask_cpr(reason).splitlines()[0]}")
        self.notifier.status(f"{self.name}: retrying in {delay:g}s after: {mask_cpr(reason).splitlines()[0]}")


class Daemon:
    """Wires the workers, the watcher, the HTTP server and systemd together, and shuts them down in order."""

    def __init__(
        self,
        settings: Settings,
        registers: dict[str, Register],
        clock: Clock | None = None,
        notifier: Notifier | None = None,
    ) -> None:
        self.settings = settings
        self.registers = registers
        self.clock = clock or SystemClock()
        self.options = Options.from_settings(settings)
        self.notifier = notifier or Notifier()
        self.stopping = threading.Event()
        self.metrics = ImporterMetrics(registers)
        self.workers: dict[str, RegisterWorker] = {}
        # Owned here, not by the workers, so renames seen while the databases are migrated still count.
        self.readiness = {name: Readiness(self.clock) for name in registers}

    def request_stop(self, signum: int | None = None, _frame: FrameType | None = None) -> None:
        if not self.stopping.is_set():
            log.info("stop requested", signal=signal.Signals(signum).name if signum else None)
        self.stopping.set()
        for worker in self.workers.values():
            worker.wake.set()

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self.request_stop)
        signal.signal(signal.SIGINT, self.request_stop)
        if stop_requested_early():
            self.request_stop()
        # HTTP first: while the databases are still being waited for, /status already says why it is red.
        # The read-only façades share the app; they connect lazily with the façade account (facade_url).
        facades = FacadeDatabase(self.settings.facade_database_url, self.clock,
                                 max_lag_s=float(self.settings.daemon["max_lag_s"]))
        facades.check_cannot_write(bool(self.settings.daemon["allow_writable_facade"]))  # writable account: exit 2
        health = HealthChecker(self.settings, self.registers, self.clock, facades=facades)  # /status: their lag too
        services = facade_services(self.settings, facades, self.clock)
        app = create_app(health, self.metrics, services, list(self.registers.values()), importer=self)
        web = WebServer(app, self.settings.listen, tls_options(self.settings))
        try:
            web.start()
        except RuntimeError as error:
            raise InfrastructureError(f"cannot serve HTTP on {self.settings.listen}: {error}") from error
        freeze_the_heap()
        pipeline: Pipeline | None = None
        watcher: InboxWatcher | None = None
        housekeeper: NotificationHousekeeper | None = None
        try:
            # Watch before migrating: a dataset renamed in while the databases are upgraded is still known to
            # have arrived whole (the workers find it in the rescan either way).
            try:
                for name in self.registers:
                    inbox.prepare(self.settings.inbox, name)
            except OSError as error:
                raise InfrastructureError(f"cannot prepare the inbox {self.settings.inbox}: {error}") from error
            watcher = InboxWatcher(self.settings.inbox, self.options.watch_mode, self.wake, self._moved_in)
            watcher.start()
            pipeline = self._start_pipeline(health)
            if pipeline is None:
                log.info("importer stopped before start-up completed")
                return 0
            heartbeat = HeartbeatWriter(pipeline.production, self.clock,
                                        float(self.settings.daemon["heartbeat_interval_s"]), self.stopping)
            heartbeat.start()
            # Change notifications: matching after imports, the 10-day purge, their metrics.
            housekeeper = NotificationHousekeeper(pipeline.production, self.clock, self.metrics,
                                                  list(self.registers.values()))
            housekeeper.start()
            shared = Shared(pipeline, self.settings, self.options, self.clock, self.metrics, self.notifier,
                            self.stopping, health.report_problem, after_import(heartbeat, housekeeper))
            for register in self.registers.values():
                self.workers[register.name] = RegisterWorker(register, shared, self.readiness[register.name])
            for worker in self.workers.values():
                worker.thread.start()
            self.notifier.ready(f"watching {len(self.workers)} register(s) in {self.settings.inbox}")
            log.info("importer running", inbox=str(self.settings.inbox.resolve()), listen=self.settings.listen,
                     registers=list(self.registers), watch_mode=self.options.watch_mode)
            self._supervise()
        finally:
            self.notifier.stopping("stopping: finishing the running import")
            if watcher is not None:
                watcher.stop()
            self._stop_workers()
            if housekeeper is not None:
                housekeeper.stop()
            web.stop()
            facades.close()
            services.close()
            health.close()
            if pipeline is not None:
                pipeline.close()
        log.info("importer stopped")
        return 0

    def _start_pipeline(self, health: HealthChecker) -> Pipeline | None:
        """Migrate both databases; wait for them (with STATUS= for the operator, /status red) rather than exit."""
        attempts = 0
        health.report_problem("start-up", "the importer is starting: migrating the databases")
        while not self.stopping.is_set():
            pipeline: Pipeline | None = None
            try:
                pipeline = Pipeline(self.settings, self.clock)
                pipeline.migrate()
                health.report_problem("start-up", None)
                return pipeline
            except Exception as error:
                if pipeline is not None:
                    pipeline.close()
                infrastructure = as_infrastructure(error, "starting")
                if infrastructure is None:
                    log.exception("cannot start")
                reason = str(infrastructure or f"{type(error).__name__}: {error}")
                attempts += 1
                delay = backoff_delay(attempts, self.options.retry_initial_s, self.options.retry_max_s)
                log.error("cannot start; retrying", reason=reason, attempt=attempts, retry_in_s=delay)
                health.report_problem("start-up", f"the importer cannot start (attempt {attempts}, next in "
                                      f"{delay:g} s): {reason}")
                self.notifier.status(f"cannot start: {reason.splitlines()[0]}")
                self.stopping.wait(delay)
        return None

    def _supervise(self) -> None:
        """The main thread pings the systemd watchdog while every worker loop is alive and turning."""
        ping_s = (self.notifier.watchdog_s or 10.0) / 2
        tick = min(ping_s, self.options.rescan_interval_s, 1.0)
        next_ping = 0.0
        next_prune = self.clock.now()
        while not self.stopping.wait(tick):
            if time.monotonic() >= next_ping and self._workers_healthy():
                self.notifier.watchdog()
                next_ping = time.monotonic() + ping_s
            if self.clock.now() >= next_prune:
                self._prune_archives()
                next_prune = self.clock.now() + RETENTION_EVERY

    def _workers_healthy(self) -> bool:
        stale_after = max(self.options.rescan_interval_s * 3, (self.notifier.watchdog_s or 0) * 2, 30.0)
        now = time.monotonic()
        return all(
            worker.thread.is_alive() and (worker.busy or now - worker.heartbeat < stale_after)
            for worker in self.workers.values()
        )

    def _prune_archives(self) -> None:
        days = self.options.archive_retention_days
        if days <= 0:
            return
        older_than = (self.clock.now() - timedelta(days=days)).replace(tzinfo=UTC).timestamp()
        for name in self.registers:
            try:
                for removed in inbox.prune_archive(self.settings.inbox, name, older_than):
                    log.info("archived dataset past retention deleted", register=name, dataset=removed.name)
            except OSError as error:
                log.warning("could not prune the archive", register=name, reason=str(error))

    def _stop_workers(self) -> None:
        """Let a running import finish; past the stop timeout, leave and let the database roll it back."""
        for worker in self.workers.values():
            worker.wake.set()
        deadline = time.monotonic() + self.options.stop_timeout_s
        for worker in self.workers.values():
            if worker.thread.is_alive():
                worker.thread.join(max(0.0, deadline - time.monotonic()))
        running = [name for name, worker in self.workers.items() if worker.thread.is_alive()]
        if running:
            # Exiting closes the database connections, so the open transactions roll back; the claimed dataset
            # stays in .processing/ and the next start imports it (exactly once, see RegisterWorker).
            log.warning("stop timeout reached, abandoning running imports; they roll back and resume at next start",
                        registers=running, stop_timeout_s=self.options.stop_timeout_s)
            self.notifier.stopping("stop timeout reached, abandoning running imports")
            sys.stderr.flush()
            os._exit(0)

    def queue(self, register: str) -> list[Waiting]:
        """The operator's page: a register's queue as its worker explains it (before the workers start, why not)."""
        worker = self.workers.get(register)
        if worker is not None:
            return worker.queue()
        return explain_queue(self.settings.inbox, register, lambda _entry: STARTING)

    def wake(self, register: str) -> None:
        """Look at the register's inbox now (a watched event there; the operator's page unlocked it)."""
        worker = self.workers.get(register)
        if worker is not None:
            worker.wake.set()

    def _moved_in(self, register: str, dataset: str) -> None:
        readiness = self.readiness.get(register)
        if readiness is not None:
            readiness.moved_in(dataset)
