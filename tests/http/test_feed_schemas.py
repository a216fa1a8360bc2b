"""Every entry of every replication view validates against the view's XSD (FORMATS.md §4.1), for real data.

The XSDs in `xsd/` are written by hand from FORMATS.md §1, §2, §4 and §4.1 and the register tables, not generated
from the code: fields qualified in the view's namespace, in view order, a NULL column left out (never xsi:nil),
types as tight as the formats allow (and `uddannelseskode` as text, not the platform XSD's integer). Validated over
real HTTP: the sample imports on SQLite and MariaDB, and every doseringsforslag reference dataset in shared/data,
paged through with maxRecords=2000 until the empty page, with counts so that nothing passes vacuously.
"""

import copy
import shutil
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from lxml import etree

from importer.http.feed import ATOM_NS, MAX_PAGE, XSI_NS, Entry, Feed, Token, bind_views, render_atom
from importer.load.pipeline import Pipeline
from importer.load.plugin import discover
from tests.conftest import Databases, _sqlite_databases
from tests.http.server import import_sample, serve
from tests.registers.doseringsforslag.reference import DATA, expected_rows

XSD_DIR = Path(__file__).parent / "xsd"
XS = "{http://www.w3.org/2001/XMLSchema}"
A = f"{{{ATOM_NS}}}"
# Nothing read here may reach the network or expand entities.
PARSER = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False)
FEEDS = {feed.path: feed for feed in bind_views(discover().values())}
DOSERINGSFORSLAG = [feed for feed in FEEDS.values() if feed.register == "doseringsforslag"]
V2_INPUT = "input_merged_added.txt"


@cache
def schema_document(name: str) -> etree._ElementTree:
    return etree.parse(str(XSD_DIR / name), PARSER)


@cache
def schema_for(path: str) -> etree.XMLSchema:
    feed = FEEDS[path]
    return etree.XMLSchema(schema_document(f"{feed.datatype}_v{feed.version}.xsd"))


def problems_of(schema: etree.XMLSchema, record: etree._Element) -> list[str]:
    """The schema's complaints about one content element, validated as a document of its own."""
    document = etree.ElementTree(copy.deepcopy(record))
    if schema.validate(document):
        return []
    return [error.message for error in schema.error_log]  # type: ignore[attr-defined]  # (lxml-stubs)


# --- The XSDs against the declared views ------------------------------------------------------------------


def test_there_is_one_xsd_per_declared_view_and_no_other() -> None:
    assert sorted(path.name for path in XSD_DIR.glob("*.xsd")) == sorted(
        f"{feed.datatype}_v{feed.version}.xsd" for feed in FEEDS.values())
    assert len(FEEDS) == 6


@pytest.mark.parametrize("path", sorted(FEEDS))
def test_each_xsd_declares_the_views_fields_in_order_qualified_and_required_unless_nullable(path: str) -> None:
    """A cross-check of the hand-written schema with the view declaration and the table, not a derivation."""
    feed = FEEDS[path]
    root = schema_document(f"{feed.datatype}_v{feed.version}.xsd").getroot()
    assert root.get("targetNamespace") == feed.namespace
    assert root.get("elementFormDefault") == "qualified"
    (top,) = root.findall(f"{XS}element")
    assert top.get("name") == feed.datatype
    (sequence,) = top.findall(f"{XS}complexType/{XS}sequence")
    declared = sequence.findall(f"{XS}element")
    assert [element.get("name") for element in declared] == [name for name, _ in feed.fields]
    for element, (name, column) in zip(declared, feed.fields, strict=True):
        assert element.get("minOccurs", "1") == ("0" if column.nullable else "1"), name
        assert element.get("maxOccurs", "1") == "1", name
        assert element.get("nillable", "false") == "false", name
    assert not list(root.iter(f"{XS}any", f"{XS}anyAttribute")), "nothing else may ride along"


def _autorisation(**values: object) -> etree._Element:
    """One autorisation record as the feed renders it, with the given field values."""
    feed = FEEDS["autorisationsregisteret/autorisation/v1"]
    moment = datetime(2026, 11, 22)
    fields = {"autorisationsnummer": "0A1B2", "cpr": "0101801234", "fornavn": "Anne Marie", "efternavn": "Jensen",
              "uddannelseskode": "7170", "validFrom": moment, "validTo": datetime(2999, 12, 31), **values}
    body = render_atom(feed, [Entry(Token.of(moment, 1), moment, tuple(fields.items()))], moment, {})
    content = etree.fromstring(body.encode(), PARSER).find(f"{A}entry/{A}content")
    assert content is not None
    (record,) = content
    return record


def test_the_autorisation_xsd_takes_education_codes_as_text_and_keeps_the_formats_patterns() -> None:
    schema = schema_for("autorisationsregisteret/autorisation/v1")
    for good in ({}, {"uddannelseskode": "A511"}, {"uddannelseskode": "0000", "efternavn": "",
                                                   "autorisationsnummer": "09YM8", "cpr": "0101010001"},
                 {"fornavn": "Ø" * 100}):
        assert problems_of(schema, _autorisation(**good)) == [], good
    for bad in ({"uddannelseskode": "A51"}, {"uddannelseskode": "a511"}, {"uddannelseskode": "05166"},
                {"autorisationsnummer": "0a1b2"}, {"cpr": "010180123"}, {"cpr": "010180123X"},
                {"efternavn": "Ø" * 101}, {"validTo": "2999-12-31"}, {"fornavn": None}):
        assert problems_of(schema, _autorisation(**bad)), bad


# --- Paging through a view over HTTP ----------------------------------------------------------------------


@dataclass
class Validated:
    """What paging through one view found: entries, pages, tokens, present fields, and every problem."""

    entries: int = 0
    pages: int = 0
    tokens: set[str] = field(default_factory=set)
    present: Counter[str] = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)
    first: etree._Element | None = None


def check_feed_level(feed: Feed, response: httpx.Response, root: etree._Element) -> None:
    """The Atom parts of FORMATS.md §4.1 that a page carries whether or not it holds entries."""
    assert response.status_code == 200, response.text
    content_type = response.headers["content-type"]
    assert content_type.startswith("application/atom+xml") and "charset=utf-8" in content_type.lower(), content_type
    assert root.tag == f"{A}feed"
    assert root.findtext(f"{A}id") == feed.feed_id
    assert root.findtext(f"{A}title") == "Stamdata Registry Feed"
    assert root.findtext(f"{A}author/{A}name") == "National Sundheds IT"
    assert root.findtext(f"{A}updated"), "a feed has <updated>"


def check_entry(feed: Feed, schema: etree.XMLSchema, entry: etree._Element, seen: Validated) -> None:
    entry_id = entry.findtext(f"{A}id") or ""
    token = entry_id.rsplit("/", 1)[-1]
    assert entry_id == f"{feed.feed_id}/{token}" and len(token) == 20 and token not in seen.tokens, entry_id
    seen.tokens.add(token)
    title = entry.find(f"{A}title")
    assert title is not None and not title.text and len(title) == 0, f"{entry_id}: the entry title is empty"
    assert entry.findtext(f"{A}updated"), entry_id
    content = entry.find(f"{A}content")
    assert content is not None and content.get("type") == "application/xml", entry_id
    (record,) = content
    assert record.tag == f"{{{feed.namespace}}}{feed.datatype}", entry_id
    xsi = f"{{{XSI_NS}}}"
    nil = [element.tag for element in record.iter() if any(str(name).startswith(xsi) for name in element.attrib)]
    assert not nil, f"{entry_id}: xsi attributes (a NULL column is left out, never xsi:nil) on {nil}"
    for problem in problems_of(schema, record):
        values = {etree.QName(child).localname: (child.text or "")[:80] for child in record}
        if "cpr" in values:  # personal data stays out of the report
            values["cpr"] = values["cpr"][:4] + "******"
        seen.problems.append(f"{feed.path} {entry_id}: {problem} (entry values {values})")
    seen.present.update(etree.QName(child).localname for child in record)
    seen.entries += 1
    if seen.first is None:
        seen.first = record


def page_through(client: httpx.Client, feed: Feed) -> Validated:
    """Every page of the view with maxRecords=2000, from the start until the empty page, every entry validated."""
    schema = schema_for(feed.path)
    seen = Validated()
    offset = "0"
    while True:
        response = client.get(f"/replication/{feed.path}", params={"offset": offset, "maxRecords": MAX_PAGE})
        root = etree.fromstring(response.content, PARSER)
        check_feed_level(feed, response, root)
        seen.pages += 1
        entries = root.findall(f"{A}entry")
        assert len(entries) <= MAX_PAGE
        if not entries:
            return seen
        for entry in entries:
            check_entry(feed, schema, entry, seen)
        offset = (entries[-1].findtext(f"{A}id") or "").rsplit("/", 1)[-1]


def table_counts(url: str, feed: Feed) -> tuple[int, dict[str, int]]:
    """The view's table: its rows, and per field the rows where the column is not NULL (COUNT(column))."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as connection:
            query = sa.select(sa.func.count(), *(sa.func.count(column) for _, column in feed.fields))
            rows, *present = connection.execute(query.select_from(feed.table)).one()
    finally:
        engine.dispose()
    return int(rows), {name: int(count) for (name, _), count in zip(feed.fields, present, strict=True)}


def assert_validated_the_table(production_url: str, feed: Feed, seen: Validated) -> None:
    assert not seen.problems, f"{len(seen.problems)} entries do not validate:\n" + "\n".join(seen.problems[:30])
    rows, present = table_counts(production_url, feed)
    assert rows > 0, f"{feed.path}: nothing to validate"
    assert seen.entries == len(seen.tokens) == rows, (feed.path, seen.entries, rows)
    assert seen.pages == -(-rows // MAX_PAGE) + 1, "full pages, then the empty one"
    # A field is there exactly where its column is not NULL: required ones always, NULL ones left out.
    assert dict(seen.present) == {name: count for name, count in present.items() if count}, feed.path


def assert_rejects_broken(feed: Feed, record: etree._Element) -> None:
    """The schema is no rubber stamp: each way a content element can go wrong is refused."""
    schema = schema_for(feed.path)
    assert problems_of(schema, record) == []
    ns = feed.namespace

    def broken(change: str) -> etree._Element:
        mutated = copy.deepcopy(record)
        if change == "missing required":
            mutated.remove(mutated[0])
        elif change == "out of order":
            mutated.insert(0, mutated[1])  # moves the second field before the first
        elif change == "xsi:nil":
            mutated[0].text = None
            mutated[0].set(f"{{{XSI_NS}}}nil", "true")
        elif change == "unqualified":
            mutated[0].tag = etree.QName(mutated[0]).localname
        elif change == "extra field":
            etree.SubElement(mutated, f"{{{ns}}}{feed.pid.name}").text = "1"
        elif change == "bad date-time":
            mutated.find(f"{{{ns}}}validFrom").text = "2026-11-22"  # type: ignore[union-attr]
        elif change == "twice":
            mutated.insert(1, copy.deepcopy(mutated[0]))
        return mutated

    for change in ("missing required", "out of order", "xsi:nil", "unqualified", "extra field", "bad date-time",
                   "twice"):
        assert problems_of(schema, broken(change)), f"{feed.path}: {change} passes the schema"


# --- (a) The sample imports, SQLite and MariaDB ------------------------------------------------------------


def test_every_entry_of_every_view_of_the_sample_imports_validates(databases: Databases, tmp_path: Path) -> None:
    import_sample(databases, tmp_path)
    counts = {}
    with serve(databases) as served:
        for feed in FEEDS.values():
            seen = page_through(served.client, feed)
            assert_validated_the_table(databases.production_url, feed, seen)
            assert seen.first is not None
            assert_rejects_broken(feed, seen.first)
            counts[feed.datatype] = seen.entries
    print(f"sample on {databases.backend}: validated {counts}")


# --- (b) Every doseringsforslag reference dataset, SQLite ---------------------------------------------------

V1_CHAIN = ["release-011-v1", "release-014-v1", "release-027-v1", "release-029-v1"]
V2_CHAIN = [(27, "release-027-v1"), (29, "release-029-v1")]
V2_LABEL = "upstream inputs of releases 27, 29 (v2)"
# Each dataset, or chain of datasets in release order, into a database of its own.
DATASETS = {
    "releases 11, 14, 27, 29 (v1)": V1_CHAIN,
    "sdm4-test-single": ["sdm4-test-single"],
    "sdm4-test-multiple": ["sdm4-test-multiple"],
    V2_LABEL: [f"release-{number:03d}-v2-input" for number, _ in V2_CHAIN],
}
TABLE_OF = {feed.datatype: feed.table.name for feed in DOSERINGSFORSLAG}


def test_the_reference_datasets_are_all_there() -> None:
    used = {name for names in DATASETS.values() for name in names}
    assert used == {path.name for path in DATA.iterdir() if path.is_dir()}, "a reference dataset is not validated"


def v2_drop(directory: Path, number: int, published: str) -> Path:
    """The real upstream input beside the published release's DosageVersion.json (its release date)."""
    directory.mkdir(parents=True)
    shutil.copyfile(DATA / f"release-{number:03d}-v2-input" / V2_INPUT, directory / V2_INPUT)
    shutil.copyfile(DATA / published / "DosageVersion.json", directory / "DosageVersion.json")
    return directory


def published_rows(names: list[str]) -> dict[str, int]:
    """Per table, the rows the published releases define (relation pairs once), summed over the releases."""
    total: Counter[str] = Counter()
    for name in names:
        total.update({table: len(rows) for table, rows in expected_rows(DATA / name).items()})
    return dict(total)


@pytest.fixture
def reference_server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Databases, httpx.Client]]:
    label: str = request.param
    databases = _sqlite_databases(tmp_path)
    register = discover()["doseringsforslag"]
    pipeline = Pipeline(databases.settings())
    try:
        if label == V2_LABEL:  # with the default settings: today's FMK versions and correct Danish letters
            for number, published in V2_CHAIN:
                drop = v2_drop(tmp_path / "drops" / f"release-{number:03d}", number, published)
                pipeline.import_dataset(register, drop)
        else:
            for name in DATASETS[label]:
                pipeline.import_dataset(register, DATA / name)
    finally:
        pipeline.close()
    with serve(databases) as served:
        yield databases, served.client


@pytest.mark.parametrize("reference_server", list(DATASETS), indirect=True)
def test_every_entry_of_every_doseringsforslag_view_of_the_reference_data_validates(
    reference_server: tuple[Databases, httpx.Client], request: pytest.FixtureRequest
) -> None:
    databases, client = reference_server
    label = request.node.callspec.params["reference_server"]
    # The v2 importer derives the same rows the published v1 releases 27 and 29 hold (other xml and wording).
    published = published_rows([published for _, published in V2_CHAIN] if label == V2_LABEL else DATASETS[label])
    counts = {}
    for feed in DOSERINGSFORSLAG:
        seen = page_through(client, feed)
        assert_validated_the_table(databases.production_url, feed, seen)
        assert seen.entries == published[TABLE_OF[feed.datatype]], (label, feed.path)
        counts[feed.datatype] = seen.entries
    print(f"{label}: validated {counts}")
