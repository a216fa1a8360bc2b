"""One dataset through the pipeline: parse, then preflight (one transaction), then production (one transaction).

Both databases receive the same code path with the same transaction time, so production only ever sees
what preflight has already accepted. If production failed after preflight committed, the next run finds
preflight ahead and re-synchronises the register's preflight tables from production before it starts.
"""

import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa
import structlog

from importer.clock import Clock, SystemClock, whole_seconds
from importer.config import Settings
from importer.db import create_engine
from importer.errors import DataError, ImporterError, InfrastructureError, as_infrastructure
from importer.load import inbox, migrate, notifications, test_keys
from importer.load.bulk import SCRATCH_OPTION, insert_frame
from importer.load.locks import RegisterLocks
from importer.load.plugin import ParsedDataset, Register, SequenceContext
from importer.load.scratch import ScratchDir
from importer.load.snapshot import Snapshot, SnapshotStore, fingerprint
from importer.load.status import FailedRun, ImportStatus, RunCounts, Started, Succeeded
from importer.load.temporal import (
    OpenState,
    OutOfStep,
    TableDelta,
    apply_delta,
    compute_delta,
    open_state,
    row_digests,
)
from importer.logs import get_logger
from importer.memory import release_freed_memory
from importer.privacy import mask_cpr

log = get_logger(__name__)

StageCallback = Callable[[str], None]


@dataclass
class RunSummary:
    run_id: str
    register: str
    dataset: str
    version: str
    committed: bool  # False for a validation run, which rolls back
    valid_from: datetime
    transaction_time: datetime
    counts: RunCounts
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)


@dataclass
class Run:
    """One dataset through the pipeline: what stays the same in both databases, and what the run learns."""

    id: str  # <register>-<epoch millis>
    register: Register
    path: Path  # the inbox entry; its name is the dataset's name
    started: datetime
    settings: Mapping[str, Any]  # the register's effective settings
    force: bool = False
    validate_only: bool = False
    stage: StageCallback = field(default=lambda _: None)
    parsed: ParsedDataset | None = None
    digests: dict[str, np.ndarray] = field(default_factory=dict)  # per table, for the snapshot comparison
    open_state: dict[str, OpenState] = field(default_factory=dict)  # per table, the snapshot this run leaves
    transaction_time: datetime | None = None
    timings: dict[str, float] = field(default_factory=dict)
    entry_digest: str = ""  # sha256 of the inbox entry as delivered (inbox.entry_digest); "" until known

    @property
    def data(self) -> ParsedDataset:
        assert self.parsed is not None, "the run has not parsed its dataset yet"
        return self.parsed

    @property
    def at(self) -> datetime:
        assert self.transaction_time is not None, "the run has no transaction time yet"
        return self.transaction_time


@dataclass
class _Outcome:
    counts: RunCounts
    valid_from: datetime
    warnings: list[str]
    notes: list[str]
    deltas: list[TableDelta]


class Pipeline:
    """Imports datasets of any register into the configured preflight and production databases."""

    def __init__(self, settings: Settings, clock: Clock | None = None) -> None:
        self.settings = settings
        self.clock = clock or SystemClock()
        timeout_s = float(settings.daemon["db_timeout_s"])
        try:
            self.scratch = ScratchDir(settings.state_dir)
        except OSError as error:
            raise InfrastructureError(f"cannot prepare scratch space in {settings.state_dir}: {error}") from error
        scratch = {SCRATCH_OPTION: str(self.scratch.path)}
        self.preflight = create_engine(settings.preflight_url, timeout_s=timeout_s).execution_options(**scratch)
        self.production = create_engine(settings.production_url, timeout_s=timeout_s).execution_options(**scratch)
        # One importer per register across processes and hosts (daemons and CLI alike); see importer/load/locks.py.
        self.locks = RegisterLocks(self.production, fenced=[self.preflight],
                                   takeover_s=float(settings.daemon["takeover_s"]))
        self.snapshots = SnapshotStore(settings.state_dir, fingerprint(settings.preflight_url, settings.production_url))
        self._migrated = False
        # Failed runs whose status row a database could not take when they failed, by (register, database).
        self._unrecorded: dict[tuple[str, str], list[FailedRun]] = {}
        self._guard = threading.Lock()

    def _databases(self) -> dict[str, sa.Engine]:
        """Both databases by name, preflight first: the order every run writes them in."""
        return {"preflight": self.preflight, "production": self.production}

    def close(self) -> None:
        self.preflight.dispose()
        self.production.dispose()
        self.scratch.close()

    def migrate(self) -> None:
        for engine in self._databases().values():
            migrate.upgrade(engine)
        self._migrated = True

    def import_dataset(
        self,
        register: Register,
        path: Path,
        *,
        force: bool = False,
        validate_only: bool = False,
        on_stage: StageCallback | None = None,
        entry_files: Mapping[str, str] | None = None,
    ) -> RunSummary:
        """`entry_files`: the sha256 of each file of the entry (inbox.entry_files), if the caller has them."""
        started = self.clock.now()
        run = Run(
            id=f"{register.name}-{int(started.replace(tzinfo=UTC).timestamp() * 1000)}",  # the clock is naive UTC
            register=register, path=path, started=started, force=force, validate_only=validate_only,
            settings=self.settings.for_register(register.name, register.settings_defaults),
            stage=on_stage or (lambda _: None),
            entry_digest=inbox.entry_digest(dict(entry_files)) if entry_files is not None else "",
        )
        with structlog.contextvars.bound_contextvars(run_id=run.id, register=register.name):
            try:
                # Re-entrant: a daemon already holding the lock around claim and archive passes straight through.
                with self.lock(register.name, wait_s=float(self.settings.daemon["lock_wait_s"])):
                    try:
                        return self._run(run)
                    except Exception as error:
                        infrastructure = as_infrastructure(error, "importing") if not isinstance(
                            error, ImporterError) else None
                        if not validate_only:
                            self._record_failed_run(run, infrastructure or error)
                        if infrastructure is not None:
                            raise infrastructure from error
                        raise
            except DataError as error:
                log.error("dataset refused", dataset=path.name, rule=error.rule, reason=str(error))
                raise
            except ImporterError as error:
                log.error("import failed", dataset=path.name, reason=str(error))
                raise

    def already_imported(self, register: Register, dataset: Path, files: Mapping[str, str]) -> bool:
        """Whether production holds a successful import of this dataset: the same name and the same input files
        (sha256 of each file of the entry, or, for registers that hash other units such as a ZIP's members,
        what its parser reports)."""
        try:
            with self.production.connect() as connection:
                stored = ImportStatus.of(register).successes_of(connection, dataset.name)
        except sa.exc.DBAPIError as error:
            raise InfrastructureError(f"database error while checking {dataset.name}: {error.orig}") from error
        digest = inbox.entry_digest(dict(files))
        if any(kept == digest for kept, _ in stored):
            return True
        legacy = [inputs for kept, inputs in stored if kept is None]  # recorded before the entry's digest was kept
        if not legacy:
            return False
        if any(sorted(inputs.values()) == sorted(files.values()) for inputs in legacy):
            return True
        settings = self.settings.for_register(register.name, register.settings_defaults)
        try:
            reported = register.parse(dataset, settings).files
        except Exception:  # a dataset the parser refuses was not imported successfully either
            return False
        return any(inputs == reported for inputs in legacy)

    def lock(self, register: str, wait_s: float) -> AbstractContextManager[None]:
        """The register's lock (see importer/load/locks.py): claim, import and archive happen under it."""
        return self.locks.hold(register, wait_s)

    def taken_over(self, register: Register, dataset: Path, files: Mapping[str, str]) -> bool:
        """Whether another importer took the register over from this thread while it was at `dataset` (this host
        hung, or was cut off, for longer than takeover_s): its lock is gone, and another importer holds the lock now
        or production holds the dataset. False while the database cannot say: an outage, retried as usual."""
        if self.locks.still_held(register.name):
            return False
        try:
            return self.locks.held_elsewhere(register.name) or self.already_imported(register, dataset, files)
        except (ImporterError, sa.exc.SQLAlchemyError):
            return False

    def _fence(self, register: Register) -> Callable[[sa.Connection], AbstractContextManager[None]]:
        return lambda connection: self.locks.fence(connection, register.name)

    def revisions(self) -> dict[str, str | None]:
        """The schema revision of each database, by name."""
        return {name: migrate.current_revision(engine) for name, engine in self._databases().items()}

    def imported_datasets(self, register: Register) -> set[str]:
        """The names of the datasets production holds (a replay skips them)."""
        with self.production.connect() as connection:
            return ImportStatus.of(register).imported_datasets(connection)

    def _run(self, run: Run) -> RunSummary:
        register = run.register
        with _infrastructure_errors("migrating"):
            if not self._migrated:
                self.migrate()
        self._parse(run)
        parsed = run.data
        targets: list[tuple[str, sa.Engine]] = [("preflight", self.preflight)]
        if not run.validate_only:
            targets.append(("production", self.production))
        for attempt in (1, 2):
            with _infrastructure_errors("preparing the import"):
                if attempt == 1:
                    in_step_at = self._resynchronise_if_needed(register)
                else:
                    self.snapshots.forget(register.name)
                    resynchronise(register, self.production, self.preflight, self._fence(register))
                    in_step_at = None
                run.transaction_time = self.next_transaction_time(register)
            known = self.snapshots.load(register.name, in_step_at)
            outcomes: dict[str, _Outcome] = {}
            try:
                for name, engine in targets:
                    run.stage(name)
                    began = time.perf_counter()
                    planned = outcomes["preflight"].deltas if outcomes else None
                    outcomes[name] = self._load(engine, name, run, planned, known)
                    run.timings[name] = time.perf_counter() - began
                break
            except OutOfStep as error:
                # Production's history is not what preflight's was (edited by hand, restored from a backup):
                # production is the truth, so copy it into preflight and import again, once.
                if attempt == 2:
                    raise
                log.warning("production out of step with preflight; re-synchronising and retrying", reason=str(error))

        if not run.validate_only:
            self.snapshots.save(register.name, Snapshot(
                databases=self.snapshots.databases,
                transaction_time=run.at,
                open_state=run.open_state,
            ))
        final = outcomes[targets[-1][0]]
        summary = RunSummary(
            run_id=run.id,
            register=register.name,
            dataset=parsed.name,
            version=parsed.version,
            committed=not run.validate_only,
            valid_from=final.valid_from,
            transaction_time=run.at,
            counts=final.counts,
            warnings=final.warnings,
            notes=final.notes,
            timings=run.timings,
        )
        log.info(
            "dataset imported" if summary.committed else "dataset validated (rolled back)",
            dataset=parsed.name,
            version=parsed.version,
            transaction_time=run.at.isoformat(),
            inserted=final.counts.inserted,
            updated=final.counts.updated,
            closed=final.counts.closed,
            unchanged=final.counts.unchanged,
            warnings=final.warnings,
            seconds={key: round(value, 3) for key, value in run.timings.items()},
        )
        return summary

    def _parse(self, run: Run) -> None:
        run.stage("parse")
        began = time.perf_counter()
        path = run.path
        if path.exists() and not (path.is_file() or path.is_dir()):  # a FIFO or a device would block or never end
            raise DataError.single("not-a-regular-file", "a dataset is a regular file or a directory", file=path.name)
        try:
            if not run.entry_digest and path.exists():  # the daemon hashed the entry already; the CLI has not
                run.entry_digest = inbox.entry_digest(inbox.entry_files(path))
            parsed = run.register.parse(path, run.settings)
        except OSError as error:
            raise InfrastructureError(f"cannot read {path}: {error}") from error
        release_freed_memory()  # the parse's garbage, before the delta is built on top of its result
        run.timings["parse"] = time.perf_counter() - began
        parsed.name = path.name  # operators know a dataset by its inbox entry, whatever files it holds
        log.info("dataset parsed", dataset=parsed.name, version=parsed.version, rows=parsed.rows_read,
                 files=parsed.files, **parsed.details)
        run.parsed = parsed
        # Compared with the snapshot of the last import, and remembered for the next one.
        run.digests = {spec.name: row_digests(spec, parsed.frames[spec.name]) for spec in run.register.tables}
        if not run.validate_only:
            # Made now, while the parsed rows are all the run holds, rather than beside the loads' rows at the end.
            run.open_state = {spec.name: open_state(spec, parsed.frames[spec.name], run.digests[spec.name])
                              for spec in run.register.tables}

    def _load(
        self, engine: sa.Engine, database: str, run: Run, planned: list[TableDelta] | None, known: Snapshot | None
    ) -> _Outcome:
        status = ImportStatus.of(run.register)
        commit = not run.validate_only
        status_id: int | None = None
        if commit:
            with _infrastructure_errors(f"recording the start in {database}"):
                status_id = status.start(engine, Started(
                    run_id=run.id, dataset=run.data.name, version=run.data.version, files=run.data.files,
                    digest=run.entry_digest, transaction_time=run.at, started=whole_seconds(self.clock.now()),
                ))
        try:
            with _infrastructure_errors(f"importing into {database}"), engine.connect() as connection, \
                    self.locks.fence(connection, run.register.name):
                outcome = self._load_in_transaction(connection, run, planned, known,
                                                    notify=commit and database == "production")
                if status_id is not None:
                    status.succeed(connection, status_id, Succeeded(
                        ended=whole_seconds(self.clock.now()), valid_from=outcome.valid_from, counts=outcome.counts,
                        forced=bool(outcome.notes), message="\n".join(outcome.warnings + outcome.notes),
                    ))
                    connection.commit()
                else:
                    connection.rollback()
                log.info(f"{database} {'committed' if commit else 'rolled back'}", dataset=run.data.name)
                return outcome
        except Exception as error:
            if status_id is not None:
                self._record_failure(engine, status, status_id, failure_message(error))
            raise

    def _load_in_transaction(
        self, connection: sa.Connection, run: Run, planned: list[TableDelta] | None, known: Snapshot | None,
        notify: bool = False,
    ) -> _Outcome:
        """The import in one database. Preflight computes the delta (`planned` is None) against the open
        rows, read in bulk or `known` from the snapshot of the last import; production applies the very same
        delta. Wherever the rows were not read here, the counts are checked against this database's rows.
        `notify`: write the import's change notifications too (production), in this transaction."""
        register, parsed = run.register, run.data
        previous = ImportStatus.of(register).latest_success(connection)
        # Restored test data is not in a full dump: its keys stay open however the dump reads. The snapshot of the
        # last import knows nothing of them, so while there are any the open rows are read.
        kept = test_keys.of(connection, register.name)
        try:
            context = SequenceContext(now=whole_seconds(self.clock.now()), settings=run.settings, force=run.force)
            sequenced = register.check_sequence(previous, parsed, context)
            if planned is None:
                deltas = [
                    compute_delta(connection, spec, parsed.frames[spec.name], valid_from=sequenced.valid_from,
                                  transaction_time=run.at, digests=run.digests[spec.name],
                                  known_open=known.open_state.get(spec.name) if known is not None and not kept
                                  else None,
                                  keep_open=kept if len(spec.key) == 1 else None)
                    for spec in register.tables
                ]
            else:
                deltas = planned
            notes = [*sequenced.notes, *register.check_delta(deltas, run.settings, run.force)]
        except DataError as error:
            raise error.in_file(parsed.name) from None
        for note in notes:
            log.warning("guard overridden", note=note)
        closing = notifications.closed_ids(connection, register, deltas) if notify else None
        for delta in deltas:
            apply_delta(connection, delta, verify_unchanged=planned is not None or known is not None)
            if kept and len(delta.spec.key) == 1 and len(delta.new_versions):
                # A key the register now delivers itself is its own again, no longer test data.
                test_keys.forget(connection, register.name, delta.new_versions.frame[delta.spec.key[0]].astype(str))
        register.after_load(connection, deltas)
        if closing is not None:
            notifications.record_import(connection, register, deltas, closing)
        warnings = [*parsed.warnings, *sequenced.warnings]
        counts = RunCounts(
            rows_read=parsed.rows_read,
            inserted=sum(d.inserted for d in deltas),
            updated=sum(d.updated for d in deltas),
            closed=sum(d.closed for d in deltas),
            unchanged=sum(d.unchanged for d in deltas),
            warnings=len(warnings),
        )
        return _Outcome(counts=counts, valid_from=sequenced.valid_from, warnings=warnings, notes=notes, deltas=deltas)

    def _record_failure(self, engine: sa.Engine, status: ImportStatus, status_id: int, message: str) -> None:
        try:
            status.fail(engine, status_id, ended=whole_seconds(self.clock.now()), message=message)
        except Exception as error:
            # The database that failed the import may be the one that is down; the log keeps the record.
            log.error("could not record the failure", status_id=status_id, reason=_reason(error))

    def _record_failed_run(self, run: Run, error: BaseException) -> None:
        """Every run leaves a row in both databases, however early it failed. A database that cannot be
        reached now (often the reason the run failed) gets it before the register's next run."""
        failed = FailedRun(run.id, run.path.name, whole_seconds(run.started), whole_seconds(self.clock.now()),
                           failure_message(error))
        for database in self._databases():
            with self._guard:
                self._unrecorded.setdefault((run.register.name, database), []).append(failed)
            try:
                self._write_unrecorded(run.register, database)
            except Exception as failure:
                log.error("could not record the failed run yet", database=database, reason=_reason(failure))

    def _write_unrecorded(self, register: Register, database: str) -> None:
        engine = self._databases()[database]
        with self._guard:
            pending = list(self._unrecorded.get((register.name, database), []))
        for failed in pending:
            ImportStatus.of(register).record_failure(engine, failed)
            with self._guard:
                self._unrecorded[(register.name, database)].remove(failed)

    def end_interrupted_runs(self, register: Register) -> None:
        """Under the register lock, before its next run: failures that could not be written when they happened
        are written now; a status row still running after that belongs to a process that died: say so."""
        for database, engine in self._databases().items():
            with _infrastructure_errors(f"ending interrupted runs in {database}"):
                self._write_unrecorded(register, database)
                ImportStatus.of(register).end_interrupted(engine, whole_seconds(self.clock.now()))

    def next_transaction_time(self, register: Register) -> datetime:
        """Whole seconds, strictly later than anything the register holds in either database: every run's and
        every test-data operation's rows. The feed pages on it: a later commit must sort after every token."""
        candidate = whole_seconds(self.clock.now())
        for engine in self._databases().values():
            with engine.connect() as connection:
                latest = latest_change(connection, register)
            if latest is not None and latest >= candidate:
                candidate = latest + timedelta(seconds=1)
        return candidate

    def in_step(self, register: Register) -> None:
        """Both databases hold the same history of the register (re-synchronised from production if not)."""
        with _infrastructure_errors("preparing"):
            self._resynchronise_if_needed(register)

    def _resynchronise_if_needed(self, register: Register) -> datetime | None:
        """Returns the transaction time both databases agree they are at, if they were in step."""
        with self.preflight.connect() as pre, self.production.connect() as prod:
            preflight_time = latest_change(pre, register)
            production_time = latest_change(prod, register)
        if preflight_time == production_time:
            return production_time
        log.warning(
            "preflight out of step with production, re-synchronising",
            preflight=str(preflight_time),
            production=str(production_time),
        )
        self.snapshots.forget(register.name)
        resynchronise(register, self.production, self.preflight, self._fence(register))
        return None


def latest_change(connection: sa.Connection, register: Register) -> datetime | None:
    """The newest moment the register's data changed in this database: its last successful run, or a later
    test-data restore or reset (which write rows, not runs). Both databases agree on it when they are in step,
    and the snapshot of the last import is valid only while it is that import's time. MAX(ModifiedDate) reads
    the end of each table's (ModifiedDate, PID) index."""
    moments = [ImportStatus.of(register).latest_success_time(connection)]
    for spec in register.tables:
        moments.append(connection.execute(sa.select(sa.func.max(spec.table.c.ModifiedDate))).scalar())
    known = [moment for moment in moments if moment is not None]
    return max(known) if known else None


def resynchronise(register: Register, source: sa.Engine, target: sa.Engine,
                  fence: Callable[[sa.Connection], AbstractContextManager[None]] | None = None) -> None:
    """Make the target's copy of a register equal to the source's, in one target transaction.

    The history tables are copied row for row (surrogate keys included), derived tables rebuilt, and the
    target's status rows brought in line (see ImportStatus.align), so both agree on what was imported last.
    `fence`: what the register lock asks of a writing transaction (Pipeline.locks.fence).
    """
    with source.connect() as src, target.connect() as dst, (fence or _unfenced)(dst):
        for spec in register.tables:
            dst.execute(spec.table.delete())
            copy_table(src, dst, spec.table)
        test_keys.copy(src, dst, register.name)
        register.after_load(dst, None)
        ImportStatus.of(register).align(src, dst)
        dst.commit()
    log.info("preflight re-synchronised", tables=[spec.name for spec in register.tables])
    # Preflight was out of step with production, whose data may have changed behind its subscribers' back (a
    # restore, a hand edit): they are told to bootstrap again.
    with source.begin() as connection:
        notifications.notify_system(connection, register.name, None, notifications.RESYNCHRONISED)


def _unfenced(_: sa.Connection) -> AbstractContextManager[None]:
    return nullcontext()


def copy_table(source: sa.Connection, target: sa.Connection, table: sa.Table, batch: int = 100_000) -> None:
    """Every row of `table`, surrogate keys included, streamed in batches through the bulk path."""
    names = [column.name for column in table.columns]
    result = source.execution_options(stream_results=True).execute(sa.select(table))
    while rows := result.fetchmany(batch):
        insert_frame(target, table, pd.DataFrame([tuple(row) for row in rows], columns=names, dtype=object), {})


@contextmanager
def _infrastructure_errors(doing: str) -> Iterator[None]:
    """Database and file-system failures are the environment's fault: never lock, retry later."""
    try:
        yield
    except InfrastructureError:
        raise
    except Exception as error:
        infrastructure = as_infrastructure(error, doing)
        if infrastructure is None:
            raise
        raise infrastructure from error


def failure_message(error: BaseException) -> str:
    """What a FAILURE row says: a refusal with its file, line and rule; otherwise what went wrong, and whose
    fault it was. CPR numbers masked, like everything else that is kept."""
    if isinstance(error, DataError):
        return mask_cpr(f"refused ({error.rule}): {error}")
    if isinstance(error, InfrastructureError):
        return mask_cpr(f"infrastructure error: {error}")
    return mask_cpr(f"internal error: {type(error).__name__}: {error}")


def _reason(error: BaseException) -> str:
    text = str(getattr(error, "orig", None) or error)
    return mask_cpr(text.splitlines()[0]) if text else type(error).__name__
