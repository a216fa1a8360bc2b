"""Format v2 end to end: the real upstream inputs of releases 27 and 29 give the published tables; bad
deliveries are refused with production unchanged (SQLite and MariaDB, through the real CLI)."""

import re
import shutil
import xml.etree.ElementTree as ET
import zipfile
from pathlib import Path

import pytest

from importer.errors import DataError
from importer.load.pipeline import Pipeline
from registers.doseringsforslag import REGISTER
from tests.conftest import Databases, run_cli
from tests.kit import normalise
from tests.registers.doseringsforslag.reference import COLUMNS, DATA, expected_rows

TABLES = [spec.name for spec in REGISTER.tables]
INPUT = "input_merged_added.txt"
# How releases 27 and 29 were generated: the FMK versions of 2016 and the double-encoded wording of that generator.
OLD_VERSIONS = {"STAMDATA_DOSERINGSFORSLAG_FMK_VERSIONS": "1.2.6,1.4.0,1.4.2,1.4.4",
                "STAMDATA_DOSERINGSFORSLAG_DOUBLE_ENCODED_WORDING": "true"}
HEADER = "drugid|name|enhed_e|enhed_f|kode|iteration|type|mapning|tekst|version|maalgruppe"
GOOD_ROWS = [
    "28100010554|Marzine|tablet|tabletter||.| | | |{v}|voksne",
    "28100010554|Marzine|tablet|tabletter||1|N daglig|1;1;1| |{v}|voksne",
    "28100010554|Marzine|tablet|tabletter||0|PN|0.5|, 1 time før virkning ønskes|{v}|voksne",
    "28100049555|Heparin \"Leo\"|ml|ml||1|M+M+A+N|2+0+2+0| |{v}|",
    "28100049555|Heparin \"Leo\"|ml|ml||7|N daglig|dag 1: 2 dag 4: 2| |{v}|",
]


def v2_dataset(directory: Path, number: int, published: str) -> Path:
    """The real upstream input beside the published release's DosageVersion.json, as a drop would hold them."""
    directory.mkdir(parents=True)
    shutil.copyfile(DATA / f"release-{number:03d}-v2-input" / INPUT, directory / INPUT)
    shutil.copyfile(DATA / published / "DosageVersion.json", directory / "DosageVersion.json")
    return directory


def csv_bytes(rows: list[str], header: str = HEADER) -> bytes:
    return "\r\n".join([header, *rows, ""]).encode("iso-8859-1")


def small(directory: Path, version: int, rows: list[str] | None = None, header: str = HEADER) -> Path:
    directory.mkdir(parents=True)
    lines = rows if rows is not None else [row.format(v=version) for row in GOOD_ROWS]
    (directory / "doseringsforslag.csv").write_bytes(csv_bytes(lines, header))
    return directory


def canonical(xml: str) -> list[str]:
    return [ET.canonicalize(dosage) for dosage in re.findall(r"<Dosage>.*?</Dosage>", xml)]


def match_rates(databases: Databases, number: int, published: Path) -> dict[str, float]:
    """Per table and per structure field: the share of published rows the database holds identically."""
    expected = expected_rows(published)
    rates: dict[str, float] = {}
    for table in TABLES:
        rows = [r for r in databases.rows("production", table) if normalise(r["releaseNumber"]) == number]
        got = {tuple(normalise(r[c]) for c in COLUMNS[table]) for r in rows}
        if table != "DosageStructure":
            rates[table] = len(got & expected[table]) / len(expected[table])
            assert len(got) == len(expected[table]), table
            continue
        columns = COLUMNS[table]
        ours = {row[1]: row for row in got}
        for i, column in enumerate(columns[2:], start=2):
            same = 0
            for row in expected[table]:
                mine = ours.get(row[1])
                if mine is not None:
                    same += canonical(mine[i]) == canonical(row[i]) if column == "xml" else mine[i] == row[i]
            rates[f"DosageStructure.{column}"] = same / len(expected[table])
        rates["DosageStructure.code"] = len(set(ours) & {row[1] for row in expected[table]}) / len(expected[table])
    return rates


def test_the_real_inputs_of_releases_27_and_29_give_the_published_releases(
    databases: Databases, tmp_path: Path
) -> None:
    drops = tmp_path / "drops"
    v2_dataset(drops / "release-027", 27, "release-027-v1")
    v2_dataset(drops / "release-029", 29, "release-029-v1")

    replayed = run_cli("replay", "doseringsforslag", str(drops), env=databases.environ(**OLD_VERSIONS), timeout=300)
    assert replayed.exit_code == 0, replayed.stderr

    for number in (27, 29):
        rates = match_rates(databases, number, DATA / f"release-{number:03d}-v1")
        print(f"release {number} match rates: " + ", ".join(f"{k} {v:.1%}" for k, v in rates.items()))
        assert rates == dict.fromkeys(rates, 1.0), rates
    status = databases.rows("production", REGISTER.status_table_name, order_by="Id")
    assert [(row["DatasetVersion"], row["Outcome"]) for row in status] == [("27", "SUCCESS"), ("29", "SUCCESS")]
    assert "72 proposal(s) without a short translation" in status[0]["Message"]


def test_a_small_delivery_with_default_versions_then_bad_deliveries_refused(
    databases: Databases, tmp_path: Path
) -> None:
    imported = run_cli("import", "doseringsforslag", str(small(tmp_path / "drop-2026-01-05", 1)),
                       env=databases.environ())
    assert imported.exit_code == 0, imported.stderr
    (version,) = databases.rows("production", "DosageVersion")
    assert (normalise(version["releaseNumber"]), normalise(version["releaseDate"])) == (1, "2026-01-05")
    structures = {row["code"]: row for row in databases.rows("production", "DosageStructure")}
    assert sorted(structures) == ["1", "2", "3", "4"]
    assert [re.findall(r"<Version>(.*?)</Version>", row["xml"]) for row in structures.values()] == [
        ["1.4.0", "1.4.2", "1.4.4", "1.4.6"]] * 4
    assert "<m16:StructuresFixed>" in structures["3"]["xml"]
    assert structures["2"]["shortTranslation"] == "1/2 tablet efter behov, 1 time før virkning ønskes"
    assert structures["4"]["shortTranslation"] == "2 ml mandag og torsdag hver uge"
    units = databases.rows("production", "DosageUnit", order_by="code")
    assert [(normalise(u["code"]), u["textSingular"]) for u in units] == [(1, "ml"), (2, "tablet")]

    before = databases.production_rows(REGISTER)
    bad = tmp_path / "bad"
    good = [row.format(v=2) for row in GOOD_ROWS]
    two_files = bad / "two-files.zip"
    bad.mkdir()
    with zipfile.ZipFile(two_files, "w") as archive:
        archive.writestr("doseringsforslag.csv", csv_bytes(good))
        archive.writestr("extra.txt", csv_bytes(good))
    with_path = bad / "with-path.zip"
    with zipfile.ZipFile(with_path, "w") as archive:
        archive.writestr("export/doseringsforslag.csv", csv_bytes(good))
    cases = [
        (small(bad / "unknown-header", 2, good, HEADER.replace("mapning", "dosis")), "unknown-header",
         "doseringsforslag.csv:1:"),
        (small(bad / "mixed-versions", 2, [*good[:3], *[r.format(v=3) for r in GOOD_ROWS[3:]]]), "mixed-versions",
         "doseringsforslag.csv:5:"),
        (small(bad / "bad-dose", 2, [*good, "28100049555|Heparin|ml|ml||1|N daglig|1;en| |2|"]), "dose-expression",
         "doseringsforslag.csv:7: dose-expression: 'en' is not a quantity"),
        (two_files, "data-file-count", "doseringsforslag.csv, extra.txt"),
        (with_path, "zip-member-path", "export/doseringsforslag.csv"),
    ]
    refused = run_cli("import", "doseringsforslag", str(cases[2][0]), env=databases.environ())  # as an operator
    assert refused.exit_code == 1 and cases[2][2] in refused.stderr, refused.stderr
    pipeline = Pipeline(databases.settings())  # the same pipeline in-process: no interpreter start per case
    try:
        for path, rule, where in cases:
            with pytest.raises(DataError) as error:
                pipeline.import_dataset(REGISTER, path)
            assert rule in str(error.value) and where in str(error.value), (path.name, str(error.value))
            assert databases.production_rows(REGISTER) == before, path.name
    finally:
        pipeline.close()


@pytest.mark.parametrize("versions", ["1.4.6,1.2.6", "1.4.6"])
def test_the_version_list_is_configuration(versions: str, tmp_path: Path) -> None:
    settings = {"zip_max_mb": 1.0, "fmk_versions": versions.split(",")}
    parsed = REGISTER.parse(small(tmp_path / "drop-2026-01-05", 1), settings)
    xml = parsed.frames["DosageStructure"]["xml"].iloc[0]
    assert re.findall(r"<Version>(.*?)</Version>", xml) == versions.split(",")


def test_without_version_file_or_column_the_name_gives_release_and_date(tmp_path: Path) -> None:
    header = HEADER.rsplit("|", 2)[0]
    rows = [row.format(v="").rsplit("|", 2)[0] for row in GOOD_ROWS]
    parsed = REGISTER.parse(small(tmp_path / "release-031-20260201", 0, rows, header),
                            {"zip_max_mb": 1.0, "fmk_versions": ["1.4.6"]})
    assert (parsed.version, parsed.valid_from.date().isoformat()) == ("31", "2026-02-01")
    assert "from the date in the dataset's name, the release number from the dataset's name" in parsed.warnings[0]
    with pytest.raises(DataError, match="release-number"):
        REGISTER.parse(small(tmp_path / "drop-2026-01-05", 0, rows, header),
                       {"zip_max_mb": 1.0, "fmk_versions": ["1.4.6"]})


def test_delimiter_encoding_zip_and_old_header_are_detected(tmp_path: Path) -> None:
    """Tab and UTF-8 with a BOM, `pname`, inside a ZIP beside DosageVersion.json: the same tables as `|`/Latin-1."""
    settings = {"zip_max_mb": 1.0, "fmk_versions": ["1.4.0"]}
    reference = REGISTER.parse(small(tmp_path / "ref-2026-01-05", 4), settings)
    lines = [HEADER.replace("|name|", "|pname|"), *(row.format(v=4) for row in GOOD_ROWS)]
    text = "\n".join(line.replace("|", "\t") for line in lines)
    archive = tmp_path / "drop.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("Doseringsforslag_2026.TXT", b"\xef\xbb\xbf" + text.encode("utf-8"))
        zipped.writestr("DosageVersion.json", '{"version": {"releaseNumber": 4, "releaseDate": "2026-03-01", '
                        '"lmsDate": "2000-01-01", "daDate": "2000-01-01"}}')
        zipped.writestr("README.md", "not data")
    assert REGISTER.recognise(archive) == "v2"
    parsed = REGISTER.parse(archive, settings)
    assert (parsed.details["delimiter"], parsed.details["encoding"]) == ("\t", "utf-8")
    for table in TABLES:
        if table != "DosageVersion":
            assert parsed.frames[table].equals(reference.frames[table]), table


def test_a_row_with_the_wrong_number_of_fields_is_refused_with_its_line(tmp_path: Path) -> None:
    rows = [row.format(v=1) for row in GOOD_ROWS]
    rows[1] += "|extra"
    with pytest.raises(DataError, match=r"doseringsforslag.csv:3: field-count: 12 fields, the header has 11"):
        REGISTER.parse(small(tmp_path / "drop-2026-01-05", 1, rows), {"zip_max_mb": 1.0, "fmk_versions": ["1.4.0"]})


def test_correct_danish_letters_by_default_and_the_old_wording_on_request(tmp_path: Path) -> None:
    dataset = small(tmp_path / "drop-2026-01-05", 1)
    published = REGISTER.parse(dataset, {"zip_max_mb": 1.0, "fmk_versions": ["1.4.6"], "double_encoded_wording": True})
    correct = REGISTER.parse(dataset, {"zip_max_mb": 1.0, "fmk_versions": ["1.4.6"]})
    before, after = (p.frames["DosageStructure"]["longTranslation"].iloc[0] for p in (published, correct))
    assert before.startswith("DoseringsforlÃ¸bet starter") and after.startswith("Doseringsforløbet starter")
    assert list(correct.frames["DosageStructure"]["code"]) == list(published.frames["DosageStructure"]["code"])


def test_a_release_date_comes_from_the_version_file_or_the_name_never_from_a_file_time(tmp_path: Path) -> None:
    settings = {"zip_max_mb": 1.0, "fmk_versions": ["1.4.6"]}
    undated = small(tmp_path / "drop", 1)
    with pytest.raises(DataError, match=r"doseringsforslag.csv: release-date: no DosageVersion.json and no date"):
        REGISTER.parse(undated, settings)
    with pytest.raises(DataError, match=r"release-date: '20261341' in the dataset's name is not a date"):
        REGISTER.parse(small(tmp_path / "drop-20261341", 1), settings)
    dated = REGISTER.parse(small(tmp_path / "release-031-20260201", 31), settings)
    (version,) = dated.frames["DosageVersion"].to_dict("records")
    assert str(version["releaseDate"]) == "2026-02-01" and int(version["releaseNumber"]) == 31
