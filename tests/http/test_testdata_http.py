"""The test-data service over real HTTP: the platform's DumpRestore messages (2013 and 2019 namespaces) in SOAP
envelopes and the JSON form, behind the `testdata` scope and the `testdata_enabled` setting; the CLI alike."""

from pathlib import Path

import httpx
import pytest
from lxml import etree

from tests.conftest import Databases, run_cli
from tests.http.server import Served, import_sample, serve
from tests.http.test_access import _audit_rows

NS2013 = "http://www.ssi.dk/nsi/xml.schema/2013/01/01"
NS2019 = "http://www.ssi.dk/nsi/xml.schema/2019/09/01"
SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
PATH = "/testdata/v1/autorisation"


def envelope(body: str) -> bytes:
    return (f'<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope xmlns:soapenv="{SOAP_ENV}">'
            f"<soapenv:Body>{body}</soapenv:Body></soapenv:Envelope>").encode()


def identifier(cpr: str, ns: str) -> str:
    source = ' source="CPR"' if ns == NS2019 else ""
    return f"<t:Identifier><t:PersonIdentifier{source}>{cpr}</t:PersonIdentifier></t:Identifier>"


def call(served: Served, body: str) -> etree._Element:
    response = served.client.post(PATH, content=envelope(body), headers={"content-type": "text/xml; charset=utf-8"})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "text/xml; charset=utf-8"
    (answer,) = etree.fromstring(response.content).find(f"{{{SOAP_ENV}}}Body")  # type: ignore[misc]
    return answer


@pytest.mark.parametrize("ns", [NS2013, NS2019])
def test_dump_reset_restore_in_the_platforms_messages(databases: Databases, tmp_path: Path, ns: str) -> None:
    import_sample(databases, tmp_path / "drops")
    with serve(databases, testdata=True) as served:
        dumped = call(served, f'<t:DumpPatientsRequest xmlns:t="{ns}">{identifier("0101801234", ns)}'
                              "</t:DumpPatientsRequest>")
        assert dumped.tag == f"{{{ns}}}DumpPatientsResponse"
        (dump,) = dumped.findall(f"{{{ns}}}Dump")
        person = dump.find(f"{{{ns}}}Identifier/{{{ns}}}PersonIdentifier")
        assert person is not None and person.text == "0101801234"
        assert person.get("source") == ("CPR" if ns == NS2019 else None)
        data = dump.findtext(f"{{{ns}}}DumpData") or ""
        assert len(data) > 100

        reset = call(served, f'<t:ResetPatientsRequest xmlns:t="{ns}">{identifier("0101801234", ns)}'
                             "</t:ResetPatientsRequest>")
        assert reset.findtext(f"{{{ns}}}Identifier/{{{ns}}}PersonIdentifier") == "0101801234"
        assert served.client.get("/autorisation/v1/persons/0101801234").json()["authorisations"] == []

        restored = call(served, f'<t:RestorePatientsRequest xmlns:t="{ns}"><t:Dump>{identifier("2112111118", ns)}'
                                f"<t:DumpData>{data}</t:DumpData><t:RestoreAtDate>2026-11-30</t:RestoreAtDate>"
                                "</t:Dump></t:RestorePatientsRequest>")
        assert restored.tag == f"{{{ns}}}RestorePatientsResponse"
        assert restored.findtext(f"{{{ns}}}Identifier/{{{ns}}}PersonIdentifier") == "2112111118"
        renumbered = {key.get("from"): key.get("to") for key in restored.iter("{urn:nsi.dk:stamdata:testdata}"
                                                                               "RestoredKey")}
        assert renumbered == {"0A1B2": "Z0000"}, "its number has history: a test-range number, reported"
        person_now = served.client.get("/autorisation/v1/persons/2112111118").json()
        assert [item["identifier"]["value"] for item in person_now["authorisations"]] == ["Z0000"]
        # The dump answered with a person's data: audited, with the client that asked.
        assert [(cpr, endpoint) for _, cpr, endpoint in _audit_rows(databases) if "testdata" in endpoint] == [
            ("0101801234", f"{PATH} DumpPatients")]


def test_the_json_form_and_its_refusals(sqlite_databases: Databases, tmp_path: Path) -> None:
    import_sample(sqlite_databases, tmp_path / "drops")
    with serve(sqlite_databases, testdata=True) as served:
        dump = served.client.post(f"{PATH}/dump", json={"cpr": "0101801234"})
        assert dump.status_code == 200, dump.text
        data = dump.json()["dumpData"]
        restored = served.client.post(f"{PATH}/restore", json={"dumpData": data, "cpr": "2112111118"})
        assert restored.status_code == 200, restored.text
        assert restored.json()["keys"] == [{"from": "0A1B2", "to": "Z0000"}]
        reset = served.client.post(f"{PATH}/reset", json={"cpr": "2112111118"})
        assert reset.json() == {"cpr": "2112111118", "closed": 1, "keys": ["Z0000"]}

        for body, status in (({"dumpData": "garbage!"}, 422), ({"dumpData": data, "restoreAtDate": "2999-01-01"}, 422),
                             ({"dumpData": data, "cpr": "123"}, 422)):
            answer = served.client.post(f"{PATH}/restore", json=body)
            assert answer.status_code == status, answer.text
            assert answer.headers["content-type"] == "application/problem+json"
        whole = served.client.post("/testdata/v1/doseringsforslag/dump", json={})
        assert whole.status_code == 200 and whole.json()["cpr"] is None

        other = served.add_client("no-testdata", "lookup:autorisation")
        refused = httpx.post(f"{served.base}{PATH}/dump", json={"cpr": "0101801234"},
                             headers={"Authorization": f"Bearer {other}"})
        assert refused.status_code == 403 and "testdata" in refused.json()["detail"]


def test_disabled_it_refuses_every_operation_naming_the_setting(sqlite_databases: Databases, tmp_path: Path) -> None:
    import_sample(sqlite_databases, tmp_path / "drops")
    with serve(sqlite_databases) as served:
        for operation, body in (("dump", {"cpr": "0101801234"}), ("reset", {"cpr": "0101801234"}),
                                ("restore", {"dumpData": "x"})):
            answer = served.client.post(f"{PATH}/{operation}", json=body)
            assert answer.status_code == 403 and "testdata_enabled" in answer.json()["detail"]
        soap = served.client.post(PATH, content=envelope(
            f'<t:DumpPatientsRequest xmlns:t="{NS2013}">{identifier("0101801234", NS2013)}</t:DumpPatientsRequest>'),
            headers={"content-type": "text/xml"})
        assert soap.status_code == 403 and b"testdata_enabled" in soap.content
    env = sqlite_databases.environ()
    refused = run_cli("testdata", "dump", "autorisation", "0101801234", env=env)
    assert refused.exit_code == 2 and "testdata_enabled" in refused.stderr


def test_the_cli_dumps_restores_and_resets(sqlite_databases: Databases, tmp_path: Path) -> None:
    import_sample(sqlite_databases, tmp_path / "drops")
    env = {**sqlite_databases.environ(), "STAMDATA_TESTDATA_ENABLED": "true"}
    dump_file = tmp_path / "anne.dump"
    dumped = run_cli("testdata", "dump", "autorisation", "0101801234", "--output", str(dump_file), env=env)
    assert dumped.exit_code == 0, dumped.stderr
    restored = run_cli("testdata", "restore", "autorisation", str(dump_file), "--to", "2112111118",
                       "--restore-at-date", "2026-11-30", env=env)
    assert restored.exit_code == 0, restored.stderr
    assert "Z0000 (was 0A1B2" in restored.stdout and "2112111118" not in restored.stdout
    reset = run_cli("testdata", "reset", "autorisation", "2112111118", env=env)
    assert reset.exit_code == 0 and "1 open row(s) closed" in reset.stdout
    assert run_cli("testdata", "restore", "autorisation", str(tmp_path / "missing"), env=env).exit_code == 2
    (tmp_path / "bad.dump").write_text("bm90IGd6aXA=")
    bad = run_cli("testdata", "restore", "autorisation", str(tmp_path / "bad.dump"), env=env)
    assert bad.exit_code == 1 and "dump-gzip" in bad.stderr
    assert run_cli("testdata", "restore", "autorisation", str(dump_file), "--restore-at-date", "2999-01-01",
                   env=env).exit_code == 2
