"""A CPR number in a request never reaches the logs, whatever form it comes in: plain or with a dash, percent-encoded
once or twice (the dash too), followed by another digit or a hexadecimal run, in the path or the query, on a
look-up or on any path at all. Over real HTTP on both backends, and the masking function on its own."""

import json
import logging
import re
from pathlib import Path
from typing import Any

import httpx
import pytest
import structlog
from hypothesis import given
from hypothesis import strategies as st

from importer.load.pipeline import Pipeline
from importer.privacy import mask_cpr, mask_request_target
from tests.conftest import Databases
from tests.http.server import serve, serve_process

CPR = "2212774627"
DATE, SERIAL = CPR[:6], CPR[6:]
HEX = "abcdef0123456789abcdef0123"


def encode(text: str, times: int = 1) -> str:
    """Every character percent-encoded, then the `%` encoded again `times - 1` times."""
    encoded = "".join(f"%{ord(char):02X}" for char in text)
    for _ in range(times - 1):
        encoded = encoded.replace("%", "%25")
    return encoded


# How a CPR number may be written into a request target.
FORMS = {
    "plain": CPR,
    "dash": f"{DATE}-{SERIAL}",
    "encoded": encode(CPR[:1]) + CPR[1:],
    "all encoded": encode(CPR),
    "double encoded": encode(CPR[:1], 2) + CPR[1:],
    "triple encoded": encode(CPR, 3),
    "encoded dash": f"{DATE}%2D{SERIAL}",
    "double encoded dash": f"{DATE}%252d{SERIAL}",
    "plus": f"{DATE}+{SERIAL}",
    "extra digit": CPR + "1",
    "digit before": "9" + CPR,
    "hex run": CPR + HEX,
    "hex before": HEX + CPR,
    "letters": f"x{CPR}y",
}


def targets() -> list[str]:
    """Every form on a look-up path, on paths that do not exist, and in queries of both."""
    paths = []
    for form in FORMS.values():
        paths += [f"/autorisation/v1/persons/{form}", f"/nope/{form}", f"/x/{form}/y",
                  f"/autorisation/v1/persons/0101801234?cpr={form}", f"/nope?q={form}&cpr={form}"]
    return paths


# --- the function -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("form", FORMS.values(), ids=FORMS.keys())
def test_every_form_is_masked_keeping_the_date_part(form: str) -> None:
    for target in (f"/autorisation/v1/persons/{form}", f"/nope?cpr={form}&x=1"):
        masked = mask_request_target(target)
        assert CPR not in masked and f"{DATE}-{SERIAL}" not in masked, (target, masked)
        assert not re.search(rf"{DATE}\D?{SERIAL}", masked), (target, masked)
        assert "-****" in masked, (target, masked)
    if form.startswith(("%", "2")) and not form.startswith("%25"):
        assert f"{DATE}-****" in mask_request_target(f"/p/{form}"), form


def test_examples_read_as_expected() -> None:
    assert mask_request_target("/autorisation/v1/persons/2212774627") == "/autorisation/v1/persons/221277-****"
    assert mask_request_target("?cpr=%32212774627") == "?cpr=221277-****"
    assert mask_request_target("?cpr=%2532212774627") == "?cpr=221277-****"
    assert mask_request_target("?cpr=221277%2D4627") == "?cpr=221277-****"
    assert mask_request_target("/x/22127746271") == "/x/221277-****"
    assert mask_request_target(f"/x/{CPR}{HEX}") == "/x/221277-****abcdef012345-****abcdef0123"
    # What is not a number of ten digits stays as it was (decoded); control characters do not break the line.
    assert mask_request_target("/doseringsforslag/v1/drugs/28100010554?at=2026-11-21") == \
        "/doseringsforslag/v1/drugs/281000-****?at=2026-11-21"
    assert mask_request_target("/autorisation/v1/authorisations/0A1B2?at=2026-11-20") == \
        "/autorisation/v1/authorisations/0A1B2?at=2026-11-20"
    assert mask_request_target("/a%0Ab%0D%00c%20d") == "/a%0Ab%0D%00c d"
    assert mask_request_target("/caf%C3%A9/%FF") == "/café/\ufffd"


DIGIT_ENCODINGS = st.sampled_from(["plain", "encoded", "double", "triple"])
DASHES = st.sampled_from(["", "-", "%2D", "%2d", "%252D", "+", "%20", "\u2013"])
CONTEXTS = st.sampled_from([
    ("/autorisation/v1/persons/", ""), ("/nope/", "/x"), ("/x?cpr=", ""), ("/x?a=b&cpr=", "&c=d"),
    ("/x/", "1"), ("/x/", "0000"), ("/x/", HEX), ("/x/", "abcdef0123456789" * 4), ("/x/9", ""), ("/x/abc", "def"),
    ("/x/" + "f" * 40, ""), ("/x?q=%22", "%22"), ("/x/%25", ""),
])


def write_digit(digit: str, how: str) -> str:
    return {"plain": digit, "encoded": f"%3{digit}", "double": f"%253{digit}", "triple": f"%25253{digit}"}[how]


@given(st.from_regex(r"\A[0-9]{10}\Z"), st.lists(DIGIT_ENCODINGS, min_size=10, max_size=10), DASHES, CONTEXTS)
def test_no_encoding_or_embedding_lets_the_serial_through(cpr: str, encodings: list[str], dash: str,
                                                          context: tuple[str, str]) -> None:
    digits = [write_digit(digit, how) for digit, how in zip(cpr, encodings, strict=True)]
    written = "".join(digits[:6]) + dash + "".join(digits[6:])
    prefix, suffix = context
    masked = mask_request_target(prefix + written + suffix)
    assert cpr not in masked
    assert not re.search(rf"{cpr[:6]}\D{{0,3}}{cpr[6:]}", masked), masked  # the serial after the date part
    assert "-****" in masked


@given(st.from_regex(r"\A[0-9]{10}\Z"), st.text(alphabet="abcdefxyz/?=&%-", max_size=20),
       st.text(alphabet="abcdefxyz/?=&%-", max_size=20))
def test_a_cpr_between_any_non_digits_keeps_six_digits_at_most(cpr: str, before: str, after: str) -> None:
    """Whatever the text around it (stray `%`s that decoding pairs with its digits included), no more than the
    date part's six digits stand together afterwards."""
    masked = mask_request_target(before + cpr + after)
    assert cpr not in masked and not re.search(r"\d{7}", masked) and "-****" in masked, masked


def test_ordinary_messages_still_keep_digests_and_longer_numbers() -> None:
    digest = "d0b1c3c694c36e2babc307c604c780941234567890fc18621ef0cefa4a00fb00"
    text = f"drug 28100636975 run autorisation-1795346493780 sha {digest} lock stamdata:{digest[:48]}"
    assert mask_cpr(text) == text
    # …but a CPR number glued to a hexadecimal run is no digest, and an encoded one is still a CPR number.
    for length in range(1, 130):  # whatever the length of the run, digest-like or not
        glued = ("abcdef" * 22)[:length]
        assert mask_cpr(f"file {CPR}{glued}.csv") == f"file {DATE}-****{glued}.csv"
        assert mask_cpr(f"{glued}{CPR}") == f"{glued}{DATE}-****"
    assert CPR not in mask_cpr(f"{CPR}{HEX}")
    assert mask_cpr("path=/x/%32212774627 and %2532212774627 and 221277%2D4627") == \
        "path=/x/221277-**** and 221277-**** and 221277-****"


@given(st.from_regex(r"\A[0-9]{10}\Z"), st.from_regex(r"\A[a-fA-F][0-9a-fA-F]{0,140}\Z"), st.booleans())
def test_a_cpr_glued_to_any_hexadecimal_run_is_masked_in_messages(cpr: str, run: str, before: bool) -> None:
    text = f"x {run[::-1]}{cpr} y" if before else f"x {cpr}{run} y"
    assert cpr not in mask_cpr(text)


# --- over real HTTP -----------------------------------------------------------------------------------------


def strings(value: Any) -> list[str]:
    """Every string in a log event (numbers such as the duration are no text a CPR could hide in)."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [text for key, item in value.items() if key != "timestamp" for text in strings(item)]
    if isinstance(value, list | tuple):
        return [text for item in value for text in strings(item)]
    return []


def leaks(texts: list[str]) -> list[str]:
    return [text for text in texts if SERIAL in text or CPR in text]


def test_no_form_of_a_cpr_in_a_request_reaches_the_log(databases: Databases, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="uvicorn")  # uvicorn's own loggers too (httpx's would echo the URLs)
    with structlog.testing.capture_logs() as events, serve(databases) as served:
        anonymous = httpx.Client(base_url=served.base, timeout=30)
        try:
            answers = {}
            for target in targets():
                answers[target] = served.client.get(target).status_code
                anonymous.get(target)  # refused, and logged as such
        finally:
            anonymous.close()
    assert answers["/autorisation/v1/persons/" + FORMS["encoded"]] == 200  # decoded by the server: a look-up
    assert {answers["/nope/" + form] for form in FORMS.values()} == {404}
    logged = [event for event in events if event.get("event") == "http request"]
    assert len(logged) == 2 * len(targets()), [event.get("path") for event in logged]
    assert all(f"{DATE}-****" in event["path"] or "-****" in event["path"] for event in logged)
    assert not leaks([text for event in events for text in strings(event)])
    assert not leaks([record.getMessage() for record in caplog.records])


def test_the_serve_command_logs_no_form_of_a_cpr(sqlite_databases: Databases, tmp_path: Path) -> None:
    """The rendered JSON lines of a real `serve` process, everything it writes."""
    databases = sqlite_databases
    pipeline = Pipeline(databases.settings())
    try:
        pipeline.migrate()  # the database the process reads
    finally:
        pipeline.close()
    with serve_process(databases, tmp_path) as (base, log_path), httpx.Client(base_url=base, timeout=30) as client:
        for target in targets():
            client.get(target)
    output = log_path.read_text()
    events = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    requests = [event for event in events if event.get("event") == "http request" and event["path"] != "/openapi.json"]
    assert len(requests) == len(targets())
    assert not leaks([text for event in events for text in strings(event)])
    assert not [line for line in output.splitlines() if not line.startswith("{") and SERIAL in line]
