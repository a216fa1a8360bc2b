"""What a register gives the conformance suite: datasets it can import, datasets it must refuse, datasets caught
half-written; and which registers the suite checks.

Every register has `tests/registers/<name>/kit.py` exposing `KIT`, an object with the shape of `ConformanceKit`.
The registers checked are those the `stamdata.registers` entry points discover plus `TEST_ONLY_REGISTERS`:
registers that exist only in the test suite (no entry point, so production never finds them), whose tables are
created by revision files of their own (`<package>/versions/`), outside the real chain in `migrations/versions/`.
"""

import importlib
import importlib.util
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, Protocol

import pandas as pd
import sqlalchemy as sa
from alembic.operations import Operations
from alembic.runtime.migration import MigrationContext

import migrations.rerunnable  # noqa: F401  (revisions' schema operations re-runnable, as migrations/env.py has them)
from importer.db import create_engine
from importer.load import migrate
from importer.load.plugin import Register, discover

# Packages exposing `REGISTER`, with their revisions in `<package>/versions/V*.py`.
TEST_ONLY_REGISTERS = ("tests.example_register",)


@dataclass(frozen=True)
class BadDataset:
    path: Path
    rule: str  # the rule the refusal must name
    where: str  # text the message must contain to locate the problem, e.g. "20261122AutDK.csv:3"


@dataclass
class ConformanceKit(Protocol):
    environ: dict[str, str] = field(default_factory=dict)

    def datasets(self, directory: Path) -> list[Path]:
        """At least two valid datasets, in import order, written below `directory`."""
        ...

    def bad_datasets(self, directory: Path) -> list[BadDataset]:
        """Datasets the register must refuse after `datasets()[0]` was imported."""
        ...

    def half_written(self, directory: Path) -> list[Path]:
        """Datasets caught while being written (a directory missing its last file, a cut ZIP or file), written
        below `directory`: `recognise` must return None for each, so the daemon waits for the rest."""
        ...


def kit_for(register: Register) -> ConformanceKit:
    """A register's kit, by convention at `tests/registers/<name>/kit.py`."""
    module = importlib.import_module(f"tests.registers.{register.name}.kit")
    kit: ConformanceKit = module.KIT
    return kit


def suite_only_registers() -> dict[str, Register]:
    registers = {}
    for package in TEST_ONLY_REGISTERS:
        register = importlib.import_module(package).REGISTER
        assert isinstance(register, Register), package
        registers[register.name] = register
    return registers


def registers_under_test() -> dict[str, Register]:
    """What the entry points discover, and the test-only registers (which must not clash with them)."""
    discovered = discover()
    extra = suite_only_registers()
    assert not set(discovered) & set(extra), "a test-only register must not be installed as an entry point"
    return dict(sorted({**discovered, **extra}.items()))


def out_of_chain_revisions(register: Register) -> list[Path]:
    """The revision files of a test-only register (a real register's revision is in the chain): none otherwise."""
    package = type(register).__module__.rsplit(".", 1)[0]
    if package not in TEST_ONLY_REGISTERS:
        return []
    module = importlib.import_module(package)
    assert module.__file__ is not None
    return sorted((Path(module.__file__).parent / "versions").glob("V*.py"))


def run_revision(engine: sa.Engine, path: Path) -> None:
    """One revision file's `upgrade()` through Alembic's operations, in one transaction, as the chain runs it
    (with `migrations/rerunnable.py`'s operations, so running it twice is harmless)."""
    spec = importlib.util.spec_from_file_location(f"out_of_chain_{path.stem}", path)
    assert spec is not None and spec.loader is not None
    revision = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(revision)
    with engine.begin() as connection, Operations.context(MigrationContext.configure(connection)):
        revision.upgrade()


def migrate_for(register: Register, *urls: str) -> None:
    """Databases at the newest schema the way the importer migrates them (the real chain), plus the register's
    out-of-chain revisions when it is a test-only one."""
    for url in urls:
        engine = create_engine(url)
        try:
            migrate.upgrade(engine)
            for path in out_of_chain_revisions(register):
                run_revision(engine, path)
        finally:
            engine.dispose()


def normalise(value: Any) -> Any:
    """Make values read back from SQLite or MariaDB comparable with what a parser produced."""
    if value is None or (isinstance(value, float) and value != value) or value is pd.NA:
        return None
    if isinstance(value, datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal | float) and value == int(value):
        return int(value)
    if hasattr(value, "item"):  # numpy scalars
        return normalise(value.item())
    return value


def row_set(rows: list[dict[str, Any]], columns: list[str]) -> set[tuple[Any, ...]]:
    return {tuple(normalise(row[column]) for column in columns) for row in rows}


def frame_set(frame: pd.DataFrame, columns: list[str]) -> set[tuple[Any, ...]]:
    return {tuple(normalise(value) for value in values) for values in frame[columns].itertuples(index=False)}


Contents = dict[str, list[tuple[Any, ...]]]


def contents(connection: sa.Connection) -> Contents:
    """Every row of every table as `connection` sees it (status, migration history and all), in a fixed order."""
    quote = connection.dialect.identifier_preparer.quote
    return {
        table: sorted((tuple(row) for row in connection.exec_driver_sql(f"SELECT * FROM {quote(table)}")), key=repr)
        for table in sorted(sa.inspect(connection).get_table_names())
    }


def database_contents(url: str) -> Contents:
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            return contents(connection)
    finally:
        engine.dispose()
