"""A downstream copy replicates every declared view through the feed over real HTTP, in small pages, and stays
equal to the source row by row after a further import that changes and removes rows."""

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from importer.http.feed import START, Feed, Token, bind_views
from importer.load.pipeline import Pipeline
from importer.load.plugin import discover
from tests.conftest import Databases
from tests.http.client import copy_table, replicate
from tests.http.server import Served, serve
from tests.registers.autorisation.kit import write_dump
from tests.registers.doseringsforslag.kit import release_files, write_release

FIRST = [
    "0A1B2;0101801234;Jensen;Anne Marie;7170",
    "0C3D4;0202851234;Ærø-Sørensen;Øjvind;5166",
    "0E5F6;0202851234;Ærø-Sørensen;Øjvind;5433",
    "1G7H8;1512901234;Nielsen;Lars;5151",
    "09YM8;0101010001;;Indberettet af apotek, ej autorisationsnummer;0000",
]
SECOND = [
    "0A1B2;0101801234;Jensen-Holm;Anne Marie;7170",  # changed
    "0C3D4;0202851234;Ærø-Sørensen;Øjvind;5166",  # unchanged; 0E5F6 and 1G7H8 removed
    "09YM8;0101010001;;Indberettet af apotek, ej autorisationsnummer;0000",
    "2J9K0;2303951234;Hansen;Mette;A511",  # new, with an education code not in the list
]


def source_rows(engine: sa.Engine, feed: Feed) -> list[tuple[Any, ...]]:
    with engine.connect() as connection:
        query = sa.select(feed.pid, feed.table.c.ModifiedDate, *(column for _, column in feed.fields))
        return [tuple(row) for row in connection.execute(query.order_by(feed.pid))]


def copy_rows(engine: sa.Engine, table: sa.Table) -> list[tuple[Any, ...]]:
    with engine.connect() as connection:
        return [tuple(row) for row in connection.execute(sa.select(table).order_by(table.c.pid))]


def test_a_copy_replicated_in_small_pages_equals_the_source_before_and_after_a_further_import(
    databases: Databases, tmp_path: Path
) -> None:
    registers = discover()
    feeds = bind_views(registers.values())
    assert {feed.path for feed in feeds} == {
        "autorisationsregisteret/autorisation/v1",
        *(f"doseringsforslag/{name}/v1" for name in
          ("version", "dosageunit", "drug", "dosagestructure", "drugdosagestructurerelation")),
    }
    pipeline = Pipeline(databases.settings())
    target = sa.create_engine(f"sqlite:///{tmp_path / 'copy.sqlite'}")
    metadata = sa.MetaData()
    copies = {feed.path: copy_table(feed, metadata) for feed in feeds}
    metadata.create_all(target)
    try:
        pipeline.import_dataset(registers["autorisation"], write_dump(tmp_path / "drops", "20261120AutDK.csv", FIRST))
        pipeline.import_dataset(registers["doseringsforslag"], write_release(tmp_path / "r1", release_files(1)))
        tokens: dict[str, Token] = {}
        with serve(databases) as served:
            for feed in feeds:
                tokens[feed.path], pages = replicate(served.client, feed, copies[feed.path], target, START, 2)
                source = source_rows(pipeline.production, feed)
                assert pages == -(-len(source) // 2) + 1  # full pages, then the empty one
                assert copy_rows(target, copies[feed.path]) == source

            # Changes and removals in both registers, committed while the server runs.
            pipeline.import_dataset(registers["autorisation"],
                                    write_dump(tmp_path / "drops", "20261121AutDK.csv", SECOND))
            pipeline.import_dataset(registers["doseringsforslag"],
                                    write_release(tmp_path / "r2", release_files(2, "2026-02-16")))
            for feed in feeds:
                before = len(copy_rows(target, copies[feed.path]))
                token, _ = replicate(served.client, feed, copies[feed.path], target, tokens[feed.path], 3)
                assert token > tokens[feed.path], f"{feed.path}: the further import reached the feed"
                source = source_rows(pipeline.production, feed)
                assert copy_rows(target, copies[feed.path]) == source, feed.path
                assert len(source) > before
                # Caught up: asking again from the stored token gives an empty page.
                again, pages = replicate(served.client, feed, copies[feed.path], target, token, 3)
                assert (again, pages) == (token, 1)

        # The copy holds the history: the removed authorisation is closed at the second dump's date.
        autorisation = copies["autorisationsregisteret/autorisation/v1"]
        with target.connect() as connection:
            closed = connection.execute(
                sa.select(autorisation.c.validTo).where(autorisation.c.autorisationsnummer == "1G7H8")
            ).scalar_one()
        assert str(closed) == "2026-11-21 00:00:00"
    finally:
        pipeline.close()
        target.dispose()


def test_a_client_paging_while_imports_commit_converges_on_the_source(databases: Databases, tmp_path: Path) -> None:
    """Imports run in another thread while the client pages (pages of 2), so commits land between and during its
    requests; once the imports are done and the client has caught up, the copy equals the table."""
    converges_while_importing(databases, tmp_path, lambda served, feed, copy, target, token: replicate(
        served.client, feed, copy, target, token, 2)[0])


Follower = Callable[[Served, Feed, sa.Table, sa.Engine, Token], Token]


def converges_while_importing(databases: Databases, tmp_path: Path, follow_feed: Follower) -> None:
    """A copy of the autorisation view, kept by `follow_feed` (reads after a token until caught up, returns the
    last token) while four further dumps are imported in another thread, equals the table in the end."""
    registers = discover()
    (feed,) = bind_views([registers["autorisation"]])
    pipeline = Pipeline(databases.settings())
    target = sa.create_engine(f"sqlite:///{tmp_path / 'copy.sqlite'}")
    metadata = sa.MetaData()
    copy = copy_table(feed, metadata)
    metadata.create_all(target)
    dumps = [FIRST, SECOND, FIRST[:3], SECOND[1:], FIRST]
    failures: list[BaseException] = []

    def import_all() -> None:
        try:
            for day, lines in enumerate(dumps[1:], start=21):
                pipeline.import_dataset(registers["autorisation"],
                                        write_dump(tmp_path / "drops", f"202611{day}AutDK.csv", lines), force=True)
        except BaseException as error:  # reported by the main thread
            failures.append(error)

    try:
        pipeline.import_dataset(registers["autorisation"], write_dump(tmp_path / "drops", "20261120AutDK.csv", FIRST))
        with serve(databases) as served:
            importer = threading.Thread(target=import_all)
            importer.start()
            token = START
            while importer.is_alive():
                token = follow_feed(served, feed, copy, target, token)
            importer.join()
            assert not failures, failures
            follow_feed(served, feed, copy, target, token)
        assert copy_rows(target, copy) == source_rows(pipeline.production, feed)
    finally:
        pipeline.close()
        target.dispose()
