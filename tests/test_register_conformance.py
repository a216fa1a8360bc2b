"""The contract every register must honour, generated from each register's declaration and run on every register
the entry points discover, plus the registers that exist only in the test suite (`tests/kit.py`).

A register without a conformance kit (`tests/registers/<name>/kit.py`) fails here: a new register is not done
until it passes the same checks as the others (docs/ADDING_A_REGISTER.md). Each check runs on SQLite and MariaDB:

- round trip and sequencing: both datasets land as open rows in both databases, and each feed view serves every
  row version; the same and an older one are refused without changing production;
- bad input is refused with its rule and location, recorded as FAILURE, and changes nothing in production;
- each feed view binds to real columns of a declared history table, and its page query runs on the migrated
  database;
- derived tables kept incrementally by `after_load(connection, deltas)` equal a full rebuild `after_load(…, None)`;
- `validate` leaves both databases exactly as they were (status and migration tables included) and writes no
  working state;
- `recognise` accepts the kit's datasets and refuses every half-written one;
- migrating empty databases builds exactly the register's metadata, and migrating again changes nothing.
"""

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from importer.db import create_engine
from importer.errors import DataError
from importer.http.feed import START, bind_views, read_page
from importer.load.pipeline import Pipeline
from importer.load.plugin import Register, discover
from importer.load.temporal import OPEN_END
from tests.conftest import Databases
from tests.kit import (
    contents,
    database_contents,
    frame_set,
    kit_for,
    migrate_for,
    registers_under_test,
    row_set,
    suite_only_registers,
)

REGISTERS = registers_under_test()


@pytest.fixture(params=sorted(REGISTERS))
def register(request: pytest.FixtureRequest) -> Register:
    return REGISTERS[request.param]


@pytest.fixture
def pipeline(register: Register, databases: Databases) -> Iterator[Pipeline]:
    """The importer on both databases, migrated as the importer does it (and a test-only register's own tables)."""
    migrate_for(register, databases.preflight_url, databases.production_url)
    pipeline = Pipeline(databases.settings(**kit_for(register).environ))
    try:
        yield pipeline
    finally:
        pipeline.close()


def open_rows(databases: Databases, which: str, register: Register) -> dict[str, set[tuple[Any, ...]]]:
    result = {}
    for spec in register.tables:
        rows = [row for row in databases.rows(which, spec.name) if row["ValidTo"] in (OPEN_END, str(OPEN_END))]
        result[spec.name] = row_set(rows, spec.value_columns)
    return result


def test_every_discovered_register_has_a_conformance_kit(register: Register) -> None:
    assert kit_for(register) is not None
    assert register.tables, "a register owns at least one history table"
    assert register.status_table_name in register.metadata.tables
    for spec in register.tables:
        assert register.metadata.tables.get(spec.name) is spec.table, f"{spec.name} is not in the register's metadata"
    for table in register.derived_tables():
        assert register.metadata.tables.get(table.name) is table, f"{table.name} is not in the register's metadata"


def test_test_only_registers_are_never_discovered() -> None:
    """The example register is found by the suite, never through the entry points production reads."""
    assert suite_only_registers(), "the suite checks at least one register built from docs/ADDING_A_REGISTER.md"
    assert not set(suite_only_registers()) & set(discover())


def test_round_trip_and_sequence(
    register: Register, databases: Databases, pipeline: Pipeline, tmp_path: Path
) -> None:
    first, second, *_ = kit_for(register).datasets(tmp_path / "good")
    settings = pipeline.settings.for_register(register.name, register.settings_defaults)
    for dataset in (first, second):
        summary = pipeline.import_dataset(register, dataset)
        parsed = register.parse(dataset, settings)
        expected = {spec.name: frame_set(parsed.frames[spec.name], spec.value_columns) for spec in register.tables}
        assert open_rows(databases, "production", register) == expected
        assert open_rows(databases, "preflight", register) == expected
        assert summary.counts.rows_read == parsed.rows_read

    status = databases.rows("production", register.status_table_name, order_by="Id")
    assert [row["Outcome"] for row in status] == ["SUCCESS", "SUCCESS"]
    assert all(row["RunId"].startswith(f"{register.name}-") and row["InputFiles"] for row in status)

    engine = create_engine(databases.production_url)
    try:
        with engine.connect() as connection:
            for view, feed in zip(register.feed_views, bind_views([register]), strict=True):
                entries = read_page(connection, feed, START, None)
                versions = databases.rows("production", view.table)
                assert sorted(entry.token.pid for entry in entries) == sorted(
                    int(row[feed.pid.name]) for row in versions), f"{view.path} does not serve every row version"
                assert all([name for name, _ in entry.values] == list(view.fields) for entry in entries), view.path
    finally:
        engine.dispose()

    before = databases.production_rows(register)
    for stale in (second, first):  # the same dataset again, then an older one
        with pytest.raises(DataError):
            pipeline.import_dataset(register, stale)
        assert databases.production_rows(register) == before


def test_bad_input_is_refused_with_its_location(
    register: Register, databases: Databases, pipeline: Pipeline, tmp_path: Path
) -> None:
    kit = kit_for(register)
    pipeline.import_dataset(register, kit.datasets(tmp_path / "good")[0])
    before = databases.production_rows(register)
    bad_datasets = kit.bad_datasets(tmp_path / "bad")
    assert bad_datasets, "a kit names at least one dataset to refuse"
    for number, bad in enumerate(bad_datasets, start=1):
        with pytest.raises(DataError) as refused:
            pipeline.import_dataset(register, bad.path)
        assert bad.rule in str(refused.value), str(refused.value)
        assert bad.where in str(refused.value), str(refused.value)
        assert databases.production_rows(register) == before
        # Each refusal is recorded, in both databases, with its rule.
        for which in ("preflight", "production"):
            failed = databases.failed_runs(which, register)
            assert len(failed) == number and bad.rule in failed[-1]["Message"], (which, failed[-1:])


def test_feed_views_bind_to_real_columns_of_a_declared_table(register: Register, databases: Databases) -> None:
    """What `/replication` serves: every view names a history table the register declares (not a derived one: a
    feed needs the PID, ModifiedDate and the validity) and columns of it, and its page query runs on a database
    the migrations built (whose columns are the metadata's: see the migrations check)."""
    feeds = bind_views([register])  # raises on an unknown table or column, a bad path, an exposed PID
    history = {spec.name for spec in register.tables}
    for view, feed in zip(register.feed_views, feeds, strict=True):
        assert view.table in history, f"{view.path} reads {view.table}, which is not a history table of the register"
        assert {"ValidFrom", "ValidTo"} <= set(view.fields.values()), f"{view.path} does not expose the validity"
        assert feed.table is register.metadata.tables[view.table]

    migrate_for(register, databases.production_url)
    engine = create_engine(databases.production_url)
    try:
        with engine.connect() as connection:
            for view, feed in zip(register.feed_views, feeds, strict=True):
                assert read_page(connection, feed, START, None) == [], view.path
    finally:
        engine.dispose()


def test_incremental_after_load_equals_a_full_rebuild(
    register: Register, databases: Databases, pipeline: Pipeline, tmp_path: Path
) -> None:
    """After two imports (rows changed, removed and added) the derived tables `after_load` kept up to date
    incrementally hold exactly what a full rebuild (`deltas` None, as after a re-synchronisation) gives, and the
    rebuild touches nothing but derived tables. Checked in a transaction that is rolled back."""
    for dataset in kit_for(register).datasets(tmp_path / "good")[:2]:
        pipeline.import_dataset(register, dataset)
    derived = [table.name for table in register.derived_tables()]
    for which, url in (("preflight", databases.preflight_url), ("production", databases.production_url)):
        incremental = database_contents(url)
        assert all(incremental[name] for name in derived), f"{which}: a derived table is empty after two imports"
        engine = create_engine(url)
        try:
            with engine.connect() as connection:
                transaction = connection.begin()
                try:
                    register.after_load(connection, None)
                    rebuilt = contents(connection)
                finally:
                    transaction.rollback()
        finally:
            engine.dispose()
        for name in derived:
            assert rebuilt[name] == incremental[name], f"{which}: {name} kept incrementally differs from a rebuild"
        assert rebuilt == incremental, f"{which}: a full rebuild changed more than the derived tables"
        assert database_contents(url) == incremental  # and the check itself left nothing behind


def test_validate_leaves_nothing_behind(
    register: Register, databases: Databases, pipeline: Pipeline, tmp_path: Path
) -> None:
    """`validate` runs a dataset against preflight and rolls back: both databases stay exactly as they were, status
    tables included, whether the dataset would be accepted or refused; no snapshot of it is kept either."""
    kit = kit_for(register)
    first, second, *_ = kit.datasets(tmp_path / "good")
    pipeline.import_dataset(register, first)
    state = Path(databases.environ()["STAMDATA_STATE_DIR"])

    def everything() -> tuple[Any, ...]:
        files = {str(path.relative_to(state)): path.read_bytes() for path in sorted(state.rglob("*")) if path.is_file()}
        return database_contents(databases.preflight_url), database_contents(databases.production_url), files

    before = everything()
    summary = pipeline.import_dataset(register, second, validate_only=True)
    assert not summary.committed
    assert everything() == before, "validating a good dataset changed something"

    bad = kit.bad_datasets(tmp_path / "bad")[0]
    with pytest.raises(DataError):
        pipeline.import_dataset(register, bad.path, validate_only=True)
    assert everything() == before, "validating a bad dataset changed something"


def test_recognise_refuses_a_half_written_dataset(register: Register, tmp_path: Path) -> None:
    kit = kit_for(register)
    for dataset in kit.datasets(tmp_path / "good"):
        assert register.recognise(dataset) is not None, dataset.name
    half_written = kit.half_written(tmp_path / "half")
    assert half_written, "a kit names at least one dataset caught while being written"
    for dataset in half_written:
        assert register.could_be_dataset(dataset), f"{dataset} would be set aside, not waited for"
        assert register.recognise(dataset) is None, f"{dataset.relative_to(tmp_path)} recognised as complete"


def test_migrations_build_exactly_the_registers_metadata(register: Register, databases: Databases) -> None:
    """Empty databases migrated as the importer migrates them hold exactly the tables, columns, types and indexes
    the register declares (Alembic's autogenerate comparison); migrating again changes nothing."""
    from tests.load.test_migrations import schema_drift  # here, not at the top: a broken import fails one test

    migrate_for(register, databases.production_url)
    assert schema_drift(databases.production_url, register.metadata) == []
    history = database_contents(databases.production_url)
    migrate_for(register, databases.production_url)  # again: a no-op, for the chain and out-of-chain revisions
    assert schema_drift(databases.production_url, register.metadata) == []
    assert database_contents(databases.production_url) == history
