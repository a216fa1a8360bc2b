"""Prometheus metrics of the importer, in a registry of its own (no process-global default collectors).

Labels are only ever register, stage, operation, reason and a notification topic (plus the version on build
info): never a file name, dataset name or anything read from a dataset, so no personal data and a bounded number
of series.
"""

import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info, generate_latest

from importer import __version__
from importer.http.health import HealthReport
from importer.load.pipeline import RunSummary
from importer.load.subscriptions import TopicStatistics

STAGES = ("parse", "preflight", "production")
OPERATIONS = ("insert", "update", "close", "unchanged")
# Imports range from a second (a small daily dump) to many minutes (a full release on a busy database).
DURATION_BUCKETS = (0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

_UNSAFE = re.compile(r"[^a-z0-9_-]+")


class ImporterMetrics:
    def __init__(self, registers: Iterable[str]) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.last_success = Gauge("stamdata_import_last_success_timestamp_seconds",
                                  "End of the newest successful import (epoch seconds, UTC)", ["register"], registry=r)
        self.last_attempt = Gauge("stamdata_import_last_attempt_timestamp_seconds",
                                  "Start of the newest import attempt (epoch seconds, UTC)", ["register"], registry=r)
        self.duration = Histogram("stamdata_import_stage_duration_seconds", "Time spent per import stage",
                                  ["register", "stage"], buckets=DURATION_BUCKETS, registry=r)
        self.rows = Counter("stamdata_import_rows", "Rows by what the import did with them",
                            ["register", "operation"], registry=r)
        self.imports = Counter("stamdata_import_datasets", "Datasets imported into production",
                               ["register"], registry=r)
        self.failures = Counter("stamdata_import_failures", "Failed import attempts by reason (a data rule or "
                                "'infrastructure')", ["register", "reason"], registry=r)
        self.set_aside = Counter("stamdata_inbox_set_aside", "Inbox entries moved to set-aside/ because they are no "
                                 "dataset (reason: symlink, not-a-regular-file, not-a-dataset)", ["register", "reason"],
                                 registry=r)
        self.pending = Gauge("stamdata_import_pending_datasets", "Datasets waiting in the inbox or claimed",
                             ["register"], registry=r)
        self.locked = Gauge("stamdata_register_locked", "1 while the register is locked after a refused dataset",
                            ["register"], registry=r)
        self.overdue = Gauge("stamdata_register_overdue", "1 when no successful import within the maximum age",
                             ["register"], registry=r)
        self.database_up = Gauge("stamdata_production_database_up", "1 when the status page could read production",
                                 registry=r)
        self.lag = Gauge("stamdata_facade_database_lag_seconds", "How far the least lagging façade database is "
                         "behind the importers' heartbeat (absent: not known)", registry=r)
        self.lagging = Gauge("stamdata_facade_database_lagging", "1 when every façade database is more than max_lag_s "
                             "behind (/status answers 503)", registry=r)
        # Change notifications, as the daemon's housekeeping finds them (importer/daemon/notifications.py).
        self.notifications_pending = Gauge("stamdata_notifications_pending", "Change notifications matched to pull "
                                           "points and not fetched yet", ["topic"], registry=r)
        self.notifications_oldest = Gauge("stamdata_notifications_oldest_unfetched_age_seconds", "Age of the oldest "
                                          "unfetched change notification (0: none)", ["topic"], registry=r)
        self.notifications_lost = Counter("stamdata_notifications_lost", "Change notifications purged unfetched after "
                                          "the retention (their pull points got a lost system notification)",
                                          ["topic"], registry=r)
        self.notifications_lost_waiting = Gauge("stamdata_notifications_lost_unfetched", "Lost system notifications "
                                                "their pull points have not fetched yet", ["topic"], registry=r)
        self.build = Info("stamdata_importer_build", "Version of the running importer", registry=r)
        self.build.info({"version": __version__})
        for register in registers:  # every series exists from the start, so absent means "not scraped"
            for stage in STAGES:
                self.duration.labels(register, stage)
            for operation in OPERATIONS:
                self.rows.labels(register, operation)
            self.imports.labels(register)
            self.pending.labels(register).set(0)
            self.locked.labels(register).set(0)
            self.overdue.labels(register).set(0)

    def imported(self, summary: RunSummary) -> None:
        register = summary.register
        for stage, seconds in summary.timings.items():
            self.duration.labels(register, stage).observe(seconds)
        counts = summary.counts
        for operation, value in zip(OPERATIONS, (counts.inserted, counts.updated, counts.closed, counts.unchanged),
                                    strict=True):
            self.rows.labels(register, operation).inc(value)
        self.imports.labels(register).inc()

    def failed(self, register: str, reason: str) -> None:
        self.failures.labels(register, _UNSAFE.sub("_", reason.lower())[:64] or "unknown").inc()

    def observe_health(self, report: HealthReport) -> None:
        self.database_up.set(0 if report.database_error else 1)
        self.lagging.set(1 if report.lagging else 0)
        known = [lag.lag_s for lag in report.lags if lag.lag_s is not None]
        if known:
            self.lag.set(min(known))
        for item in report.registers:
            self.locked.labels(item.register).set(1 if item.locked else 0)
            self.overdue.labels(item.register).set(1 if item.overdue else 0)
            if report.database_error:
                continue  # keep the last known timestamps rather than pretend there were none
            if item.last_success is not None:
                self.last_success.labels(item.register).set(_epoch(item.last_success))
            if item.last is not None:
                self.last_attempt.labels(item.register).set(_epoch(item.last.started))

    def observe_notifications(self, statistics: Mapping[str, TopicStatistics], topics: Iterable[str],
                              now: datetime) -> None:
        """What waits on pull points, per topic (every known topic has its series, 0 when nothing waits)."""
        for topic in sorted({*topics, *statistics}):
            found = statistics.get(topic)
            self.notifications_pending.labels(topic).set(found.pending if found else 0)
            oldest = found.oldest if found else None
            self.notifications_oldest.labels(topic).set(max(0.0, (now - oldest).total_seconds()) if oldest else 0)
            self.notifications_lost_waiting.labels(topic).set(found.lost_waiting if found else 0)
            self.notifications_lost.labels(topic)

    def purged(self, lost: Mapping[str, int]) -> None:
        for topic, count in lost.items():
            self.notifications_lost.labels(topic).inc(count)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


def _epoch(moment: datetime) -> float:
    return moment.replace(tzinfo=UTC).timestamp()
