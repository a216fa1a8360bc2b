"""A replication client as a downstream copy would run it: page through the Atom feed, upsert by PID.

The PID is not a field of the content: the client takes it from the last ten digits of the entry's token, as
copies of the platform's registers do, so a row version that a later import closes replaces the one it copied.
"""

import itertools
from collections.abc import Callable
from datetime import date, datetime
from typing import Any
from xml.etree import ElementTree

import httpx
import sqlalchemy as sa

from importer.http.feed import ATOM_NS, XSI_NS, Feed, Token

A = f"{{{ATOM_NS}}}"
NIL = f"{{{XSI_NS}}}nil"


def copy_table(feed: Feed, metadata: sa.MetaData) -> sa.Table:
    """The copy's schema: the PID, the view's fields with the source columns' types, and ModifiedDate."""
    columns = [sa.Column("pid", sa.BigInteger, primary_key=True, autoincrement=False),
               sa.Column("ModifiedDate", sa.DateTime, nullable=False)]
    columns += [sa.Column(name, column.type) for name, column in feed.fields]
    return sa.Table(f"copy_{feed.register}_{feed.datatype}_v{feed.version}", metadata, *columns)


def parse_value(text: str | None, column: sa.Column[Any]) -> Any:
    python_type = column.type.python_type
    text = text or ""
    if python_type is datetime:
        return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ")
    if python_type is date:
        return date.fromisoformat(text)
    if python_type is int:
        return int(text)
    return text


Page = list[tuple[Token, datetime, dict[str, Any]]]


def parse_record(feed: Feed, record: Any) -> dict[str, Any]:
    """One entry's content element (ElementTree or lxml) as the view's field values; a field left out is NULL."""
    assert record.tag == f"{{{feed.namespace}}}{feed.datatype}"
    columns = dict(feed.fields)
    names = [child.tag.split("}", 1)[1] for child in record]
    assert names == [name for name in columns if name in names], "fields in view order, nothing else (no PID)"
    assert all(child.tag.startswith(f"{{{feed.namespace}}}") for child in record), "fields in the view's namespace"
    assert not any(child.get(NIL) for child in record), "a NULL column is left out, never xsi:nil"
    values: dict[str, Any] = dict.fromkeys(columns)
    values.update({name: parse_value(child.text, columns[name]) for name, child in zip(names, record, strict=True)})
    return values


def parse_page(feed: Feed, body: bytes) -> Page:
    root = ElementTree.fromstring(body)
    assert root.tag == f"{A}feed"
    assert root.findtext(f"{A}id") == feed.feed_id
    entries = []
    for entry in root.findall(f"{A}entry"):
        entry_id = entry.findtext(f"{A}id") or ""
        token = Token.parse(entry_id.rsplit("/", 1)[1])
        assert entry_id == f"{feed.feed_id}/{token}"
        updated = datetime.strptime(entry.findtext(f"{A}updated") or "", "%Y-%m-%dT%H:%M:%SZ")
        content = entry.find(f"{A}content")
        assert content is not None and content.get("type") == "application/xml"
        (record,) = list(content)
        entries.append((token, updated, parse_record(feed, record)))
    return entries


def replicate(client: httpx.Client, feed: Feed, copy: sa.Table, target: sa.Engine, token: Token,
              page_size: int) -> tuple[Token, int]:
    """Read pages of the HTTP feed after `token` until an empty one; returns the last token and the pages read."""

    def fetch(after: Token, size: int) -> Page:
        response = client.get(f"/replication/{feed.path}", params={"offset": str(after), "maxRecords": size})
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].startswith("application/atom+xml")
        return parse_page(feed, response.content)

    return follow(fetch, copy, target, token, page_size)


def follow(fetch: Callable[[Token, int], Page], copy: sa.Table, target: sa.Engine, token: Token,
           page_size: int) -> tuple[Token, int]:
    """What every copy does, whatever the transport: upsert each entry by the PID of its token, continue after the
    last token, stop at an empty page."""
    pages = 0
    while True:
        entries = fetch(token, page_size)
        pages += 1
        if not entries:
            return token, pages
        assert len(entries) <= page_size
        assert entries[0][0] > token and all(a[0] < b[0] for a, b in itertools.pairwise(entries))
        with target.begin() as connection:
            for entry_token, updated, values in entries:
                assert updated == entry_token.modified_at
                pid = entry_token.pid
                connection.execute(copy.delete().where(copy.c.pid == pid))
                connection.execute(copy.insert().values(pid=pid, ModifiedDate=updated, **values))
        token = entries[-1][0]
