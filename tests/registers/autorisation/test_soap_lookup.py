"""The platform's SOAP authorisation look-up, `Authorization`, driven by zeep from the WSDL the service publishes,
over real HTTP: the same answers as the HTTP look-up, a person's currently valid authorisations only."""

from pathlib import Path
from typing import Any

import pytest
import zeep

from importer.load.pipeline import Pipeline
from importer.load.plugin import discover
from tests.conftest import Databases
from tests.http.server import Served, serve
from tests.http.test_soap_replication import DGWS, Soap
from tests.registers.autorisation.kit import write_dump

PATH = "/stamdata-authorization-lookup-ws/service/AuthorizationService"
DAY_ONE = [
    "0A1B2;0101801234;Jensen;Anne Marie;7170",
    "0C3D4;0202851234;Ærø-Sørensen;Øjvind;5166",
    "0E5F6;0202851234;Ærø-Sørensen;Øjvind;5433",
    "09YM8;0101010001;;Indberettet af apotek, ej autorisationsnummer;0000",
    "09YM9;0101010001;;Indberettet af farmaceut/farmakonom, ej autorisationsnummer;0000",
]
DAY_TWO = [
    "0A1B2;0101801234;Jensen-Holm;Anne Marie;7170",  # renamed
    "0C3D4;0202851234;Ærø-Sørensen;Øjvind;5166",  # 0E5F6 closed
    "09YM8;0101010001;;Indberettet af apotek, ej autorisationsnummer;0000",
    "09YM9;0101010001;;Indberettet af farmaceut/farmakonom, ej autorisationsnummer;0000",
    "2J9K0;2303951234;Hansen;Mette;A511",  # an education code not (yet) in the list
]


def lookup(soap: Soap, cpr: str, **headers: Any) -> Any:
    """The answer's body (zeep gives header and body apart: the WSDL declares the DGWS headers of the answer)."""
    return soap.client.service.Authorization(cpr=cpr, _soapheaders=[soap.header(**headers)]).body


def as_http(answer: Any) -> dict[str, Any]:
    """The SOAP answer in the HTTP look-up's terms, to compare the two."""
    return {
        "person": answer.cpr,
        "givenName": answer.firstName or "",
        "surname": answer.lastName or "",
        "authorisations": [(item.authorizationCode, item.educationCode, item.educationName)
                           for item in answer.authorization],
    }


def http_lookup(served: Served, cpr: str) -> dict[str, Any]:
    response = served.client.get(f"/autorisation/v1/persons/{cpr}")
    assert response.status_code == 200
    body = response.json()
    return {
        "person": body["person"]["value"],
        "givenName": body["givenName"],
        "surname": body["surname"],
        "authorisations": [(item["identifier"]["value"], item["educationCode"], item["educationName"])
                           for item in body["authorisations"]],
    }


def test_a_person_is_answered_with_names_and_currently_valid_authorisations_as_the_http_lookup(
    databases: Databases, tmp_path: Path
) -> None:
    register = discover()["autorisation"]
    pipeline = Pipeline(databases.settings())
    try:
        pipeline.import_dataset(register, write_dump(tmp_path, "20261120AutDK.csv", DAY_ONE))
        pipeline.import_dataset(register, write_dump(tmp_path, "20261121AutDK.csv", DAY_TWO))
    finally:
        pipeline.close()
    with serve(databases) as served:
        soap = Soap(served.base, PATH, served.token)
        anne = lookup(soap, "0101801234", flow="flow-9", message="m-1")
        assert (anne.cpr, anne.firstName, anne.lastName) == ("0101801234", "Anne Marie", "Jensen-Holm")
        assert [(item.authorizationCode, item.educationCode, item.educationName) for item in anne.authorization] == [
            ("0A1B2", "7170", "Læge")]
        header = soap.answer_header()
        assert header.findtext(f"{{{DGWS}}}Linking/{{{DGWS}}}FlowID") == "flow-9"
        assert header.findtext(f"{{{DGWS}}}Linking/{{{DGWS}}}InResponseToMessageID") == "m-1"
        assert header.findtext(f"{{{DGWS}}}FlowStatus") == "flow_finalized_succesfully"
        assert soap.history.last_received["http_headers"]["content-type"] == "text/xml; charset=utf-8"

        oejvind = lookup(soap, "0202851234")
        assert (oejvind.firstName, oejvind.lastName) == ("Øjvind", "Ærø-Sørensen")
        assert [item.authorizationCode for item in oejvind.authorization] == ["0C3D4"], "0E5F6 was closed"

        mette = lookup(soap, "2303951234")
        (only,) = mette.authorization
        assert (only.educationCode, only.educationName) == ("A511", None)

        # Unknown, and known to the history only: the same answer, the CPR number alone.
        for nobody in ("1111111118", "1512901234"):
            answer = lookup(soap, nobody)
            assert (answer.cpr, answer.firstName, answer.lastName, answer.authorization) == (nobody, None, None, [])

        for cpr in ("0101801234", "0202851234", "2303951234", "0101010001", "1111111118"):
            assert as_http(lookup(soap, cpr)) == http_lookup(served, cpr), cpr


@pytest.mark.parametrize("cpr", ["123", "01018012345", "010180-1234", "", "abcdefghij"])
def test_a_cpr_that_is_not_ten_digits_is_a_client_fault(sqlite_databases: Databases, cpr: str) -> None:
    with serve(sqlite_databases) as served:
        soap = Soap(served.base, PATH, served.token)
        with pytest.raises(zeep.exceptions.Fault) as raised:
            lookup(soap, cpr)
    assert raised.value.code == "soap:Client"
    assert "cpr must be a CPR number of 10 digits" in raised.value.message
