"""The feed's wire format: tokens, Atom 1.0 with the protocol's ids and namespaces, JSON, and refusals."""

import re
from datetime import datetime
from xml.etree import ElementTree

import pytest

from importer.http.feed import (
    ATOM_NS,
    MAX_PAGE,
    START,
    XSI_NS,
    BadToken,
    Entry,
    Token,
    bind_views,
    page_size,
    render_atom,
)
from importer.load.plugin import discover
from tests.conftest import _sqlite_databases
from tests.http.server import import_sample, serve

A = f"{{{ATOM_NS}}}"
AUTORISATION = "autorisationsregisteret/autorisation/v1"


def test_a_token_is_modifieddate_epoch_seconds_and_pid_ten_digits_each() -> None:
    token = Token.of(datetime(2026, 11, 22, 12, 0, 0), 42)  # calendar.timegm: 1795348800
    assert str(token) == "17953488000000000042"
    assert Token.parse(str(token)) == token
    assert token.modified_at == datetime(2026, 11, 22, 12, 0, 0)
    assert Token.parse("0") == Token.parse("") == Token.parse(None) == START
    assert Token.parse("17953488000000000042") > Token.parse("17953488000000000041") > START


@pytest.mark.parametrize("bad", ["1", "123456789012345678901", "1795348800000000004x", "١٧٩٥٨١٣٢٠٠٠٠٠٠٠٠٠٠٤٢",
                                 " 7958132000000000042"])
def test_anything_but_twenty_ascii_digits_or_zero_is_not_a_token(bad: str) -> None:
    with pytest.raises(BadToken):
        Token.parse(bad)


def test_pages_hold_at_most_two_thousand_rows_whatever_is_asked() -> None:
    assert page_size(None) == page_size(5000) == page_size(10**30) == MAX_PAGE
    assert page_size(1) == 1 and page_size(1999) == 1999


def test_text_that_xml_cannot_carry_raw_is_escaped_and_still_parses() -> None:
    (feed, *_) = bind_views([discover()["autorisation"]])
    moment = datetime(2026, 11, 22)
    values = (("autorisationsnummer", "0A1B2"), ("cpr", "0101801234"), ("fornavn", "A <b> & \"c\"\r\nd\x01"),
              ("efternavn", ""), ("uddannelseskode", None), ("validFrom", moment),
              ("validTo", datetime(2999, 12, 31)))
    body = render_atom(feed, [Entry(Token.of(moment, 7), moment, values)], moment, {})
    record = ElementTree.fromstring(body).find(f"{A}entry/{A}content")[0]  # type: ignore[index]
    by_name = {child.tag.split("}")[1]: child for child in record}
    assert by_name["fornavn"].text == "A <b> & \"c\"\r\nd\ufffd"
    assert by_name["efternavn"].text is None and by_name["efternavn"].get(f"{{{XSI_NS}}}nil") is None  # ""
    assert "uddannelseskode" not in by_name, "a NULL column is left out (FORMATS §4.1), never xsi:nil"
    assert XSI_NS not in body
    assert by_name["validTo"].text == "2999-12-31T00:00:00Z"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """One served database for the module's read-only requests: imports are the slow part."""
    tmp_path = tmp_path_factory.mktemp("feed-format")
    sqlite_databases = _sqlite_databases(tmp_path)
    import_sample(sqlite_databases, tmp_path)
    with serve(sqlite_databases) as running:
        yield running


def test_atom_pages_carry_the_protocols_ids_namespaces_and_field_order(served) -> None:  # type: ignore[no-untyped-def]
    for feed in bind_views(discover().values()):
        response = served.client.get(f"/replication/{feed.path}")
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/atom+xml; charset=utf-8"
        root = ElementTree.fromstring(response.content)
        assert root.tag == f"{A}feed"
        assert root.findtext(f"{A}id") == f"tag:nsi.dk,2011:{feed.path}"
        # As the platform's own service renders it (FORMATS §4.1).
        assert root.findtext(f"{A}title") == "Stamdata Registry Feed"
        assert root.findtext(f"{A}author/{A}name") == "National Sundheds IT"
        entries = root.findall(f"{A}entry")
        assert entries, feed.path
        assert root.findtext(f"{A}updated") == entries[-1].findtext(f"{A}updated")
        for entry in entries:
            entry_id = entry.findtext(f"{A}id") or ""
            match = re.fullmatch(rf"tag:nsi\.dk,2011:{re.escape(feed.path)}/([0-9]{{20}})", entry_id)
            assert match, entry_id
            token = Token.parse(match.group(1))
            assert entry.findtext(f"{A}updated") == f"{token.modified_at:%Y-%m-%dT%H:%M:%S}Z"
            content = entry.find(f"{A}content")
            assert content is not None and content.get("type") == "application/xml"
            (record,) = list(content)
            assert record.tag == f"{{http://nsi.dk/-/stamdata/3.0/{feed.register}}}{feed.datatype}"
            assert entry.find(f"{A}title") is not None and entry.findtext(f"{A}title") == ""
            names = [child.tag for child in record]
            in_order = [f"{{{feed.namespace}}}{name}" for name, _ in feed.fields]
            assert names == [name for name in in_order if name in names]  # view order; NULL columns left out
            required = [f"{{{feed.namespace}}}{name}" for name, column in feed.fields if not column.nullable]
            assert set(required) <= set(names)
            assert not any("PID" in name for name in names)
            assert not any(child.get(f"{{{XSI_NS}}}nil") for child in record)
        open_ends = [child.text for child in root.iter(f"{{{feed.namespace}}}validTo")]
        assert "2999-12-31T00:00:00Z" in open_ends


def test_json_is_the_same_page_for_clients_that_ask_for_it(served) -> None:  # type: ignore[no-untyped-def]
    path = f"/replication/{AUTORISATION}"
    atom = ElementTree.fromstring(served.client.get(path, params={"maxRecords": 3}).content)
    response = served.client.get(path, params={"maxRecords": 3}, headers={"Accept": "application/json"})
    assert response.headers["content-type"].startswith("application/json")
    page = response.json()
    assert page["id"] == f"tag:nsi.dk,2011:{AUTORISATION}" and page["offset"] == "0" * 20
    assert [entry["id"] for entry in page["entries"]] == [e.findtext(f"{A}id") for e in atom.findall(f"{A}entry")]
    assert page["next"] == page["entries"][-1]["token"]
    first = atom.find(f"{A}entry/{A}content")[0]  # type: ignore[index]
    assert page["entries"][0]["content"] == {child.tag.split("}")[1]: child.text or "" for child in first}
    # Resuming from `next` continues without overlap; the page after the last is empty.
    rest = served.client.get(path, params={"offset": page["next"]}, headers={"Accept": "application/json"}).json()
    assert rest["entries"] and rest["entries"][0]["token"] > page["next"]
    end = served.client.get(path, params={"offset": rest["next"]}, headers={"Accept": "application/json"}).json()
    assert end["entries"] == [] and end["next"] == rest["next"]


@pytest.mark.parametrize("query", ["offset=123", "offset=abcdefghijabcdefghij", "offset=1795348800000000004%0A",
                                   "maxRecords=0", "maxRecords=-5", "maxRecords=ten"])
def test_bad_paging_parameters_are_a_422_problem(served, query: str) -> None:  # type: ignore[no-untyped-def]
    response = served.client.get(f"/replication/{AUTORISATION}?{query}")
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["status"] == 422 and body["errors"] and "Traceback" not in response.text


def test_an_undeclared_view_is_a_404_problem(served) -> None:  # type: ignore[no-untyped-def]
    for path in ("/replication/autorisationsregisteret/autorisation/v2", "/replication/autorisation/autreg2/v1",
                 "/replication/autorisationsregisteret/autorisation", "/replication/"):
        response = served.client.get(path)
        assert response.status_code == 404, path
        assert response.json()["title"] == "Not Found"


def test_an_unexpected_error_is_a_500_problem_with_nothing_personal_in_the_logs(
    served, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]  # type: ignore[no-untyped-def]
) -> None:
    def broken(*_: object) -> None:
        raise RuntimeError("row for 0101801234 is broken")

    monkeypatch.setattr("importer.http.replication.feeds.read_page", broken)
    response = served.client.get(f"/replication/{AUTORISATION}")
    assert response.status_code == 500
    assert response.json() == {"type": "about:blank", "title": "Internal Server Error", "status": 500,
                               "detail": "the request could not be answered"}
    captured = capfd.readouterr()
    assert "Traceback" not in captured.err + captured.out
    assert "0101801234" not in captured.err + captured.out and "010180-****" in captured.out + captured.err
