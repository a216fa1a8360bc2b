"""SOSI ID cards: a card the STS signed is read, every other card is refused with DGWS's fault string.

STS keys are made once per module (a 2048-bit key is the slow part); every card is signed afresh by the helpers
in tests/http/idcards.py, and arrives serialised and parsed again, as in a request.
"""

import copy
import functools
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import Encoding
from hypothesis import given, settings
from hypothesis import strategies as st
from lxml import etree

from importer.errors import UsageError
from importer.http.idcard import CLOCK_SKEW, DS, SAML, WSSE, IdCard, IdCardRejected, IdCardVerifier
from tests.http.idcards import TEST_CPR, id_card, mint_sts, over_the_wire, security_header

NOW = datetime.now(UTC).replace(microsecond=0)
NS = {"saml": SAML, "ds": DS, "wsse": WSSE}
LEVEL = "saml:AttributeStatement/saml:Attribute[@Name='sosi:AuthenticationLevel']/saml:AttributeValue"


@functools.cache
def sts() -> tuple[rsa.RSAPrivateKey, x509.Certificate]:
    return mint_sts()


@functools.cache
def other_sts() -> tuple[rsa.RSAPrivateKey, x509.Certificate]:
    return mint_sts("Someone Else's STS")


def verifier(*certificates: x509.Certificate, min_level: int = 3, now: datetime = NOW) -> IdCardVerifier:
    return IdCardVerifier(list(certificates) or [sts()[1]], min_level, lambda: now)


def card(**options: object) -> etree._Element:
    """A card from the configured STS, valid from an hour ago for a day, unless told otherwise."""
    key, certificate = sts()
    options.setdefault("not_before", NOW - timedelta(hours=1))
    options.setdefault("not_on_or_after", NOW + timedelta(hours=23))
    return id_card(key, certificate, **options)  # type: ignore[arg-type]


def refused(header: etree._Element | None, check: IdCardVerifier | None = None) -> IdCardRejected:
    with pytest.raises(IdCardRejected) as caught:
        (check or verifier()).verify(header)
    assert TEST_CPR not in str(caught.value) and TEST_CPR not in caught.value.message
    return caught.value


def assertion_of(header: etree._Element) -> etree._Element:
    found = header.find("wsse:Security/saml:Assertion", NS)
    assert found is not None
    return found


# --- cards that verify ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("signature", ["rsa-sha1", "rsa-sha256"])
def test_a_card_the_sts_signed_is_read(signature: str) -> None:
    verified = verifier().verify(security_header(card(signature=signature, level=4)))
    assert verified == IdCard(card_id="CardNo1", card_type="system", authentication_level=4, it_system="Test EPJ",
                              care_provider="cvrnumber:12345678", care_provider_name="Testlægerne",
                              not_before=NOW - timedelta(hours=1), not_on_or_after=NOW + timedelta(hours=23))
    assert verified.client_name == "idcard:Test EPJ@cvrnumber:12345678"
    assert verified.not_before.tzinfo is UTC


def test_a_user_card_is_read_without_the_users_cpr() -> None:
    verified = verifier().verify(security_header(card(card_type="user")))
    assert verified.card_type == "user"
    assert TEST_CPR not in repr(verified) and TEST_CPR not in verified.client_name


def test_the_request_itself_is_not_changed() -> None:
    header = security_header(card())
    before = etree.tostring(header)
    verifier().verify(header)
    assert etree.tostring(header) == before


def test_text_around_the_card_is_no_part_of_it() -> None:
    header = security_header(card())
    assertion_of(header).tail = "text after the card"
    assert verifier().verify(header).it_system == "Test EPJ"


def test_a_naive_clock_means_utc() -> None:
    """The project's clock gives naive UTC; the verifier takes it as such."""
    check = IdCardVerifier([sts()[1]], 3, lambda: NOW.replace(tzinfo=None))
    assert check.verify(security_header(card())).authentication_level == 3


def test_a_card_without_a_dgws_header_or_the_sosi_signature_id_is_read() -> None:
    signed = card()
    signature = signed.find("ds:Signature", NS)
    assert signature is not None and signature.get("id") == "OCESSignature"
    del signature.attrib["id"]
    assert verifier().verify(security_header(signed, dgws_header=False)).it_system == "Test EPJ"


# --- missing_required_header ---------------------------------------------------------------------------------


def test_no_header_no_security_no_card_and_two_cards_are_missing_headers() -> None:
    no_security = security_header(card())
    security = no_security.find("wsse:Security", NS)
    assert security is not None
    no_security.remove(security)
    for header in (None, no_security, security_header(), security_header(card(), card(card_id="CardNo2"))):
        assert refused(header).flow_status == "missing_required_header"


def test_a_card_in_an_old_wsse_namespace_is_not_found() -> None:
    header = security_header(card())
    security = header.find("wsse:Security", NS)
    assert security is not None
    security.tag = "{http://schemas.xmlsoap.org/ws/2002/07/secext}Security"
    assert refused(header).flow_status == "missing_required_header"


# --- signature -----------------------------------------------------------------------------------------------


def test_an_attribute_changed_after_signing_is_refused() -> None:
    header = security_header(card(level=3))
    level = assertion_of(header).find(LEVEL, NS)
    assert level is not None and level.text == "3"
    level.text = "4"
    assert refused(header).flow_status == "invalid_signature"


def test_a_card_from_another_sts_is_refused_though_it_carries_its_own_certificate() -> None:
    key, certificate = other_sts()
    forged = id_card(key, certificate, not_before=NOW - timedelta(hours=1))
    assert forged.find("ds:Signature/ds:KeyInfo/ds:X509Data/ds:X509Certificate", NS) is not None
    rejection = refused(security_header(forged))
    assert rejection.flow_status == "invalid_signature"
    # ... and is read when that STS is the configured one: the refusal is about trust, not form
    assert verifier(certificate).verify(security_header(forged)).it_system == "Test EPJ"


def test_an_unsigned_card_is_refused() -> None:
    unsigned = card()
    signature = unsigned.find("ds:Signature", NS)
    assert signature is not None
    unsigned.remove(signature)
    assert refused(security_header(unsigned)).flow_status == "invalid_signature"


@pytest.mark.parametrize("reference", [None, "#IDCardData"])
def test_a_signature_that_does_not_reference_the_whole_card_is_refused(reference: str | None) -> None:
    """`URI=""` (the whole document: here the same element, but not the DGWS form) and a part of the card."""
    assert refused(security_header(card(reference=reference))).flow_status == "invalid_signature"


def test_an_algorithm_dgws_does_not_use_is_refused() -> None:
    rejection = refused(security_header(card(signature="rsa-sha512")))
    assert rejection.flow_status == "invalid_signature" and "forbidden" in rejection.message


def evil_assertion(level: str = "5", it_system: str = "Evil EPJ") -> etree._Element:
    """An unsigned card that claims more than the signed one."""
    evil = copy.deepcopy(card())
    signature = evil.find("ds:Signature", NS)
    assert signature is not None
    evil.remove(signature)
    value = evil.find(LEVEL, NS)
    system = evil.find("saml:AttributeStatement/saml:Attribute[@Name='medcom:ITSystemName']/saml:AttributeValue",
                       NS)
    assert value is not None and system is not None
    value.text, system.text = level, it_system
    return evil


def wrapped_first_in_security() -> etree._Element:
    header = security_header(card())
    security = header.find("wsse:Security", NS)
    assert security is not None
    security.insert(0, evil_assertion())
    return header


def wrapped_in_advice() -> etree._Element:
    """The signed card moved into the evil one's saml:Advice, the evil one taking its id and place."""
    header = security_header(card())
    security = header.find("wsse:Security", NS)
    assert security is not None
    signed = assertion_of(header)
    evil = evil_assertion()
    evil.insert(1, etree.Element(f"{{{SAML}}}Advice"))
    evil[1].append(signed)  # moves it out of wsse:Security
    security.append(evil)
    return header


def wrapped_before_security() -> etree._Element:
    header = security_header(card())
    header.insert(0, etree.Element(f"{{{WSSE}}}Other"))
    header[0].append(evil_assertion())
    return header


@pytest.mark.parametrize("attack", [wrapped_first_in_security, wrapped_in_advice, wrapped_before_security])
def test_a_second_unsigned_card_a_naive_reader_would_read_is_refused(attack: Callable[[], etree._Element]) -> None:
    header = over_the_wire(attack())
    naive = header.find(f".//saml:Assertion/{LEVEL}", NS)
    assert naive is not None and naive.text == "5"  # what a reader taking the first card would believe
    assert refused(header).flow_status == "missing_required_header"


def test_unsigned_attributes_inside_the_signature_are_never_read() -> None:
    """Wrapping inside the card: an evil attribute statement in a ds:Object of the signature, the signature moved
    up so a document-order reader meets it first. The enveloped signature is outside what is signed, so the card
    still verifies, and what is read is what the STS signed."""
    header = security_header(card(level=3))
    signed = assertion_of(header)
    signature = signed.find("ds:Signature", NS)
    assert signature is not None
    statement = evil_assertion().find("saml:AttributeStatement", NS)
    system = evil_assertion().find("saml:AttributeStatement[@id='SystemLog']", NS)
    assert statement is not None and system is not None
    holder = etree.SubElement(signature, f"{{{DS}}}Object")
    holder.extend([statement, system])
    signed.insert(1, signature)  # right after saml:Issuer
    header = over_the_wire(header)
    naive = assertion_of(header).find(f".//{LEVEL}", NS)
    assert naive is not None and naive.text == "5"
    verified = verifier().verify(header)
    assert (verified.authentication_level, verified.it_system) == (3, "Test EPJ")


def test_a_comment_inside_a_signed_value_does_not_truncate_it() -> None:
    """Exclusive c14n without comments signs "Test EPJ" and "Test <!---->EPJ" alike; a reader of the request's
    tree would take `.text` and believe "Test " (the SAML comment-truncation attack). What is read is the
    signed, canonical text."""
    header = security_header(card(it_system="Test EPJ"))
    value = assertion_of(header).find(
        "saml:AttributeStatement/saml:Attribute[@Name='medcom:ITSystemName']/saml:AttributeValue", NS)
    assert value is not None
    value.text = "Test "
    comment = etree.Comment(" the STS never wrote this ")
    comment.tail = "EPJ"
    value.append(comment)
    assert verifier().verify(header).it_system == "Test EPJ"


# --- card content --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("options", "expected"), [
    ({"omit": ["medcom:ITSystemName"]}, "medcom:ITSystemName"),
    ({"omit": ["sosi:AuthenticationLevel", "medcom:CareProviderName"]}, "sosi:AuthenticationLevel"),
    ({"omit": ["sosi:IDCardID"]}, "sosi:IDCardID"),
    ({"it_system": "  "}, "medcom:ITSystemName"),
    ({"version": "1.0"}, "version"),
    ({"card_type": "robot"}, "type"),
    ({"level": 7}, "level"),
    ({"card_type": "user", "omit": ["medcom:UserCivilRegistrationNumber"]}, "medcom:UserCivilRegistrationNumber"),
    ({"not_on_or_after": NOW - timedelta(hours=1)}, "NotOnOrAfter"),
])
def test_a_signed_card_that_lacks_what_a_card_must_say_is_invalid(options: dict[str, object], expected: str) -> None:
    rejection = refused(security_header(card(**options)))
    assert rejection.flow_status == "invalid_idcard" and expected in rejection.message


# --- time ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("not_before", "not_on_or_after", "accepted"), [
    (NOW - timedelta(days=2), NOW - timedelta(days=1), False),  # expired
    (NOW + timedelta(hours=1), NOW + timedelta(hours=2), False),  # not yet valid
    (NOW + timedelta(minutes=4), NOW + timedelta(hours=2), True),  # issued by a clock a little ahead
    (NOW - timedelta(hours=2), NOW - timedelta(minutes=4), True),  # just expired, within the skew
    (NOW + CLOCK_SKEW + timedelta(seconds=1), NOW + timedelta(hours=2), False),
    (NOW - timedelta(hours=2), NOW - CLOCK_SKEW, False),  # NotOnOrAfter is exclusive, the skew too
])
def test_a_card_is_valid_from_not_before_to_not_on_or_after_give_or_take_the_skew(
        not_before: datetime, not_on_or_after: datetime, accepted: bool) -> None:
    header = security_header(card(not_before=not_before, not_on_or_after=not_on_or_after))
    if accepted:
        assert verifier().verify(header).not_on_or_after == not_on_or_after
    else:
        assert refused(header).flow_status == "expired_idcard"


@functools.cache
def hour_long_card() -> etree._Element:
    return security_header(card(not_before=NOW, not_on_or_after=NOW + timedelta(hours=1)))


@settings(max_examples=40, deadline=None)
@given(st.integers(min_value=-3600, max_value=3 * 3600))
def test_validity_is_exactly_the_skewed_interval(offset: int) -> None:
    moment = NOW + timedelta(seconds=offset)
    inside = NOW - CLOCK_SKEW <= moment < NOW + timedelta(hours=1) + CLOCK_SKEW
    check = verifier(now=moment)
    if inside:
        assert check.verify(hour_long_card()).card_id == "CardNo1"
    else:
        assert refused(hour_long_card(), check).flow_status == "expired_idcard"


# --- level ---------------------------------------------------------------------------------------------------


def test_a_level_below_the_minimum_fails_the_security_level() -> None:
    header = security_header(card(level=3, card_type="user"))
    assert verifier(min_level=3).verify(header).authentication_level == 3
    rejection = refused(header, verifier(min_level=4))
    assert rejection.flow_status == "security_level_failed" and "3" in rejection.message


# --- STS certificates ----------------------------------------------------------------------------------------


def test_a_card_signed_with_an_expired_sts_certificate_is_refused() -> None:
    key, _ = sts()
    _, expired = mint_sts(key=key, not_before=NOW - timedelta(days=400), not_after=NOW - timedelta(days=1))
    _, future = mint_sts(key=key, not_before=NOW + timedelta(days=1), not_after=NOW + timedelta(days=400))
    signed = security_header(id_card(key, expired, not_before=NOW - timedelta(hours=1)))
    for stale in (expired, future):
        assert refused(signed, verifier(stale)).flow_status == "invalid_certificate"
    # a certificate renewed over the same key vouches for the card while the old one no longer does
    assert verifier(expired, sts()[1]).verify(signed).it_system == "Test EPJ"
    # and an expired certificate of another key changes nothing for a forged card
    assert refused(security_header(id_card(*other_sts())), verifier(expired)).flow_status == "invalid_signature"


def test_the_verifier_needs_a_certificate_and_a_sane_level() -> None:
    with pytest.raises(UsageError):
        IdCardVerifier([], 3, lambda: NOW)
    for level in (0, 6):
        with pytest.raises(UsageError, match="1 to 5"):
            IdCardVerifier([sts()[1]], level, lambda: NOW)


def pem(*certificates: x509.Certificate) -> bytes:
    return b"".join(certificate.public_bytes(Encoding.PEM) for certificate in certificates)


def test_certificates_are_read_from_comma_separated_pem_files(tmp_path: Path) -> None:
    _, spare = mint_sts("Spare STS")
    bundle, single = tmp_path / "bundle.pem", tmp_path / "other.pem"
    bundle.write_bytes(pem(spare, sts()[1]))
    single.write_bytes(pem(other_sts()[1]))
    check = IdCardVerifier.from_files(f"{bundle} , {single},", 3, lambda: NOW)
    assert check.verify(security_header(card())).it_system == "Test EPJ"
    other = id_card(*other_sts(), not_before=NOW - timedelta(hours=1), not_on_or_after=NOW + timedelta(hours=23))
    assert check.verify(security_header(other)).it_system == "Test EPJ"


@pytest.mark.parametrize("content", [
    b"not a certificate\n",
    b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
    None,  # no such file
])
def test_an_unreadable_or_invalid_pem_file_is_a_usage_error_naming_it(tmp_path: Path, content: bytes | None) -> None:
    good, bad = tmp_path / "sts.pem", tmp_path / "garbage.pem"
    good.write_bytes(pem(sts()[1]))
    if content is not None:
        bad.write_bytes(content)
    with pytest.raises(UsageError, match=r"garbage\.pem"):
        IdCardVerifier.from_files(f"{good},{bad}", 3, lambda: NOW)
    with pytest.raises(UsageError):
        IdCardVerifier.from_files(" , ", 3, lambda: NOW)


# --- properties ----------------------------------------------------------------------------------------------


@functools.cache
def signed_wire() -> bytes:
    return etree.tostring(security_header(card(card_type="user")).getroottree())


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_any_single_character_change_of_a_signed_value_is_refused(data: st.DataObject) -> None:
    envelope = etree.fromstring(signed_wire())
    header = envelope[0]
    values = assertion_of(header).findall("saml:AttributeStatement/saml:Attribute/saml:AttributeValue", NS)
    value = data.draw(st.sampled_from(values))
    text = value.text or ""
    position = data.draw(st.integers(min_value=0, max_value=len(text) - 1))
    replacement = data.draw(st.characters(codec="utf-8", exclude_characters=text[position],
                                          exclude_categories=["Cs", "Cc", "Cn"]))
    value.text = text[:position] + replacement + text[position + 1:]
    assert refused(header).flow_status == "invalid_signature"


def test_messages_mask_a_cpr_number() -> None:
    rejection = IdCardRejected("invalid_idcard", "card of 0101011234")
    assert rejection.message == "card of 010101-****" and str(rejection) == "invalid_idcard: card of 010101-****"
