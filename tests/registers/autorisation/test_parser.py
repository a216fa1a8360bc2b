"""The autorisation parser on the format's corner cases: encodings, line ends, special numbers, codes."""

from pathlib import Path

import pytest

from importer.errors import DataError
from registers.autorisation import REGISTER
from registers.autorisation.parser import parse_file
from tests.registers.autorisation.kit import FIRST, write_dump

SPECIALS = [
    "09YM8;0101010001;;Indberettet af apotek, ej autorisationsnummer;0000",
    "09YM9;0101010001;;Indberettet af farmaceut/farmakonom, ej autorisationsnummer;0000",
    "09YMB;0101010001;;Medicin købt i andre EU/EØS-lande, registreret af Lægemiddelstyrelsen;0000",
]


def records(path: Path) -> list[tuple[str, ...]]:
    frame = parse_file(path).frames["Autorisation2"]
    return [tuple(row) for row in frame.itertuples(index=False)]


@pytest.mark.parametrize("encoding", ["iso-8859-15", "utf-8", "utf-8-sig"])
def test_encodings_give_the_same_rows(tmp_path: Path, encoding: str) -> None:
    path = write_dump(tmp_path, "20261120AutDK.csv", FIRST, encoding=encoding)
    parsed = parse_file(path)
    assert parsed.details["encoding"] == ("utf-8" if encoding.startswith("utf-8") else "iso-8859-15")
    assert ("0C3D4", "0202851234", "Øjvind", "Ærø-Sørensen", "5166") in records(path)


def test_euro_sign_is_iso_8859_15_not_latin_1(tmp_path: Path) -> None:
    path = write_dump(tmp_path, "20261120AutDK.csv", ["0A1B2;0101801234;Jensen €;Anne;7170"], encoding="iso-8859-15")
    assert records(path)[0][3] == "Jensen €"


def test_crlf_line_ends_and_a_missing_final_newline(tmp_path: Path) -> None:
    path = tmp_path / "20261120AutDK.csv"
    path.write_bytes("\r\n".join(FIRST).encode("iso-8859-15"))
    assert len(records(path)) == 3
    assert all(not field.endswith("\r") for row in records(path) for field in row)


def test_columns_are_surname_before_given_names_and_codes_stay_text(tmp_path: Path) -> None:
    rows = records(write_dump(tmp_path, "20261120AutDK.csv", [*SPECIALS, "A0001;0101801234;Hansen;Mette;A511"]))
    # Stored column order: Autorisationsnummer, CPR, Fornavn, Efternavn, UddannelsesKode.
    assert rows[3] == ("A0001", "0101801234", "Mette", "Hansen", "A511")
    assert [row[4] for row in rows[:3]] == ["0000", "0000", "0000"]
    assert all(row[3] == "" for row in rows[:3])  # replacement numbers have no surname


def test_empty_given_names_are_kept_not_collapsed(tmp_path: Path) -> None:
    assert records(write_dump(tmp_path, "20261120AutDK.csv", ["0A1B2;0101801234;Jensen;;7170"]))[0][2] == ""


def test_unknown_education_code_is_imported_with_a_warning(tmp_path: Path) -> None:
    parsed = parse_file(write_dump(tmp_path, "20261120AutDK.csv", [*FIRST, "0Z9Z9;0101801234;Hansen;Mette;9999"]))
    assert len(parsed.frames["Autorisation2"]) == 4
    assert parsed.warnings == ["1 row(s) with unknown education code(s): 9999"]


def test_every_problem_is_reported_with_its_line(tmp_path: Path) -> None:
    path = write_dump(
        tmp_path, "20261120AutDK.csv", [FIRST[0], "0C3D4;12;X;Y;5166", "bad", "0A1B2;0101801234;J;A;7170"]
    )
    with pytest.raises(DataError) as refused:
        parse_file(path)
    assert (
        str(refused.value).splitlines()[0]
        == "20261120AutDK.csv:3: column-count: expected 5 ';'-separated fields, found 1"
    )
    with pytest.raises(DataError) as refused:
        parse_file(write_dump(tmp_path, "20261121AutDK.csv", [FIRST[0], "0C3D4;12;X;Y;5166", FIRST[0]]))
    assert [(p.rule, p.line) for p in refused.value.problems] == [("cpr", 2), ("duplicate-key", 3)]


def test_a_directory_with_one_file_is_a_dataset(tmp_path: Path) -> None:
    write_dump(tmp_path / "delivery", "20261120AutDK.csv", FIRST)
    (tmp_path / "delivery" / "READY").touch()
    assert REGISTER.recognise(tmp_path / "delivery") == "csv"
    assert REGISTER.recognise(tmp_path / "nothing-here") is None
    assert REGISTER.parse(tmp_path / "delivery", {}).version == "20261120"
