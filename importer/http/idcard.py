"""SOSI ID cards: who calls the platform's SOAP services, as vouched for by the platform's STS (FORMATS.md §5).

A DGWS 1.0.1 caller puts an ID card in the `wsse:Security` header: a SAML 2.0 assertion that the platform's
security token service (STS) signed. The card says which IT system of which care provider is calling, and at
which authentication level. This module decides whether a card is one the STS issued and still vouches for, and
reads it; what a caller may then do is decided where access is controlled.

The form assumed (the common DGWS 1.0.1 form, as the platform's STS and the Seal libraries write it)::

    <wsse:Security>                                     (OASIS WSS 1.0 secext namespace)
      <saml:Assertion id="IDCard" Version="2.0" ...>    (urn:oasis:names:tc:SAML:2.0:assertion)
        <saml:Issuer/> <saml:Subject/>
        <saml:Conditions NotBefore="..." NotOnOrAfter="..."/>
        <saml:AttributeStatement id="IDCardData">  sosi:IDCardID, sosi:IDCardVersion (1.0.1),
                                                    sosi:IDCardType (system|user), sosi:AuthenticationLevel (1..5),
                                                    sosi:OCESCertHash
        <saml:AttributeStatement id="UserLog">     (user cards) medcom:UserCivilRegistrationNumber, ...
        <saml:AttributeStatement id="SystemLog">   medcom:ITSystemName,
                                                    medcom:CareProviderID NameFormat="medcom:cvrnumber" (or
                                                    medcom:ynumber, medcom:skscode, ...), medcom:CareProviderName
        <ds:Signature id="OCESSignature">          enveloped, Reference URI="#IDCard", exclusive c14n
      </saml:Assertion>

Attribute names are literal strings (`Name="sosi:IDCardID"`), not namespace-qualified names, so they are compared
as strings. Attributes are looked up by name across all attribute statements of the card, whichever statement
holds them: cards that put everything in `IDCardData` read the same. A name that occurs twice, or an attribute
with other than one value, makes the card ambiguous and it is refused. Times without a zone are read as UTC, as
SAML 2.0 has all its times in UTC. Only `sosi:IDCardVersion` 1.0.1 is accepted: that is the card the platform's
STS issues, and another version would not mean what this module reads into it.

Decisions, each with its reason:

* Trust is the configured STS certificates, nothing else. The card's signature is verified with each configured
  certificate in turn (signxml's `x509_cert`); a certificate the card carries in its `ds:KeyInfo` is never
  trusted, else anyone with a self-made certificate could issue cards.
* Only what the signature covers is read. signxml returns the signed assertion re-parsed from its canonical form
  (`signed_xml`, the enveloped signature removed); the card's data comes from that copy alone, never from the
  tree the request was parsed into. An unsigned assertion or attribute slipped in beside, around or inside the
  signed one (signature wrapping) is therefore never read, and neither is a value cut short by a comment the
  signature does not see (`Test <!---->EPJ` reads "Test EPJ", as signed, not "Test "). Besides, the SOAP
  Header must hold exactly one `saml:Assertion`, a direct child of `wsse:Security`, the signature must be a direct
  child of the assertion, and its one reference must be the assertion itself (`#IDCard`): a card that reads two
  ways is refused outright.
* SHA-1 is accepted. DGWS 1.0.1 cards are signed RSA-SHA1 with SHA-1 digests, and the platform's STS still issues
  them; signxml 5 refuses SHA-1 unless told otherwise, so the accepted algorithms are listed explicitly: RSA-SHA1
  and RSA-SHA256, digests SHA-1 and SHA-256. Nothing else (no HMAC, whose key would have to be shared; no
  algorithm the STS does not use).
* Clock skew of five minutes (`CLOCK_SKEW`), on both ends of the card's validity: the STS's clock and ours are
  not the same clock, and a card issued "now" by a clock a little ahead must not be refused for a minute. A card is
  valid from `NotBefore - skew` up to, not including, `NotOnOrAfter + skew`.
* An STS certificate that is expired (or not yet valid) at the time of the request does not vouch for anything:
  a card whose signature only verifies with such a certificate is refused as `invalid_certificate`, so an
  operator sees that the configured certificate must be renewed, not that callers forge cards. A certificate
  renewed over the same key still verifies the card; the currently valid one is tried first.
* `ds:Signature id="OCESSignature"`: SOSI cards carry a lowercase `id` on the signature element, which the
  XML-Signature schema (that signxml checks the signature against) does not allow. It is dropped from a private
  copy before verification; the signature element is outside what the signature covers, so nothing is lost.
* Checks run in this order: header present, signature, card content (`invalid_idcard`), times
  (`expired_idcard`), level (`security_level_failed`). Nothing the signature does not cover is judged first.
* Any exception signxml raises while verifying means "not verified" (fail closed), whatever its kind: a broken
  signature element is the caller's fault, never an error of the service.
* Parsing is safe: the elements come from the SOAP parser (no DTD, no entities, no network); the copies signxml
  makes are parsed with an equally strict parser, and nothing is ever fetched.
* Messages never carry a CPR number: a user card's CPR is never read into the card or a message, and every
  message is masked all the same.

One `XMLVerifier` is made per verification: it keeps per-call state, and SOAP handlers run in worker threads.
Namespaces are defined here rather than taken from `soap.py`, so that `soap.py` can import this module.
"""

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Final, Literal

from cryptography import x509
from lxml import etree
from signxml.algorithms import DigestAlgorithm, SignatureMethod
from signxml.verifier import SignatureConfiguration, VerifyResult, XMLVerifier

from importer.errors import UsageError
from importer.logs import get_logger
from importer.privacy import mask_cpr

log = get_logger(__name__)

WSSE: Final = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
SAML: Final = "urn:oasis:names:tc:SAML:2.0:assertion"
DS: Final = "http://www.w3.org/2000/09/xmldsig#"
SOSI: Final = "http://www.sosi.dk/sosi/namespaces/1.0/"  # the `sosi:` prefix of attribute names (a string only)
MEDCOM: Final = "http://www.medcom.dk/dgws/2006/04/dgws-1.0.xsd"  # the `medcom:` prefix (a string only)

ID_CARD_ID: Final = "IDCard"
ID_CARD_VERSION: Final = "1.0.1"
CARD_TYPES: Final = frozenset({"system", "user"})
LEVELS: Final = range(1, 6)
CLOCK_SKEW: Final = timedelta(minutes=5)

ACCEPTED_SIGNATURE_METHODS: Final = frozenset({SignatureMethod.RSA_SHA1, SignatureMethod.RSA_SHA256})
ACCEPTED_DIGESTS: Final = frozenset({DigestAlgorithm.SHA1, DigestAlgorithm.SHA256})

# Attribute names as the card spells them.
CARD_ID: Final = "sosi:IDCardID"
CARD_VERSION: Final = "sosi:IDCardVersion"
CARD_TYPE: Final = "sosi:IDCardType"
AUTHENTICATION_LEVEL: Final = "sosi:AuthenticationLevel"
IT_SYSTEM: Final = "medcom:ITSystemName"
CARE_PROVIDER_ID: Final = "medcom:CareProviderID"
CARE_PROVIDER_NAME: Final = "medcom:CareProviderName"
USER_CPR: Final = "medcom:UserCivilRegistrationNumber"
REQUIRED: Final = (CARD_ID, CARD_VERSION, CARD_TYPE, AUTHENTICATION_LEVEL, IT_SYSTEM, CARE_PROVIDER_ID,
                   CARE_PROVIDER_NAME)

FlowStatus = Literal["missing_required_header", "invalid_idcard", "invalid_signature", "expired_idcard",
                     "security_level_failed", "invalid_certificate"]

_SECURITY = f"{{{WSSE}}}Security"
_ASSERTION = f"{{{SAML}}}Assertion"
_SIGNATURE = f"{{{DS}}}Signature"

# The copies signxml re-parses: as strict as the SOAP parser (no DTD, no entities, nothing fetched).
_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)
# xs:dateTime as SAML writes it; date-only, week dates and other ISO 8601 forms are not SAML times.
_DATETIME = re.compile(r"(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(\d+))?(Z|[+-]\d{2}:\d{2})?")
_MAX_REASON = 200


class IdCardRejected(Exception):
    """The request's ID card is refused: `flow_status` is DGWS's fault string, `message` says why (no CPR)."""

    def __init__(self, flow_status: FlowStatus, message: str) -> None:
        self.flow_status: FlowStatus = flow_status
        self.message = mask_cpr(message)
        super().__init__(f"{flow_status}: {self.message}")


@dataclass(frozen=True)
class IdCard:
    """What a verified card vouches for. Times are aware UTC; `care_provider` is e.g. `cvrnumber:12345678`."""

    card_id: str
    card_type: str
    authentication_level: int
    it_system: str
    care_provider: str
    care_provider_name: str
    not_before: datetime
    not_on_or_after: datetime

    @property
    def client_name(self) -> str:
        """The caller as the audit trail names it: the IT system and the care provider, never a person."""
        return f"idcard:{self.it_system}@{self.care_provider}"


class IdCardVerifier:
    """Verifies ID cards against the platform's STS certificates, with a minimum authentication level.

    `now` is injected (aware, or naive meaning UTC as the project's clock gives it) so tests drive time.
    """

    def __init__(self, sts_certificates: Sequence[x509.Certificate], min_level: int,
                 now: Callable[[], datetime]) -> None:
        if not sts_certificates:
            raise UsageError("no STS certificate is configured: no ID card could ever be verified")
        if min_level not in LEVELS:
            raise UsageError(f"the minimum authentication level must be 1 to 5, not {min_level}")
        self._certificates = tuple(sts_certificates)
        self._min_level = min_level
        self._now = now

    @classmethod
    def from_files(cls, paths: str, min_level: int, now: Callable[[], datetime]) -> "IdCardVerifier":
        """Read the STS certificates from comma-separated PEM files, each of which may hold several certificates
        (the current one and its successor, while the STS changes keys)."""
        names = [name.strip() for name in paths.split(",") if name.strip()]
        if not names:
            raise UsageError("no STS certificate file is configured")
        certificates: list[x509.Certificate] = []
        for name in names:
            try:
                data = Path(name).read_bytes()
            except OSError as error:
                raise UsageError(f"cannot read the STS certificate file {name}: {error.strerror or error}") from None
            try:
                found = x509.load_pem_x509_certificates(data)
            except ValueError:
                raise UsageError(f"the STS certificate file {name} holds no valid PEM certificate") from None
            certificates.extend(found)
        verifier = cls(certificates, min_level, now)
        moment = _utc(now())
        for certificate in certificates:
            if not _valid_at(certificate, moment):
                log.warning("STS certificate not valid now", subject=_subject(certificate),
                            not_before=certificate.not_valid_before_utc.isoformat(),
                            not_after=certificate.not_valid_after_utc.isoformat())
        return verifier

    def verify(self, soap_header: etree._Element | None) -> IdCard:
        """The card in this SOAP Header, verified and read; `IdCardRejected` says why not."""
        assertion = _the_assertion(soap_header)
        moment = _utc(self._now())
        card = _read_card(self._signed_assertion(assertion, moment))
        if moment < card.not_before - CLOCK_SKEW:
            raise IdCardRejected("expired_idcard", f"the ID card is not valid before {card.not_before.isoformat()} "
                                 f"(it is now {moment.isoformat()})")
        if moment >= card.not_on_or_after + CLOCK_SKEW:
            raise IdCardRejected("expired_idcard", f"the ID card expired at {card.not_on_or_after.isoformat()} "
                                 f"(it is now {moment.isoformat()})")
        if card.authentication_level < self._min_level:
            raise IdCardRejected("security_level_failed", f"the ID card has authentication level "
                                 f"{card.authentication_level}, this service requires at least {self._min_level}")
        return card

    def _signed_assertion(self, assertion: etree._Element, moment: datetime) -> etree._Element:
        """The assertion as the STS signed it, from a currently valid configured certificate."""
        prepared = _private_copy(assertion)
        signature = prepared.find(_SIGNATURE)
        if signature is not None and "id" in signature.attrib:  # SOSI's `id="OCESSignature"`, see the docstring
            del signature.attrib["id"]
        stale: x509.Certificate | None = None
        reason = "no certificate tried"
        for certificate in sorted(self._certificates, key=lambda cert: not _valid_at(cert, moment)):
            outcome = _verified_with(prepared, certificate, _clamped(moment, certificate))
            if isinstance(outcome, str):
                reason = outcome
                continue
            if _valid_at(certificate, moment):
                return outcome
            stale = stale or certificate
        if stale is not None:
            raise IdCardRejected("invalid_certificate", f"the ID card is signed with the STS certificate "
                                 f"{_subject(stale)}, which is valid only from "
                                 f"{stale.not_valid_before_utc.isoformat()} to {stale.not_valid_after_utc.isoformat()}")
        raise IdCardRejected("invalid_signature",
                             f"the ID card's signature does not verify with the STS's certificate: {reason}")


def _the_assertion(header: etree._Element | None) -> etree._Element:
    """The one `saml:Assertion` of the header, a direct child of `wsse:Security`, or `missing_required_header`."""
    if header is None:
        raise IdCardRejected("missing_required_header", "the request has no SOAP Header, so no ID card")
    securities = [child for child in header if child.tag == _SECURITY]
    if not securities:
        raise IdCardRejected("missing_required_header", "the SOAP Header has no wsse:Security header with an ID card")
    anywhere = list(header.iter(_ASSERTION))
    placed = [child for security in securities for child in security if child.tag == _ASSERTION]
    if not anywhere:
        raise IdCardRejected("missing_required_header", "the wsse:Security header holds no ID card (saml:Assertion)")
    if len(anywhere) != 1 or len(placed) != 1:
        raise IdCardRejected("missing_required_header",
                             f"the SOAP Header must hold exactly one ID card (saml:Assertion) directly in "
                             f"wsse:Security; it holds {len(anywhere)} assertion(s), {len(placed)} placed there")
    return placed[0]


def _private_copy(element: etree._Element) -> etree._Element:
    """A standalone copy (serialising a subtree keeps the namespaces in scope), so the request is never changed.
    Without its tail: text after the card belongs to wsse:Security, and would not parse as part of a document."""
    return etree.fromstring(etree.tostring(element, with_tail=False), _PARSER)


def _verified_with(assertion: etree._Element, certificate: x509.Certificate,
                   at: datetime) -> etree._Element | str:
    """The signed assertion if the signature verifies with this certificate, else the reason it does not."""
    config = SignatureConfiguration(location="./", expect_references=1, signature_methods=ACCEPTED_SIGNATURE_METHODS,
                                    digest_algorithms=ACCEPTED_DIGESTS, verification_time=at)
    try:
        result = XMLVerifier().verify(assertion, x509_cert=certificate, parser=_PARSER, expect_config=config)
    except Exception as error:  # fail closed: whatever signxml cannot verify is not verified (see the docstring)
        text = str(error).strip()
        return (text.splitlines()[0] if text else type(error).__name__)[:_MAX_REASON]
    if not isinstance(result, VerifyResult):
        return "the signature must have exactly one reference"
    reference = result.signature_xml.find(f"{{{DS}}}SignedInfo/{{{DS}}}Reference")
    if reference is None or reference.get("URI") != f"#{ID_CARD_ID}":
        return f"the signature's reference must be the whole ID card (URI=\"#{ID_CARD_ID}\")"
    signed = result.signed_xml
    if signed is None or signed.tag != _ASSERTION or signed.get("id") != ID_CARD_ID:
        return f"the signature does not cover the saml:Assertion with id=\"{ID_CARD_ID}\""
    return signed


def _read_card(signed: etree._Element) -> IdCard:
    """The card's fields, from the signed copy only; `invalid_idcard` when one is missing or malformed."""
    attributes = _attributes(signed)
    missing = [name for name in REQUIRED if not attributes.get(name, ("", None))[0]]
    if missing:
        raise _invalid(f"the ID card lacks {', '.join(missing)}")
    version = attributes[CARD_VERSION][0]
    if version != ID_CARD_VERSION:
        raise _invalid(f"the ID card has version {version!r}; only DGWS ID cards version {ID_CARD_VERSION} are read")
    card_type = attributes[CARD_TYPE][0]
    if card_type not in CARD_TYPES:
        raise _invalid(f"the ID card's type must be system or user, not {card_type!r}")
    if card_type == "user" and not attributes.get(USER_CPR, ("", None))[0]:
        raise _invalid(f"a user ID card needs {USER_CPR}")
    level_text = attributes[AUTHENTICATION_LEVEL][0]
    if not re.fullmatch(r"[1-5]", level_text):
        raise _invalid(f"the ID card's authentication level must be 1 to 5, not {level_text!r}")
    provider, name_format = attributes[CARE_PROVIDER_ID]
    kind = (name_format or "").strip().rpartition(":")[2]
    if not kind:
        raise _invalid(f"the ID card's {CARE_PROVIDER_ID} has no NameFormat (e.g. medcom:cvrnumber)")
    not_before, not_on_or_after = _validity(signed)
    return IdCard(card_id=attributes[CARD_ID][0], card_type=card_type, authentication_level=int(level_text),
                  it_system=attributes[IT_SYSTEM][0], care_provider=f"{kind}:{provider}",
                  care_provider_name=attributes[CARE_PROVIDER_NAME][0], not_before=not_before,
                  not_on_or_after=not_on_or_after)


def _attributes(signed: etree._Element) -> dict[str, tuple[str, str | None]]:
    """Name -> (value, NameFormat) over every attribute statement; a name twice or a value not once is refused."""
    found: dict[str, tuple[str, str | None]] = {}
    for statement in signed.findall(f"{{{SAML}}}AttributeStatement"):
        for attribute in statement.findall(f"{{{SAML}}}Attribute"):
            name = attribute.get("Name")
            if name is None:
                raise _invalid("an attribute of the ID card has no Name")
            if name in found:
                raise _invalid(f"the ID card holds {name} more than once")
            values = attribute.findall(f"{{{SAML}}}AttributeValue")
            if len(values) != 1:
                raise _invalid(f"the ID card's {name} must have exactly one value, not {len(values)}")
            found[name] = ((values[0].text or "").strip(), attribute.get("NameFormat"))
    return found


def _validity(signed: etree._Element) -> tuple[datetime, datetime]:
    conditions = signed.find(f"{{{SAML}}}Conditions")
    if conditions is None:
        raise _invalid("the ID card has no saml:Conditions, so no validity period")
    not_before = _saml_time(conditions.get("NotBefore"), "NotBefore")
    not_on_or_after = _saml_time(conditions.get("NotOnOrAfter"), "NotOnOrAfter")
    if not_before >= not_on_or_after:
        raise _invalid("the ID card's NotOnOrAfter is not after its NotBefore")
    return not_before, not_on_or_after


def _saml_time(text: str | None, name: str) -> datetime:
    """An xs:dateTime as aware UTC; no zone means UTC (SAML 2.0), fractions beyond microseconds are cut."""
    match = _DATETIME.fullmatch((text or "").strip())
    if match is None:
        raise _invalid(f"the ID card's {name} is missing or not a date and time: {text!r}")
    whole, fraction, zone = match.groups()
    iso = whole + (f".{fraction[:6].ljust(6, '0')}" if fraction else "") + ("+00:00" if zone in (None, "Z") else zone)
    try:
        return datetime.fromisoformat(iso).astimezone(UTC)
    except ValueError:
        raise _invalid(f"the ID card's {name} is not a valid date and time: {text!r}") from None


def _invalid(message: str) -> IdCardRejected:
    return IdCardRejected("invalid_idcard", message)


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _valid_at(certificate: x509.Certificate, moment: datetime) -> bool:
    return certificate.not_valid_before_utc <= moment <= certificate.not_valid_after_utc


def _clamped(moment: datetime, certificate: x509.Certificate) -> datetime:
    """A time within the certificate's validity, so signxml judges only the signature; validity is judged here,
    against the injected clock, to tell an expired STS certificate from a forged card."""
    return min(max(moment, certificate.not_valid_before_utc), certificate.not_valid_after_utc)


def _subject(certificate: x509.Certificate) -> str:
    try:
        return certificate.subject.rfc4514_string()
    except ValueError:
        return f"serial {certificate.serial_number}"
