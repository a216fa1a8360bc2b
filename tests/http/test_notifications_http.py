"""The change-notification service over real HTTP (`/notifications/v1`, scope `notifications`): ID lists, pull points,
subscriptions, pulls with message-id replay, the WS-Notification form, ownership, and the 503 of a host without a
writable connection to the primary."""

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from lxml import etree

from importer.clock import SystemClock
from importer.db import create_engine
from importer.http.app import FacadeServices, WebServer, create_app
from importer.http.audit import Auditor
from importer.http.database import FacadeDatabase
from importer.http.health import HealthChecker
from importer.http.notifications import NotificationService, PullOut
from importer.load.notifications import TESTDATA_RESET, notify_system
from importer.load.pipeline import Pipeline
from importer.load.plugin import discover
from tests.conftest import Databases
from tests.daemon.harness import free_port
from tests.http.server import Served, add_client, serve
from tests.registers.autorisation.kit import FIRST, SECOND, write_dump

API = "/notifications/v1"
WSN = "http://docs.oasis-open.org/wsn/b-2"
ADVIS = "http://nsi.dk/advis/v10"
CPR_TYPE = "http://nsi.dk/advis/v10/CPR"
SQLITE_ONLY = pytest.mark.parametrize("databases", ["sqlite"], indirect=True)


def imports(databases: Databases, directory: Path, *dumps: tuple[str, list[str]]) -> None:
    pipeline = Pipeline(databases.settings())
    try:
        for name, lines in dumps:
            pipeline.import_dataset(discover()["autorisation"], write_dump(directory, name, lines))
    finally:
        pipeline.close()


def subscribe(client: httpx.Client, ids: list[str], name: str = "doctors",
              topic: str = "stamdata/autorisation") -> tuple[str, str]:
    assert client.put(f"{API}/idlists/{name}", json={"ids": ids}).status_code in {200, 201}
    created = client.post(f"{API}/pullpoints")
    assert created.status_code == 201, created.text
    point = created.json()["id"]
    subscribed = client.post(f"{API}/subscriptions", json={"pullPoint": point, "idList": name, "topic": topic})
    assert subscribed.status_code == 201, subscribed.text
    return point, subscribed.json()["id"]


def pull(client: httpx.Client, point: str, message_id: str, maximum: int = 100, **headers: str) -> httpx.Response:
    return client.post(f"{API}/pullpoints/{point}/pull", json={"messageId": message_id, "max": maximum},
                       headers=headers)


def test_a_client_subscribes_and_pulls_what_later_imports_changed(databases: Databases, tmp_path: Path) -> None:
    with serve(databases) as served:
        client = served.client
        created = client.put(f"{API}/idlists/doctors", json={"ids": ["0101801234", "0202851234"]})
        assert (created.status_code, created.json()) == (201, {"name": "doctors", "size": 2})
        replaced = client.put(f"{API}/idlists/doctors", json={"ids": ["0101801234", "0202851234", "1512901234"]})
        assert (replaced.status_code, replaced.json()) == (200, {"name": "doctors", "size": 3})
        point, subscription = subscribe(client, ["0101801234", "0202851234", "1512901234"])
        assert client.get(f"{API}/pullpoints/{point}").json()["subscriptions"] == [subscription]
        assert client.get(f"{API}/subscriptions/{subscription}").json()["topic"] == "stamdata/autorisation"

        imports(databases, tmp_path, ("20261120AutDK.csv", FIRST), ("20261121AutDK.csv", SECOND))
        first = pull(client, point, "message-1", 2)
        assert first.status_code == 200 and first.headers["content-type"] == "application/json"
        body = first.json()
        PullOut.model_validate(body)  # what the OpenAPI document promises
        assert body["more"] is True and body["pullPoint"] == point and body["messageId"] == "message-1"
        notification = body["notifications"][0]
        assert {"sequence", "topic", "action", "register", "datatype", "id", "idType", "modifiedDate"} <= set(
            notification)
        assert (notification["topic"], notification["action"], notification["register"], notification["datatype"],
                notification["id"], notification["idType"]) == ("stamdata/autorisation", "created", "autorisation",
                                                                "autorisation", "0101801234", CPR_TYPE)
        assert notification["modifiedDate"].endswith("Z")
        assert pull(client, point, "message-1", 50).json() == body  # the same message id: the same answer

        rest = pull(client, point, "message-2").json()
        assert [(item["action"], item["id"]) for item in body["notifications"] + rest["notifications"]] == [
            ("created", "0101801234"), ("created", "0202851234"), ("changed", "0101801234"),
            ("closed", "0202851234"), ("created", "1512901234")]
        sequences = [item["sequence"] for item in body["notifications"] + rest["notifications"]]
        assert sequences == sorted(sequences) and rest["more"] is False
        assert pull(client, point, "message-3").json()["notifications"] == []
        for item in body["notifications"] + rest["notifications"]:
            assert "Jensen" not in str(item) and "Holm" not in str(item)


@SQLITE_ONLY
def test_a_pull_answers_ws_notification_xml_when_asked(databases: Databases, tmp_path: Path) -> None:
    with serve(databases) as served:
        point, _ = subscribe(served.client, ["0A1B2"])
        imports(databases, tmp_path, ("20261120AutDK.csv", FIRST))
        answer = pull(served.client, point, "xml-1", accept="application/xml")
        assert answer.status_code == 200 and answer.headers["content-type"] == "application/xml; charset=utf-8"
        notify = etree.fromstring(answer.content)
        assert notify.tag == f"{{{WSN}}}Notify"
        (message,) = notify.findall(f"{{{WSN}}}NotificationMessage")
        topic = message.find(f"{{{WSN}}}Topic")
        assert topic is not None and topic.text == "stamdata/autorisation"
        assert topic.get("Dialect") == "http://docs.oasis-open.org/wsn/t-1/TopicExpression/Simple"
        content = message.find(f"{{{WSN}}}Message/{{{ADVIS}}}NotifyContent")
        assert content is not None
        assert (content.get("id"), content.get("idType")) == ("0A1B2", "http://nsi.dk/advis/v10/Autorisationsnummer")
        assert [element.text for element in content.iter() if etree.QName(element).localname == "Action"] == [
            "created"]
        # The same message id in JSON: the same notifications.
        again = pull(served.client, point, "xml-1").json()["notifications"]
        assert [(item["id"], item["action"]) for item in again] == [("0A1B2", "created")]

        # A system notification (the test data of a listed person was reset) is NAS's AdvisLost, without an id.
        engine = create_engine(databases.production_url)
        with engine.begin() as connection:
            assert notify_system(connection, "autorisation", ["0A1B2"], TESTDATA_RESET) == 1
        engine.dispose()
        (message,) = etree.fromstring(pull(served.client, point, "xml-2", accept="text/xml").content)
        content = message.find(f"{{{WSN}}}Message/{{{ADVIS}}}NotifyContent")
        assert content is not None and content.get("id") is None
        (lost,) = content
        assert etree.QName(lost).localname == "AdvisLost"
        assert [etree.QName(child).localname for child in lost] == ["Sequence", "Register", "ResumedDate", "Reason"]
        assert lost[-1].text == "testdata-reset"


@SQLITE_ONLY
def test_another_clients_resources_are_not_found_and_the_scope_is_needed(databases: Databases) -> None:
    with serve(databases) as served:
        point, subscription = subscribe(served.client, ["0101801234"])
        other = httpx.Client(base_url=served.base, headers={
            "Authorization": f"Bearer {served.add_client('other-gp', 'notifications')}"})
        outsider = httpx.Client(base_url=served.base, headers={
            "Authorization": f"Bearer {served.add_client('feed-only', 'feed:autorisation')}"})
        with other, outsider:
            assert pull(other, point, "steal").status_code == 404
            assert other.get(f"{API}/pullpoints/{point}").status_code == 404
            assert other.delete(f"{API}/pullpoints/{point}").status_code == 404
            assert other.get(f"{API}/subscriptions/{subscription}").status_code == 404
            assert other.delete(f"{API}/subscriptions/{subscription}").status_code == 404
            assert other.get(f"{API}/idlists/doctors").status_code == 404
            # Its own list of the same name is another list; the other's pull point stays out of reach.
            assert other.put(f"{API}/idlists/doctors", json={"ids": ["1"]}).status_code == 201
            refused = other.post(f"{API}/subscriptions", json={"pullPoint": point, "idList": "doctors",
                                                               "topic": "stamdata/autorisation"})
            assert refused.status_code == 404 and refused.headers["content-type"] == "application/problem+json"
            assert pull(outsider, point, "m").status_code == 403
            assert httpx.post(f"{served.base}{API}/pullpoints").status_code == 401


@SQLITE_ONLY
def test_subscriptions_then_pull_points_and_lists_are_deleted_in_that_order(databases: Databases) -> None:
    with serve(databases) as served:
        client = served.client
        point, subscription = subscribe(client, ["0101801234"])
        assert client.delete(f"{API}/idlists/doctors").status_code == 409
        assert client.delete(f"{API}/pullpoints/{point}").status_code == 409
        assert client.delete(f"{API}/subscriptions/{subscription}").status_code == 204
        assert client.delete(f"{API}/subscriptions/{subscription}").status_code == 404
        assert client.delete(f"{API}/pullpoints/{point}").status_code == 204
        assert client.delete(f"{API}/idlists/doctors").status_code == 204
        assert pull(client, point, "m").status_code == 404


@SQLITE_ONLY
@pytest.mark.parametrize(("path", "body"), [
    ("/subscriptions", {"pullPoint": "0" * 32, "idList": "doctors", "topic": "stamdata/allergies"}),
    ("/subscriptions", {"pullPoint": "not-an-id", "idList": "doctors", "topic": "stamdata/autorisation"}),
    ("/pullpoints/" + "0" * 32 + "/pull", {"messageId": "m", "max": 0}),
    ("/pullpoints/" + "0" * 32 + "/pull", {"messageId": "", "max": 10}),
    ("/pullpoints/" + "0" * 32 + "/pull", {"messageId": "m", "max": 10_001}),
])
def test_invalid_requests_are_refused_with_422(databases: Databases, path: str, body: dict[str, Any]) -> None:
    with serve(databases) as served:
        answer = served.client.post(f"{API}{path}", json=body)
        assert answer.status_code == 422 and answer.headers["content-type"] == "application/problem+json"
        assert served.client.put(f"{API}/idlists/doctors", json={"ids": ["x" * 65]}).status_code == 422
        # Blanks and control characters are in no id; MariaDB's collation would take "X " for "X".
        for bad in (["0101801234", "0101801234 "], [" 0A1B2"], ["0A\x001"], ["Ærø"], [True], [-1], [1.5]):
            assert served.client.put(f"{API}/idlists/doctors", json={"ids": bad}).status_code == 422, bad
        assert served.client.put(f"{API}/idlists/doctors", json={"ids": [28100010554, "0A1B2"]}).status_code == 201
        assert served.client.put(f"{API}/idlists/bad name", json={"ids": []}).status_code == 422


@contextmanager
def serve_with(databases: Databases, notifications: NotificationService | None) -> Iterator[Served]:
    """The app as `serve` builds it, with the notification service given: a host that has no connection to the
    primary, or one whose service database is not the primary."""
    settings = databases.settings()
    Pipeline(settings).migrate()
    token = add_client(databases, f"replica-client-{uuid.uuid4().hex[:8]}", "notifications")
    facades = FacadeDatabase(settings.facade_database_url)
    services = FacadeServices(facades, Auditor(settings.service_database_url), 1000.0, 1000.0,
                              notifications=notifications)
    health = HealthChecker(settings, discover(), SystemClock())
    server = WebServer(create_app(health, None, services, list(discover().values())), f"127.0.0.1:{free_port()}")
    server.start()
    base = f"http://{server.listen}"
    try:
        with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}) as client:
            yield Served(base, client, token, databases)
    finally:
        server.stop()
        services.close()
        facades.close()
        health.close()


@SQLITE_ONLY
def test_a_host_without_a_writable_connection_to_the_primary_answers_503(databases: Databases,
                                                                        tmp_path: Path) -> None:
    with serve_with(databases, None) as served:
        answer = served.client.post(f"{API}/pullpoints")
        assert answer.status_code == 503 and "writable connection to the primary" in answer.json()["detail"]
    # A service database that is not the migrated primary (a replica's empty copy, a wrong URL): said so, not 500.
    elsewhere = NotificationService(f"sqlite:///{tmp_path / 'elsewhere.sqlite'}")
    with serve_with(databases, elsewhere) as served:
        answer = served.client.put(f"{API}/idlists/doctors", json={"ids": ["0101801234"]})
        assert answer.status_code == 503 and "no notification tables" in answer.json()["detail"]
