"""The platform's SOAP authorisation look-up, operation `Authorization` (FORMATS.md §5), for the clients built on
the platform's WSDL: the same answer as `GET /autorisation/v1/persons/{cpr}`, from the same query.
"""

import re
from importlib.resources import files

from lxml import etree

from importer.http.access import Caller
from importer.http.audit import Auditor
from importer.http.copy_register import SHARED_SCHEMAS
from importer.http.database import FacadeDatabase
from importer.http.soap import SoapFault, SoapService, element, require, text_of
from registers.autorisation import lookups

NAMESPACE = "http://nsi.dk/-/stamdata/3.0"
PATH = "/stamdata-authorization-lookup-ws/service/AuthorizationService"
SCOPE = "lookup:autorisation"
_CPR = re.compile(r"^[0-9]{10}$")
_DOCUMENTS = files("registers.autorisation") / "wsdl"


def authorization_service(database: FacadeDatabase, audit: Auditor) -> SoapService:
    def authorization(request: etree._Element, caller: Caller) -> str:
        require(caller, SCOPE)
        cpr = text_of(request, "cpr")
        if cpr is None or not _CPR.match(cpr):
            raise SoapFault("Client", "cpr must be a CPR number of 10 digits")
        person = lookups.person(database, cpr)
        audit.record(caller.name, cpr, PATH)  # before the answer leaves; an unknown person too
        parts = [f'<AuthorizationResponseStructure xmlns="{NAMESPACE}">', element("cpr", cpr)]
        if person.given_name:
            parts.append(element("firstName", person.given_name))
        if person.surname:
            parts.append(element("lastName", person.surname))
        for item in person.authorisations:
            parts.append("<authorization>")
            parts.append(element("authorizationCode", item.number))
            parts.append(element("educationCode", item.education_code))
            if item.education_name is not None:
                parts.append(element("educationName", item.education_name))
            parts.append("</authorization>")
        parts.append("</AuthorizationResponseStructure>")
        return "".join(parts)

    return SoapService(
        path=PATH,
        wsdl=_DOCUMENTS / "AuthorizationService.wsdl",
        schemas={"AuthorizationService.xsd": _DOCUMENTS / "AuthorizationService.xsd"} | SHARED_SCHEMAS,
        operations={f"{{{NAMESPACE}}}AuthorizationRequestStructure": authorization},
    )
