"""The platform's copy-register service, `replicate`, driven by zeep (an independent SOAP client library) from the
WSDL the service publishes, over real HTTP: every view, the DGWS headers, the faults, and a copy that converges on
the table while imports run."""

from collections.abc import Iterator
from datetime import UTC
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import httpx
import pytest
import requests
import sqlalchemy as sa
import zeep
from lxml import etree
from zeep.plugins import HistoryPlugin

from importer.http.feed import START, Feed, Token, bind_views
from importer.load.plugin import discover
from tests.conftest import Databases
from tests.http.client import Page, copy_table, follow, parse_page, parse_record
from tests.http.server import Served, import_sample, serve
from tests.http.test_replication_client import converges_while_importing, copy_rows, source_rows

PATH = "/stamdata-batch-copy-ws/service/StamdataReplication"
TNS = "http://nsi.dk/2011/10/21/StamdataKrs/"
SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
DGWS = "http://www.medcom.dk/dgws/2006/04/dgws-1.0.xsd"
XS = "http://www.w3.org/2001/XMLSchema"
WSDL = "http://schemas.xmlsoap.org/wsdl/"


class Soap:
    """A zeep client built from the service's own WSDL URL, remembering the envelopes it sent and received."""

    def __init__(self, base: str, path: str = PATH, token: str | None = None) -> None:
        self.history = HistoryPlugin()
        session = requests.Session()
        if token is not None:
            session.headers["Authorization"] = f"Bearer {token}"
        transport = zeep.Transport(session=session, timeout=30, operation_timeout=60)
        self.client = zeep.Client(f"{base}{path}?wsdl", plugins=[self.history], transport=transport)

    def header(self, flow: str = "flow-1", message: str = "message-1", level: int = 4) -> Any:
        return self.client.get_element(f"{{{DGWS}}}Header")(
            SecurityLevel=level, Linking={"FlowID": flow, "MessageID": message})

    def answer_header(self) -> etree._Element:
        header = self.history.last_received["envelope"].find(f"{{{SOAP_ENV}}}Header/{{{DGWS}}}Header")
        assert header is not None, "every answer carries a dgws:Header"
        return header

    def page(self, feed: Feed, after: Token, size: int | None) -> Page:
        """One page through `replicate`, read from the objects zeep made of the answer by the WSDL's schemas."""
        result = self.client.service.replicate(register=feed.register, datatype=feed.datatype, version=feed.version,
                                               offset=str(after), maxRecords=size, _soapheaders=[self.header()])
        atom = result.body.feed
        assert (atom.id, atom.title, atom.author.name) == (feed.feed_id, "Stamdata Registry Feed",
                                                           "National Sundheds IT")
        entries = []
        for entry in atom.entry:
            token = Token.parse(entry.id.rsplit("/", 1)[1])
            assert entry.id == feed.entry_id(token) and not entry.title
            assert entry.content.type == "application/xml"
            updated = entry.updated.astimezone(UTC).replace(tzinfo=None)
            entries.append((token, updated, parse_record(feed, entry.content._value_1)))
        return entries


@pytest.fixture
def sample(databases: Databases, tmp_path: Path) -> Iterator[Served]:
    import_sample(databases, tmp_path / "drops")
    with serve(databases) as served:
        yield served


def test_every_view_replicated_through_soap_gives_the_http_feeds_pages_and_a_copy_equal_to_the_table(
    databases: Databases, sample: Served, tmp_path: Path
) -> None:
    soap = Soap(sample.base, token=sample.token)
    feeds = bind_views(discover().values())
    assert len(feeds) == 6
    target = sa.create_engine(f"sqlite:///{tmp_path / 'copy.sqlite'}")
    metadata = sa.MetaData()
    copies = {feed.path: copy_table(feed, metadata) for feed in feeds}
    metadata.create_all(target)
    production = sa.create_engine(databases.production_url)
    try:
        for feed in feeds:
            # The same offset gives the same page over SOAP as over the HTTP feed.
            after = START
            while True:
                page = soap.page(feed, after, 3)
                http = sample.client.get(f"/replication/{feed.path}", params={"offset": str(after), "maxRecords": 3})
                assert page == parse_page(feed, http.content), feed.path
                if not page:
                    break
                after = page[-1][0]
            token, pages = follow(lambda after, size, feed=feed: soap.page(feed, after, size), copies[feed.path],
                                  target, START, 2)
            source = source_rows(production, feed)
            assert source, feed.path
            assert pages == -(-len(source) // 2) + 1, "full pages, then the empty one"
            assert copy_rows(target, copies[feed.path]) == source, feed.path
            assert soap.page(feed, token, None) == [], "caught up: the stored token gives an empty page"
        # No maxRecords: the largest page; 0 asks for the smallest.
        autorisation = next(feed for feed in feeds if feed.register == "autorisationsregisteret")
        assert len(soap.page(autorisation, START, None)) == len(source_rows(production, autorisation))
        assert len(soap.page(autorisation, START, 0)) == 1
    finally:
        target.dispose()
        production.dispose()


def test_an_answer_continues_the_callers_dgws_flow(sample: Served) -> None:
    soap = Soap(sample.base, token=sample.token)
    result = soap.client.service.replicate(register="doseringsforslag", datatype="version", version=1, offset="0",
                                           _soapheaders=[soap.header("flow-42", "message-7", 3)])
    answered = result.header.Header
    assert answered.Linking.FlowID == "flow-42"
    assert answered.Linking.InResponseToMessageID == "message-7"
    assert answered.Linking.MessageID not in {None, "", "message-7"}
    assert answered.FlowStatus == "flow_finalized_succesfully"
    assert answered.SecurityLevel == 3
    second = soap.client.service.replicate(register="doseringsforslag", datatype="version", version=1, offset="0",
                                           _soapheaders=[soap.header("flow-42", "message-8", 3)])
    assert second.header.Header.Linking.MessageID != answered.Linking.MessageID, "a new MessageID per answer"

    # A call without DGWS headers is answered in a flow of its own.
    bare = soap.client.service.replicate(register="doseringsforslag", datatype="version", version=1, offset="0")
    assert bare.header.Header.Linking.FlowID and bare.header.Header.Linking.MessageID
    assert bare.header.Header.Linking.InResponseToMessageID is None


@pytest.mark.parametrize(("request_fields", "message"), [
    ({"register": "autorisationsregisteret", "datatype": "nosuch", "version": 1, "offset": "0"},
     "unknown view autorisationsregisteret/nosuch/v1"),
    ({"register": "autorisationsregisteret", "datatype": "autorisation", "version": 2, "offset": "0"},
     "unknown view autorisationsregisteret/autorisation/v2"),
    ({"register": "autorisationsregisteret", "datatype": "autorisation", "version": 1, "offset": "12345"},
     "offset must be 20 digits"),
    ({"register": "autorisationsregisteret", "datatype": "autorisation", "version": 1,
      "offset": "1795348800000000004x"}, "offset must be 20 digits"),
])
def test_an_unknown_view_or_a_bad_offset_is_a_replication_fault(
    sqlite_databases: Databases, request_fields: dict[str, Any], message: str
) -> None:
    with serve(sqlite_databases) as served:
        soap = Soap(served.base, token=served.token)
        with pytest.raises(zeep.exceptions.Fault) as raised:
            soap.client.service.replicate(**request_fields, _soapheaders=[soap.header("f", "m")])
        fault = raised.value
        assert fault.code == "soap:Client"
        assert message in fault.message
        (detail,) = list(fault.detail)
        assert detail.tag == f"{{{TNS}}}ReplicationFault"
        assert message in (detail.text or "")
        linking = soap.answer_header().find(f"{{{DGWS}}}Linking")
        assert linking is not None and linking.findtext(f"{{{DGWS}}}InResponseToMessageID") == "m"
        assert soap.history.last_received["http_headers"]["content-type"] == "text/xml; charset=utf-8"


def _envelope(body: str, header: str = "") -> bytes:
    return (f'<?xml version="1.0" encoding="UTF-8"?><s:Envelope xmlns:s="{SOAP_ENV}"><s:Header>{header}</s:Header>'
            f"<s:Body>{body}</s:Body></s:Envelope>").encode()


REQUEST = (f'<r:ReplicationRequest xmlns:r="{TNS}"><r:register>doseringsforslag</r:register>'
           "<r:datatype>version</r:datatype><r:version>1</r:version><r:offset>0</r:offset></r:ReplicationRequest>")


@pytest.mark.parametrize(("body", "code", "status", "words"), [
    (b"not xml at all", "soap:Client", 500, "not well-formed"),
    (b'<e:Envelope xmlns:e="http://www.w3.org/2003/05/soap-envelope"><e:Body/></e:Envelope>',
     "soap:VersionMismatch", 500, "SOAP 1.1"),
    (b'<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">'
     b'<!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">]><l>&c;</l>', "soap:Client", 500, "document type"),
    (_envelope(REQUEST + REQUEST), "soap:Client", 500, "exactly one request element"),
    (_envelope('<x:Other xmlns:x="urn:other"/>'), "soap:Client", 500, "has no operation"),
    (_envelope(REQUEST, f'<d:Header xmlns:d="{DGWS}"><d:Linking><d:FlowID>f</d:FlowID></d:Linking></d:Header>'),
     "soap:Client", 500, "syntax_error"),
    (_envelope(REQUEST.replace("<r:version>1<", "<r:version>one<")), "soap:Client", 500, "version must be"),
    (b"<x>" + b" " * (1 << 20) + b"</x>", "soap:Client", 413, "at most"),
])
def test_a_request_that_is_not_a_call_is_a_soap_fault_naming_what_is_wrong(
    sqlite_databases: Databases, body: bytes, code: str, status: int, words: str
) -> None:
    with serve(sqlite_databases) as served:
        response = served.client.post(PATH, content=body, headers={
            "content-type": "text/xml; charset=utf-8", "SOAPAction": f'"{TNS}replicate"'})
    assert response.status_code == status
    assert response.headers["content-type"] == "text/xml; charset=utf-8"
    fault = etree.fromstring(response.content).find(f"{{{SOAP_ENV}}}Body/{{{SOAP_ENV}}}Fault")
    assert fault is not None
    assert fault.findtext("faultcode") == code
    assert words in (fault.findtext("faultstring") or "")


def test_a_request_with_unqualified_fields_is_answered_too(sample: Served) -> None:
    """Clients generated from other versions of the WSDL send the fields unqualified; both forms are one request."""
    unqualified = (f'<r:ReplicationRequest xmlns:r="{TNS}"><register>doseringsforslag</register>'
                   "<datatype>version</datatype><version>1</version><offset>0</offset><maxRecords>5</maxRecords>"
                   "</r:ReplicationRequest>")
    response = sample.client.post(PATH, content=_envelope(unqualified), headers={"content-type": "text/xml"})
    assert response.status_code == 200, response.text
    feed = etree.fromstring(response.content).find(f"{{{SOAP_ENV}}}Body/{{{TNS}}}ReplicationResponse")
    assert feed is not None and len(feed) == 1
    view = next(view for view in bind_views(discover().values()) if view.path == "doseringsforslag/version/v1")
    assert len(parse_page(view, etree.tostring(feed[0]))) == 1


def _schema_locations(document: etree._Element) -> list[str]:
    return [node.get("schemaLocation", "") for node in document.iter(f"{{{XS}}}import", f"{{{XS}}}include")
            if node.get("schemaLocation")]


@pytest.mark.parametrize("path", [PATH, "/stamdata-authorization-lookup-ws/service/AuthorizationService"])
def test_the_wsdl_and_every_schema_it_imports_resolve_from_its_url_and_compile(
    sqlite_databases: Databases, path: str
) -> None:
    with serve(sqlite_databases) as served:
        wsdl_url = f"{served.base}{path}?wsdl"
        response = httpx.get(wsdl_url)
        assert response.status_code == 200
        assert response.headers["content-type"] == "text/xml; charset=utf-8"
        wsdl = etree.fromstring(response.content)
        assert wsdl.tag == f"{{{WSDL}}}definitions"
        address = wsdl.find(f".//{{{WSDL}}}port/{{http://schemas.xmlsoap.org/wsdl/soap/}}address")
        assert address is not None and address.get("location") == f"{served.base}{path}"

        fetched: dict[str, bytes] = {}
        pending = [urljoin(wsdl_url, location) for location in _schema_locations(wsdl)]
        while pending:
            url = pending.pop()
            if url in fetched:
                continue
            answer = httpx.get(url)
            assert answer.status_code == 200, url
            assert answer.headers["content-type"] == "text/xml; charset=utf-8"
            fetched[url] = answer.content
            pending += [urljoin(url, location) for location in _schema_locations(etree.fromstring(answer.content))]
        assert len(fetched) >= 3, "the service's own schema, wsse and dgws"

        class Served(etree.Resolver):
            def resolve(self, url: str, _: str, context: Any) -> Any:
                return self.resolve_string(fetched[url], context) if url in fetched else None

        for url, text in fetched.items():
            parser = etree.XMLParser(no_network=True)
            parser.resolvers.add(Served())
            etree.XMLSchema(etree.fromstring(text, parser, base_url=url))  # compiles, imports included

        assert httpx.get(f"{served.base}{path}").status_code == 404, "neither ?wsdl nor a known ?xsd"
        assert httpx.get(f"{served.base}{path}?xsd=../../etc/passwd").status_code == 404


def test_a_copy_paging_through_soap_while_imports_commit_converges_on_the_table(
    databases: Databases, tmp_path: Path
) -> None:
    clients: dict[str, Soap] = {}

    def follow_soap(served: Served, feed: Feed, copy: sa.Table, target: sa.Engine, token: Token) -> Token:
        soap = clients.setdefault(served.base, Soap(served.base, token=served.token))
        return follow(lambda after, size: soap.page(feed, after, size), copy, target, token, 2)[0]

    converges_while_importing(databases, tmp_path, follow_soap)


def test_a_database_that_cannot_be_read_is_a_server_fault_with_retry_after(sqlite_databases: Databases) -> None:
    with serve(sqlite_databases, facade_url="mysql+pymysql://nobody@127.0.0.1:9/stamdata") as served:
        soap = Soap(served.base, token=served.token)
        with pytest.raises(zeep.exceptions.Fault) as raised:
            soap.client.service.replicate(register="doseringsforslag", datatype="version", version=1, offset="0")
        assert raised.value.code == "soap:Server"
        assert "cannot be read right now" in raised.value.message
        assert soap.history.last_received["http_headers"]["retry-after"] == "5"
