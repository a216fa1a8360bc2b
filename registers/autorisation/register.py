"""The autorisation register plugin: daily full dumps, sequenced by file date, guarded against mass removal."""

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from importer.errors import DataError
from importer.load.bulk import insert_from_select
from importer.load.plugin import (
    Facades,
    FeedView,
    NotificationIds,
    ParsedDataset,
    PreviousImport,
    Register,
    SequenceContext,
    Sequenced,
    TestDataSpec,
    sequence_by_date,
    within_dataset,
)
from importer.load.temporal import OPEN_END, TableDelta
from importer.logs import get_logger
from registers.autorisation import parser
from registers.autorisation import tables as schema

if TYPE_CHECKING:
    from importer.http.audit import Auditor
    from importer.http.database import FacadeDatabase

log = get_logger(__name__)

# Autorisation2 column -> autreg2 column.
AUTREG2_COLUMNS = {
    "AutorisationPID": "id",  # the row's own PID: autreg2 is numbered alike wherever Autorisation2 is
    "CPR": "cpr",
    "Fornavn": "given_name",
    "Efternavn": "surname",
    "Autorisationsnummer": "aut_id",
    "UddannelsesKode": "edu_id",
}


class AutorisationRegister(Register):
    name = "autorisation"
    status_table_name = schema.import_status.name
    metadata = schema.metadata
    tables = (schema.AUTORISATION,)
    settings_defaults: Mapping[str, Any] = {
        # Refuse a dump that would close more currently valid authorisations than this, unless forced.
        "reduction_guard": 100,
        # Refuse a dump that would change more than this share of the currently valid authorisations (swapped
        # or mis-encoded columns), unless forced; a real daily dump changes well under 1 %. Changes of at most
        # `change_guard_min_rows` authorisations are never refused: a share needs a population (small test
        # registers), and so few changes are quickly put right.
        "change_guard": 0.2,
        "change_guard_min_rows": 50,
        # Refuse a dump dated more than this many days after the run's clock, unless forced: a dump is named by
        # the Danish date it is valid from (up to a day ahead of UTC), and a supplier may deliver a few days
        # early before holidays; a year typo is refused.
        "max_future_days": 7.0,
        "max_age_days": 2.0,
    }
    dataset_description = (
        "an autorisation dataset is one file named <yyyyMMdd><anything>.csv (e.g. 20261122AutDK.csv), or a "
        "directory holding exactly one such file"
    )
    # Restored keys with history get a number from Z0000 up (real numbers do not start with Z); README, "Test data".
    testdata = TestDataSpec(table="Autorisation2", person_column="CPR", key_prefix="Z", key_length=5)
    # A change notification names the holder's CPR (the platform's id type for it, as NAS uses) and the number.
    notification_ids = (
        NotificationIds(table="Autorisation2", datatype="autorisation", ids={
            "Autorisationsnummer": "http://nsi.dk/advis/v10/Autorisationsnummer",  # the key: named first anyway
            "CPR": "http://nsi.dk/advis/v10/CPR",
        }),
    )
    feed_views = (
        FeedView(
            path="autorisationsregisteret/autorisation/v1",
            table="Autorisation2",
            fields={
                "autorisationsnummer": "Autorisationsnummer",
                "cpr": "CPR",
                "fornavn": "Fornavn",
                "efternavn": "Efternavn",
                "uddannelseskode": "UddannelsesKode",
                "validFrom": "ValidFrom",
                "validTo": "ValidTo",
            },
        ),
    )

    def recognise(self, path: Path) -> str | None:
        try:
            file = parser.dataset_file(path)
            parser.file_date(file)
        except DataError:
            return None
        return "csv"

    def setting_problems(self, settings: Mapping[str, Any]) -> dict[str, str]:
        if not 0 < float(settings["change_guard"]) <= 1:
            return {"change_guard": "must be a share above 0 and at most 1 (1 switches the guard off)"}
        return {}

    def could_be_dataset(self, path: Path) -> bool:
        return path.is_dir() or path.suffix.lower() == ".csv"

    def parse(self, path: Path, settings: Mapping[str, Any]) -> ParsedDataset:
        file = parser.dataset_file(path)
        if file == path:
            return parser.parse_file(file)
        try:  # a directory holding the file: name both
            return parser.parse_file(file)
        except DataError as error:
            raise within_dataset(error, path.name) from None

    def check_sequence(
        self, previous: PreviousImport | None, parsed: ParsedDataset, context: SequenceContext
    ) -> Sequenced:
        return sequence_by_date(previous, parsed, context,
                                default_future_days=float(self.settings_defaults["max_future_days"]))

    def check_delta(self, deltas: Sequence[TableDelta], settings: Mapping[str, Any], force: bool) -> list[str]:
        """The reduction guard (authorisations that disappear) and the change guard (authorisations whose
        content changes: swapped columns, a mis-encoded dump), each refused unless forced, then audited."""
        (delta,) = deltas
        notes: list[str] = []
        closed = delta.closed
        limit = int(settings["reduction_guard"])
        if closed > limit:
            if not force:
                raise DataError.single(
                    "reduction-guard",
                    f"the dump would remove {closed} currently valid authorisations, more than the limit of "
                    f"{limit}; import it with --force if the removal is real",
                )
            notes.append(f"reduction guard overridden by --force: {closed} authorisations removed (limit {limit})")
        changed = delta.updated
        valid = delta.updated + delta.unchanged + delta.closed  # the open rows before this import
        share = float(settings["change_guard"])
        floor = int(settings["change_guard_min_rows"])
        if valid and changed > floor and changed > share * valid:
            percent = 100 * changed / valid
            if not force:
                raise DataError.single(
                    "change-guard",
                    f"the dump would change {changed} of {valid} currently valid authorisations ({percent:.1f} %), "
                    f"more than change_guard {share:g} ({100 * share:g} %); swapped columns or a wrong encoding? "
                    "Import it with --force if the changes are real",
                )
            notes.append(f"change guard overridden by --force: {changed} of {valid} authorisations changed "
                         f"({percent:.1f} %, limit {100 * share:g} %)")
        return notes

    def after_load(self, connection: sa.Connection, deltas: Sequence[TableDelta] | None) -> None:
        """Keep autreg2 equal to the open rows of Autorisation2, in the import's transaction.

        After an import only what changed is touched (rows of closed authorisations deleted, new versions
        inserted), so a daily dump costs in proportion to its changes; the result is the same as the full
        rebuild, which runs when the history was replaced wholesale.
        """
        if deltas is None:
            _rebuild_autreg2(connection)
            return
        (delta,) = deltas
        autreg2 = schema.autreg2
        history = schema.autorisation2.c
        expected = len(delta.closed_keys)  # changed and removed authorisations
        if expected:
            # The rows this import closed carry its transaction time and end at its valid-from; through the
            # history table's (ModifiedDate, PID) index they name the autreg2 rows to go by (cpr, aut_id),
            # the only index autreg2 has, in one statement.
            closed_now = sa.and_(history.ModifiedDate == delta.transaction_time, history.ValidTo == delta.valid_from)
            if connection.dialect.name == "sqlite":
                statement = autreg2.delete().where(sa.tuple_(autreg2.c.cpr, autreg2.c.aut_id).in_(
                    sa.select(history.CPR, history.Autorisationsnummer).where(closed_now)))
            else:  # a join: MariaDB before 11.1 would evaluate the IN for every row of autreg2
                statement = autreg2.delete().where(
                    autreg2.c.cpr == history.CPR, autreg2.c.aut_id == history.Autorisationsnummer, closed_now)
            removed = connection.execute(statement).rowcount
            if removed != expected:  # someone changed autreg2 by hand
                _out_of_step(connection, removed=removed, expected=expected)
                return
        # The history table's new rows (this import's, still open), copied within the database under autreg2's
        # column names through the (ModifiedDate, PID) index: nothing goes through Python again.
        expected = len(delta.new_versions)
        opened_now = _open_rows().where(history.ModifiedDate == delta.transaction_time)
        inserted = insert_from_select(connection, autreg2, list(AUTREG2_COLUMNS.values()),
                                      opened_now.order_by(history.AutorisationPID), expected)
        if inserted != expected:  # not this import's rows alone
            _out_of_step(connection, inserted=inserted, expected=expected)

    def derived_tables(self) -> Sequence[sa.Table]:
        return (schema.autreg2,)

    def facade_routers(self, database: "FacadeDatabase", audit: "Auditor") -> Facades:
        from registers.autorisation import facade, soap  # the web stack only where something serves

        return Facades(http=facade.router(database, audit), soap=[soap.authorization_service(database, audit)])


def _open_rows() -> sa.Select[Any]:
    """autreg2's rows as the history holds them: its open rows, under autreg2's column order."""
    history = schema.autorisation2.c
    return sa.select(*(history[name] for name in AUTREG2_COLUMNS)).where(history.ValidTo == OPEN_END)


def _out_of_step(connection: sa.Connection, **counts: int) -> None:
    """autreg2 is derived: where it does not follow the history as it should, it is made right from the history
    rather than the import refused."""
    log.warning("autreg2 was not in step with Autorisation2; rebuilt in full", **counts)
    _rebuild_autreg2(connection)


def _rebuild_autreg2(connection: sa.Connection) -> None:
    """autreg2 from the open rows of Autorisation2 (DELETE, not TRUNCATE, which commits implicitly in MySQL)."""
    autreg2 = schema.autreg2
    history = schema.autorisation2.c
    connection.execute(autreg2.delete())
    connection.execute(autreg2.insert().from_select(
        list(AUTREG2_COLUMNS.values()), _open_rows().order_by(history.CPR, history.Autorisationsnummer)))
