"""The platform's copy-register service (SKRS) over SOAP: `replicate` answers one page of any declared feed view,
the same page the HTTP feed gives for the same offset, as the Atom feed inside a `ReplicationResponse`
(FORMATS.md §4, §4.1, §5). Nothing here names a register: the views come from the registers' declarations.
"""

from collections.abc import Sequence
from importlib.resources import files
from xml.sax.saxutils import escape, quoteattr

from lxml import etree

from importer.clock import whole_seconds
from importer.http import consistency
from importer.http import feed as feeds
from importer.http.access import Caller
from importer.http.database import Behind, FacadeDatabase
from importer.http.soap import SoapFault, SoapService, require, text_of
from importer.privacy import mask_cpr

NAMESPACE = "http://nsi.dk/2011/10/21/StamdataKrs/"
PATH = "/stamdata-batch-copy-ws/service/StamdataReplication"

_DOCUMENTS = files("importer.http") / "wsdl"
SHARED_SCHEMAS = {name: _DOCUMENTS / name for name in ("wsse.xsd", "dgws-1.0.xsd")}


def replication_service(views: Sequence[feeds.Feed], database: FacadeDatabase) -> SoapService:
    by_path = {view.path: view for view in views}

    def replicate(request: etree._Element, caller: Caller) -> str:
        register, datatype = text_of(request, "register"), text_of(request, "datatype")
        version = _unsigned(text_of(request, "version"), "version")
        path = f"{register}/{datatype}/v{version}"
        view = by_path.get(path)
        if view is None:
            raise _fault(f"unknown view {path}; known: {', '.join(sorted(by_path))}")
        require(caller, view.scope)
        try:
            after = feeds.Token.parse(text_of(request, "offset"))
        except feeds.BadToken as error:
            raise _fault(str(error)) from None
        max_records = _unsigned(text_of(request, "maxRecords"), "maxRecords")
        try:  # only from a database that has reached the offset (importer/http/consistency.py)
            entries = consistency.read_page(database, view, after, max_records)
        except Behind as behind:
            raise SoapFault("Server", str(behind), status=503,
                            headers={"Retry-After": str(behind.retry_after_s)}) from None
        now = whole_seconds(database.clock.now())
        return (f"<ReplicationResponse xmlns={quoteattr(NAMESPACE)}>"
                f"{feeds.atom_feed(view, entries, now, {})}</ReplicationResponse>")

    return SoapService(
        path=PATH,
        wsdl=_DOCUMENTS / "StamdataReplication.wsdl",
        schemas={name: _DOCUMENTS / name for name in ("StamdataReplication.xsd", "atom.xsd")} | SHARED_SCHEMAS,
        operations={f"{{{NAMESPACE}}}ReplicationRequest": replicate},
    )


def _unsigned(text: str | None, name: str) -> int | None:
    """Absent is None (for maxRecords: the largest page; a maxRecords of 0 gets the smallest, one entry)."""
    if text is None or text == "":
        return None
    if not text.isascii() or not text.isdigit() or len(text) > 10:
        raise _fault(f"{name} must be an unsigned integer")
    return int(text)


def _fault(message: str) -> SoapFault:
    message = mask_cpr(message)  # the request's own words come back: a CPR typed into them stays masked
    detail = f"<ReplicationFault xmlns={quoteattr(NAMESPACE)}>{escape(message)}</ReplicationFault>"
    return SoapFault("Client", message, detail)
