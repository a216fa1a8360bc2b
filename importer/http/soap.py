"""SOAP 1.1, document/literal, with the DGWS headers of the platform's services (FORMATS.md §5).

The platform's clients in the field (regional systems, GP and hospital systems, the token service) were generated
from the platform's WSDLs; they post an envelope whose body holds one request element and expect one answer
element back, with a `dgws:Header` that continues their flow. This module is that envelope and nothing else: a
service names its path, its WSDL and schemas (files shipped in the package, served at `<path>?wsdl` and
`<path>?xsd=<name>` so every import resolves from the WSDL's own URL), and one handler per request element. The
handlers know nothing of envelopes; they return the answer element as XML text or raise `SoapFault`.

Who may call is decided before the operation runs (`SoapGuard`): a DGWS ID card where STS certificates are
configured, otherwise a client credential (README, "Access"); the handler checks the scope its answer needs.

Decisions (README, "Façades"): the operation is chosen by the body's element, as WS-I Basic Profile has it,
not by the SOAPAction header (clients differ in quoting it, or leave it empty); a missing `dgws:Header` is
answered with a new flow rather than refused (who is calling is the guard's question, not the header's);
a database that cannot be read is a `soap:Server` fault with `Retry-After`, never a hung request. SOAP
endpoints are described by their WSDL, not in the OpenAPI document.
"""

import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.resources.abc import Traversable
from xml.sax.saxutils import escape, quoteattr

import sqlalchemy as sa
from fastapi import APIRouter, Request, Response
from fastapi.concurrency import run_in_threadpool
from lxml import etree

from importer.errors import InfrastructureError
from importer.http.access import Access, Caller, Denied, retry_after
from importer.http.idcard import IdCardRejected, IdCardVerifier
from importer.logs import get_logger
from importer.privacy import mask_cpr

log = get_logger(__name__)

SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
SOAP12_ENV = "http://www.w3.org/2003/05/soap-envelope"
WSSE = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
WSU = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd"
DGWS = "http://www.medcom.dk/dgws/2006/04/dgws-1.0.xsd"
XML_MEDIA = "text/xml; charset=utf-8"
FLOW_FINALIZED = "flow_finalized_succesfully"  # sic: DGWS's own spelling, which clients compare with
MAX_REQUEST_BYTES = 1 << 20  # a request is a few fields and an ID card; anything near this is not a client

# Untrusted input: no DTD, no entity expansion, nothing fetched, no pathological depth or size.
_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False,
                          remove_comments=True, remove_pis=True)


class SoapFault(Exception):
    """An answer that is a SOAP fault: `Client` when the request is at fault, `Server` when this side is.

    `detail` is the XML of the fault's detail element (e.g. a `ReplicationFault`), already escaped. A DGWS fault
    (a refused ID card) names its `flow_status` in the answer's header; access refusals keep their HTTP status
    (401, 403, 429) and headers, as on every other endpoint.
    """

    def __init__(self, code: str, message: str, detail: str | None = None, *, status: int = 500,
                 flow_status: str | None = None, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.detail = detail
        self.status = status
        self.flow_status = flow_status
        self.headers = headers or {}


def require(caller: Caller, scope: str) -> None:
    """A handler's scope check: a client without the scope gets DGWS's `not_authorized`, with HTTP 403."""
    if not caller.allows(scope):
        raise SoapFault("Client", f"not_authorized: this client does not hold the scope {scope}", status=403,
                        flow_status="not_authorized")


class SoapGuard:
    """Who is calling: with STS certificates configured, the DGWS ID card in `wsse:Security` (verified, its
    system then holds `idcard_scopes`); otherwise a client credential as on every other endpoint."""

    def __init__(self, access: Access, idcards: IdCardVerifier | None, idcard_scopes: Iterable[str]) -> None:
        self.access = access
        self.idcards = idcards
        self.idcard_scopes = frozenset(idcard_scopes)

    def by_credentials(self, request: Request) -> Caller | None:
        """Without ID cards: the client credential, checked before the body is even parsed. None: ID cards decide."""
        if self.idcards is not None:
            return None
        try:
            return self.access.identify(request)
        except Denied as denied:
            raise SoapFault("Client", denied.detail, status=denied.status, headers=denied.headers) from None

    def by_id_card(self, header: etree._Element | None) -> Caller:
        assert self.idcards is not None
        try:
            card = self.idcards.verify(header)
        except IdCardRejected as rejected:
            raise SoapFault("Client", f"{rejected.flow_status}: {rejected.message}",
                            flow_status=rejected.flow_status) from None
        wait = self.access.clients.take(f"client:{card.client_name}")
        if wait:
            raise SoapFault("Client", "rate limit exceeded", status=429, headers=retry_after(wait))
        return Caller(card.client_name, self.idcard_scopes)


@dataclass(frozen=True)
class Linking:
    """The caller's DGWS flow: the answer repeats the flow and points back at the caller's message."""

    flow_id: str | None
    message_id: str | None
    security_level: str | None


Handler = Callable[[etree._Element, Caller], str]


@dataclass(frozen=True)
class SoapService:
    """One SOAP endpoint: where it is, the documents that describe it, and a handler per request element."""

    path: str  # e.g. /stamdata-batch-copy-ws/service/StamdataReplication
    wsdl: Traversable | None  # its `soap:address` holds `{address}`, filled with the URL the WSDL was asked at
    schemas: Mapping[str, Traversable]  # ?xsd=<name>; the WSDL and schemas refer to them relatively
    operations: Mapping[str, Handler]  # Clark name of the request element -> handler

    def wsdl_text(self, address: str) -> str:
        assert self.wsdl is not None
        return self.wsdl.read_text(encoding="utf-8").replace("{address}", escape(address, {'"': "&quot;"}))


def text_of(element: etree._Element, name: str) -> str | None:
    """The text of the first child with this local name, qualified or not: clients generated from different
    versions of a WSDL disagree on whether request fields are qualified, and both forms are unambiguous."""
    for child in element:
        if isinstance(child.tag, str) and etree.QName(child).localname == name:
            return (child.text or "").strip()
    return None


def element(name: str, text: str) -> str:
    return f"<{name}>{escape(text)}</{name}>"


def soap_router(service: SoapService, guard: SoapGuard) -> APIRouter:
    router = APIRouter()

    @router.get(service.path, include_in_schema=False)
    async def describe(request: Request) -> Response:
        query = request.query_params
        if ("wsdl" in query or "WSDL" in query) and service.wsdl is not None:
            address = str(request.url.replace(query=None, fragment=None))
            return Response(service.wsdl_text(address), media_type=XML_MEDIA)
        name = query.get("xsd")
        if name is not None and name in service.schemas:
            return Response(service.schemas[name].read_text(encoding="utf-8"), media_type=XML_MEDIA)
        return Response(_envelope("", _fault("Client", "ask for ?wsdl, or ?xsd=<name> of a schema it imports")),
                        status_code=404, media_type=XML_MEDIA)

    @router.post(service.path, include_in_schema=False)
    async def call(request: Request) -> Response:
        body = await _read_bounded(request)
        if body is None:
            answer = _envelope("", _fault("Client", f"a request may hold at most {MAX_REQUEST_BYTES} bytes"))
            return Response(answer, status_code=413, media_type=XML_MEDIA)
        status, text, headers = await run_in_threadpool(answer_call, service, body, guard, request)
        return Response(text, status_code=status, media_type=XML_MEDIA, headers=headers)

    return router


async def _read_bounded(request: Request) -> bytes | None:
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_REQUEST_BYTES:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def answer_call(service: SoapService, body: bytes, guard: SoapGuard, http: Request) -> tuple[int, str, dict[str, str]]:
    """(HTTP status, envelope, headers) for one posted request. SOAP 1.1 answers faults with 500; access
    refusals keep the status every endpoint gives them (401, 403, 429)."""
    linking = Linking(None, None, None)
    try:
        caller = guard.by_credentials(http)
        root = _parse(body)
        header = root.find(f"{{{SOAP_ENV}}}Header")
        linking = _linking(header)  # before anything else can fail: a fault is answered within the caller's flow
        if caller is None:
            caller = guard.by_id_card(header)
        request = _request_element(root, header)
        handler = service.operations.get(str(request.tag))
        if handler is None:
            raise SoapFault("Client", f"{service.path} has no operation for a {request.tag} request")
        answer = handler(request, caller)
        return 200, _envelope(_answer_headers(linking), answer), {}
    except SoapFault as fault:
        headers = _answer_headers(linking, fault.flow_status or FLOW_FINALIZED)
        return fault.status, _envelope(headers, _fault(fault.code, fault.message, fault.detail)), fault.headers
    except (sa.exc.DBAPIError, sa.exc.TimeoutError, InfrastructureError) as error:
        reason = str(getattr(error, "orig", error)).strip()
        log.error("SOAP database unavailable", path=service.path, error=type(error).__name__,
                  reason=mask_cpr(reason.splitlines()[0] if reason else ""))
        fault_text = _fault("Server", "the database cannot be read right now; try again shortly")
        return 500, _envelope(_answer_headers(linking), fault_text), {"Retry-After": "5"}
    except Exception as error:  # a fault, a masked log line, no trace to the caller
        log.error("SOAP request failed", path=service.path, error=type(error).__name__,
                  reason=mask_cpr(str(error).splitlines()[0] if str(error) else ""))
        return 500, _envelope(_answer_headers(linking), _fault("Server", "the request could not be answered")), {}


def _parse(body: bytes) -> etree._Element:
    try:
        root = etree.fromstring(body, _PARSER)
    except etree.XMLSyntaxError as error:
        raise SoapFault("Client", f"the request is not well-formed XML: {error.msg}") from None
    if root.getroottree().docinfo.internalDTD is not None:
        raise SoapFault("Client", "a SOAP message must not contain a document type declaration")
    if root.tag == f"{{{SOAP12_ENV}}}Envelope":
        raise SoapFault("VersionMismatch", "this service speaks SOAP 1.1 (text/xml), not SOAP 1.2")
    if root.tag != f"{{{SOAP_ENV}}}Envelope":
        raise SoapFault("Client", "the request is not a SOAP 1.1 envelope")
    return root


def _linking(header: etree._Element | None) -> Linking:
    dgws = None if header is None else header.find(f"{{{DGWS}}}Header")
    if dgws is None:
        return Linking(None, None, None)
    linking = dgws.find(f"{{{DGWS}}}Linking")
    return Linking(
        _clean(None if linking is None else linking.findtext(f"{{{DGWS}}}FlowID")),
        _clean(None if linking is None else linking.findtext(f"{{{DGWS}}}MessageID")),
        _clean(dgws.findtext(f"{{{DGWS}}}SecurityLevel")),
    )


def _request_element(root: etree._Element, header: etree._Element | None) -> etree._Element:
    if header is not None and header.find(f"{{{DGWS}}}Header") is not None and _linking(header).message_id is None:
        raise SoapFault("Client", "syntax_error: a dgws:Header needs Linking with a MessageID")
    body = root.find(f"{{{SOAP_ENV}}}Body")
    if body is None:
        raise SoapFault("Client", "the envelope has no Body")
    children = [child for child in body if isinstance(child.tag, str)]
    if len(children) != 1:
        raise SoapFault("Client", f"the Body must hold exactly one request element, not {len(children)}")
    return children[0]


def _clean(text: str | None) -> str | None:
    return text.strip() if text is not None and text.strip() else None


def _answer_headers(linking: Linking, flow_status: str = FLOW_FINALIZED) -> str:
    """A DGWS answer: a timestamp, the caller's security level, the same flow, a new message id pointing back
    at the caller's, and the flow's status."""
    created = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    parts = [
        f'<wsse:Security xmlns:wsse={quoteattr(WSSE)} xmlns:wsu={quoteattr(WSU)}>'
        f"<wsu:Timestamp><wsu:Created>{created}</wsu:Created></wsu:Timestamp></wsse:Security>",
        f"<dgws:Header xmlns:dgws={quoteattr(DGWS)}>",
    ]
    if linking.security_level is not None:
        parts.append(element("dgws:SecurityLevel", linking.security_level))
    parts.append("<dgws:Linking>")
    parts.append(element("dgws:FlowID", linking.flow_id or _new_id()))
    parts.append(element("dgws:MessageID", _new_id()))
    if linking.message_id is not None:
        parts.append(element("dgws:InResponseToMessageID", linking.message_id))
    parts.append("</dgws:Linking>")
    parts.append(element("dgws:FlowStatus", flow_status))
    parts.append("</dgws:Header>")
    return "".join(parts)


def _new_id() -> str:
    return str(uuid.uuid4())


def _fault(code: str, message: str, detail: str | None = None) -> str:
    return (f"<soap:Fault><faultcode>soap:{code}</faultcode>{element('faultstring', mask_cpr(message))}"
            + (f"<detail>{detail}</detail>" if detail is not None else "") + "</soap:Fault>")


def _envelope(headers: str, body: str) -> str:
    return (f'<?xml version="1.0" encoding="UTF-8"?>\n<soap:Envelope xmlns:soap={quoteattr(SOAP_ENV)}>'
            f"<soap:Header>{headers}</soap:Header><soap:Body>{body}</soap:Body></soap:Envelope>\n")
