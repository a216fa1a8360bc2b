"""Implausible dump dates, mass changes and mixed encodings: refused with their rule, overridable where that makes
sense (--force, audited like the reduction guard), with "now" taken from the pipeline's injected clock."""

from datetime import datetime
from pathlib import Path

import pytest

from importer.errors import DataError
from importer.load.pipeline import Pipeline
from registers.autorisation import REGISTER, parser
from tests.conftest import Databases
from tests.daemon.clock import ManualClock
from tests.registers.autorisation.kit import FIRST, write_dump

NOW = datetime(2026, 11, 22, 12, 0, 0)


def person(index: int) -> str:
    return f"{index:05d};{1000000000 + index:010d};Efternavn{index};Fornavn {index};7170"


BASELINE = [person(i) for i in range(300)]  # well above change_guard_min_rows (50)


def pipeline_at(databases: Databases, moment: datetime, **env: str) -> Pipeline:
    return Pipeline(databases.settings(**env), ManualClock(moment))


def last_status(databases: Databases) -> dict[str, object]:
    return databases.rows("production", "autorisationimporterImportStatus", order_by="Id")[-1]


@pytest.mark.parametrize("databases", ["sqlite"], indirect=True)
def test_a_dump_more_than_max_future_days_ahead_of_the_clock_is_refused_unless_forced(
    databases: Databases, tmp_path: Path
) -> None:
    pipeline = pipeline_at(databases, NOW)
    try:
        pipeline.import_dataset(REGISTER, write_dump(tmp_path, "20261120AutDK.csv", FIRST))
        ahead = write_dump(tmp_path, "20261130AutDK.csv", FIRST)  # 7.5 days after the clock
        with pytest.raises(DataError) as refused:
            pipeline.import_dataset(REGISTER, ahead)
        assert refused.value.rule == "future-date" and "20261130AutDK.csv: future-date:" in str(refused.value)

        summary = pipeline.import_dataset(REGISTER, ahead, force=True)
        assert any(note.startswith("future-date guard overridden by --force") for note in summary.notes)
        status = last_status(databases)
        assert status["Forced"] in (True, 1) and "future-date guard overridden" in str(status["Message"])
    finally:
        pipeline.close()


@pytest.mark.parametrize("databases", ["sqlite"], indirect=True)
def test_within_max_future_days_a_dump_is_imported_and_the_limit_is_a_setting(
    databases: Databases, tmp_path: Path
) -> None:
    pipeline = pipeline_at(databases, NOW)
    try:
        assert pipeline.import_dataset(REGISTER, write_dump(tmp_path, "20261129AutDK.csv", FIRST)).committed
    finally:
        pipeline.close()
    later = pipeline_at(databases, NOW, STAMDATA_AUTORISATION_MAX_FUTURE_DAYS="30")
    try:
        assert later.import_dataset(REGISTER, write_dump(tmp_path, "20261220AutDK.csv", FIRST)).committed
    finally:
        later.close()


@pytest.mark.parametrize("name", ["29991231AutDK.csv", "99991231AutDK.csv"])
def test_a_dump_at_or_after_the_open_end_is_refused_even_when_forced(
    sqlite_databases: Databases, tmp_path: Path, name: str
) -> None:
    pipeline = pipeline_at(sqlite_databases, NOW)
    try:
        with pytest.raises(DataError) as refused:
            pipeline.import_dataset(REGISTER, write_dump(tmp_path, name, FIRST), force=True)
        assert refused.value.rule == "open-end-date"
        assert sqlite_databases.rows("production", "Autorisation2") == []
    finally:
        pipeline.close()


def test_a_dump_that_changes_most_authorisations_is_refused_unless_forced(
    databases: Databases, tmp_path: Path
) -> None:
    swapped = [";".join((n, cpr, given, surname, code)) for n, cpr, surname, given, code
               in (line.split(";") for line in BASELINE)]
    pipeline = pipeline_at(databases, NOW)
    try:
        pipeline.import_dataset(REGISTER, write_dump(tmp_path, "20261120AutDK.csv", BASELINE))
        dump = write_dump(tmp_path, "20261121AutDK.csv", swapped)
        with pytest.raises(DataError) as refused:
            pipeline.import_dataset(REGISTER, dump)
        assert refused.value.rule == "change-guard" and "change 300 of 300" in str(refused.value)
        summary = pipeline.import_dataset(REGISTER, dump, force=True)
        assert summary.counts.updated == 300
        status = last_status(databases)
        assert status["Forced"] in (True, 1)
        assert "change guard overridden by --force: 300 of 300" in str(status["Message"])
    finally:
        pipeline.close()


def test_a_share_of_changes_within_the_guard_passes_and_share_and_floor_are_settings(
    sqlite_databases: Databases, tmp_path: Path
) -> None:
    changed = [line.replace("Efternavn", "Nyt") if i < 60 else line for i, line in enumerate(BASELINE)]  # 20 %
    pipeline = pipeline_at(sqlite_databases, NOW)
    try:
        pipeline.import_dataset(REGISTER, write_dump(tmp_path, "20261120AutDK.csv", BASELINE))
        summary = pipeline.import_dataset(REGISTER, write_dump(tmp_path, "20261121AutDK.csv", changed))
        assert summary.counts.updated == 60
    finally:
        pipeline.close()
    strict = pipeline_at(sqlite_databases, NOW, STAMDATA_AUTORISATION_CHANGE_GUARD="0.1",
                         STAMDATA_AUTORISATION_CHANGE_GUARD_MIN_ROWS="10")
    try:
        with pytest.raises(DataError, match="change-guard"):
            strict.import_dataset(REGISTER, write_dump(tmp_path, "20261122AutDK.csv", BASELINE))
    finally:
        strict.close()


@pytest.mark.parametrize(
    ("data", "encoding"),
    [
        ("Sørensen;Ærø\n".encode(), "utf-8"),
        (b"\xef\xbb\xbf" + "Sørensen\n".encode(), "utf-8"),
        ("Sørensen;Ærø\n".encode("iso-8859-15"), "iso-8859-15"),
        (b"Jensen\n", "ascii"),
    ],
)
def test_the_encoding_is_decided_for_the_whole_file(data: bytes, encoding: str) -> None:
    assert parser.decode(data, "20261120AutDK.csv")[1] == encoding


def test_utf8_mixed_with_latin1_is_refused_at_the_first_byte_that_is_not_utf8() -> None:
    data = "Ærø;1\nJensen;2\n".encode() + "Søndergaard;3\n".encode("latin-1")
    with pytest.raises(DataError) as refused:
        parser.decode(data, "20261120AutDK.csv")
    assert str(refused.value).startswith("20261120AutDK.csv:3: mixed-encoding: byte 0xf8 is not UTF-8")


@pytest.mark.parametrize("name", ["202611 2AutDK.csv", "2026112 AutDK.csv", "+2026112AutDK.csv", "2026-1-2AutDK.csv"])
def test_the_date_in_a_file_name_is_eight_digits(name: str) -> None:
    with pytest.raises(DataError, match="file-name-date"):
        parser.file_date(Path(name))
