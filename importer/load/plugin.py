"""The register plugin contract, and discovery through the `stamdata.registers` entry-point group.

A register is one object that knows its files, its tables and its sequencing rules; the engine knows
how to run any register through preflight and production with full history.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from importlib.metadata import entry_points
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
import sqlalchemy as sa

from importer.errors import DataError, Problem, UsageError
from importer.load.temporal import OPEN_END, TableDelta, TemporalTable

if TYPE_CHECKING:  # the web stack is only imported by the commands that serve
    from fastapi import APIRouter

    from importer.http.audit import Auditor
    from importer.http.database import FacadeDatabase
    from importer.http.soap import SoapService

ENTRY_POINT_GROUP = "stamdata.registers"


@dataclass(frozen=True)
class Facades:
    """A register's own façades: HTTP look-ups (served under the scope `lookup:<register>`) and SOAP services
    (whose handlers check the scope their answer needs). Feeds are declared as `feed_views` instead."""

    http: "APIRouter | None" = None
    soap: "Sequence[SoapService]" = ()


@dataclass(frozen=True)
class TestDataSpec:
    """How a register's data becomes test data (importer/load/testdata.py). With a `person_column`, per person:
    the history table holding a person's rows and the column with their CPR number; a restored key that has
    history in the table gets the first unused value of the test range (`key_prefix` then the alphabet, to
    `key_length` characters). Without one, the register is dumped and restored whole."""

    __test__ = False  # not a pytest test class

    table: str = ""
    person_column: str | None = None
    key_prefix: str = ""
    key_alphabet: str = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    key_length: int = 0


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
class SequenceContext:
    """What the sequence check may need beyond the two datasets: the run's clock reading (naive UTC, from the
    pipeline's injected clock, so tests drive it), the register's effective settings, and whether the operator
    forced the import (a forced override must be returned as an audit note in `Sequenced.notes`)."""

    now: datetime
    settings: Mapping[str, Any] = field(default_factory=dict)
    force: bool = False


@dataclass(frozen=True)
class Sequenced:
    """The outcome of the sequence check: when this dataset's data becomes valid, anything to warn about, and
    audit notes for guards the operator overrode with --force (logged and kept in the status row)."""

    valid_from: datetime
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def within_dataset(error: DataError, dataset: str) -> DataError:
    """The same refusal with each problem's file named inside its dataset (`release-011.zip/Drugs.json:2: …`),
    so the message names both the inbox entry an operator sees and the file that broke the rule."""
    def located(problem: Problem) -> Problem:
        file = problem.file
        if file is None or file == dataset or file.startswith((f"{dataset}/", "/")):
            return problem
        return Problem(problem.rule, problem.detail, f"{dataset}/{file}", problem.line)

    return DataError([located(problem) for problem in error.problems])


# No dataset of any register is dated before this: the platform did not exist, and such a date is a typo.
EARLIEST_DATE = datetime(2000, 1, 1)


def check_dataset_date(
    when: datetime, context: SequenceContext, *, what: str, file: str, default_future_days: float
) -> list[str]:
    """The plausibility rules every dated dataset obeys; returns audit notes for a forced override.

    - `open-end-date` (never forceable): at or after the open end, rows would start where open rows end
      (`ValidFrom >= ValidTo`), and no later dataset could ever follow.
    - `early-date` (never forceable): before 2000-01-01, a typo rather than a delivery.
    - `future-date` (forceable, audited): more than `max_future_days` ahead of the run's clock; one typo
      (2027 for 2026) would otherwise make every genuine dataset "older" and block the register for a year.
    """
    day = f"{when:%Y-%m-%d}"
    if when >= OPEN_END:
        raise DataError.single(
            "open-end-date", f"{what} {day} is at or after the open end {OPEN_END:%Y-%m-%d} of every history "
            "interval; no dataset can be valid from then", file=file)
    if when < EARLIEST_DATE:
        raise DataError.single(
            "early-date", f"{what} {day} is before {EARLIEST_DATE:%Y-%m-%d}; that is a typo, not a delivery",
            file=file)
    limit = float(context.settings.get("max_future_days", default_future_days))
    ahead = when - context.now
    if ahead <= timedelta(days=limit):
        return []
    days = ahead.total_seconds() / 86400
    if not context.force:
        raise DataError.single(
            "future-date", f"{what} {day} is {days:.1f} days after now ({context.now:%Y-%m-%d %H:%M} UTC), more "
            f"than max_future_days {limit:g}; every later genuine dataset would be refused as older until then. "
            "Import it with --force if the date is right", file=file)
    return [f"future-date guard overridden by --force: {what} {day} is {days:.1f} days ahead "
            f"(max_future_days {limit:g})"]


def sequence_by_date(
    previous: PreviousImport | None, parsed: ParsedDataset, context: SequenceContext, *, default_future_days: float
) -> Sequenced:
    """The sequence check of a register of dated full dumps (`version` is the file date, yyyyMMdd): a plausible
    date (`check_dataset_date`), strictly later than the newest successful import (`same-date`, `older-date`)."""
    notes = check_dataset_date(parsed.valid_from, context, what="dataset date", file=parsed.name,
                               default_future_days=default_future_days)
    if previous is not None and parsed.version <= previous.version:
        rule = "same-date" if parsed.version == previous.version else "older-date"
        raise DataError.single(
            rule,
            f"dataset date {parsed.version} is not later than the newest imported {previous.version} "
            f"({previous.dataset})",
            file=parsed.name,
        )
    return Sequenced(valid_from=parsed.valid_from, notes=notes)


@dataclass(frozen=True)
class FeedView:
    """A replication view: `register/datatype/vN` over one table's columns, in the order they are exposed."""

    path: str
    table: str
    fields: Mapping[str, str]  # exposed name -> column name


@dataclass(frozen=True)
class NotificationIds:
    """Which changes of a history table are notified to the subscribers of the register's topic
    (`stamdata/<register>`, importer/load/notifications.py), and by which ids: one notification per business key
    an import inserts, changes or closes, about `datatype`, naming the values of `ids` (column -> id type; a
    subscriber is told the key's columns first, the others in this order, then changed ones' old values).
    Nothing else of the row leaves the register: a notification says only that something about an id changed,
    and the consumer looks it up."""

    table: str
    datatype: str
    ids: Mapping[str, str]


class Register:
    """Base class of register plugins: override what the register needs, keep the defaults otherwise."""

    # The inbox folder (`inbox/<name>/`), the CLI's register argument and the prefix of STAMDATA_<NAME>_… settings.
    name: str
    # Its ImportStatus table (built by importer.load.status.import_status_table), one row per run.
    status_table_name: str
    # The history tables the engine keeps with ValidFrom/ValidTo, each with its business key, in load order.
    tables: Sequence[TemporalTable]
    # Every table the register owns (history, derived, status): what its migrations must build, and a test checks.
    metadata: sa.MetaData
    # The register's own settings and their defaults; a value's type is the setting's type (config checks it).
    settings_defaults: Mapping[str, Any] = {}
    # The copy-register feed's views over its tables (`register/datatype/vN`).
    feed_views: Sequence[FeedView] = ()
    # The change notifications of its imports (see NotificationIds); none: its imports notify nobody.
    notification_ids: Sequence[NotificationIds] = ()
    # What a dataset of this register looks like, for messages about inbox entries that are not one.
    dataset_description: str = ""

    def setting_problems(self, settings: Mapping[str, Any]) -> dict[str, str]:
        """The rules the register's effective settings break beyond their types (a value outside a fixed set, a
        share above 1), by key: checked with the whole configuration at start, so a bad value is exit 2 then,
        not a refusal when the first dataset arrives."""
        return {}

    def recognise(self, path: Path) -> str | None:
        """The format version of a complete dataset at `path`, or None if this is not one."""
        raise NotImplementedError

    def could_be_dataset(self, path: Path) -> bool:
        """Whether an inbox entry has the shape of a dataset at all (by its kind and name, not its content).

        A stray file that has not (`notes.txt`) is set aside by the daemon instead of being refused, which would
        lock the register; an entry that has the shape but not the content is refused as usual."""
        return True

    def parse(self, path: Path, settings: Mapping[str, Any]) -> ParsedDataset:
        """Read a whole dataset (file, directory or ZIP) into typed rows per history table, with its version, the
        date its rows are valid from, the sha256 of each input and any warnings. Every rule broken is a
        DataError naming file, line and rule — all of them, not just the first — and nothing is written here:
        the engine decides what the rows change. `settings` are the register's effective settings."""
        raise NotImplementedError

    def check_sequence(
        self, previous: PreviousImport | None, parsed: ParsedDataset, context: SequenceContext
    ) -> Sequenced:
        """Refuse (DataError) a dataset that is not newer than the last imported one, or whose date or version
        is implausible (see `check_dataset_date`); overrides forced by `context.force` come back as notes."""
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

    # Test data (dump, restore, reset), if the register has any; see TestDataSpec.
    testdata: TestDataSpec | None = None

    def facade_routers(self, database: "FacadeDatabase", audit: "Auditor") -> Facades:
        """The register's look-ups, if it has any. They read only through `database`; an answer that holds a
        person's data found by CPR number is recorded with `audit` before it is sent."""
        return Facades()


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
