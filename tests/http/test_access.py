"""Every data endpoint needs a client with a scope, over HTTP and SOAP: hostile probes without, with malformed,
unknown, revoked and wrong credentials, rate limits, and the audit trail of every look-up of a person."""

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
import zeep

from importer.db import create_engine
from importer.http import clients
from importer.http.access import CREDENTIAL_CACHE_S
from importer.http.audit import audit_table
from tests.conftest import Databases, _sqlite_databases, run_cli
from tests.daemon.clock import ManualClock
from tests.http.server import Served, import_sample, serve
from tests.http.test_soap_replication import PATH as REPLICATION
from tests.http.test_soap_replication import Soap

LOOKUP = "/stamdata-authorization-lookup-ws/service/AuthorizationService"
# One request per data endpoint, with the scope it needs (the sample data: tests/http/server.py import_sample).
ENDPOINTS = [
    ("/replication/autorisationsregisteret/autorisation/v1", "feed:autorisation"),
    ("/replication/doseringsforslag/drug/v1", "feed:doseringsforslag"),
    ("/replication/doseringsforslag/version/v1", "feed:doseringsforslag"),
    ("/autorisation/v1/persons/0101801234", "lookup:autorisation"),
    ("/autorisation/v1/authorisations/0A1B2", "lookup:autorisation"),
    ("/doseringsforslag/v1/drugs/28100009555", "lookup:doseringsforslag"),
]
OPEN = ["/status", "/openapi.json", f"{REPLICATION}?wsdl", f"{LOOKUP}?wsdl", f"{LOOKUP}?xsd=AuthorizationService.xsd"]


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    tmp_path: Path = tmp_path_factory.mktemp("access")
    databases = _sqlite_databases(tmp_path)
    import_sample(databases, tmp_path / "drops")
    with serve(databases) as served:
        yield served


def _problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, (response.request.url, response.text)
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    return body


def test_every_data_endpoint_needs_credentials_and_the_probes_stay_open(sample: Served) -> None:
    bare = httpx.Client(base_url=sample.base, timeout=30)
    for path, _ in ENDPOINTS:
        assert sample.client.get(path).status_code in {200, 404}, path  # a client with every scope
        body = _problem(bare.get(path), 401)
        assert "credentials required" in body["detail"]
        assert bare.get(path).headers["www-authenticate"].startswith("Bearer")
    for path in OPEN:
        assert bare.get(path).status_code in {200, 500}, path  # /status may be red; never 401


@pytest.mark.parametrize("header", ["Bearer", "Basic dXNlcjpwYXNz", "bearer a b", "Token abc",
                                    "Bearer stm_" + "x" * 300, "Bearer \u00e6\u00f8\u00e5"])
def test_a_malformed_or_unknown_credential_is_401_without_a_hint(sample: Served, header: str) -> None:
    unknown = _problem(httpx.get(f"{sample.base}{ENDPOINTS[0][0]}",
                                 headers={"Authorization": "Bearer stm_not-a-token"}), 401)
    malformed = _problem(httpx.get(f"{sample.base}{ENDPOINTS[0][0]}",
                                   headers={"Authorization": header.encode("utf-8")}), 401)  # type: ignore[dict-item]
    assert malformed == unknown, "a malformed header and an unknown token look alike"


def _revoke(databases: Databases, name: str) -> None:
    engine = create_engine(databases.production_url)
    with engine.begin() as connection:
        assert clients.revoke(connection, name, datetime(2026, 12, 2))
    engine.dispose()


def test_a_revoked_token_is_refused_within_the_documented_bound_and_answered_as_an_unknown_one(
        tmp_path: Path) -> None:
    databases = _sqlite_databases(tmp_path)
    import_sample(databases, tmp_path / "drops")
    clock = ManualClock(datetime(2026, 12, 2, 12, 0, 0))
    path = ENDPOINTS[0][0]
    with serve(databases, clock=clock) as served:
        token = served.add_client("to-be-revoked", "feed:autorisation")
        headers = {"Authorization": f"Bearer {token}"}
        assert httpx.get(f"{served.base}{path}", headers=headers).status_code == 200  # read now, remembered
        _revoke(databases, "to-be-revoked")
        clock.advance(CREDENTIAL_CACHE_S - 1)
        assert httpx.get(f"{served.base}{path}", headers=headers).status_code == 200, "remembered within the bound"
        clock.advance(-3600)  # a clock set back does not stretch the bound: the client is read again
        _problem(httpx.get(f"{served.base}{path}", headers=headers), 401)
        clock.advance(3600 + 1)
        revoked = _problem(httpx.get(f"{served.base}{path}", headers=headers), 401)
        unknown = _problem(httpx.get(f"{served.base}{path}", headers={"Authorization": "Bearer stm_unknown"}), 401)
        assert revoked == unknown


def test_without_the_credential_cache_a_revoked_token_is_refused_at_once(tmp_path: Path) -> None:
    databases = _sqlite_databases(tmp_path)
    import_sample(databases, tmp_path / "drops")
    path = ENDPOINTS[0][0]
    with serve(databases, credential_cache_s=0) as served:
        token = served.add_client("to-be-revoked", "feed:autorisation")
        headers = {"Authorization": f"Bearer {token}"}
        assert httpx.get(f"{served.base}{path}", headers=headers).status_code == 200
        _revoke(databases, "to-be-revoked")
        _problem(httpx.get(f"{served.base}{path}", headers=headers), 401)


def test_the_wrong_scope_is_403_and_the_right_one_answers(sample: Served) -> None:
    for path, scope in ENDPOINTS:
        others = sorted({needed for _, needed in ENDPOINTS} - {scope})
        wrong = sample.add_client(f"wrong-{abs(hash(path))}", *others)
        right = sample.add_client(f"right-{abs(hash(path))}", scope)
        body = _problem(httpx.get(f"{sample.base}{path}", headers={"Authorization": f"Bearer {wrong}"}), 403)
        assert scope in body["detail"]
        assert httpx.get(f"{sample.base}{path}", headers={"Authorization": f"Bearer {right}"}).status_code in {200,
                                                                                                              404}


def test_soap_calls_need_a_client_with_the_scope_of_what_they_ask(sample: Served) -> None:
    feed_only = sample.add_client("soap-feed-only", "feed:doseringsforslag")
    lookup_only = sample.add_client("soap-lookup-only", "lookup:autorisation")

    with pytest.raises(zeep.exceptions.Fault) as raised:
        Soap(sample.base).client.service.replicate(register="doseringsforslag", datatype="drug", version=1,
                                                   offset="0")
    assert "credentials required" in raised.value.message
    without = httpx.post(f"{sample.base}{REPLICATION}", content=b"<x/>", headers={"content-type": "text/xml"})
    assert without.status_code == 401 and without.headers["content-type"] == "text/xml; charset=utf-8"

    replicating = Soap(sample.base, token=feed_only)
    result = replicating.client.service.replicate(register="doseringsforslag", datatype="drug", version=1,
                                                  offset="0")
    assert result.body.feed.entry
    with pytest.raises(zeep.exceptions.Fault) as raised:
        replicating.client.service.replicate(register="autorisationsregisteret", datatype="autorisation",
                                             version=1, offset="0")
    assert "not_authorized" in raised.value.message and "feed:autorisation" in raised.value.message
    assert replicating.history.last_received["http_headers"]["content-type"] == "text/xml; charset=utf-8"

    with pytest.raises(zeep.exceptions.Fault):
        Soap(sample.base, LOOKUP, feed_only).client.service.Authorization(cpr="0101801234")
    answer = Soap(sample.base, LOOKUP, lookup_only).client.service.Authorization(cpr="0101801234")
    assert answer.body.cpr == "0101801234"


def _audit_rows(databases: Databases) -> list[tuple[str, str, str]]:
    engine = create_engine(databases.production_url)
    try:
        with engine.connect() as connection:
            table = audit_table.c
            query = sa.select(table.Client, table.CPR, table.Endpoint).order_by(table.Id)
            return [(row.Client, row.CPR, row.Endpoint) for row in connection.execute(query)]
    finally:
        engine.dispose()


def test_every_look_up_of_a_person_leaves_an_audit_row_and_the_feed_none(databases: Databases,
                                                                        tmp_path: Path) -> None:
    import_sample(databases, tmp_path / "drops")
    with serve(databases) as served:
        auditor = served.add_client("region-h-epj", "lookup:autorisation", "feed:autorisation")
        headers = {"Authorization": f"Bearer {auditor}"}
        before = _audit_rows(databases)
        assert before == []
        for page in ("0", ""):
            assert served.client.get("/replication/autorisationsregisteret/autorisation/v1",
                                     params={"offset": page}, headers=headers).status_code == 200
        assert _audit_rows(databases) == [], "the feed is not a look-up of a person"
        assert httpx.get(f"{served.base}/autorisation/v1/persons/0101801234").status_code == 401
        assert _audit_rows(databases) == [], "a refused request shows nothing, so it records nothing"

        made = [
            served.client.get("/autorisation/v1/persons/0101801234", headers=headers),
            served.client.get("/autorisation/v1/persons/1111111118", headers=headers),  # unknown: looked up still
            served.client.get("/autorisation/v1/authorisations/0A1B2", headers=headers),
            served.client.get("/autorisation/v1/authorisations/ZZZZZ", headers=headers),  # 404: no person shown
        ]
        assert [response.status_code for response in made] == [200, 200, 200, 404]
        Soap(served.base, LOOKUP, auditor).client.service.Authorization(cpr="0202851234")
        assert _audit_rows(databases) == [
            ("region-h-epj", "0101801234", "/autorisation/v1/persons/{cpr}"),
            ("region-h-epj", "1111111118", "/autorisation/v1/persons/{cpr}"),
            ("region-h-epj", "0101801234", "/autorisation/v1/authorisations/{autorisationsnummer}"),
            ("region-h-epj", "0202851234", LOOKUP),
        ]

    result = run_cli("audit", "--cpr", "0101801234", env=databases.environ())
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 3 and all("region-h-epj" in line for line in lines[:2])
    assert "/autorisation/v1/persons/{cpr}" in lines[0] and "authorisations" in lines[1]
    assert lines[-1] == "2 access(es) to 010180-****"
    assert run_cli("audit", "--cpr", "0101801234", "--since", "2999-01-01",
                   env=databases.environ()).stdout.strip() == "0 access(es) to 010180-**** since 2999-01-01"


def test_a_look_up_whose_audit_row_cannot_be_written_is_not_answered(sqlite_databases: Databases,
                                                                    tmp_path: Path) -> None:
    import_sample(sqlite_databases, tmp_path / "drops")
    with serve(sqlite_databases) as served:
        engine = create_engine(sqlite_databases.production_url)
        with engine.begin() as connection:
            connection.exec_driver_sql("DROP TABLE stamdata_audit")
        engine.dispose()
        response = served.client.get("/autorisation/v1/persons/0101801234")
        body = _problem(response, 503)
        assert "Jensen" not in response.text and "0A1B2" not in response.text
        assert body["title"] == "Service Unavailable"


def test_each_client_is_rate_limited_and_guessing_tokens_meets_429(sqlite_databases: Databases,
                                                                  tmp_path: Path) -> None:
    import_sample(sqlite_databases, tmp_path / "drops")
    path = "/replication/doseringsforslag/version/v1"
    with serve(sqlite_databases, rate=(0.01, 3)) as served:
        busy = served.add_client("busy", "feed:doseringsforslag")
        calm = served.add_client("calm", "feed:doseringsforslag")
        statuses = [httpx.get(f"{served.base}{path}", headers={"Authorization": f"Bearer {busy}"}).status_code
                    for _ in range(5)]
        assert statuses == [200, 200, 200, 429, 429]
        limited = httpx.get(f"{served.base}{path}", headers={"Authorization": f"Bearer {busy}"})
        _problem(limited, 429)
        assert int(limited.headers["retry-after"]) >= 1
        assert httpx.get(f"{served.base}{path}", headers={"Authorization": f"Bearer {calm}"}).status_code == 200, \
            "one client's bucket is its own"

        guesses = [httpx.get(f"{served.base}{path}", headers={"Authorization": f"Bearer stm_guess{n}"}).status_code
                   for n in range(6)]
        assert guesses[:3] == [401, 401, 401] and set(guesses[3:]) == {429}
        assert "retry-after" in httpx.get(f"{served.base}{path}",
                                          headers={"Authorization": "Bearer stm_again"}).headers


def test_clients_are_managed_from_the_cli_tokens_shown_once_and_stored_as_hashes(sqlite_databases: Databases,
                                                                                 tmp_path: Path) -> None:
    env = sqlite_databases.environ()
    added = run_cli("clients", "add", "gp-system", "--scope", "lookup:autorisation", "--scope", "feed:autorisation",
                    env=env)
    assert added.exit_code == 0, added.stderr
    token = added.stdout.strip().splitlines()[-1]
    assert token.startswith("stm_") and len(token) > 40

    listed = run_cli("clients", "list", env=env)
    assert "gp-system" in listed.stdout and "active" in listed.stdout and token not in listed.stdout
    assert "feed:autorisation lookup:autorisation" in listed.stdout
    engine = sa.create_engine(sqlite_databases.production_url)
    with engine.connect() as connection:
        stored = [tuple(row) for row in connection.exec_driver_sql("SELECT * FROM stamdata_client")]
    engine.dispose()
    assert token not in repr(stored) and clients.token_hash(token) in repr(stored)

    import_sample(sqlite_databases, tmp_path / "drops")
    clock = ManualClock(datetime(2026, 12, 2, 12, 0, 0))
    with serve(sqlite_databases, clock=clock) as served:
        headers = {"Authorization": f"Bearer {token}"}
        assert httpx.get(f"{served.base}/autorisation/v1/persons/0101801234", headers=headers).status_code == 200
        assert run_cli("clients", "revoke", "gp-system", env=env).stdout.strip() == "client gp-system revoked"
        # Refused once the credential cache's bound has passed (by the server's clock, not by how fast the CLI ran).
        clock.advance(CREDENTIAL_CACHE_S + 1)
        assert httpx.get(f"{served.base}/autorisation/v1/persons/0101801234", headers=headers).status_code == 401
    assert "revoked" in run_cli("clients", "list", env=env).stdout

    for bad in (["clients", "add", "gp-system", "--scope", "feed:autorisation"],  # names are never reused
                ["clients", "add", "x", "--scope", "feed:nosuch"],
                ["clients", "add", "bad name", "--scope", "operator"],
                ["clients", "revoke", "nobody"],
                ["audit", "--cpr", "123"]):
        result = run_cli(*bad, env=env)
        assert result.exit_code == 2, (bad, result.stdout, result.stderr)
        assert result.stderr.strip()
