"""An ID list's body as documented (the JSON schema in /openapi.json) and as the service validates it agree: a body
the document admits is accepted, one it refuses is refused. schemathesis checks this over HTTP with a few examples;
here it is checked directly, on the edges (NUL, white space, characters beyond ASCII, the number bounds, whole
numbers written as floats) and on many drawn bodies, without a server in between."""

from typing import Any

import jsonschema_rs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from importer.http.notifications import LARGEST_NUMBER, IdListIn
from importer.load.notifications import ID_LENGTH

DOCUMENTED = jsonschema_rs.Draft202012Validator(IdListIn.model_json_schema())


def accepted(body: Any) -> bool:
    try:
        IdListIn.model_validate(body)
    except ValidationError:
        return False
    return True


@pytest.mark.parametrize("body", [
    {"ids": []}, {"ids": ["0101801234", "0A1B2"]}, {"ids": ["!~"]}, {"ids": ["urn:x/1.2-3_4"]},
    {"ids": ["a" * ID_LENGTH]}, {"ids": [0]}, {"ids": [LARGEST_NUMBER]},
    {"ids": [1.0]}, {"ids": [float(LARGEST_NUMBER)]}, {"ids": ["1", 1, "1"]}, {"ids": [], "other": 1},
])
def test_what_the_document_admits_is_accepted(body: Any) -> None:
    assert DOCUMENTED.is_valid(body)
    assert accepted(body)


@pytest.mark.parametrize("body", [
    {}, {"ids": None}, {"ids": [""]}, {"ids": ["a" * (ID_LENGTH + 1)]}, {"ids": [-1]}, {"ids": [LARGEST_NUMBER + 1]},
    # Blanks, control characters and anything beyond ASCII are in no register's ids (and MariaDB's collation would
    # take "X " for "X").
    {"ids": ["\x00"]}, {"ids": [" "]}, {"ids": [" a\t\n"]}, {"ids": ["0101801234 "]}, {"ids": ["\U0001d538"]},
    {"ids": ["Ærø"]},
    {"ids": [True]}, {"ids": [1.5]}, {"ids": [None]}, {"ids": [["1"]]}, {"ids": "0101801234"},
])
def test_what_the_document_refuses_is_refused(body: Any) -> None:
    assert not DOCUMENTED.is_valid(body)
    assert not accepted(body)


# What a JSON body can carry over the wire as a client sends it (UTF-8: no lone surrogates).
_ITEMS = st.one_of(
    st.text(st.characters(codec="utf-8"), max_size=ID_LENGTH + 2),
    st.integers(-2, LARGEST_NUMBER + 2) | st.integers(LARGEST_NUMBER - 2, LARGEST_NUMBER + 2),
    st.floats(allow_nan=False, allow_infinity=False), st.booleans(), st.none(),
)


@settings(max_examples=500, derandomize=True, database=None)
@given(ids=st.lists(_ITEMS, max_size=5))
def test_the_document_and_the_service_agree_on_every_body(ids: list[Any]) -> None:
    body = {"ids": ids}
    assert accepted(body) == DOCUMENTED.is_valid(body), body
