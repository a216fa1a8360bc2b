"""Autorisation and dosage lookups over real HTTP, on SQLite and MariaDB: answers, history, privacy, refusals."""

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
import structlog

from importer.load.pipeline import Pipeline
from importer.load.plugin import discover
from tests.conftest import Databases
from tests.daemon.clock import ManualClock
from tests.http.server import Served, serve
from tests.registers.autorisation.kit import write_dump
from tests.registers.doseringsforslag.kit import release_files, write_release

AUT = "urn:oid:1.2.208.176.1.3"
CPR = "urn:oid:1.2.208.176.1.2"
FIRST = [
    "0A1B2;0101801234;Jensen;Anne Marie;7170",
    "0C3D4;0202851234;Ærø-Sørensen;Øjvind;5433",
    "0E5F6;0202851234;Ærø-Sørensen;Øjvind;5166",
    "1G7H8;1512901234;Nielsen;Lars;5151",
    "09YM8;0101010001;;Indberettet af apotek, ej autorisationsnummer;0000",
]
SECOND = [
    "0A1B2;0101801234;Jensen-Holm;Anne Marie;7170",
    "0C3D4;0202851234;Ærø-Sørensen;Øjvind;5433",
    "0E5F6;0202851234;Ærø-Sørensen;Øjvind;5166",
    "09YM8;0101010001;;Indberettet af apotek, ej autorisationsnummer;0000",
    "2J9K0;2303951234;Hansen;Mette;A511",
]


@pytest.fixture
def served(databases: Databases, tmp_path: Path) -> Iterator[Served]:
    registers = discover()
    pipeline = Pipeline(databases.settings())
    try:
        pipeline.import_dataset(registers["autorisation"], write_dump(tmp_path, "20261120AutDK.csv", FIRST))
        pipeline.import_dataset(registers["autorisation"], write_dump(tmp_path, "20261121AutDK.csv", SECOND))
        pipeline.import_dataset(registers["doseringsforslag"], write_release(tmp_path / "r1", release_files(1)))
        pipeline.import_dataset(registers["doseringsforslag"],
                                write_release(tmp_path / "r2", release_files(2, "2026-02-16")))
    finally:
        pipeline.close()
    with serve(databases) as running:
        yield running


def person(cpr: str, given: str, surname: str, *authorisations: tuple[str, str, str | None]) -> dict[str, object]:
    return {
        "person": {"system": CPR, "value": cpr}, "givenName": given, "surname": surname,
        "authorisations": [{"identifier": {"system": AUT, "value": number}, "educationCode": code,
                            "educationName": name, "givenName": given, "surname": surname}
                           for number, code, name in authorisations],
    }


def test_lookups_answer_from_current_data_and_history_and_refuse_bad_input(served: Served) -> None:
    get = served.client.get
    with structlog.testing.capture_logs() as logs:
        # A person's currently valid authorisations, in number order, with the faggruppe.
        response = get("/autorisation/v1/persons/0202851234")
        assert response.status_code == 200
        assert response.json() == person("0202851234", "Øjvind", "Ærø-Sørensen",
                                         ("0C3D4", "5433", "Tandlæge"), ("0E5F6", "5166", "Sygeplejerske"))
        assert get("/autorisation/v1/persons/2303951234").json() == person(
            "2303951234", "Mette", "Hansen", ("2J9K0", "A511", None))

        # Privacy: a removed person and a never-known one get the same answer, which says nothing about either.
        removed, unknown = get("/autorisation/v1/persons/1512901234"), get("/autorisation/v1/persons/3112999999")
        assert removed.status_code == unknown.status_code == 200
        assert removed.json() == person("1512901234", "", "")
        assert unknown.json() == person("3112999999", "", "")
        assert removed.headers.get("content-length") == unknown.headers.get("content-length")

        # By number: now, and as valid at a date (the day of the first dump, the second, before any).
        now = get("/autorisation/v1/authorisations/0A1B2").json()
        assert (now["surname"], now["validFrom"], now["validTo"]) == (
            "Jensen-Holm", "2026-11-21T00:00:00Z", "2999-12-31T00:00:00Z")
        assert now["identifier"] == {"system": AUT, "value": "0A1B2"}
        assert now["person"] == {"system": CPR, "value": "0101801234"}
        then = get("/autorisation/v1/authorisations/0A1B2", params={"at": "2026-11-20"}).json()
        assert (then["surname"], then["validTo"], then["at"]) == ("Jensen", "2026-11-21T00:00:00Z",
                                                                  "2026-11-20T00:00:00Z")
        late = get("/autorisation/v1/authorisations/0A1B2", params={"at": "2026-11-21T00:59:59+01:00"}).json()
        assert late["surname"] == "Jensen"  # 23:59:59 UTC the day before
        assert get("/autorisation/v1/authorisations/1G7H8", params={"at": "2026-11-20T23:59:59"}).status_code == 200
        for number, at in (("1G7H8", None), ("1G7H8", "2026-11-21"), ("0A1B2", "2026-11-19"), ("ZZZZZ", None),
                           ("0A1B2", "0001-01-01T00:00:00+00:01"), ("0A1B2", "9999-12-31T23:59:59-14:00")):
            missing = get(f"/autorisation/v1/authorisations/{number}", params={"at": at} if at else None)
            assert missing.status_code == 404, (number, at)
            assert missing.headers["content-type"] == "application/problem+json"
            assert missing.json()["status"] == 404

        # Dosage: the latest release only.
        drug = get("/doseringsforslag/v1/drugs/28100010554").json()
        assert (drug["releaseNumber"], drug["drugName"], drug["unit"]) == (
            2, "Ventoline 2", {"code": 2, "singular": "øjendråbe", "plural": "øjendråber"})
        assert [(p["code"], p["type"], p["shortTranslation"]) for p in drug["proposals"]] == [
            ("1", "M+M+A+N", "1 tablet morgen"), ("2", "PN", None)]
        assert drug["proposals"][1]["supplementaryText"] == "ved anfald"
        assert get("/doseringsforslag/v1/drugs/00028100010554"[:13]).status_code == 404
        assert get("/doseringsforslag/v1/drugs/1").status_code == 404

    assert_malformed_input_is_a_422_problem_that_neither_echoes_it_nor_shows_a_trace(served)
    masked = [event for event in logs if event.get("path", "").startswith("/autorisation/v1/persons/")]
    assert masked and all(event["path"].endswith("-****") for event in masked)
    assert "0202851234" not in repr(logs) and "1512901234" not in repr(logs)


MALFORMED = [
    "/autorisation/v1/persons/12345",
    "/autorisation/v1/persons/01018012345",
    "/autorisation/v1/persons/010180123a",
    "/autorisation/v1/persons/0101801234%0A",
    "/autorisation/v1/persons/%D9%A1%D9%A2%D9%A3%D9%A4%D9%A5%D9%A6%D9%A7%D9%A8%D9%A9%D9%A0",  # Arabic-Indic digits
    "/autorisation/v1/persons/0101801234'%20OR%20'1'='1",
    "/autorisation/v1/authorisations/0a1b2",
    "/autorisation/v1/authorisations/0A1B",
    "/autorisation/v1/authorisations/0A1B2%00",
    "/autorisation/v1/authorisations/'%3B--",
    "/autorisation/v1/authorisations/0A1B2?at=2026-13-01",
    "/autorisation/v1/authorisations/0A1B2?at=yesterday",
    "/autorisation/v1/authorisations/0A1B2?at=0000-01-01",
    "/autorisation/v1/authorisations/0A1B2?at=2026-11-21T25:00",
    "/doseringsforslag/v1/drugs/abc",
    "/doseringsforslag/v1/drugs/123456789012",
    "/doseringsforslag/v1/drugs/-1",
    "/doseringsforslag/v1/drugs/1e5",
]


def assert_malformed_input_is_a_422_problem_that_neither_echoes_it_nor_shows_a_trace(served: Served) -> None:
    """Called by the test above, which has the served databases (their setup is the slow part)."""
    for path in MALFORMED:
        response = served.client.get(path)
        assert response.status_code == 422, (path, response.text)
        assert response.headers["content-type"] == "application/problem+json"
        body = response.json()
        assert body["status"] == 422 and body["title"] and body["errors"], path
        assert "Traceback" not in response.text and "0101801234" not in response.text, path


def test_now_is_the_injected_clock_for_lookups_and_the_feed(databases: Databases, tmp_path: Path) -> None:
    pipeline = Pipeline(databases.settings())
    try:
        pipeline.import_dataset(discover()["autorisation"], write_dump(tmp_path, "20261120AutDK.csv", FIRST))
        pipeline.import_dataset(discover()["autorisation"], write_dump(tmp_path, "20261121AutDK.csv", SECOND))
    finally:
        pipeline.close()
    clock = ManualClock(datetime(2026, 11, 20, 12, 0, 0))  # between the two dumps' validity
    with serve(databases, clock=clock) as running:
        then = running.client.get("/autorisation/v1/authorisations/0A1B2").json()
        assert (then["surname"], then["at"]) == ("Jensen", "2026-11-20T12:00:00Z")
        clock.advance(86400)
        assert running.client.get("/autorisation/v1/authorisations/0A1B2").json()["surname"] == "Jensen-Holm"
        caught_up = running.client.get("/replication/autorisationsregisteret/autorisation/v1",
                                       params={"offset": "9" * 20}, headers={"Accept": "application/json"})
        assert caught_up.json()["updated"] == "2026-11-21T12:00:00Z"  # an empty page is dated by the clock
