"""Reading and validating releases, without a database."""

import io
import json
import zipfile
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from importer.errors import DataError
from importer.load.plugin import ParsedDataset, PreviousImport, SequenceContext
from registers.doseringsforslag import REGISTER
from tests.registers.doseringsforslag.kit import release_files, write_release
from tests.registers.doseringsforslag.reference import DATA

SETTINGS = {"zip_max_mb": 512.0}
FILES = list(release_files(1))


def parse(path: Path, **settings: Any) -> ParsedDataset:
    return REGISTER.parse(path, {**SETTINGS, **settings})


def refusal(path: Path, **settings: Any) -> str:
    with pytest.raises(DataError) as refused:
        parse(path, **settings)
    return str(refused.value)


def zipped(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def release_bytes(number: int) -> dict[str, bytes]:
    return {name: json.dumps(doc).encode() for name, doc in release_files(number).items()}


def test_latin1_releases_are_detected_and_decoded() -> None:
    parsed = parse(DATA / "release-027-v1")
    assert parsed.details["encodings"]["Drugs.json"] == "iso-8859-1"
    assert parsed.details["encodings"]["DosageVersion.json"] == "ascii"
    names = parsed.frames["DosageUnit"]["textPlural"]
    assert names.str.contains("æ|ø|å").any() and not names.str.contains("Ã").any()
    assert parse(DATA / "release-014-v1").details["encodings"]["DosageStructures.json"] == "utf-8"


def test_utf8_with_a_bom_is_read_and_a_broken_one_refused(tmp_path: Path) -> None:
    documents: dict[str, Any] = release_files(1)
    units = documents.pop("DosageUnits.json")
    bom = b"\xef\xbb\xbf" + json.dumps(units, ensure_ascii=False).encode("utf-8")
    parsed = parse(write_release(tmp_path / "bom", documents, raw={"DosageUnits.json": bom}))
    assert "øjendråbe" in set(parsed.frames["DosageUnit"]["textSingular"])

    broken = bom.replace("øjendråbe".encode(), "øjendråbe".encode("iso-8859-1"))
    message = refusal(write_release(tmp_path / "broken", documents, raw={"DosageUnits.json": broken}))
    assert "DosageUnits.json:" in message and "encoding" in message


def test_the_release_is_the_version_files_number_and_date() -> None:
    parsed = parse(DATA / "release-029-v1")
    assert (parsed.version, parsed.valid_from) == ("29", datetime(2016, 7, 18))
    assert REGISTER.recognise(DATA / "release-029-v1") == "v1"
    assert REGISTER.recognise(DATA / "release-029-v2-input") == "v2"  # the delivery format v2 (issue 5)


def test_unknown_keys_are_ignored_and_optional_ones_may_be_absent(tmp_path: Path) -> None:
    documents: dict[str, Any] = release_files(1)
    documents["DosageStructures.json"]["dosageStructures"][0]["hashKey"] = "M+M+A+N/1/tablet/"
    parsed = parse(write_release(tmp_path / "r", documents))
    second = parsed.frames["DosageStructure"].iloc[1]
    assert second["simpleString"] is None and second["shortTranslation"] is None
    assert "hashKey" not in parsed.frames["DosageStructure"].columns


def test_every_problem_of_a_file_is_reported_with_record_index_and_key(tmp_path: Path) -> None:
    documents: dict[str, Any] = release_files(1)
    drugs = documents["Drugs.json"]["drugs"]
    drugs[0]["drugName"] = None
    drugs[1]["dosageUnitCode"] = 1.5
    drugs[1]["drugId"] = 123456789012
    del documents["DosageVersion.json"]["version"]["daDate"]
    documents["DosageUnits.json"]["dosageUnits"][0]["textPlural"] = "x" * 101
    documents["DosageStructures.json"]["dosageStructures"].append("not an object")
    message = refusal(write_release(tmp_path / "r", documents))
    for expected in (
        "DosageVersion.json: required-key: version.daDate",
        "DosageUnits.json: too-long: dosageUnits[0].textPlural has 101 characters, more than the column's 100",
        "Drugs.json: required-key: drugs[0].drugName",
        "Drugs.json: out-of-range: drugs[1].drugId",
        "Drugs.json: wrong-type: drugs[1].dosageUnitCode must be an integer, found number 1.5",
        "DosageStructures.json: wrong-type: dosageStructures[2] must be a JSON object",
    ):
        assert expected in message, message


def test_an_invalid_date_and_a_boolean_number_are_refused(tmp_path: Path) -> None:
    documents: dict[str, Any] = release_files(1)
    documents["DosageVersion.json"]["version"]["releaseDate"] = "2026-02-30"
    documents["DosageUnits.json"]["dosageUnits"][0]["code"] = True
    message = refusal(write_release(tmp_path / "r", documents))
    assert "invalid-date: version.releaseDate" in message
    assert "wrong-type: dosageUnits[0].code must be an integer, found boolean true" in message


def test_a_key_given_two_different_records_is_refused_an_identical_repeat_kept_once(tmp_path: Path) -> None:
    documents: dict[str, Any] = release_files(1)
    units = documents["DosageUnits.json"]["dosageUnits"]
    units.append(dict(units[0]))
    parsed = parse(write_release(tmp_path / "same", documents))
    assert len(parsed.frames["DosageUnit"]) == 2
    assert any("1 identical repeated record(s)" in warning for warning in parsed.warnings)

    units[-1]["textPlural"] = "tabletterne"
    message = refusal(write_release(tmp_path / "clash", documents))
    assert "DosageUnits.json: duplicate-key: dosageUnits[2].code 1 already appears in dosageUnits[0]" in message


def test_repeated_and_dangling_relations_are_kept_once_and_counted(tmp_path: Path) -> None:
    documents: dict[str, Any] = release_files(1)
    relations = documents["DrugsDosageStructures.json"]["drugsDosageStructures"]
    relations += [dict(relations[0]), dict(relations[0]),
                  {"releaseNumber": 1, "drugId": 28100009555, "dosageStructureCode": 77}]
    parsed = parse(write_release(tmp_path / "r", documents))
    frame = parsed.frames["DrugDosageStructureRelation"]
    assert sorted(frame["id"]) == ["28100009555-1", "28100009555-77", "28100010554-1", "28100010554-2"]
    assert "DrugsDosageStructures.json: 2 repeated drug/structure pair(s), each pair kept once" in parsed.warnings
    assert any("1 relation(s) to 1 structure code(s) missing" in warning for warning in parsed.warnings)


def test_a_zip_is_read_in_memory_and_must_hold_the_files_at_its_top_level(tmp_path: Path) -> None:
    good = zipped(tmp_path / "release-1.zip", {**release_bytes(1), "README.txt": b"extra files are ignored"})
    assert REGISTER.recognise(good) == "v1"
    assert parse(good).details["source"] == "zip"

    members = release_bytes(1)
    nested = zipped(tmp_path / "nested.zip", {f"release-1/{name}": data for name, data in members.items()})
    assert REGISTER.recognise(nested) is None
    assert "missing-file: the dataset has no Drugs.json at its top level (found release-1/Drugs.json" in refusal(
        nested)

    unsafe = zipped(tmp_path / "unsafe.zip", {**members, "../../etc/cron.d/x": b"*"})
    assert "unsafe.zip: zip-member-path: member '../../etc/cron.d/x'" in refusal(unsafe)


def test_a_zip_that_expands_beyond_the_cap_is_refused(tmp_path: Path) -> None:
    members = release_bytes(1)
    members["DosageStructures.json"] = json.dumps(
        {"dosageStructures": [{"releaseNumber": 1, "code": 1, "type": "PN", "xml": " " * 3_000_000}]}).encode()
    bomb = zipped(tmp_path / "bomb.zip", members)
    assert bomb.stat().st_size < 100_000
    assert "bomb.zip: zip-too-large" in refusal(bomb, zip_max_mb=2.0)


def test_a_file_that_is_not_a_release_is_refused(tmp_path: Path) -> None:
    other = tmp_path / "notes.txt"
    other.write_text("hello")
    assert REGISTER.recognise(other) is None
    assert "dataset-kind" in refusal(other)
    assert "zip-corrupt" in refusal(_corrupt_zip(tmp_path / "corrupt.zip"))


def _corrupt_zip(path: Path) -> Path:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in release_bytes(1).items():
            archive.writestr(name, data)
    damaged = bytearray(buffer.getvalue())
    damaged[40:60] = b"\0" * 20  # inside the first member's data: its CRC no longer matches
    path.write_bytes(bytes(damaged))
    return path


NOW = SequenceContext(now=datetime(2026, 11, 22, 12, 0, 0))


@pytest.mark.parametrize(
    ("previous", "number", "rule"),
    [(29, 29, "same-release"), (29, 14, "older-release")],
)
def test_a_release_not_newer_than_the_last_is_refused(previous: int, number: int, rule: str) -> None:
    last = PreviousImport(version=str(previous), valid_from=datetime(2017, 7, 13), dataset=f"release-{previous}")
    parsed = ParsedDataset(name=f"release-{number}", version=str(number), valid_from=datetime(2016, 1, 1),
                           frames={}, files={})
    with pytest.raises(DataError, match=rule):
        REGISTER.check_sequence(last, parsed, NOW)


def test_release_numbers_compare_as_numbers_not_text() -> None:
    last = PreviousImport(version="9", valid_from=datetime(2016, 1, 1), dataset="release-9")
    parsed = ParsedDataset(name="release-10", version="10", valid_from=datetime(2016, 2, 1), frames={}, files={})
    sequenced = REGISTER.check_sequence(last, parsed, NOW)
    assert sequenced.valid_from == datetime(2016, 2, 1) and sequenced.warnings == []


def test_windows_1252_bytes_in_a_latin1_file_are_imported_and_reported(tmp_path: Path) -> None:
    documents: dict[str, Any] = release_files(1)
    drugs = documents.pop("Drugs.json")
    drugs["drugs"][0]["drugName"] = "Kemadrin – 5 mg"  # an en dash: byte 0x96 in Windows-1252
    data = json.dumps(drugs, ensure_ascii=False).encode("cp1252")
    parsed = parse(write_release(tmp_path / "r", documents, raw={"Drugs.json": data}))
    assert parsed.details["encodings"]["Drugs.json"] == "iso-8859-1"
    assert parsed.frames["DosageDrug"]["drugName"][0] == "Kemadrin \x96 5 mg"
    assert any(warning.startswith("Drugs.json: 1 C1 control character(s)") for warning in parsed.warnings)
