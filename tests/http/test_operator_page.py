"""The operator's page at `/` and its unlock action, from `create_app` in-process (the browser tests drive the real
daemon): what the page says about each register, the queue as the daemon's worker explains it, the history chart,
the feed's head, `/docs` from the package, and who may unlock."""

import hashlib
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import lxml.html
import pytest
import structlog
from fastapi.testclient import TestClient

from importer.config import Settings
from importer.daemon.loop import Options, RegisterWorker, Shared
from importer.daemon.readiness import SETTLE_S
from importer.daemon.systemd import Notifier
from importer.errors import DataError
from importer.http import dashboard
from importer.http.app import FacadeServices, create_app
from importer.http.audit import Auditor
from importer.http.database import FacadeDatabase
from importer.http.health import HealthChecker
from importer.http.metrics import ImporterMetrics
from importer.load import inbox
from importer.load.pipeline import Pipeline
from importer.load.plugin import discover
from importer.load.status import PastRun
from tests.conftest import Databases
from tests.daemon.clock import ManualClock
from tests.http.server import add_client
from tests.registers.autorisation.kit import FIRST, SECOND, write_dump

REGISTERS = discover()
AUTORISATION = REGISTERS["autorisation"]
CPR_LIKE = re.compile(r"(?<!\d)\d{6}-?\d{4}(?!\d)")
REFUSED = [FIRST[0], "0C3D4;12345;X;Y;5166"]  # a CPR that is not 10 digits: rule `cpr`, line 2


class StandInImporter:
    """The daemon's side of the page: every head of a queue is ready, and the wake-ups are counted."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.woken: list[str] = []

    def queue(self, register: str) -> list[dashboard.Waiting]:
        return dashboard.explain_queue(self.root, register, lambda _entry: "ready: imported at the next rescan")

    def wake(self, register: str) -> None:
        self.woken.append(register)


def history(databases: Databases, tmp_path: Path) -> None:
    """Two imports and a refusal, as the daemon leaves them: the refused dataset locks the register."""
    clock = ManualClock(datetime(2026, 11, 22, 5, 0, 0))
    pipeline = Pipeline(databases.settings(), clock)
    try:
        pipeline.import_dataset(AUTORISATION, write_dump(tmp_path / "drops", "20261120AutDK.csv", FIRST))
        clock.advance(3600)
        pipeline.import_dataset(AUTORISATION, write_dump(tmp_path / "drops", "20261121AutDK.csv", SECOND))
        clock.advance(1800)
        with pytest.raises(DataError) as refused:
            pipeline.import_dataset(AUTORISATION, write_dump(tmp_path / "drops", "20261122AutDK.csv", REFUSED))
    finally:
        pipeline.close()
    inbox.lock(databases.inbox, "autorisation", f"dataset 20261122AutDK.csv refused (cpr): {refused.value}\n"
               "Fix or remove the cause, then run: stamdata-importer unlock autorisation")


@dataclass
class Page:
    client: TestClient
    importer: StandInImporter | None
    settings: Settings

    def html(self) -> lxml.html.HtmlElement:
        response = self.client.get("/")
        assert response.status_code == 200 and response.headers["content-type"] == "text/html; charset=utf-8"
        return lxml.html.fromstring(response.text)


@contextmanager
def page(databases: Databases, *, with_importer: bool = True, with_facades: bool = True, **env: str) -> Iterator[Page]:
    settings = databases.settings(**env)
    clock = ManualClock(datetime(2026, 11, 22, 7, 0, 0))
    health = HealthChecker(settings, REGISTERS, clock)
    importer = StandInImporter(settings.inbox) if with_importer else None
    services = None
    if with_facades:
        services = FacadeServices(FacadeDatabase(settings.facade_database_url, clock),
                                  Auditor(settings.service_database_url, clock))
    app = create_app(health, ImporterMetrics(REGISTERS), services, list(REGISTERS.values()), importer=importer)
    try:
        with TestClient(app) as client:
            yield Page(client, importer, settings)
    finally:
        health.close()
        if services is not None:
            services.database.close()
            services.audit.close()


def text(element: lxml.html.HtmlElement) -> str:
    return " ".join(element.text_content().split())


def test_the_page_shows_each_register_with_its_state_history_queue_and_feed_head(
    databases: Databases, tmp_path: Path
) -> None:
    history(databases, tmp_path)
    write_dump(databases.inbox / "autorisation", "20261123AutDK.csv", FIRST)
    with page(databases) as operator:
        response = operator.client.get("/")
        document = operator.html()
    assert "default-src 'none'" in response.headers["content-security-policy"]
    assert response.headers["cache-control"] == "no-store"

    locked = document.get_element_by_id("register-autorisation")
    assert "state-locked" in locked.classes
    assert text(locked.find_class("badge")[0]) == "locked"
    assert ("dataset 20261122AutDK.csv refused (cpr): 20261122AutDK.csv:2: cpr: column 2 (cpr) must be 10 digits"
            in text(locked))
    assert "stamdata-importer unlock autorisation" in text(locked)
    assert "SUCCESS" not in text(locked) and "FAILURE 20261122AutDK.csv" in text(locked), "the last attempt"
    assert "2026-11-22 06:00:00 UTC" in text(locked), "the last success"
    calm = document.get_element_by_id("register-doseringsforslag")
    assert "state-ok" in calm.classes and "no import yet" in text(calm)
    assert "ERROR register autorisation is locked" in text(document.find_class("overall")[0])

    unlock = document.get_element_by_id("unlock-autorisation")
    form = unlock.find_class("unlock-form")[0]
    assert form.get("hidden") is not None, "shown by the script only: without it the page gives the commands"
    assert form.get("data-lock") == dashboard.lock_id(inbox.lock_reason(databases.inbox, "autorisation") or "")
    assert "curl -X POST" in text(unlock) and "/registers/autorisation/unlock" in text(unlock)

    (queued,) = document.get_element_by_id("queue").xpath(".//table[@class='queue']/tbody/tr")
    assert text(queued).startswith("20261123AutDK.csv") and "held: the register is locked" in text(queued)

    chart = document.get_element_by_id("history-autorisation")
    assert len(chart.xpath(".//*[local-name()='circle'][contains(@class, 'point')]")) == 3, "one point per run"
    assert len(chart.xpath(".//*[local-name()='g'][contains(@class, 'run-refused')]")) == 1
    assert "3 runs, 2 succeeded, 1 refused" in text(chart)
    assert len(chart.xpath(".//table[@class='runs']/tbody/tr")) == 3
    assert "no runs yet" in text(document.get_element_by_id("history-doseringsforslag"))

    heads = {text(row.xpath("./th")[0]): text(row.xpath("./td")[0])
             for row in document.get_element_by_id("feed").xpath(".//tbody/tr")}
    assert re.fullmatch(r"\d{20}", heads["autorisationsregisteret/autorisation/v1"])
    assert heads["doseringsforslag/drug/v1"] == "—"

    # Relative, so the page works behind a proxy that serves it under a path of its own.
    assert {link.get("href") for link in document.xpath("//nav//a")} == {"status", "metrics", "openapi.json", "docs"}
    assert not CPR_LIKE.search(response.text), "no personal data on the page"


def test_unlocking_needs_the_operator_scope_and_the_register_named_and_is_logged_with_the_client(
    sqlite_databases: Databases, tmp_path: Path
) -> None:
    databases = sqlite_databases
    history(databases, tmp_path)
    operator_token = add_client(databases, "ops-anna", "operator")
    reader_token = add_client(databases, "region-h", "feed:autorisation")
    lock = dashboard.lock_id(inbox.lock_reason(databases.inbox, "autorisation") or "")
    url = "/registers/autorisation/unlock"
    with page(databases) as operator:
        post = operator.client.post
        assert post(url, json={"confirm": "autorisation"}).status_code == 401
        denied = post(url, json={"confirm": "autorisation"}, headers={"Authorization": f"Bearer {reader_token}"})
        assert denied.status_code == 403 and denied.headers["content-type"] == "application/problem+json"
        auth = {"Authorization": f"Bearer {operator_token}"}
        assert post(url, json={"confirm": "doseringsforslag"}, headers=auth).status_code == 422
        assert post(url, json={}, headers=auth).status_code == 422
        assert post("/registers/nosuch/unlock", json={"confirm": "nosuch"}, headers=auth).status_code == 404
        stale = post(url, json={"confirm": "autorisation", "lock": "0" * 16}, headers=auth)
        assert stale.status_code == 409 and inbox.lock_reason(databases.inbox, "autorisation") is not None

        with structlog.testing.capture_logs() as logs:
            done = post(url, json={"confirm": "autorisation", "lock": lock}, headers=auth)
        assert done.status_code == 200, done.text
        assert done.json() == {"register": "autorisation", "unlocked": True, "was": (
            "dataset 20261122AutDK.csv refused (cpr): 20261122AutDK.csv:2: cpr: column 2 (cpr) must be 10 digits")}
        assert inbox.lock_reason(databases.inbox, "autorisation") is None
        assert operator.importer is not None and operator.importer.woken == ["autorisation"]
        (event,) = [log for log in logs if log["event"] == "register unlocked by an operator"]
        assert (event["client"], event["register"], event["log_level"]) == ("ops-anna", "autorisation", "warning")

        again = post(url, json={"confirm": "autorisation"}, headers=auth)
        assert again.status_code == 200 and again.json()["unlocked"] is False
        assert "state-locked" not in operator.html().get_element_by_id("register-autorisation").classes

        document = operator.client.get("/openapi.json").json()
        operation = document["paths"]["/registers/{register}/unlock"]["post"]
        assert operation["security"] == [{"bearerAuth": ["operator"]}, {"mutualTLS": ["operator"]}]
        assert "/" not in document["paths"] and "/docs" not in document["paths"]


def test_without_an_importer_the_page_lists_the_inbox_from_disk_and_offers_no_unlock(
    sqlite_databases: Databases, tmp_path: Path
) -> None:
    """`stamdata-importer serve`: no importer in the process, so no action that changes its files."""
    databases = sqlite_databases
    history(databases, tmp_path)
    write_dump(databases.inbox / "autorisation", "20261123AutDK.csv", FIRST)
    token = add_client(databases, "ops-anna", "operator")
    with page(databases, with_importer=False) as served:
        document = served.html()
        answer = served.client.post("/registers/autorisation/unlock", json={"confirm": "autorisation"},
                                    headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code in {404, 405}
    assert not document.find_class("unlock-form")
    assert "unlock on the importer host" in text(document.get_element_by_id("unlock-autorisation"))
    queued = text(document.get_element_by_id("queue"))
    assert "20261123AutDK.csv" in queued and "held: the register is locked" in queued
    assert "The inbox of doseringsforslag is not on this host" in queued

    inbox.unlock(databases.inbox, "autorisation")
    with page(databases, with_importer=False) as served:
        assert dashboard.SERVE_ONLY in text(served.html().get_element_by_id("queue"))


def test_the_page_answers_when_the_database_cannot_be_read(sqlite_databases: Databases, tmp_path: Path) -> None:
    missing = tmp_path / "no-such-dir" / "production.sqlite"
    with page(sqlite_databases, with_facades=False, STAMDATA_PRODUCTION_URL=f"sqlite:///{missing}") as operator:
        document = operator.html()
    assert "state-unknown" in document.get_element_by_id("register-autorisation").classes
    assert "production database unreachable" in text(document.get_element_by_id("registers"))
    assert "The run history cannot be read" in text(document.get_element_by_id("history"))


def test_docs_is_swagger_ui_from_files_in_the_package(sqlite_databases: Databases) -> None:
    with page(sqlite_databases, with_importer=False, with_facades=False) as operator:
        docs = operator.client.get("/docs")
        assert docs.status_code == 200 and "connect-src 'self'" in docs.headers["content-security-policy"]
        sources = lxml.html.fromstring(docs.text).xpath("//script/@src | //link/@href")
        assert sources and all(not re.match(r"^[a-z]+:|^//", source) for source in sources), sources
        for source in sources:
            assert operator.client.get(f"/{source}").status_code == 200, source
        front = operator.client.get("/").text
        assert not re.search(r"""(?:src|href)=["'](?:[a-z]+:|//)""", front), "the page loads nothing from elsewhere"
        assert operator.client.get("/static/nothing.js").status_code == 404
    vendored = dashboard.STATIC / "swagger-ui"
    for line in (vendored / "SHA256SUMS").read_text().splitlines():
        digest, name = line.split("  ")
        assert hashlib.sha256((vendored / name).read_bytes()).hexdigest() == digest, name
    assert (vendored / "LICENSE").read_text().startswith("\n                                 Apache License")


def test_the_worker_says_why_the_head_of_its_queue_is_not_imported_yet(sqlite_databases: Databases) -> None:
    """The daemon's reasons, by the same rules it imports by: settling, the quiet period, a marker, the backoff, and
    the datasets behind the head waiting for it."""
    settings = sqlite_databases.settings(STAMDATA_AUTORISATION_QUIET_PERIOD_S="10")
    clock = ManualClock()
    pipeline = Pipeline(settings, clock)
    try:
        root = settings.inbox
        inbox.prepare(root, "autorisation")
        worker = RegisterWorker(AUTORISATION, Shared(pipeline, settings, Options.from_settings(settings), clock,
                                                     ImporterMetrics(["autorisation"]), Notifier({}),
                                                     threading.Event()))
        assert worker.queue() == []
        write_dump(root / "autorisation", "20261120AutDK.csv", FIRST)
        write_dump(root / "autorisation", "20261121AutDK.csv", SECOND)
        assert not worker.step()
        head, behind = worker.queue()
        assert head.reason.startswith("settling: an entry arrived in the inbox 0.0 s ago")
        assert behind.reason == ("after 20261120AutDK.csv: a register's datasets are imported one at a time, in name "
                                 "order")
        clock.advance(SETTLE_S + 2)
        assert worker.queue()[0].reason.startswith("may still be being written: unchanged for 3 s of its quiet "
                                                   "period of 10 s")
        (root / "autorisation" / "20261120AutDK.csv.READY").touch()
        assert worker.queue()[0].reason == "ready: imported at the next rescan"
        worker.retry_at, worker.failures = clock.now().replace(hour=13, second=0), 2
        assert worker.queue()[0].reason == ("waiting to retry after an infrastructure error (attempt 2): next at "
                                            "13:00:00 UTC")
        inbox.lock(root, "autorisation", "dataset x refused (cpr): …")
        assert {item.reason for item in worker.queue()} == {
            "held: the register is locked, nothing is imported until an operator unlocks it"}
    finally:
        pipeline.close()


def test_the_chart_has_one_point_per_run_and_marks_refusals() -> None:
    started = datetime(2026, 11, 20, 6, 0, 0)
    runs = [PastRun(f"autorisation-{n}", f"2026112{n}AutDK.csv", outcome, started.replace(day=20 + n),
                    started.replace(day=20 + n, second=5 * n) if outcome else None, 10 * n, n, n, message)
            for n, outcome, message in ((0, "SUCCESS", None), (1, "FAILURE", "refused (cpr): x.csv:2: cpr: bad"),
                                        (2, "FAILURE", "infrastructure error: disk full"), (3, "SUCCESS", None),
                                        (4, None, None))]
    svg = lxml.html.fromstring(dashboard.chart("autorisation", runs, started.replace(day=24, second=30)))
    points = svg.xpath(".//*[local-name()='circle']")
    assert [point.get("class") for point in points] == ["point point-success", "point point-refused",
                                                        "point point-failed", "point point-success",
                                                        "point point-running"]
    assert len(svg.xpath(".//*[local-name()='path'][contains(@class, 'mark-refused')]")) == 1
    titles = svg.xpath(".//*[local-name()='g']/*[local-name()='title']")
    assert "refused, started 2026-11-21 06:00:00 UTC" in titles[1].text_content()
    assert "— refused (cpr): x.csv:2: cpr: bad" in titles[1].text_content()
    assert [dashboard._nice(value) for value in (0, 1, 3, 10, 11, 480, 2001)] == [1, 1, 5, 10, 20, 500, 5000]
