"""The history invariants, for any sequence of generated full dumps, on SQLite and MariaDB.

After each import: the rows valid at the dump's date are exactly the dump; intervals never overlap or
invert; a key has at most one open row; untouched rows keep their ModifiedDate; every row the import
inserted or closed carries that import's ModifiedDate.
"""

import itertools
from collections import defaultdict
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from importer.load.pipeline import Pipeline
from importer.load.temporal import OPEN_END
from registers.autorisation import REGISTER
from tests.conftest import Databases
from tests.registers.autorisation.kit import write_dump

KEYS = ["0A1B2", "0C3D4", "0E5F6", "1G7H8", "2J9K0", "3L1M2", "09YM8", "ZZZZ9"]
CPRS = ["0101801234", "0202851234", "1512901234"]
SURNAMES = ["Jensen", "Ærø-Sørensen", "Nielsen", "O'Brien"]
GIVEN = ["Anne Marie", "Øjvind", "Lars", ""]
EDUCATION = ["7170", "5166", "5433", "0000", "A511"]

person = st.tuples(st.sampled_from(CPRS), st.sampled_from(SURNAMES), st.sampled_from(GIVEN), st.sampled_from(EDUCATION))
dump = st.dictionaries(st.sampled_from(KEYS), person, max_size=len(KEYS))
# Each import either trusts the snapshot of the previous import or reads the open rows from the database.
dumps = st.lists(st.tuples(st.integers(min_value=1, max_value=40), dump, st.booleans()), min_size=1, max_size=6)


def reset(databases: Databases) -> None:
    for url in (databases.preflight_url, databases.production_url):
        engine = sa.create_engine(url)
        with engine.begin() as connection:
            for table in ("Autorisation2", "autreg2", "autorisationimporterImportStatus"):
                connection.execute(sa.text(f"DELETE FROM {table}"))
        engine.dispose()


def as_datetime(value: Any) -> datetime:
    return value if isinstance(value, datetime) else datetime.fromisoformat(str(value))


def check_history(rows: list[dict[str, Any]], expected: dict[str, tuple[str, ...]], day: datetime) -> None:
    """`expected` maps autorisationsnummer to (cpr, surname, given names, education code)."""
    valid = {
        row["Autorisationsnummer"]: (row["CPR"], row["Efternavn"], row["Fornavn"], row["UddannelsesKode"])
        for row in rows
        if as_datetime(row["ValidFrom"]) <= day < as_datetime(row["ValidTo"])
    }
    assert valid == expected
    by_key: dict[str, list[tuple[datetime, datetime]]] = defaultdict(list)
    for row in rows:
        start, end = as_datetime(row["ValidFrom"]), as_datetime(row["ValidTo"])
        assert start < end, f"inverted or empty interval {row}"
        by_key[row["Autorisationsnummer"]].append((start, end))
    for key, intervals in by_key.items():
        intervals.sort()
        assert sum(end == OPEN_END for _, end in intervals) <= 1, f"{key} has more than one open row"
        for (_, end), (next_start, _) in itertools.pairwise(intervals):
            assert end <= next_start, f"{key} has overlapping intervals {intervals}"


@pytest.mark.parametrize("databases", ["sqlite", pytest.param("mariadb", marks=pytest.mark.mariadb)], indirect=True)
@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(sequence=dumps)
def test_history_invariants_hold_for_any_sequence_of_dumps(
    databases: Databases, tmp_path_factory: pytest.TempPathFactory, sequence: list[tuple[int, dict[str, Any], bool]]
) -> None:
    pipeline = Pipeline(databases.settings(STAMDATA_AUTORISATION_REDUCTION_GUARD="1000"))
    directory: Path = tmp_path_factory.mktemp("dumps")
    try:
        pipeline.migrate()
        reset(databases)
        day = date(2026, 1, 1)
        previous: dict[int, dict[str, Any]] = {}
        for gap, content, use_snapshot in sequence:
            day += timedelta(days=gap)
            if not use_snapshot:
                pipeline.snapshots.forget(REGISTER.name)
            if not content:
                continue  # an empty file is refused, tested elsewhere
            # Replacement numbers have no surname by definition.
            expected = {
                key: (cpr, "" if key == "09YM8" else surname, given, code)
                for key, (cpr, surname, given, code) in content.items()
            }
            lines = [";".join((key, *fields)) for key, fields in expected.items()]

            summary = pipeline.import_dataset(REGISTER, write_dump(directory, f"{day:%Y%m%d}AutDK.csv", lines))
            stamp = summary.transaction_time
            rows = databases.rows("production", "Autorisation2")
            check_history(rows, expected, datetime.combine(day, datetime.min.time()))

            touched = 0
            for row in rows:
                before = previous.get(row["AutorisationPID"])
                if before is None or as_datetime(before["ValidTo"]) != as_datetime(row["ValidTo"]):
                    assert as_datetime(row["ModifiedDate"]) == stamp, "a touched row lacks the import's ModifiedDate"
                    touched += 1
                else:
                    assert row == before, "an untouched row changed"
            counts = summary.counts
            assert touched == counts.inserted + 2 * counts.updated + counts.closed

            open_rows = sorted(
                (r["CPR"], r["Fornavn"], r["Efternavn"], r["Autorisationsnummer"], r["UddannelsesKode"])
                for r in rows
                if as_datetime(r["ValidTo"]) == OPEN_END
            )
            autreg = sorted(
                (r["cpr"], r["given_name"], r["surname"], r["aut_id"], r["edu_id"])
                for r in databases.rows("production", "autreg2")
            )
            assert autreg == open_rows
            previous = {row["AutorisationPID"]: row for row in rows}
    finally:
        pipeline.close()
