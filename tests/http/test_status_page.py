"""/status and /metrics from `create_app`, with the clock driven by the test."""

from datetime import datetime
from pathlib import Path

from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from importer.config import load_settings
from importer.http.app import create_app
from importer.http.health import HealthChecker
from importer.http.metrics import ImporterMetrics
from importer.load import inbox
from importer.load.pipeline import Pipeline
from importer.load.plugin import discover
from tests.conftest import Databases
from tests.daemon.clock import ManualClock
from tests.registers.autorisation.kit import FIRST, write_dump

REGISTERS = discover()
IMPORTED_AT = datetime(2026, 11, 20, 6, 0, 0)


def imported(databases: Databases, tmp_path: Path) -> None:
    pipeline = Pipeline(databases.settings(), ManualClock(IMPORTED_AT))
    try:
        pipeline.import_dataset(REGISTERS["autorisation"], write_dump(tmp_path / "drop", "20261120AutDK.csv", FIRST))
    finally:
        pipeline.close()


def client(databases: Databases, clock: ManualClock, **env: str) -> TestClient:
    settings = databases.settings(**env)
    return TestClient(create_app(HealthChecker(settings, REGISTERS, clock), ImporterMetrics(REGISTERS)))


def test_status_is_ok_with_one_line_per_register_and_never_run_is_not_overdue(
    databases: Databases, tmp_path: Path
) -> None:
    imported(databases, tmp_path)
    response = client(databases, ManualClock(datetime(2026, 11, 21, 6, 0, 0))).get("/status")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    lines = response.text.splitlines()
    assert lines[0] == "OK"
    assert lines[1].startswith("autorisation: last import started 2026-11-20 06:00:00, ended 2026-11-20 06:00:00, "
                               "SUCCESS, dataset 20261120AutDK.csv, rows changed 3")
    assert any(line.startswith("doseringsforslag") and line.endswith("never run") for line in lines[2:])


def test_a_register_is_overdue_one_second_after_its_maximum_age(databases: Databases, tmp_path: Path) -> None:
    imported(databases, tmp_path)
    clock = ManualClock(datetime(2026, 11, 22, 6, 0, 0))  # autorisation: 2 days
    page = client(databases, clock)
    assert page.get("/status").status_code == 200
    clock.advance(1)
    response = page.get("/status")
    assert response.status_code == 500
    assert response.text.splitlines()[0].startswith("ERROR register autorisation is overdue")
    body = page.get("/status?format=json").json()
    assert body["ok"] is False and body["registers"][0]["overdue"] is True


def test_the_maximum_age_is_configurable_per_register(databases: Databases, tmp_path: Path) -> None:
    imported(databases, tmp_path)
    page = client(databases, ManualClock(datetime(2026, 11, 22, 6, 0, 1)), STAMDATA_AUTORISATION_MAX_AGE_DAYS="3")
    assert page.get("/status").status_code == 200


def test_a_locked_register_is_the_first_reason_even_when_another_is_overdue(
    databases: Databases, tmp_path: Path
) -> None:
    imported(databases, tmp_path)
    inbox.lock(databases.inbox, "autorisation", "dataset 20261121AutDK.csv refused (cpr): bad cpr")
    response = client(databases, ManualClock(datetime(2026, 12, 30))).get("/status")
    assert response.status_code == 500
    assert response.text.splitlines()[0] == (
        "ERROR register autorisation is locked: dataset 20261121AutDK.csv refused (cpr): bad cpr"
    )


def test_an_unreachable_database_is_a_500_with_the_reason_not_a_crash(tmp_path: Path) -> None:
    settings = load_settings(None, {
        "STAMDATA_PRODUCTION_URL": "mysql+pymysql://root@127.0.0.1:1/nowhere",
        "STAMDATA_PREFLIGHT_URL": "mysql+pymysql://root@127.0.0.1:1/nowhere_pre",
        "STAMDATA_INBOX": str(tmp_path / "inbox"),
    })
    page = TestClient(create_app(HealthChecker(settings, REGISTERS, ManualClock()), ImporterMetrics(REGISTERS)))
    response = page.get("/status")
    assert response.status_code == 500
    assert response.text.splitlines()[0].startswith("ERROR production database unreachable")
    assert page.get("/status?format=json").json()["database_error"].startswith("production database unreachable")
    metrics = page.get("/metrics")
    assert metrics.status_code == 200
    families = {family.name: family for family in text_string_to_metric_families(metrics.text)}
    assert families["stamdata_production_database_up"].samples[0].value == 0


def test_metrics_carry_only_register_stage_operation_and_reason_labels(databases: Databases, tmp_path: Path) -> None:
    imported(databases, tmp_path)
    text = client(databases, ManualClock(datetime(2026, 11, 21))).get("/metrics").text
    labels: set[str] = set()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name != "stamdata_importer_build_info":  # the version is its one label
                labels.update(sample.labels)
    assert labels <= {"register", "stage", "operation", "reason", "le"}
    assert "20261120AutDK" not in text
