"""The corpus of malformed datasets: each one written by code, with the rule it must be refused by and where.

Every case is a dataset an operator of a national register would never want imported. `where` is what the
refusal must name to locate the problem: `file:line` where the format has lines, else the file (or the JSON
path of the record). Dates that depend on "now" (future dates) are computed from today's date, because the
corpus runs through the real command line and its real clock; everything else is fixed.

The CPR numbers are made up (`1000000000` + index, as the other kits do); none may appear unmasked in any output.
"""

import io
import json
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from tests.registers.doseringsforslag.kit import release_files

Maker = Callable[[Path], Path]

TODAY = datetime.now(UTC).date()
CPR_PREFIX = "1000000"  # every made-up CPR starts so; masked, it shows as "100000-****"


@dataclass(frozen=True)
class Case:
    name: str
    make: Maker  # writes the dataset below the given directory and returns its path
    rule: str
    where: str  # the location the message must hold, e.g. "20261122AutDK.csv:3" or "Drugs.json"
    also: tuple[str, ...] = ()  # further text the message must hold
    env: dict[str, str] = field(default_factory=dict)
    form: str = ""  # autorisation: "csv"; doseringsforslag: "v1", "v1-zip", "v2", "v2-zip", "other"


# --- autorisation ------------------------------------------------------------------------------------------

def person(index: int) -> str:
    return f"{index:05d};{1000000000 + index:010d};Efternavn{index};Fornavn {index};7170"


AUT_BASELINE = [person(i) for i in range(300)]  # well above change_guard_min_rows (50)
AFTER_LAST = len(AUT_BASELINE) + 1
AUT_BASE_DAY = TODAY - timedelta(days=10)
AUT_BASE = f"{AUT_BASE_DAY:%Y%m%d}AutDK.csv"
NEXT = f"{AUT_BASE_DAY + timedelta(days=1):%Y%m%d}AutDK.csv"


def aut_bytes(lines: list[str], encoding: str = "iso-8859-15") -> bytes:
    return "".join(line + "\n" for line in lines).encode(encoding)


def write(relative: str, data: bytes) -> Maker:
    def make(directory: Path) -> Path:
        path = directory / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return directory / relative.split("/")[0]

    return make


def with_line(number: int, line: str, lines: list[str] | None = None) -> list[str]:
    """The baseline with line `number` (from 1) replaced."""
    result = list(AUT_BASELINE if lines is None else lines)
    result[number - 1] = line
    return result


def aut(name: str, lines: list[str], rule: str, line: int | None, title: str, encoding: str = "iso-8859-15",
        file: str = NEXT, **extra: Any) -> Case:
    where = f"{file}:{line}" if line is not None else file
    return Case(title, write(file, aut_bytes(lines, encoding)), rule, where, form="csv", **extra)


def aut_raw(data: bytes, rule: str, line: int | None, title: str, file: str = NEXT) -> Case:
    return Case(title, write(file, data), rule, f"{file}:{line}" if line is not None else file, form="csv")


def _utf8_with_stray_latin1() -> bytes:
    """A UTF-8 dump without BOM (Danish letters as UTF-8 on line 3), and one name on line 77 in Latin-1."""
    lines = with_line(3, "00002;1000000002;Ærø-Sørensen;Øjvind;7170")
    stray = "00076;1000000076;Søndergaard;Fornavn 76;7170\n".encode("latin-1")
    return aut_bytes(lines, "utf-8").replace(aut_bytes([AUT_BASELINE[76]], "utf-8"), stray)


def _latin1_with_pasted_utf8() -> bytes:
    lines = with_line(2, "00001;1000000001;Sørensen;Anne;7170")
    data = aut_bytes(lines, "latin-1")
    pasted = "00089;1000000089;Hélène;Fornavn 89;7170\n".encode()
    return data.replace(aut_bytes([AUT_BASELINE[89]], "latin-1"), pasted)


def _two_files(directory: Path) -> Path:
    dataset = directory / "delivery-two"
    dataset.mkdir(parents=True)
    (dataset / NEXT).write_bytes(aut_bytes(AUT_BASELINE))
    (dataset / ("copy-" + NEXT)).write_bytes(aut_bytes(AUT_BASELINE))
    return dataset


def _empty_directory(directory: Path) -> Path:
    dataset = directory / "delivery-empty"
    dataset.mkdir(parents=True)
    return dataset


def _zip_dump(directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / NEXT.replace(".csv", ".zip")
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(NEXT, aut_bytes(AUT_BASELINE))
    return path


def _swapped_names() -> list[str]:
    swapped = []
    for line in AUT_BASELINE:
        number, cpr, surname, given, code = line.split(";")
        swapped.append(";".join((number, cpr, given, surname, code)))
    return swapped


FAR_FUTURE = TODAY + timedelta(days=400)  # a year typo
JUST_TOO_FAR = TODAY + timedelta(days=8)  # midnight eight days on: more than seven days after any time today

AUTORISATION_CASES: list[Case] = [
    aut("c", with_line(3, "00002;1000000002;A;B;7170;extra"), "column-count", 3, "a sixth field"),
    aut("c", with_line(4, "00003;1000000003;A;7170"), "column-count", 4, "a missing field"),
    aut("c", with_line(5, ";".join(["x"] * 1000)), "column-count", 5, "a thousand fields"),
    aut("c", with_line(6, " "), "column-count", 6, "a line holding a space"),
    aut("c", with_line(5, "00004;10000000X4;A;B;7170"), "cpr", 5, "a letter in the CPR"),
    aut("c", with_line(7, "00006;100000006;A;B;7170"), "cpr", 7, "a CPR of nine digits"),
    aut("c", with_line(8, "00007;10000000071;A;B;7170"), "cpr", 8, "a CPR of eleven digits"),
    aut("c", with_line(2, "0a001;1000000001;A;B;7170"), "autorisationsnummer", 2, "a lower-case number"),
    aut("c", with_line(9, "000008;1000000008;A;B;7170"), "autorisationsnummer", 9, "a number of six characters"),
    aut("c", with_line(8, "00007;1000000007;A;B;71 0"), "uddannelseskode", 8, "a space in the education code"),
    aut("c", with_line(10, "00009;1000000009;A;B;a511"), "uddannelseskode", 10, "a lower-case education code"),
    aut("c", with_line(4, f"00003;1000000003;{'x' * 101};B;7170"), "name-length", 4, "a surname of 101 characters"),
    aut("c", with_line(11, f"00010;1000000010;A;{'y' * 101};7170"), "name-length", 11,
        "given names of 101 characters"),
    aut("c", [*AUT_BASELINE, AUT_BASELINE[10]], "duplicate-key", AFTER_LAST, "an authorisation twice"),
    aut("c", with_line(10, "00009;1000000009;;B;7170"), "surname-required", 10, "a person without a surname"),
    aut_raw(b"", "empty-file", None, "an empty file"),
    aut_raw(b"\n\r\n\n", "empty-file", None, "a file of line ends"),
    aut("c", [*AUT_BASELINE[:20], "", *AUT_BASELINE[20:]], "blank-line", 21, "a blank line"),
    aut("c", [*AUT_BASELINE, ""], "blank-line", AFTER_LAST, "a blank line at the end"),
    aut_raw(aut_bytes(with_line(6, "00005;1000000005;A\x81;B;7170"), "latin-1"), "encoding", 6,
            "a C1 control byte in ISO-8859-15"),
    aut_raw(aut_bytes(with_line(12, "00011;1000000011;A\x00;B;7170"), "latin-1"), "encoding", 12, "a NUL byte"),
    aut_raw(aut_bytes(with_line(13, "00012;1000000012;A\rB;C;7170"), "latin-1"), "encoding", 13,
            "a carriage return inside a field"),
    aut_raw(aut_bytes(with_line(14, "00013;1000000013;A\x85;B;7170"), "utf-8"), "encoding", 14,
            "a C1 control character in UTF-8"),
    aut_raw(b"\xef\xbb\xbf" + aut_bytes(AUT_BASELINE, "utf-8") + b"\xff;", "encoding", AFTER_LAST,
            "invalid UTF-8 after a BOM"),
    aut_raw(_utf8_with_stray_latin1(), "mixed-encoding", 77, "UTF-8 without BOM and one stray Latin-1 byte"),
    aut_raw(_latin1_with_pasted_utf8(), "mixed-encoding", 2, "Latin-1 with a pasted UTF-8 name"),
    aut("c", AUT_BASELINE, "file-name-date", None, "a month 13", file=f"{TODAY.year}1341AutDK.csv"),
    aut("c", AUT_BASELINE, "file-name-date", None, "a space in the date (strptime would read 2026-11-02)",
        file="202611 2AutDK.csv"),
    aut("c", AUT_BASELINE, "file-name-date", None, "a dashed date", file="2026-11-AutDK.csv"),
    aut("c", AUT_BASELINE, "file-name-date", None, "full-width digits",
        file="\uff12\uff10\uff12\uff16\uff11\uff11\uff12\uff12AutDK.csv"),
    aut("c", AUT_BASELINE, "file-name", None, "no date in the name", file="AutDK.csv"),
    aut("c", AUT_BASELINE, "file-name", None, "not a .csv", file=NEXT.replace(".csv", ".txt")),
    Case("a ZIP, which autorisation does not take", _zip_dump, "file-name", NEXT.replace(".csv", ".zip"),
         form="csv"),
    aut("c", AUT_BASELINE, "same-date", None, "the same date again", file=AUT_BASE.replace(".csv", "-again.csv")),
    aut("c", AUT_BASELINE, "older-date", None, "an older date",
        file=f"{AUT_BASE_DAY - timedelta(days=1):%Y%m%d}AutDK.csv"),
    aut("c", AUT_BASELINE, "future-date", None, "a year typo", file=f"{FAR_FUTURE:%Y%m%d}AutDK.csv"),
    aut("c", AUT_BASELINE, "future-date", None, "more than seven days ahead", file=f"{JUST_TOO_FAR:%Y%m%d}AutDK.csv"),
    aut("c", AUT_BASELINE, "open-end-date", None, "dated at the open end", file="29991231AutDK.csv"),
    aut("c", AUT_BASELINE, "open-end-date", None, "dated after the open end", file="99991231AutDK.csv"),
    aut("c", AUT_BASELINE, "early-date", None, "dated before the platform", file="19991231AutDK.csv"),
    aut("c", AUT_BASELINE[:40], "reduction-guard", None, "260 authorisations removed"),
    aut("c", _swapped_names(), "change-guard", None, "surname and given names swapped"),
    aut("c", [line.replace(";7170", ";5166") for line in AUT_BASELINE], "change-guard", None,
        "every education code changed"),
    Case("a directory holding two files", _two_files, "one-file-per-dataset", "delivery-two", form="csv"),
    Case("an empty directory", _empty_directory, "one-file-per-dataset", "delivery-empty", form="csv"),
    Case("a path that does not exist", lambda directory: directory / NEXT, "dataset-missing", NEXT, form="csv"),
    Case("a bad line in a file inside a directory",
         write(f"delivery-one/{NEXT}", aut_bytes(with_line(5, "00004;10000000X4;A;B;7170"))), "cpr", f"{NEXT}:5",
         form="csv"),
]


# --- doseringsforslag --------------------------------------------------------------------------------------

DOS_BASE_RELEASE = 10
DOS_NEXT = 11
DOS_BASE_DATE = "2026-01-05"
DOS_NEXT_DATE = "2026-02-16"
V2_HEADER = "drugid|name|enhed_e|enhed_f|kode|iteration|type|mapning|tekst|version"
V2_ROWS = [
    "28100010554|Marzine|tablet|tabletter||1|N daglig|1;1;1| |{v}",
    "28100010554|Marzine|tablet|tabletter||0|PN|0.5|ved kvalme|{v}",
    "28100049555|Heparin|ml|ml||1|M+M+A+N|2+0+2+0| |{v}",
    "28100049555|Heparin|ml|ml||7|N daglig|dag 1: 2 dag 4: 2| |{v}",
]


def documents(number: int = DOS_NEXT, release_date: str = DOS_NEXT_DATE) -> dict[str, Any]:
    return release_files(number, release_date)


def release_bytes(docs: dict[str, Any], raw: dict[str, bytes] | None = None) -> dict[str, bytes]:
    files = {name: json.dumps(doc, ensure_ascii=False, indent=1).encode() for name, doc in docs.items()
             if doc is not None}
    files.update(raw or {})
    return files


def v1_dir(name: str, files: dict[str, bytes]) -> Maker:
    def make(directory: Path) -> Path:
        dataset = directory / name
        dataset.mkdir(parents=True)
        for file, data in files.items():
            (dataset / file).write_bytes(data)
        return dataset

    return make


def zip_of(name: str, members: list[tuple[str, bytes]], damage: Callable[[bytes], bytes] | None = None) -> Maker:
    def make(directory: Path) -> Path:
        directory.mkdir(parents=True, exist_ok=True)
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
            for member, data in members:
                archive.writestr(member, data)
        data = buffer.getvalue()
        path = directory / name
        path.write_bytes(damage(data) if damage else data)
        return path

    return make


def v1(title: str, docs: dict[str, Any], rule: str, where: str, raw: dict[str, bytes] | None = None,
       name: str = "release-011", **extra: Any) -> Case:
    return Case(title, v1_dir(name, release_bytes(docs, raw)), rule, where, form="v1", **extra)


def changed(change: Callable[[dict[str, Any]], None], number: int = DOS_NEXT, release_date: str = DOS_NEXT_DATE
            ) -> dict[str, Any]:
    docs = documents(number, release_date)
    change(docs)
    return docs


def every_release_number(number: int) -> dict[str, Any]:
    return documents(number)


def long_integer_file() -> tuple[bytes, int]:
    text = json.dumps(documents()["Drugs.json"], indent=1).replace("28100009555", "9" * 5000, 1)
    return text.encode(), text[:text.index("9" * 5000)].count("\n") + 1


def deep_file(root: str) -> bytes:
    return (f'{{"{root}":\n' + "[" * 100_000 + "]" * 100_000 + "}").encode()


def hidden_long_integer() -> tuple[bytes, int]:
    docs = documents()
    docs["DosageUnits.json"]["dosageUnits"][1]["hashKey"] = 7
    text = json.dumps(docs["DosageUnits.json"], indent=1).replace('"hashKey": 7', '"hashKey": -' + "1" * 5000)
    return text.encode(), text[:text.index("-" + "1" * 5000)].count("\n") + 1


def v2_csv(rows: list[str], header: str = V2_HEADER, version: int | str = DOS_NEXT) -> bytes:
    lines = [header, *(row.format(v=version) for row in rows)]
    return ("\r\n".join(lines) + "\r\n").encode("iso-8859-1")


def v2(title: str, data: bytes, rule: str, line: int | None, name: str = "drop-v2-2026-01-05", extra_files:
       dict[str, bytes] | None = None, where: str | None = None) -> Case:
    files = {"doseringsforslag.csv": data, **(extra_files or {})}
    location = where or ("doseringsforslag.csv" + (f":{line}" if line is not None else ""))
    return Case(title, v1_dir(name, files), rule, location, form="v2")


def with_row(number: int, row: str) -> list[str]:
    """The v2 rows with data line `number` (the header is line 1) replaced."""
    rows = list(V2_ROWS)
    rows[number - 2] = row
    return rows


def version_json(number: int, release_date: str = DOS_NEXT_DATE) -> bytes:
    return json.dumps(documents(number, release_date)["DosageVersion.json"]).encode()


def _corrupt_crc(data: bytes) -> bytes:
    damaged = bytearray(data)
    damaged[40:60] = b"\0" * 20  # inside the first member's data: its CRC no longer matches
    return bytes(damaged)


def _files_list(docs: dict[str, Any]) -> list[tuple[str, bytes]]:
    return list(release_bytes(docs).items())


LONG_INT, LONG_INT_LINE = long_integer_file()
HIDDEN_INT, HIDDEN_INT_LINE = hidden_long_integer()
BOTH_FORMATS = ("doseringsforslag.csv", "DosageVersion.json", "Drugs.json")

DOSERINGSFORSLAG_CASES: list[Case] = [
    # Format v1, a directory of five JSON files.
    v1("Drugs.json missing", {**documents(), "Drugs.json": None}, "missing-file", "Drugs.json"),
    v1("malformed JSON", documents(), "malformed-json", "Drugs.json:2",
       raw={"Drugs.json": b'{"drugs":[\n {"releaseNumber": 11, "drugId": 28100009555,,}\n]}'}),
    v1("a drug id as a string", changed(lambda d: d["Drugs.json"]["drugs"][1].update(drugId="28100010554")),
       "wrong-type", "drugs[1].drugId"),
    v1("a record of another release",
       changed(lambda d: d["DosageUnits.json"]["dosageUnits"][1].update(releaseNumber=DOS_NEXT - 1)),
       "release-number", "dosageUnits[1].releaseNumber"),
    v1("an xml of 10,001 characters",
       changed(lambda d: d["DosageStructures.json"]["dosageStructures"][1].update(xml="<x>" + "æ" * 9994 + "</x>")),
       "too-long", "dosageStructures[1].xml"),
    v1("no structures", changed(lambda d: d.update({"DosageStructures.json": {"dosageStructures": []}})),
       "empty-root-array", "DosageStructures.json"),
    v1("the wrong root key", changed(lambda d: d.update({"Drugs.json": {"drug": []}})), "root-key", "Drugs.json"),
    v1("a drug without a name", changed(lambda d: d["Drugs.json"]["drugs"][0].pop("drugName")), "required-key",
       "drugs[0].drugName"),
    v1("a drug id of twelve digits", changed(lambda d: d["Drugs.json"]["drugs"][0].update(drugId=281000095551)),
       "out-of-range", "drugs[0].drugId"),
    v1("the 30th of February", changed(lambda d: d["DosageVersion.json"]["version"].update(releaseDate="2026-02-30")),
       "invalid-date", "version.releaseDate"),
    v1("an integer of 5,000 digits", documents(), "number-too-long", f"Drugs.json:{LONG_INT_LINE}",
       raw={"Drugs.json": LONG_INT}),
    v1("a negative integer of 5,000 digits under an unknown key", documents(), "number-too-long",
       f"DosageUnits.json:{HIDDEN_INT_LINE}", raw={"DosageUnits.json": HIDDEN_INT}),
    v1("arrays nested 100,000 deep", documents(), "nesting-too-deep", "Drugs.json:2",
       raw={"Drugs.json": deep_file("drugs")}),
    v1("a version file nested 100,000 deep", documents(), "nesting-too-deep", "DosageVersion.json:2",
       raw={"DosageVersion.json": deep_file("version")}),
    v1("a unit code twice with other texts",
       changed(lambda d: d["DosageUnits.json"]["dosageUnits"][1].update(code=1)), "duplicate-key",
       "dosageUnits[1].code"),
    v1("a boolean release number",
       changed(lambda d: d["DosageVersion.json"]["version"].update(releaseNumber=True)), "wrong-type",
       "version.releaseNumber"),
    v1("release number 0", documents(0), "out-of-range", "version.releaseNumber"),
    v1("a release date a year ahead", documents(DOS_NEXT, f"{FAR_FUTURE:%Y-%m-%d}"), "future-date", "release-011"),
    v1("a release date at the open end", documents(DOS_NEXT, "2999-12-31"), "open-end-date", "release-011"),
    v1("a release date after the open end", documents(DOS_NEXT, "9999-12-31"), "open-end-date", "release-011"),
    v1("a release date before the platform", documents(DOS_NEXT, "1999-12-31"), "early-date", "release-011"),
    v1("release 9223372036854775807", documents(2**63 - 1), "release-gap", "release-max", name="release-max"),
    v1("release 36 after 10", documents(DOS_BASE_RELEASE + 26), "release-gap", "release-036", name="release-036"),
    v1("the same release again", documents(DOS_BASE_RELEASE), "same-release", "release-010", name="release-010"),
    v1("an older release", documents(DOS_BASE_RELEASE - 1), "older-release", "release-009", name="release-009"),
    Case("a stray notes.txt", write("notes.txt", b"remember to import release 11\n"), "dataset-kind", "notes.txt",
         also=BOTH_FORMATS, form="other"),
    Case("an empty directory", _empty_directory, "dataset-kind", "delivery-empty", also=BOTH_FORMATS, form="other"),
    Case("a directory of other files", write("drop-other/readme.md", b"# nothing here\n"), "dataset-kind",
         "drop-other", also=BOTH_FORMATS, form="other"),
    # Format v1 in a ZIP.
    Case("a ZIP member with a parent path",
         zip_of("release-011.zip", [(n if n != "Drugs.json" else "../Drugs.json", d)
                                    for n, d in _files_list(documents())]),
         "zip-member-path", "release-011.zip", form="v1-zip"),
    Case("a ZIP member twice",
         zip_of("release-011.zip", [*_files_list(documents()), ("Drugs.json", b'{"drugs": []}')]),
         "zip-duplicate-member", "release-011.zip", form="v1-zip"),
    Case("a ZIP whose data fails its CRC", zip_of("release-011.zip", _files_list(documents()), _corrupt_crc),
         "zip-corrupt", "release-011.zip", form="v1-zip"),
    Case("a ZIP with arrays nested 100,000 deep",
         zip_of("release-011.zip", [(n, deep_file("drugs") if n == "Drugs.json" else d)
                                    for n, d in _files_list(documents())]),
         "nesting-too-deep", "Drugs.json:2", form="v1-zip"),
    Case("a ZIP with an integer of 5,000 digits",
         zip_of("release-011.zip", [(n, LONG_INT if n == "Drugs.json" else d) for n, d in _files_list(documents())]),
         "number-too-long", f"Drugs.json:{LONG_INT_LINE}", form="v1-zip"),
    Case("a ZIP of release 9223372036854775807", zip_of("release-max.zip", _files_list(documents(2**63 - 1))),
         "release-gap", "release-max.zip", form="v1-zip"),
    Case("a ZIP with Drugs.json in a folder",
         zip_of("release-011.zip", [(n if n != "Drugs.json" else "data/Drugs.json", d)
                                    for n, d in _files_list(documents())]),
         "missing-file", "Drugs.json", form="v1-zip"),
    Case("a ZIP larger than zip_max_mb", zip_of("release-011.zip", _files_list(documents())), "zip-too-large",
         "release-011.zip", env={"STAMDATA_DOSERINGSFORSLAG_ZIP_MAX_MB": "0.0005"}, form="v1-zip"),
    Case("a ZIP with a release date at the open end",
         zip_of("release-011.zip", _files_list(documents(DOS_NEXT, "2999-12-31"))), "open-end-date",
         "release-011.zip", form="v1-zip"),
    # Format v2, one delimited file in a directory.
    v2("an unknown header", v2_csv(V2_ROWS, V2_HEADER.replace("mapning", "dosis")), "unknown-header", 1),
    v2("a field too many", v2_csv(with_row(3, V2_ROWS[1] + "|extra")), "field-count", 3),
    v2("a drug id with a letter", v2_csv(with_row(2, V2_ROWS[0].replace("28100010554", "2810001055X"))),
       "drug-id", 2),
    v2("an empty name", v2_csv(with_row(4, V2_ROWS[2].replace("Heparin", ""))), "required-value", 4),
    v2("a quantity that is not a number", v2_csv(with_row(4, V2_ROWS[2].replace("2+0+2+0", "2+x+2+0"))),
       "dose-expression", 4),
    v2("an iteration of 5,000 digits", v2_csv(with_row(2, V2_ROWS[0].replace("||1|", "||" + "1" * 5000 + "|"))),
       "dose-expression", 2),
    v2("a superscript iteration", v2_csv(with_row(2, V2_ROWS[0].replace("||1|", "||\u00b2|"))), "dose-expression", 2),
    v2("a day number of 5,000 digits",
       v2_csv(with_row(5, V2_ROWS[3].replace("dag 4: 2", "dag " + "4" * 5000 + ": 2"))), "dose-expression", 5),
    v2("a quantity of a billion digits", v2_csv(with_row(2, V2_ROWS[0].replace("1;1;1", "1E+999999999"))),
       "dose-expression", 2),
    v2("a quantity with a billion decimals", v2_csv(with_row(3, V2_ROWS[1].replace("|0.5|", "|5E-999999999|"))),
       "dose-expression", 3),
    v2("two release numbers", v2_csv([*V2_ROWS[:2], *(row.replace("{v}", "12") for row in V2_ROWS[2:])]),
       "mixed-versions", 4),
    v2("a release number of 5,000 digits", v2_csv(V2_ROWS, version="1" * 5000), "release-number", 2),
    v2("no release number anywhere", v2_csv([row.rsplit("|", 1)[0] for row in V2_ROWS],
                                            V2_HEADER.rsplit("|", 1)[0]), "release-number", None),
    v2("two data files", v2_csv(V2_ROWS), "data-file-count", None,
       extra_files={"other.csv": v2_csv(V2_ROWS)}, where="drop-v2"),
    v2("a header and no rows", v2_csv([]), "empty-file", None),
    v2("a version column that disagrees with DosageVersion.json", v2_csv(V2_ROWS), "release-number", 2,
       extra_files={"DosageVersion.json": version_json(DOS_NEXT + 1)}),
    v2("a DosageVersion.json with an integer of 5,000 digits", v2_csv(V2_ROWS), "number-too-long", None,
       extra_files={"DosageVersion.json": b'{"version": {"releaseNumber":\n' + b"9" * 5000 + b"}}"},
       where="DosageVersion.json:2"),
    v2("release 99 after 10 in the version column", v2_csv(V2_ROWS, version=99), "release-gap", None,
       where="drop-v2"),
    v2("the same release in the version column", v2_csv(V2_ROWS, version=DOS_BASE_RELEASE), "same-release", None,
       where="drop-v2"),
    v2("a drop date a year ahead in the name", v2_csv(V2_ROWS), "future-date", None,
       name=f"drop-{FAR_FUTURE:%Y-%m-%d}", where=f"drop-{FAR_FUTURE:%Y-%m-%d}"),
    # Format v2 in a ZIP.
    Case("a v2 ZIP with the data file in a folder",
         zip_of("drop-v2.zip", [("sub/doseringsforslag.csv", v2_csv(V2_ROWS))]), "zip-member-path", "drop-v2.zip",
         form="v2-zip"),
    Case("a v2 ZIP with a field too many",
         zip_of("drop-v2.zip", [("doseringsforslag.csv", v2_csv(with_row(3, V2_ROWS[1] + "|extra")))]),
         "field-count", "doseringsforslag.csv:3", form="v2-zip"),
    Case("a v2 ZIP released at the open end",
         zip_of("drop-v2.zip", [("doseringsforslag.csv", v2_csv(V2_ROWS)),
                                ("DosageVersion.json", version_json(DOS_NEXT, "2999-12-31"))]),
         "open-end-date", "drop-v2.zip", form="v2-zip"),
    Case("a v2 ZIP of release 9223372036854775807",
         zip_of("drop-v2-20260105.zip", [("doseringsforslag.csv", v2_csv(V2_ROWS, version=2**63 - 1))]),
         "release-gap", "drop-v2-20260105.zip", form="v2-zip"),
    Case("a v2 ZIP with neither DosageVersion.json nor a date in its name (a file time is no release date)",
         zip_of("drop-v2.zip", [("doseringsforslag.csv", v2_csv(V2_ROWS))]), "release-date",
         "drop-v2.zip/doseringsforslag.csv", form="v2-zip"),
]

CASES = {"autorisation": AUTORISATION_CASES, "doseringsforslag": DOSERINGSFORSLAG_CASES}


def dos_baseline(directory: Path) -> Path:
    return v1_dir("release-010", release_bytes(documents(DOS_BASE_RELEASE, DOS_BASE_DATE)))(directory)


def aut_baseline(directory: Path) -> Path:
    return write(AUT_BASE, aut_bytes(AUT_BASELINE))(directory)


BASELINES: dict[str, Callable[[Path], Path]] = {"autorisation": aut_baseline, "doseringsforslag": dos_baseline}


def good_next(register: str, directory: Path) -> Path:
    """A dataset every case above spoils one way: it must be accepted, or the corpus proves nothing."""
    if register == "autorisation":
        return write(NEXT, aut_bytes(AUT_BASELINE[:-1]))(directory)
    return v1_dir("release-011", release_bytes(documents()))(directory)


def good_next_v2(directory: Path) -> Path:
    return v1_dir("drop-v2-2026-01-05", {"doseringsforslag.csv": v2_csv(V2_ROWS)})(directory)


__all__ = ["BASELINES", "CASES", "CPR_PREFIX", "Case", "date", "good_next", "good_next_v2"]
