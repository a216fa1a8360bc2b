"""With STS certificates configured, the SOAP services take the DGWS ID card in `wsse:Security` as the caller's
credential: zeep sends a card signed by the STS; a call without a valid card gets a DGWS fault that names the
reason in the answer's FlowStatus, and a bearer token alone is not enough."""

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
import zeep
from lxml import etree

from importer.db import create_engine
from importer.http.audit import audit_table
from importer.http.idcard import IdCardVerifier
from tests.conftest import _sqlite_databases
from tests.http.idcards import id_card, mint_sts, security_header
from tests.http.server import Served, import_sample, serve
from tests.http.test_soap_replication import DGWS, Soap

LOOKUP = "/stamdata-authorization-lookup-ws/service/AuthorizationService"
WSSE = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
STS_KEY, STS_CERTIFICATE = mint_sts()


def headers_with(card: etree._Element | None, flow: str = "flow-7", message: str = "message-3") -> list[etree._Element]:
    """The request's wsse:Security (with the card) and dgws:Header, as zeep puts them in the envelope."""
    header = security_header(*([card] if card is not None else []), flow_id=flow, message_id=message)
    return [header.find(f"{{{WSSE}}}Security"), header.find(f"{{{DGWS}}}Header")]


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    tmp_path: Path = tmp_path_factory.mktemp("idcards")
    databases = _sqlite_databases(tmp_path)
    import_sample(databases, tmp_path / "drops")
    verifier = IdCardVerifier([STS_CERTIFICATE], 3, lambda: datetime.now(UTC))
    with serve(databases, idcards=verifier) as served:
        yield served


def test_a_valid_id_card_replicates_and_looks_up_and_the_audit_names_its_system(sample: Served) -> None:
    card = id_card(STS_KEY, STS_CERTIFICATE, it_system="Region H EPJ", cvr="29190623")
    soap = Soap(sample.base)  # no bearer token: the card is the credential
    page = soap.client.service.replicate(register="autorisationsregisteret", datatype="autorisation", version=1,
                                         offset="0", _soapheaders=headers_with(card))
    assert page.body.feed.entry
    assert page.header.Header.FlowStatus == "flow_finalized_succesfully"
    assert page.header.Header.Linking.InResponseToMessageID == "message-3"

    lookup = Soap(sample.base, LOOKUP)
    answer = lookup.client.service.Authorization(cpr="0101801234", _soapheaders=headers_with(card))
    assert answer.body.authorization[0].authorizationCode == "0A1B2"
    engine = create_engine(sample.databases.production_url)
    with engine.connect() as connection:
        rows = connection.execute(sa.select(audit_table.c.Client, audit_table.c.CPR)).all()
    engine.dispose()
    assert ("idcard:Region H EPJ@cvrnumber:29190623", "0101801234") in [tuple(row) for row in rows]


@pytest.mark.parametrize(("card", "flow_status"), [
    (None, "missing_required_header"),
    (id_card(STS_KEY, STS_CERTIFICATE, level=2), "security_level_failed"),
    (id_card(STS_KEY, STS_CERTIFICATE, not_before=datetime.now(UTC) - timedelta(days=3),
             not_on_or_after=datetime.now(UTC) - timedelta(days=2)), "expired_idcard"),
    (id_card(*mint_sts("Another STS")), "invalid_signature"),
])
def test_a_call_without_a_valid_card_gets_a_dgws_fault(sample: Served, card: etree._Element | None,
                                                       flow_status: str) -> None:
    # A bearer token of a client with every scope does not stand in for the card.
    soap = Soap(sample.base, token=sample.token)
    with pytest.raises(zeep.exceptions.Fault) as raised:
        soap.client.service.replicate(register="doseringsforslag", datatype="drug", version=1, offset="0",
                                      _soapheaders=headers_with(card, message="m-9"))
    assert raised.value.message.startswith(f"{flow_status}:")
    answered = soap.answer_header()
    assert answered.findtext(f"{{{DGWS}}}FlowStatus") == flow_status
    assert answered.findtext(f"{{{DGWS}}}Linking/{{{DGWS}}}InResponseToMessageID") == "m-9"
    assert soap.history.last_received["http_headers"]["content-type"] == "text/xml; charset=utf-8"


def test_the_http_endpoints_still_need_a_client_credential(sample: Served) -> None:
    assert sample.client.get("/replication/doseringsforslag/drug/v1").status_code == 200
    assert sample.client.get("/replication/doseringsforslag/drug/v1", headers={"Authorization": ""}).status_code \
        == 401
