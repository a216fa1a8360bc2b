"""SOSI ID cards for tests: a throwaway STS, cards it signs as the platform's STS does, and the SOAP Header around
them (DGWS 1.0.1, see importer/http/idcard.py for the form).

signxml's `XMLSigner` refuses SHA-1 out of the box; `_Sha1Signer` lifts that (signxml's documented way is to
override `check_deprecated_methods`), because DGWS 1.0.1 cards are signed RSA-SHA1 and the verifier must be tested
against exactly those.
"""

import copy
from collections.abc import Collection
from datetime import UTC, datetime, timedelta
from typing import Literal

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from lxml import etree
from signxml.algorithms import CanonicalizationMethod, DigestAlgorithm, SignatureMethod
from signxml.signer import XMLSigner

from importer.http.idcard import DS, MEDCOM, SAML, SOSI, WSSE

DGWS = "http://www.medcom.dk/dgws/2006/04/dgws-1.0.xsd"
WSU = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd"
SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
TEST_CPR = "0101011234"  # in user cards only; it must never show in a card, a client name or a message
Signature = Literal["rsa-sha1", "rsa-sha256", "rsa-sha512"]  # DGWS uses the first two; SHA-512 is not accepted
ALGORITHMS = {"rsa-sha1": (SignatureMethod.RSA_SHA1, DigestAlgorithm.SHA1),
              "rsa-sha256": (SignatureMethod.RSA_SHA256, DigestAlgorithm.SHA256),
              "rsa-sha512": (SignatureMethod.RSA_SHA512, DigestAlgorithm.SHA512)}


class _Sha1Signer(XMLSigner):
    def check_deprecated_methods(self) -> None:
        """Allow SHA-1: DGWS 1.0.1 cards are signed with it."""


def mint_sts(common_name: str = "Test STS", *, key: rsa.RSAPrivateKey | None = None,
             not_before: datetime | None = None,
             not_after: datetime | None = None) -> tuple[rsa.RSAPrivateKey, x509.Certificate]:
    """An STS key and self-signed certificate (RSA 2048), valid from a day ago for a year unless told otherwise.
    Pass `key` to certify an existing key again (an STS renewing its certificate over the same key)."""
    key = key or rsa.generate_private_key(public_exponent=65537, key_size=2048)
    now = datetime.now(UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    certificate = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
                   .serial_number(x509.random_serial_number())
                   .not_valid_before(not_before or now - timedelta(days=1))
                   .not_valid_after(not_after or now + timedelta(days=365))
                   .sign(key, hashes.SHA256()))
    return key, certificate


def saml_time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def id_card(key: rsa.RSAPrivateKey, cert: x509.Certificate, *, level: int = 3, not_before: datetime | None = None,
            not_on_or_after: datetime | None = None, it_system: str = "Test EPJ", cvr: str = "12345678",
            card_type: str = "system", signature: Signature = "rsa-sha1", card_id: str = "CardNo1",
            care_provider_name: str = "Testlægerne", omit: Collection[str] = (),
            version: str = "1.0.1", reference: str | None = "#IDCard") -> etree._Element:
    """A `saml:Assertion id="IDCard"` signed by this STS as DGWS 1.0.1 has it: enveloped signature, last child,
    `id="OCESSignature"`, reference `#IDCard`, exclusive c14n. Valid from a minute ago for a day unless told
    otherwise. `omit` leaves attributes out by name (e.g. "medcom:ITSystemName") to make broken cards; `reference`
    is the signature's reference (None: signxml's default, the whole document, `URI=""`)."""
    start = not_before or datetime.now(UTC) - timedelta(minutes=1)
    end = not_on_or_after or start + timedelta(days=1)
    nsmap = {"saml": SAML, "ds": DS, "sosi": SOSI, "medcom": MEDCOM}
    assertion = etree.Element(_saml("Assertion"), nsmap=nsmap,
                              attrib={"IssueInstant": saml_time(start), "Version": "2.0", "id": "IDCard"})
    etree.SubElement(assertion, _saml("Issuer")).text = "Test STS"
    subject = etree.SubElement(assertion, _saml("Subject"))
    name_id = etree.SubElement(subject, _saml("NameID"),
                               Format="medcom:cprnumber" if card_type == "user" else "medcom:cvrnumber")
    name_id.text = TEST_CPR if card_type == "user" else cvr
    confirmation = etree.SubElement(subject, _saml("SubjectConfirmation"))
    etree.SubElement(confirmation, _saml("ConfirmationMethod")).text = "urn:oasis:names:tc:SAML:2.0:cm:holder-of-key"
    key_info = etree.SubElement(etree.SubElement(confirmation, _saml("SubjectConfirmationData")), f"{{{DS}}}KeyInfo")
    etree.SubElement(key_info, f"{{{DS}}}KeyName").text = "OCESSignature"
    etree.SubElement(assertion, _saml("Conditions"), NotBefore=saml_time(start), NotOnOrAfter=saml_time(end))
    _statement(assertion, "IDCardData", omit, [
        ("sosi:IDCardID", card_id, None), ("sosi:IDCardVersion", version, None), ("sosi:IDCardType", card_type, None),
        ("sosi:AuthenticationLevel", str(level), None), ("sosi:OCESCertHash", "AFJH0x3yN6KQ1ea9rOPsKdxRhgw=", None)])
    if card_type == "user":
        _statement(assertion, "UserLog", omit, [
            ("medcom:UserCivilRegistrationNumber", TEST_CPR, None), ("medcom:UserGivenName", "Test", None),
            ("medcom:UserSurName", "Testesen", None), ("medcom:UserRole", "7170", None)])
    _statement(assertion, "SystemLog", omit, [
        ("medcom:ITSystemName", it_system, None), ("medcom:CareProviderID", cvr, "medcom:cvrnumber"),
        ("medcom:CareProviderName", care_provider_name, None)])
    etree.SubElement(assertion, f"{{{DS}}}Signature", Id="placeholder")  # where signxml puts the signature
    signature_method, digest = ALGORITHMS[signature]
    signer = _Sha1Signer(signature_algorithm=signature_method, digest_algorithm=digest,
                         c14n_algorithm=CanonicalizationMethod.EXCLUSIVE_XML_CANONICALIZATION_1_0)
    signed = signer.sign(assertion, key=key, cert=[cert], reference_uri=reference)
    signed_signature = signed.find(f"{{{DS}}}Signature")
    assert signed_signature is not None
    signed_signature.set("id", "OCESSignature")  # SOSI's (schema-invalid) lowercase id, outside what is signed
    return signed


def _saml(name: str) -> str:
    return f"{{{SAML}}}{name}"


def _statement(assertion: etree._Element, statement_id: str, omit: Collection[str],
               attributes: list[tuple[str, str, str | None]]) -> None:
    statement = etree.SubElement(assertion, _saml("AttributeStatement"), id=statement_id)
    for name, value, name_format in attributes:
        if name in omit:
            continue
        attribute = etree.SubElement(statement, _saml("Attribute"), Name=name)
        if name_format is not None:
            attribute.set("NameFormat", name_format)
        etree.SubElement(attribute, _saml("AttributeValue")).text = value


def security_header(*cards: etree._Element, dgws_header: bool = True, security_level: int = 3,
                    flow_id: str = "flow-1", message_id: str = "message-1") -> etree._Element:
    """A `soap:Header` with a `wsse:Security` holding copies of these cards (none or several, to test refusals),
    and unless told otherwise a `dgws:Header` (SecurityLevel, Linking with FlowID and MessageID), inside an
    envelope, as it arrives: serialised and parsed again."""
    nsmap = {"soap": SOAP_ENV, "wsse": WSSE, "wsu": WSU, "dgws": DGWS, "saml": SAML, "ds": DS}
    envelope = etree.Element(f"{{{SOAP_ENV}}}Envelope", nsmap=nsmap)
    header = etree.SubElement(envelope, f"{{{SOAP_ENV}}}Header")
    security = etree.SubElement(header, f"{{{WSSE}}}Security", {f"{{{SOAP_ENV}}}mustUnderstand": "1"})
    etree.SubElement(security, f"{{{WSU}}}Timestamp")
    for card in cards:
        security.append(copy.deepcopy(card))
    if dgws_header:
        dgws = etree.SubElement(header, f"{{{DGWS}}}Header", {f"{{{SOAP_ENV}}}mustUnderstand": "1"})
        etree.SubElement(dgws, f"{{{DGWS}}}SecurityLevel").text = str(security_level)
        linking = etree.SubElement(dgws, f"{{{DGWS}}}Linking")
        etree.SubElement(linking, f"{{{DGWS}}}FlowID").text = flow_id
        etree.SubElement(linking, f"{{{DGWS}}}MessageID").text = message_id
    etree.SubElement(envelope, f"{{{SOAP_ENV}}}Body")
    return over_the_wire(header)


def over_the_wire(element: etree._Element) -> etree._Element:
    """This element's document, serialised and parsed again as the SOAP service parses a request: the same
    element found in the fresh tree (so namespaces, text and tails are what a real request would give)."""
    steps: list[int] = []
    current = element
    while (parent := current.getparent()) is not None:
        steps.append(parent.index(current))
        current = parent
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    found = etree.fromstring(etree.tostring(current), parser)
    for step in reversed(steps):
        found = found[step]
    return found
