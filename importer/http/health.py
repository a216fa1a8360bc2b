"""Is the importer healthy? The one answer behind /status and the locked/overdue metrics.

Read fresh from the production database and the inbox on every call, so the answer is true for CLI imports
and other daemons too, and survives restarts. Failing reasons rank: a locked register (an operator must act)
before an overdue one (data is getting stale) before an unreachable database (usually transient). Before them all
comes a host whose every façade database lags more than max_lag_s behind the importers' heartbeat: that is answered
503, so a balancer takes the host out (README, "Beyond one machine").
"""

import json
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from importer.clock import Clock
from importer.config import Settings
from importer.db import create_engine, table_exists
from importer.errors import ImporterError
from importer.http.database import FacadeDatabase, Lag
from importer.load import inbox, migrate
from importer.load.plugin import Register
from importer.load.status import ImportStatus
from importer.privacy import mask_cpr


@dataclass(frozen=True)
class LastImport:
    run_id: str | None
    dataset: str | None
    outcome: str  # SUCCESS, FAILURE, REVERTED or RUNNING
    started: datetime
    ended: datetime | None
    rows_changed: int


@dataclass(frozen=True)
class RegisterHealth:
    register: str
    locked: str | None  # the first line of the LOCKED file
    overdue: bool
    max_age_days: float
    last: LastImport | None
    last_success: datetime | None


@dataclass(frozen=True)
class HealthReport:
    ok: bool
    reason: str | None
    registers: list[RegisterHealth] = field(default_factory=list)
    database_error: str | None = None
    problems: list[str] = field(default_factory=list)  # what the importer itself reports (start-up, retries)
    lags: list[Lag] = field(default_factory=list)  # how far each façade database is behind (README, "Beyond …")
    lagging: bool = False  # every façade database is more than max_lag_s behind: answered 503
    max_lag_s: float = 0.0

    def as_text(self) -> str:
        lines = ["OK" if self.ok else f"ERROR {self.reason}"]
        for item in self.registers:
            lines.append(_describe(item))
        if self.database_error:
            lines.append(f"database: {self.database_error}")
        lines.extend(_describe_lag(lag, self.max_lag_s, len(self.lags) > 1) for lag in self.lags)
        lines.extend(f"problem: {problem}" for problem in self.problems)
        return "\n".join(lines) + "\n"

    def as_json(self) -> str:
        return json.dumps(
            {
                "ok": self.ok,
                "reason": self.reason,
                "database_error": self.database_error,
                "problems": self.problems,
                "registers": [_as_dict(item) for item in self.registers],
                "lagging": self.lagging,
                "max_lag_s": self.max_lag_s,
                "lag": [{"database": lag.database, "lag_s": lag.lag_s, "heartbeat": _iso(lag.heartbeat),
                         "measured": lag.measured, "error": lag.error} for lag in self.lags],
            },
            indent=2,
        )


class HealthChecker:
    """Owns a production engine of its own, created lazily so an unreachable database is a report, not a crash."""

    def __init__(self, settings: Settings, registers: dict[str, Register], clock: Clock, *,
                 facades: FacadeDatabase | None = None, status_urls: Sequence[str] = ()) -> None:
        """`facades`: the façades' databases, whose lag /status reports; `status_urls`: where the status tables are
        read (the first that answers; default the production URL): a `serve` host reads its façade databases."""
        self.settings = settings
        self.registers = registers
        self.clock = clock
        self.timeout_s = float(settings.daemon["status_timeout_s"])
        self.facades = facades
        self._urls = list(status_urls) or [settings.production_url]
        self._engines: dict[str, sa.Engine] = {}
        self._problems: dict[str, str] = {}
        self._guard = threading.Lock()

    def close(self) -> None:
        for engine in self._engines.values():
            engine.dispose()

    def report_problem(self, source: str, problem: str | None) -> None:
        """The importer's own trouble (it cannot start, a register keeps failing): red until cleared with None."""
        with self._guard:
            if problem is None:
                self._problems.pop(source, None)
            else:
                self._problems[source] = mask_cpr(problem.splitlines()[0] if problem else source)

    def unanswered(self) -> HealthReport:
        """The report when the database did not answer within `timeout_s`: everything but the database."""
        return self.check(database_error=f"production database did not answer within {self.timeout_s:g} s")

    def check(self, database_error: str | None = None) -> HealthReport:
        now = self.clock.now()
        rows: dict[str, tuple[dict[str, Any] | None, datetime | None]] = {}
        if database_error is None:
            try:
                rows = self._read_status()
            except (sa.exc.SQLAlchemyError, ImporterError, OSError) as error:
                detail = getattr(error, "orig", None) or error
                database_error = mask_cpr(f"production database unreachable: {detail}".splitlines()[0])
            except SchemaBehind as error:
                database_error = str(error)
        items = []
        for name, register in self.registers.items():
            config = self.settings.for_register(name, register.settings_defaults)
            max_age = float(config.get("max_age_days") or 0)
            last_row, last_success = rows.get(name, (None, None))
            lock = inbox.lock_reason(self.settings.inbox, name)
            lock_line = (lock.strip().splitlines() or ["locked"])[0] if lock is not None else None
            overdue = bool(max_age > 0 and last_success is not None and now - last_success > timedelta(days=max_age))
            items.append(RegisterHealth(
                register=name,
                locked=mask_cpr(lock_line) if lock_line is not None else None,
                overdue=overdue,
                max_age_days=max_age,
                last=_last_import(last_row) if last_row else None,
                last_success=last_success,
            ))
        with self._guard:
            problems = list(self._problems.values())
        lags = self.facades.lags() if self.facades is not None and database_error is None else []
        max_lag_s = self.facades.max_lag_s if self.facades is not None else 0.0
        lagging = max_lag_s > 0 and any(lag.lag_s is not None and lag.lag_s > max_lag_s for lag in lags) and not any(
            lag.within(max_lag_s) for lag in lags)
        reason = _lag_reason(lags, max_lag_s) if lagging else _first_reason(items, database_error, problems)
        return HealthReport(ok=reason is None, reason=reason, registers=items, database_error=database_error,
                            problems=problems, lags=lags, lagging=lagging, max_lag_s=max_lag_s)

    def connect(self) -> sa.Connection:
        """A connection to the database this report reads, read-only and bounded by `timeout_s` (the operator's page
        reads the run history and the feed's head through it too)."""
        failure: Exception | None = None
        for url in self._urls:
            with self._guard:  # /status and the page may ask at the same moment: one engine per database
                if url not in self._engines:
                    # Read-only: on SQLite a writer's connection begins IMMEDIATE and would queue behind an import.
                    self._engines[url] = create_engine(url, readonly=True, timeout_s=self.timeout_s)
                engine = self._engines[url]
            try:
                return engine.connect()
            except sa.exc.DBAPIError as error:  # a serve host with several databases: the next may answer
                failure = error
        assert failure is not None
        raise failure

    def _read_status(self) -> dict[str, tuple[dict[str, Any] | None, datetime | None]]:
        result: dict[str, tuple[dict[str, Any] | None, datetime | None]] = {}
        with self.connect() as connection:
            revision, head = migrate.revision_of(connection), migrate.head_revision()
            if revision != head:
                raise SchemaBehind(f"production database at schema revision {revision or 'none'}, expected {head}")
            for name, register in self.registers.items():
                status = ImportStatus.of(register)
                if not table_exists(connection, status.table.name):
                    result[name] = (None, None)
                    continue
                recent = status.recent(connection)
                result[name] = (recent[0] if recent else None, status.last_success_end(connection))
        return result


class SchemaBehind(Exception):
    """The database is not at the schema this importer expects: nothing can be imported or served right."""


def _first_reason(items: list[RegisterHealth], database_error: str | None, problems: list[str]) -> str | None:
    for item in items:
        if item.locked is not None:
            return f"register {item.register} is locked: {item.locked}"
    for item in items:
        if item.overdue:
            return (f"register {item.register} is overdue: no successful import within {item.max_age_days:g} days "
                    f"(last {item.last_success:%Y-%m-%d %H:%M:%S})")
    return database_error or (problems[0] if problems else None)


def _lag_reason(lags: list[Lag], max_lag_s: float) -> str:
    worst = min((lag for lag in lags if lag.lag_s is not None), key=lambda lag: lag.lag_s or 0.0)
    which = "database is" if len(lags) == 1 else f"databases are all more than {max_lag_s:g} s behind; the least,"
    return (f"{which} {worst.lag_s:.0f} s behind the importers (newest heartbeat {worst.heartbeat:%Y-%m-%d %H:%M:%S};"
            f" limit max_lag_s = {max_lag_s:g} s)")


def _describe_lag(lag: Lag, max_lag_s: float, named: bool) -> str:
    where = f"lag of {lag.database}" if named else "lag"
    if not lag.measured:
        return f"{where}: none (the façades read the importer's own SQLite database)"
    if lag.error is not None:
        return f"{where}: unknown, the database cannot be read: {lag.error}"
    if lag.lag_s is None:
        return f"{where}: unknown, no importer heartbeat in the database yet"
    limit = f"limit {max_lag_s:g} s" if max_lag_s > 0 else "no limit"
    return (f"{where}: {lag.lag_s:.0f} s behind the importers (newest heartbeat {lag.heartbeat:%Y-%m-%d %H:%M:%S}; "
            f"{limit})")


def _last_import(row: dict[str, Any]) -> LastImport:
    changed = sum(int(row.get(key) or 0) for key in ("RowsInserted", "RowsUpdated", "RowsClosed"))
    return LastImport(
        run_id=row.get("RunId"),
        dataset=row.get("Dataset"),
        outcome=row.get("Outcome") or "RUNNING",
        started=row["StartTime"],
        ended=row.get("EndTime"),
        rows_changed=changed,
    )


def _describe(item: RegisterHealth) -> str:
    flags = "".join(f" [{flag}]" for flag, on in (("LOCKED", item.locked), ("OVERDUE", item.overdue)) if on)
    if item.last is None:
        return f"{item.register}{flags}: never run"
    last = item.last
    ended = f"{last.ended:%Y-%m-%d %H:%M:%S}" if last.ended else "-"
    success = f"{item.last_success:%Y-%m-%d %H:%M:%S}" if item.last_success else "never"
    return (f"{item.register}{flags}: last import started {last.started:%Y-%m-%d %H:%M:%S}, ended {ended}, "
            f"{last.outcome}, dataset {last.dataset}, rows changed {last.rows_changed}; last success {success}")


def _as_dict(item: RegisterHealth) -> dict[str, Any]:
    last = item.last
    return {
        "register": item.register,
        "locked": item.locked is not None,
        "lock_reason": item.locked,
        "overdue": item.overdue,
        "max_age_days": item.max_age_days,
        "last_success": _iso(item.last_success),
        "last_import": None if last is None else {
            "run_id": last.run_id,
            "dataset": last.dataset,
            "outcome": last.outcome,
            "started": _iso(last.started),
            "ended": _iso(last.ended),
            "rows_changed": last.rows_changed,
        },
    }


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat(sep=" ")
