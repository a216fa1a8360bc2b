"""Property: for random imports and page sizes, paging through a feed yields exactly the table ordered by
(ModifiedDate, PID), no row twice; and a client that stores its last token converges on the table even when an
import commits between two of its pages."""

import itertools
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from importer.http.database import FacadeDatabase
from importer.http.feed import START, Token, bind_views, read_page
from importer.load.pipeline import Pipeline
from importer.load.plugin import Register, discover
from tests.conftest import Databases, _sqlite_databases
from tests.registers.autorisation.kit import write_dump

NUMBERS = [f"{n:05d}" for n in range(12)]
PEOPLE = ["0101801234", "0202851234", "1512901234"]
Dump = dict[str, tuple[str, str, str]]

dumps = st.lists(
    st.dictionaries(
        st.sampled_from(NUMBERS),
        st.tuples(st.sampled_from(PEOPLE), st.sampled_from(["Jensen", "Holm", "Ærø"]),
                  st.sampled_from(["7170", "5166"])),
        min_size=1,
    ),
    min_size=1,
    max_size=3,
)


class World:
    """One SQLite production database for the whole property (migrating per example would dominate the time)."""

    def __init__(self, databases: Databases, directory: Path) -> None:
        self.register: Register = discover()["autorisation"]
        (self.feed,) = bind_views([self.register])
        self.pipeline = Pipeline(databases.settings())
        self.facades = FacadeDatabase(databases.production_url)
        self.directory = directory
        self.day = itertools.count()

    def import_dump(self, dump: Dump) -> None:
        name = f"{date(2026, 1, 1) + timedelta(days=next(self.day)):%Y%m%d}AutDK.csv"
        lines = [f"{number};{cpr};{surname};Given;{code}" for number, (cpr, surname, code) in sorted(dump.items())]
        self.pipeline.import_dataset(self.register, write_dump(self.directory, name, lines), force=True)

    def table(self) -> list[tuple[Any, ...]]:
        feed = self.feed
        with self.facades.connect() as connection:
            rows = connection.execute(
                sa.select(feed.pid, feed.table.c.ModifiedDate, *(c for _, c in feed.fields))
                .order_by(feed.table.c.ModifiedDate, feed.pid)
            )
            return [tuple(row) for row in rows]

    def page(self, after: Token, size: int) -> list[tuple[Any, ...]]:
        with self.facades.connect() as connection:
            entries = read_page(connection, self.feed, after, size)
        assert len(entries) <= size
        return [(e.token.pid, e.modified, *(value for _, value in e.values)) for e in entries]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Any:
    directory = tmp_path_factory.mktemp("feed-property")
    state = World(_sqlite_databases(directory), directory / "drops")
    yield state
    state.pipeline.close()
    state.facades.close()


def token_of(row: tuple[Any, ...]) -> Token:
    return Token.of(row[1], row[0])


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(imports=dumps, size=st.integers(min_value=1, max_value=7))
def test_concatenated_pages_are_the_table_in_modifieddate_pid_order_without_repeats(
    world: World, imports: list[Dump], size: int
) -> None:
    for dump in imports:
        world.import_dump(dump)
    read: list[tuple[Any, ...]] = []
    after = START
    while page := world.page(after, size):
        read.extend(page)
        after = token_of(page[-1])
    assert read == world.table()
    assert len({token_of(row) for row in read}) == len(read)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(first=dumps, later=dumps, size=st.integers(min_value=1, max_value=5), pause=st.integers(0, 4))
def test_a_client_resuming_from_its_token_converges_when_imports_commit_between_pages(
    world: World, first: list[Dump], later: list[Dump], size: int, pause: int
) -> None:
    for dump in first:
        world.import_dump(dump)
    copy: dict[int, tuple[Any, ...]] = {}
    seen: set[Token] = set()
    after, pages, pending = START, 0, list(later)
    while True:
        page = world.page(after, size)
        pages += 1
        if pages > pause and pending:
            world.import_dump(pending.pop(0))  # commits between two pages of this client
        if not page:
            if pending:
                continue
            break
        for row in page:
            token = token_of(row)
            assert token > after and token not in seen, "a row version delivered twice"
            seen.add(token)
            copy[row[0]] = row
        after = token_of(page[-1])
    assert sorted(copy.values()) == sorted(world.table())
