"""Test data: dump, restore (onto the same or another person, at a date) and reset keep the history rules on both
backends: no overlapping intervals for a key, nothing deleted, the feed strictly ordered, test keys kept open by
later full dumps; bad dumps are refused naming what is wrong and change nothing."""

import base64
import gzip
import itertools
import json
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from importer.errors import DataError, UsageError
from importer.http.feed import START, bind_views, read_page
from importer.load.pipeline import Pipeline
from importer.load.plugin import discover
from importer.load.temporal import OPEN_END
from importer.load.testdata import TestData, decode, encode
from tests.conftest import Databases
from tests.registers.autorisation.kit import write_dump
from tests.registers.doseringsforslag.kit import release_files, write_release

DAY_ONE = [
    "0A1B2;0101801234;Jensen;Anne Marie;7170",
    "0C3D4;0101801234;Jensen;Anne Marie;5433",
    "1G7H8;1512901234;Nielsen;Lars;5151",
]
DAY_TWO = [
    "0A1B2;0101801234;Jensen-Holm;Anne Marie;7170",  # renamed: two versions
    "1G7H8;1512901234;Nielsen;Lars;5151",  # 0C3D4 removed: closed
]
VALUES = ["Autorisationsnummer", "CPR", "Fornavn", "Efternavn", "UddannelsesKode", "ValidFrom", "ValidTo"]


def history(databases: Databases, which: str = "production") -> list[dict[str, Any]]:
    return databases.rows(which, "Autorisation2", order_by="AutorisationPID")


def person_rows(databases: Databases, cpr: str) -> list[tuple[Any, ...]]:
    return sorted(tuple(str(row[name]) for name in VALUES) for row in history(databases) if row["CPR"] == cpr)


def assert_history_rules(databases: Databases) -> None:
    """Both databases equal; per key no two intervals overlap; ModifiedDate never before CreatedDate."""
    rows = history(databases)
    assert rows == history(databases, "preflight")
    by_key: dict[str, list[tuple[Any, Any]]] = {}
    for row in rows:
        by_key.setdefault(row["Autorisationsnummer"], []).append((str(row["ValidFrom"]), str(row["ValidTo"])))
    for key, intervals in by_key.items():
        intervals.sort()
        for (_, end), (start, _) in itertools.pairwise(intervals):
            assert end <= start, f"{key}: {intervals} overlap"
    assert all(str(row["ModifiedDate"]) >= str(row["CreatedDate"]) for row in rows)


@pytest.fixture
def imported(databases: Databases, tmp_path: Path) -> Any:
    register = discover()["autorisation"]
    pipeline = Pipeline(databases.settings())
    pipeline.import_dataset(register, write_dump(tmp_path, "20261120AutDK.csv", DAY_ONE))
    pipeline.import_dataset(register, write_dump(tmp_path, "20261121AutDK.csv", DAY_TWO))
    yield register, pipeline, TestData(pipeline)
    pipeline.close()


def test_dump_reset_restore_reproduces_the_person_and_later_dumps_keep_test_keys_open(
    databases: Databases, imported: Any, tmp_path: Path
) -> None:
    register, pipeline, testdata = imported
    before = person_rows(databases, "0101801234")
    assert len(before) == 3  # 0A1B2 twice, 0C3D4 closed
    dump = testdata.dump(register, "0101801234")
    assert decode(dump, register).person == "0101801234"

    # Onto a person and numbers with no history: the dump's rows exactly.
    restored = testdata.restore(register, encode(_renumbered(decode(dump, register), {"0A1B2": "ZZ001",
                                                                                       "0C3D4": "ZZ002"})),
                                to="2112111118")
    assert restored.keys == {"ZZ001": "ZZ001", "ZZ002": "ZZ002"}
    assert person_rows(databases, "2112111118") == sorted(
        (("ZZ001" if row[0] == "0A1B2" else "ZZ002"), "2112111118", *row[2:]) for row in before)

    reset = testdata.reset(register, "0101801234")
    assert reset.closed == 1  # the open 0A1B2; nothing deleted
    assert len(person_rows(databases, "0101801234")) == 3
    back = testdata.restore(register, dump)
    assert back.keys == {"0A1B2": "Z0000", "0C3D4": "Z0001"}, "numbers with history get test-range numbers"
    again = decode(testdata.dump(register, "0101801234"), register).tables["Autorisation2"]
    restored_rows = sorted(tuple(str(value) for value in row) for row in
                           again[again["Autorisationsnummer"].str.startswith("Z")][VALUES].itertuples(index=False))
    mapping = back.keys
    assert restored_rows == sorted((mapping[row[0]], *row[1:]) for row in before)
    assert_history_rules(databases)

    # The next full dumps lack the test persons: their keys stay open; the real register goes on.
    pipeline.import_dataset(register, write_dump(tmp_path, "20261122AutDK.csv", DAY_TWO))
    pipeline.import_dataset(register, write_dump(tmp_path, "20261123AutDK.csv", DAY_TWO[1:]))
    open_keys = {row["Autorisationsnummer"] for row in history(databases) if str(row["ValidTo"]).startswith("2999")}
    assert {"Z0000", "ZZ001", "1G7H8"} <= open_keys and "0A1B2" not in open_keys
    assert_history_rules(databases)
    # A reset forgets them: the following dump closes nothing more, and they stay closed.
    testdata.reset(register, "2112111118")
    pipeline.import_dataset(register, write_dump(tmp_path, "20261124AutDK.csv", DAY_TWO[1:]))
    assert "ZZ001" not in {row["Autorisationsnummer"] for row in history(databases)
                           if str(row["ValidTo"]).startswith("2999")}
    assert_history_rules(databases)


def test_every_operation_moves_the_feed_strictly_forward(databases: Databases, imported: Any) -> None:
    register, pipeline, testdata = imported
    (view,) = bind_views([register])
    seen: list[Any] = []

    def drain(after: Any) -> Any:
        with pipeline.production.connect() as connection:
            while page := read_page(connection, view, after, 1000):
                seen.extend(entry.token for entry in page)
                after = page[-1].token
        return after

    token = drain(START)
    dump = testdata.dump(register, "0101801234")
    for operation in (lambda: testdata.restore(register, dump, to="2112111118"),
                      lambda: testdata.reset(register, "2112111118"),
                      lambda: testdata.restore(register, dump, to="2112111118", restore_at=date.today())):
        operation()
        newer = drain(token)
        assert newer > token, "each operation's rows come after every token read before"
        token = newer
    assert seen == sorted(set(seen))


def test_restore_at_a_date_moves_every_date_by_the_difference(databases: Databases, imported: Any) -> None:
    register, _, testdata = imported
    document = decode(testdata.dump(register, "1512901234"), register)
    old = document.__class__(document.register, document.person, document.taken_at - timedelta(days=7),
                             document.revision, document.tables)
    restored = testdata.restore(register, encode(old), to="2112111118", restore_at=date.today())
    assert restored.shift_days == 7
    (row,) = [r for r in history(databases) if r["CPR"] == "2112111118"]
    assert str(row["ValidFrom"]).startswith("2026-11-27") and str(row["ValidTo"]).startswith("2999-12-31")
    with pytest.raises(UsageError, match="future"):
        testdata.restore(register, encode(old), restore_at=date.today() + timedelta(days=1))


def _renumbered(dump: Any, mapping: dict[str, str]) -> Any:
    frame = dump.tables["Autorisation2"].copy()
    frame["Autorisationsnummer"] = frame["Autorisationsnummer"].map(mapping)
    return dump.__class__(dump.register, dump.person, dump.taken_at, dump.revision, {"Autorisation2": frame})


def _packed(document: Any) -> str:
    return base64.b64encode(gzip.compress(json.dumps(document).encode())).decode()


def test_a_bad_dump_is_refused_naming_the_rule_and_changes_nothing(databases: Databases, imported: Any) -> None:
    register, _, testdata = imported
    good = json.loads(gzip.decompress(base64.b64decode(testdata.dump(register, "0101801234"))))
    before = history(databases), history(databases, "preflight")
    bad = {
        "dump-base64": "not base64 at all!",
        "dump-gzip": base64.b64encode(b"plain bytes").decode(),
        "dump-json": base64.b64encode(gzip.compress(b"{nope")).decode(),
        "dump-format": _packed({**good, "format": "something-else"}),
        "dump-format-version": _packed({**good, "formatVersion": 2}),
        "dump-register": _packed({**good, "register": "doseringsforslag"}),
        "dump-person": _packed({**good, "person": "12345"}),
        "dump-columns": _packed({**good, "tables": {"Autorisation2": {"columns": ["x"], "rows": []}}}),
        "dump-value": _packed({**good, "tables": {"Autorisation2": {
            "columns": good["tables"]["Autorisation2"]["columns"],
            "rows": [["0A1B2", "0101801234", None, "x", "7170", "2026-11-20T00:00:00", "2026-11-20T00:00:00",
                      "2026-11-20T00:00:00", "2999-12-31T00:00:00"]]}}}),
    }
    for rule, text in bad.items():
        with pytest.raises(DataError) as raised:
            testdata.restore(register, text)
        assert raised.value.rule == rule, (rule, str(raised.value))
    cut = testdata.dump(register, "0101801234")[:40]
    with pytest.raises(DataError):
        testdata.restore(register, cut)
    with pytest.raises(UsageError):
        testdata.restore(register, testdata.dump(register, "0101801234"), to="12345")
    with pytest.raises(UsageError):
        testdata.dump(register, "010180123")
    assert (history(databases), history(databases, "preflight")) == before


def test_a_whole_release_is_dumped_and_restored_as_the_current_content(databases: Databases, tmp_path: Path) -> None:
    register = discover()["doseringsforslag"]
    pipeline = Pipeline(databases.settings())
    try:
        pipeline.import_dataset(register, write_release(tmp_path / "r1", release_files(1)))
        dump = TestData(pipeline).dump(register, None)
        pipeline.import_dataset(register, write_release(tmp_path / "r2", release_files(2, "2026-02-16")))
        restored = TestData(pipeline).restore(register, dump)
        assert restored.rows > 0
        for spec in register.tables:
            rows = databases.rows("production", spec.name, order_by="1")
            current = [row for row in rows if str(row["ValidTo"]).startswith("2999")]
            assert {row["releaseNumber"] for row in current} == {1}, spec.name
            assert rows == databases.rows("preflight", spec.name, order_by="1")
    finally:
        pipeline.close()


PEOPLE = st.lists(st.sampled_from(["0101801234", "1512901234"]), min_size=1, max_size=3)


@settings(max_examples=6, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@given(order=PEOPLE, days=st.integers(min_value=0, max_value=30))
def test_dump_reset_restore_dump_gives_the_same_rows_shifted_by_the_days_asked(
    databases: Databases, tmp_path_factory: pytest.TempPathFactory, order: list[str], days: int
) -> None:
    tmp_path = tmp_path_factory.mktemp("property")
    register = discover()["autorisation"]
    pipeline = Pipeline(databases.settings())
    try:
        if not history(databases):
            pipeline.import_dataset(register, write_dump(tmp_path, "20261120AutDK.csv", DAY_ONE))
            pipeline.import_dataset(register, write_dump(tmp_path, "20261121AutDK.csv", DAY_TWO))
        testdata = TestData(pipeline)
        for cpr in order:
            document = decode(testdata.dump(register, cpr), register)
            taken = datetime.combine(date.today() - timedelta(days=days), datetime.min.time())
            dump = encode(document.__class__(document.register, cpr, taken, document.revision, document.tables))
            testdata.reset(register, cpr)
            restored = testdata.restore(register, dump, restore_at=date.today())
            again = decode(testdata.dump(register, cpr), register).tables["Autorisation2"]
            mine = again[again["Autorisationsnummer"].isin(set(restored.keys.values()))
                         & (again["ModifiedDate"] == again["ModifiedDate"].max())]
            expected = sorted(
                (restored.keys[row[0]], row[1], row[2], row[3], row[4], row[5] + timedelta(days=days),
                 row[6] if row[6] == OPEN_END else row[6] + timedelta(days=days))
                for row in document.tables["Autorisation2"][VALUES].itertuples(index=False))
            assert sorted(tuple(row) for row in mine[VALUES].itertuples(index=False)) == expected
        assert_history_rules(databases)
    finally:
        pipeline.close()


def test_only_registers_with_test_data_and_valid_people(imported: Any) -> None:
    register, _, testdata = imported
    with pytest.raises(UsageError):
        testdata.reset(discover()["doseringsforslag"], "0101801234")
    assert testdata.reset(register, "9999999999").closed == 0
