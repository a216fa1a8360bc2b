"""The register plugin contract, and discovery through the `stamdata.registers` entry-point group.

A register is one object that knows its files, its tables and its sequencing rules; the engine knows
how to run any register through preflight and production with full history.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from importlib.metadata import entry_points
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
import sqlalchemy as sa

from importer.errors import UsageError
from importer.temporal import TableDelta, TemporalTable

if TYPE_CHECKING:  # the web stack is only imported by the commands that serve
    from fastapi import APIRouter

    from importer.facades import FacadeDatabase

ENTRY_POINT_GROUP = "stamdata.registers"


@dataclass
class ParsedDataset:
    """What a parser hands the engine: typed rows per table and the facts needed to sequence them."""

    name: str  # the dataset's inbox entry (file or directory); the engine sets it after parsing
    version: str  # the register's ordering key: a file date, a release number
    valid_from: datetime  # when the data starts to be valid, before sequencing adjusts it
    frames: dict[str, pd.DataFrame]  # by table name
    files: dict[str, str]  # input file name -> sha256
    warnings: list[str] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)  # logged with the run (encoding, format version)

    @property
    def rows_read(self) -> int:
        return sum(len(frame) for frame in self.frames.values())


@dataclass(frozen=True)
class PreviousImport:
    """The newest successful import of a register in one database."""

    version: str
    valid_from: datetime
    dataset: str


@dataclass(frozen=True)
class Sequenced:
    """The outcome of the sequence check: when this dataset's data becomes valid, and anything to warn about."""

    valid_from: datetime
    warnings: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class FeedView:
    """A replication view: `register/datatype/vN` over one table's columns, in the order they are exposed."""

    path: str
    table: str
    fields: Mapping[str, str]  # exposed name -> column name


class Register:
    """Base class of register plugins: override what the register needs, keep the defaults otherwise."""

    name: str
    status_table_name: str
    tables: Sequence[TemporalTable]
    metadata: sa.MetaData
    settings_defaults: Mapping[str, Any] = {}
    feed_views: Sequence[FeedView] = ()

    def recognise(self, path: Path) -> str | None:
        """The format version of a complete dataset at `path`, or None if this is not one."""
        raise NotImplementedError

    def parse(self, path: Path, settings: Mapping[str, Any]) -> ParsedDataset:
        raise NotImplementedError

    def check_sequence(self, previous: PreviousImport | None, parsed: ParsedDataset) -> Sequenced:
        """Refuse (DataError) a dataset that is not newer than the last imported one."""
        raise NotImplementedError

    def check_delta(self, deltas: Sequence[TableDelta], settings: Mapping[str, Any], force: bool) -> list[str]:
        """Guards on what an import would do (e.g. mass removal); returns audit notes for forced overrides."""
        return []

    def after_load(self, connection: sa.Connection, deltas: Sequence[TableDelta] | None) -> None:
        """Runs in the import's transaction after the history tables are written, e.g. to bring a snapshot
        table up to date. `deltas` says what the import changed; None means the history tables were replaced
        wholesale (preflight re-synchronisation), so derived tables must be rebuilt from scratch."""

    def derived_tables(self) -> Sequence[sa.Table]:
        """Tables rebuilt by `after_load`; re-synchronising preflight rebuilds them too."""
        return ()

    def facade_router(self, database: "FacadeDatabase") -> "APIRouter | None":
        """The register's read-only lookups, if it has any; they read only through `database`."""
        return None


def discover() -> dict[str, Register]:
    registers: dict[str, Register] = {}
    for entry_point in entry_points(group=ENTRY_POINT_GROUP):
        register = entry_point.load()
        if not isinstance(register, Register):
            raise TypeError(f"entry point {entry_point.name} does not name a Register: {register!r}")
        registers[register.name] = register
    return dict(sorted(registers.items()))


def lookup(registers: Mapping[str, Register], name: str) -> Register:
    try:
        return registers[name]
    except KeyError:
        known = ", ".join(registers) or "none installed"
        raise UsageError(f"unknown register {name!r} (known: {known})") from None
