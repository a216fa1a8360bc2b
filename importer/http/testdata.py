"""The test-data service over HTTP (FORMATS.md §6; README, "Test data"), scope `testdata`.

Two forms of the same three operations on `/testdata/v1/{register}`:
- the platform's DumpRestore messages in a SOAP 1.1 envelope, POSTed to `/testdata/v1/{register}`:
  `DumpPatientsRequest`, `RestorePatientsRequest` (`Dump` with `Identifier`, `DumpData`, optional
  `RestoreAtDate`), `ResetPatientsRequest`, in the 2013 namespace (plain CPR identifiers) or the 2019 one
  (`PersonIdentifier source="CPR"`); the answer uses the request's namespace. A restore's renumbered keys are
  reported in `RestoredKey` elements of the stamdata namespace after the identifiers;
- JSON: `POST /testdata/v1/{register}/dump|restore|reset`.
Only where `testdata_enabled` is set; elsewhere every operation answers 403 naming the setting. A dump answers
with a person's data, so it is recorded in the audit trail.
"""

from collections.abc import Callable
from datetime import date
from typing import Annotated
from xml.sax.saxutils import escape, quoteattr

from fastapi import APIRouter, HTTPException, Request
from lxml import etree
from pydantic import BaseModel, Field

from importer.errors import DataError, ImporterError
from importer.http.access import Caller, caller_of
from importer.http.audit import Auditor
from importer.http.soap import SoapFault, SoapService, require, text_of
from importer.load.locks import RegisterBusy
from importer.load.plugin import Register
from importer.load.testdata import CPR, Restored, TestData
from importer.privacy import mask_cpr

SCOPE = "testdata"
NS2013 = "http://www.ssi.dk/nsi/xml.schema/2013/01/01"
NS2019 = "http://www.ssi.dk/nsi/xml.schema/2019/09/01"
STAMDATA_NS = "urn:nsi.dk:stamdata:testdata"
LOCK_WAIT_S = 30.0  # an HTTP caller waits this long for an import holding the register, then gets a 503


def path_of(register: Register) -> str:
    return f"/testdata/v1/{register.name}"


class DumpIn(BaseModel):
    cpr: Annotated[str | None, Field(pattern=CPR.pattern, description="The person; none for a register without "
                                                                      "persons (doseringsforslag)")] = None


class DumpOut(BaseModel):
    cpr: str | None
    dumpData: str


class RestoreIn(BaseModel):
    dumpData: str
    cpr: Annotated[str | None, Field(pattern=CPR.pattern, description="Restore onto this person (default: the "
                                                                      "dump's own)")] = None
    restoreAtDate: date | None = Field(None, description="Move every date by (this - the dump's date); not future")


class RestoreOut(BaseModel):
    cpr: str | None
    rows: int
    shiftDays: int
    keys: list[dict[str, str]] = Field(description="Each dumped key and the key restored (a test-range key where "
                                                   "the dumped one has history here)")


class ResetIn(BaseModel):
    cpr: Annotated[str, Field(pattern=CPR.pattern)]


class ResetOut(BaseModel):
    cpr: str
    closed: int
    keys: list[str]


def _enabled(testdata: TestData | None) -> TestData:
    if testdata is None:
        raise HTTPException(403, "test data is not enabled here (testdata_enabled = false; never in production)")
    return testdata


def _http_error(error: Exception) -> HTTPException:
    if isinstance(error, RegisterBusy):
        return HTTPException(503, "an import holds the register; try again shortly", headers={"Retry-After": "30"})
    if isinstance(error, DataError | ImporterError) and error.exit_code in {1, 2}:
        return HTTPException(422, mask_cpr(str(error)))
    raise error


def json_router(register: Register, testdata: TestData | None, audit: Auditor) -> APIRouter:
    api = APIRouter(prefix=path_of(register), tags=["test data"])

    @api.post("/dump", response_model=DumpOut, summary="Dump a person's data (history included) as DumpData")
    def dump(request: Request, body: DumpIn) -> DumpOut:
        service = _enabled(testdata)
        try:
            data = service.dump(register, body.cpr)
        except Exception as error:
            raise _http_error(error) from None
        if body.cpr is not None:
            audit.record(caller_of(request).name, body.cpr, f"{path_of(register)}/dump")
        return DumpOut(cpr=body.cpr, dumpData=data)

    @api.post("/restore", response_model=RestoreOut, summary="Restore a dump onto its person or another")
    def restore(body: RestoreIn) -> RestoreOut:
        service = _enabled(testdata)
        try:
            restored = service.restore(register, body.dumpData, body.cpr, body.restoreAtDate)
        except Exception as error:
            raise _http_error(error) from None
        return _restore_out(restored)

    @api.post("/reset", response_model=ResetOut, summary="Close a person's open rows and forget their test keys")
    def reset(body: ResetIn) -> ResetOut:
        service = _enabled(testdata)
        try:
            done = service.reset(register, body.cpr)
        except Exception as error:
            raise _http_error(error) from None
        return ResetOut(cpr=done.person, closed=done.closed, keys=done.keys)

    return api


def _restore_out(restored: Restored) -> RestoreOut:
    return RestoreOut(cpr=restored.person, rows=restored.rows, shiftDays=restored.shift_days,
                      keys=[{"from": old, "to": new} for old, new in sorted(restored.keys.items())])


def soap_service(register: Register, testdata: TestData | None, audit: Auditor) -> SoapService:
    """The DumpRestore messages (both namespaces) for a register with persons."""

    def guarded(operation: Callable[[etree._Element, str, TestData, Caller], str]) -> Callable[..., str]:
        def handle(request: etree._Element, caller: Caller) -> str:
            require(caller, SCOPE)
            if testdata is None:
                raise SoapFault("Client", "test data is not enabled here (testdata_enabled = false)", status=403)
            namespace = etree.QName(request).namespace or NS2013
            try:
                return operation(request, namespace, testdata, caller)
            except RegisterBusy:
                raise SoapFault("Server", "an import holds the register; try again shortly", status=503,
                                headers={"Retry-After": "30"}) from None
            except ImporterError as error:
                if error.exit_code not in {1, 2}:
                    raise
                raise SoapFault("Client", mask_cpr(str(error))) from None
        return handle

    def dump(request: etree._Element, ns: str, service: TestData, caller: Caller) -> str:
        people = _identifiers(request)
        dumps = []
        for cpr in people:
            data = service.dump(register, cpr)
            audit.record(caller.name, cpr, f"{path_of(register)} DumpPatients")
            dumps.append(f"<t:Dump>{_identifier(cpr, ns)}<t:DumpData>{data}</t:DumpData></t:Dump>")
        return f"<t:DumpPatientsResponse xmlns:t={quoteattr(ns)}>{''.join(dumps)}</t:DumpPatientsResponse>"

    def restore(request: etree._Element, ns: str, service: TestData, caller: Caller) -> str:
        parts = []
        dumps = [child for child in request if isinstance(child.tag, str) and etree.QName(child).localname == "Dump"]
        if not dumps:
            raise SoapFault("Client", "a RestorePatientsRequest holds one or more Dump elements")
        for element in dumps:
            (cpr,) = _identifiers(element)
            data = text_of(element, "DumpData") or ""
            at_text = text_of(element, "RestoreAtDate")
            try:
                at = date.fromisoformat(at_text) if at_text else None
            except ValueError:
                raise SoapFault("Client", "RestoreAtDate must be a date yyyy-MM-dd") from None
            restored = service.restore(register, data, cpr, at)
            keys = "".join(f"<s:RestoredKey xmlns:s={quoteattr(STAMDATA_NS)} from={quoteattr(old)} "
                           f"to={quoteattr(new)}/>" for old, new in sorted(restored.keys.items()))
            parts.append(_identifier(cpr, ns) + keys)
        return f"<t:RestorePatientsResponse xmlns:t={quoteattr(ns)}>{''.join(parts)}</t:RestorePatientsResponse>"

    def reset(request: etree._Element, ns: str, service: TestData, caller: Caller) -> str:
        people = _identifiers(request)
        for cpr in people:
            service.reset(register, cpr)
        identifiers = "".join(_identifier(cpr, ns) for cpr in people)
        return f"<t:ResetPatientsResponse xmlns:t={quoteattr(ns)}>{identifiers}</t:ResetPatientsResponse>"

    operations: dict[str, Callable[[etree._Element, Caller], str]] = {}
    for namespace in (NS2013, NS2019):
        operations[f"{{{namespace}}}DumpPatientsRequest"] = guarded(dump)
        operations[f"{{{namespace}}}RestorePatientsRequest"] = guarded(restore)
        operations[f"{{{namespace}}}ResetPatientsRequest"] = guarded(reset)
    return SoapService(path=path_of(register), wsdl=None, schemas={}, operations=operations)


def _identifiers(element: etree._Element) -> list[str]:
    """The CPR numbers of `Identifier/PersonIdentifier` children (2019: `source` must be CPR if given)."""
    found = []
    for identifier in element:
        if not isinstance(identifier.tag, str) or etree.QName(identifier).localname != "Identifier":
            continue
        for person in identifier:
            if isinstance(person.tag, str) and etree.QName(person).localname == "PersonIdentifier":
                source = person.get("source")
                if source not in (None, "CPR"):
                    raise SoapFault("Client", f"PersonIdentifier source {source!r}: only CPR is held here")
                text = (person.text or "").strip()
                if not CPR.match(text):
                    raise SoapFault("Client", "PersonIdentifier must be a CPR number of 10 digits")
                found.append(text)
    if not found:
        raise SoapFault("Client", "the request names no Identifier/PersonIdentifier")
    return found


def _identifier(cpr: str, namespace: str) -> str:
    source = ' source="CPR"' if namespace == NS2019 else ""
    return f"<t:Identifier><t:PersonIdentifier{source}>{escape(cpr)}</t:PersonIdentifier></t:Identifier>"


