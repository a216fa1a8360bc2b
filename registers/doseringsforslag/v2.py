"""Format v2: one delimited file (`doseringsforslag.csv`), from which the importer derives the five tables.

The derived records are the v1 JSON records the platform would have published, and they go through the v1
validation and table building (`parser._tables`), so a v2 import yields exactly the frames a v1 import of the
published release yields: replication and façades cannot tell the formats apart.

Dataset: a directory or ZIP with exactly one data file (`doseringsforslag.csv`, or any `*.csv`/`*.txt` whose
first line is a v2 header) and optionally `DosageVersion.json`. Other files are ignored. A ZIP member with any
path component, a second data file, or more than `zip_max_mb` of uncompressed data is refused.
"""

import re
import zipfile
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time
from pathlib import Path, PurePosixPath
from typing import Any

from importer.errors import DataError, Problem
from importer.load.plugin import ParsedDataset
from registers.doseringsforslag import parser, source
from registers.doseringsforslag.dosage.derive import Derived, Row, derive
from registers.doseringsforslag.records import FileProblems, load_records, validate

FORMAT = "v2"
DATA_FILE = source.V2_DATA_FILE
REQUIRED = ("drugid", "name", "enhed_e", "enhed_f", "kode", "iteration", "type", "mapning", "tekst")
OPTIONAL = ("version", "maalgruppe")
ALIASES = {"pname": "name"}  # older files
DELIMITERS = ("|", ";", "\t", ",")
UNUSED_DATE = "2000-01-01"  # lmsDate/daDate: "not used", and what every published release carries
_NAME_DATE = re.compile(r"(20\d\d)-?(\d\d)-?(\d\d)")
_NAME_RELEASE = re.compile(r"release[-_ ]?0*(\d{1,9})(?!\d)", re.IGNORECASE)
_HEADER_BYTES = 4096
_RELEASE_NUMBER = re.compile(r"[0-9]{1,19}")  # ASCII digits, at most BIGINT's


@dataclass(frozen=True)
class DataFile:
    name: str
    data: bytes


def header(line: str) -> tuple[str, list[str]] | None:
    """(delimiter, column names) when `line` is a v2 header: every required column, nothing unknown."""
    line = line.lstrip("\ufeff").rstrip("\r\n")
    for delimiter in DELIMITERS:
        columns = [ALIASES.get(cell.strip().lower(), cell.strip().lower()) for cell in line.split(delimiter)]
        if set(REQUIRED) <= set(columns) and set(columns) <= set(REQUIRED + OPTIONAL) and len(set(columns)) == len(
                columns):
            return delimiter, columns
    return None


def _first_line(data: bytes) -> str:
    """Enough of the header to recognise it; column names are ASCII, so Latin-1 decodes them in any encoding."""
    return data[:_HEADER_BYTES].removeprefix(source.UTF8_BOM).split(b"\n", 1)[0].decode("iso-8859-1")


def _is_candidate(name: str) -> bool:
    return name == DATA_FILE or name.lower().endswith((".csv", ".txt"))


def has_data_file(path: Path) -> bool:
    """Cheap test for `recognise`: a top-level candidate file whose first line is a v2 header."""
    try:
        if path.is_dir():
            for child in path.iterdir():
                if child.is_file() and _is_candidate(child.name):
                    with child.open("rb") as stream:
                        if child.name == DATA_FILE or header(_first_line(stream.read(_HEADER_BYTES))):
                            return True
            return False
        if path.is_file() and zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                for member in archive.infolist():
                    base = PurePosixPath(member.filename.replace("\\", "/")).name
                    if member.is_dir() or not _is_candidate(base):
                        continue
                    if base == DATA_FILE:
                        return True
                    with archive.open(member) as stream:
                        if header(_first_line(stream.read(_HEADER_BYTES))):
                            return True
    except (OSError, zipfile.BadZipFile, RuntimeError):
        return False
    return False


def _read(path: Path, max_bytes: int) -> tuple[DataFile, source.RawFile | None, str]:
    """The one data file, the optional version file, and the kind of source."""
    files: dict[str, DataFile] = {}
    if path.is_dir():
        for child in sorted(path.iterdir()):
            if child.is_file() and (_is_candidate(child.name) or child.name == source.VERSION_FILE):
                files[child.name] = DataFile(child.name, child.read_bytes())
        kind = "directory"
    elif path.is_file() and zipfile.is_zipfile(path):
        files = _read_zip(path, max_bytes)
        kind = "zip"
    else:
        raise DataError.single("dataset-kind", f"not a dataset: {source.DATASET_DESCRIPTION}", file=path.name)
    data = [f for f in files.values() if _is_candidate(f.name) and (f.name == DATA_FILE or header(_first_line(
        f.data)))]
    if len(data) != 1:
        found = ", ".join(sorted(f.name for f in data)) or "none"
        raise DataError.single("data-file-count", f"a v2 dataset holds exactly one data file, found {found}",
                               file=path.name)
    version = files.get(source.VERSION_FILE)
    raw_version = source.RawFile(version.name, version.data) if version else None
    return data[0], raw_version, kind


def _read_zip(path: Path, max_bytes: int) -> dict[str, DataFile]:
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
            bad = [m.filename for m in members if "/" in m.filename or "\\" in m.filename or ":" in m.filename]
            if bad:
                raise DataError([Problem("zip-member-path", f"member {name!r} has a path; the files must be at the "
                                         "ZIP's top level", path.name) for name in bad])
            duplicated = sorted(name for name, count in Counter(m.filename for m in members).items() if count > 1)
            if duplicated:
                raise DataError([Problem("zip-duplicate-member", f"member {n!r} appears more than once", path.name)
                                 for n in duplicated])
            budget = max_bytes
            files: dict[str, DataFile] = {}
            for member in members:
                if not (_is_candidate(member.filename) or member.filename == source.VERSION_FILE):
                    continue
                if member.flag_bits & 0x1:
                    raise DataError.single("zip-encrypted", "encrypted ZIP members are not supported",
                                           file=f"{path.name}/{member.filename}")
                data = source._read_capped(archive, member, budget, path.name)
                budget -= len(data)
                files[member.filename] = DataFile(member.filename, data)
            return files
    except zipfile.BadZipFile as error:
        raise DataError.single("zip-corrupt", f"the ZIP cannot be read: {error}", file=path.name) from None


def _rows(data: DataFile) -> tuple[list[Row], dict[str, Any], list[Problem]]:
    decoded = source.decode(source.RawFile(data.name, data.data))
    lines = decoded.text.split("\n")
    while len(lines) > 1 and not lines[-1].strip():
        lines.pop()  # the final line end
    found = header(lines[0])
    if found is None:
        raise DataError.single("unknown-header", f"the first line is not a v2 header (columns {', '.join(REQUIRED)}"
                               f"[, {', '.join(OPTIONAL)}], delimited by one of {' '.join(DELIMITERS)!r}): "
                               f"{lines[0][:200]!r}", file=data.name, line=1)
    delimiter, columns = found
    index = {column: columns.index(column) for column in columns}
    rows: list[Row] = []
    problems: list[Problem] = []
    versions: dict[str, int] = {}
    blank = 0
    for number, line in enumerate(lines[1:], start=2):
        line = line.rstrip("\r")
        if not line.strip():
            blank += 1
            continue
        cells = [cell.strip() for cell in line.split(delimiter)]
        if len(cells) != len(columns):
            problems.append(Problem("field-count", f"{len(cells)} fields, the header has {len(columns)}",
                                    data.name, number))
            continue
        value = {column: cells[i] for column, i in index.items()}
        if not re.fullmatch(r"\d{1,11}", value["drugid"]) or int(value["drugid"]) == 0:
            problems.append(Problem("drug-id", f"drugid {value['drugid']!r} is not 1 to 11 digits", data.name, number))
            continue
        for column, limit in (("name", 200), ("enhed_e", 100), ("enhed_f", 100)):
            if not value[column] or len(value[column]) > limit:
                problems.append(Problem("required-value" if not value[column] else "too-long",
                                        f"{column} must hold 1..{limit} characters", data.name, number))
        if value.get("version"):  # an empty cell says nothing; two different values are refused
            versions.setdefault(value["version"], number)
        rows.append(Row(number, value["drugid"], value["name"], value["enhed_e"], value["enhed_f"],
                        value["iteration"], value["type"], value["mapning"], value["tekst"]))
    if not rows and not problems:
        problems.append(Problem("empty-file", "the data file has a header but no rows", data.name))
    info = {"encoding": decoded.encoding, "delimiter": delimiter, "columns": columns, "blank_lines": blank,
            "versions": versions, "c1_controls": decoded.c1_controls}
    return rows, info, problems


def _release(data: DataFile, raw_version: source.RawFile | None, versions: dict[str, int], dataset: str
             ) -> tuple[dict[str, Any], str]:
    """The DosageVersion record and where its date came from."""
    if raw_version is not None:
        try:
            decoded = source.decode(raw_version)
            frame, problems = validate(parser.SPECS[0], load_records(parser.SPECS[0], decoded.text))
        except FileProblems as error:
            raise DataError(error.problems) from None
        if problems:
            raise DataError(problems)
        record = {key: frame.iloc[0][key] for key in frame.columns}
        others = sorted(v for v in versions if v != str(record["releaseNumber"]))
        if others:
            raise DataError.single("release-number", f"the version column says {', '.join(others)[:100]} (first at "
                                   f"line {versions[others[0]]}), {source.VERSION_FILE} says release "
                                   f"{record['releaseNumber']}", file=data.name, line=versions[others[0]])
        return record, source.VERSION_FILE
    if not versions:
        named = _NAME_RELEASE.search(dataset)
        if named is None:
            raise DataError.single("release-number", f"no {source.VERSION_FILE}, no version column and no "
                                   "'release-N' in the dataset's name: the release number is unknown",
                                   file=data.name)
        versions = {named.group(1): 0}  # line 0: the name, not a line
    if len(versions) > 1:
        first, second = sorted(versions, key=versions.__getitem__)[:2]
        raise DataError.single("mixed-versions", f"the version column holds {len(versions)} values ({first!r} from "
                               f"line {versions[first]}, {second!r} from line {versions[second]}); a release has one",
                               file=data.name, line=versions[second])
    (number,) = versions
    if not _RELEASE_NUMBER.fullmatch(number) or not 1 <= int(number) <= parser.RELEASE.bounds[1]:
        shown = number if len(number) <= 40 else f"{number[:20]}... ({len(number)} characters)"
        raise DataError.single("release-number", f"version {shown!r} is not a release number (1 to "
                               f"{parser.RELEASE.bounds[1]})", file=data.name, line=versions[number] or None)
    # A file's modification time is not a release date (a copy, a restore or a re-zip moves it, and it once moved
    # release 29's validity to the day of its import): the date is stated, in DosageVersion.json or the name.
    match = _NAME_DATE.search(dataset)
    if match is None:
        raise DataError.single("release-date", f"no {source.VERSION_FILE} and no date in the dataset's name (e.g. "
                               "release-030-2026-01-05 or doseringsforslag-20260105.zip): the release date is "
                               "unknown", file=data.name)
    try:
        when, origin = date(*map(int, match.groups())), "the date in the dataset's name"
    except ValueError:
        raise DataError.single("release-date", f"{match.group(0)!r} in the dataset's name is not a date",
                               file=data.name) from None
    if versions[number] == 0:
        origin += ", the release number from the dataset's name"
    record = {"releaseNumber": int(number), "releaseDate": when.isoformat(), "lmsDate": UNUSED_DATE,
              "daDate": UNUSED_DATE}
    return record, origin


def _documents(derived: Derived, number: int) -> dict[str, list[dict[str, Any]]]:
    """The v1 records the platform would have published for this release."""
    structures = []
    for s in derived.structures:
        record: dict[str, Any] = {"releaseNumber": number, "code": s.code, "type": s.type, "xml": s.xml}
        optional = {"simpleString": s.simple_string, "supplementaryText": s.supplementary_text,
                    "shortTranslation": s.short_translation, "longTranslation": s.long_translation}
        record.update({key: value for key, value in optional.items() if value is not None})
        structures.append(record)
    return {
        source.UNITS_FILE: [{"releaseNumber": number, "code": code, "textSingular": singular, "textPlural": plural}
                            for code, singular, plural in derived.units],
        source.DRUGS_FILE: [{"releaseNumber": number, "drugId": drug, "drugName": name, "dosageUnitCode": unit}
                            for drug, name, unit in derived.drugs],
        source.STRUCTURES_FILE: structures,
        source.RELATIONS_FILE: [{"releaseNumber": number, "drugId": drug, "dosageStructureCode": code}
                                for drug, code in derived.relations],
    }


def parse_dataset(path: Path, zip_max_bytes: int, versions: Sequence[str],
                  double_encoded: bool = True) -> ParsedDataset:
    data, raw_version, kind = _read(path, zip_max_bytes)
    rows, info, problems = _rows(data)
    derived = derive(rows, versions, double_encoded)
    problems.extend(Problem(rule, detail, data.name, line) for line, rule, detail in derived.problems)
    if problems:
        raise DataError(sorted(problems, key=lambda p: p.line or 0))
    version, origin = _release(data, raw_version, info["versions"], path.name)
    number = int(version["releaseNumber"])
    files = {source.VERSION_FILE: [version], **_documents(derived, number)}
    frames: dict[str, Any] = {}
    found: list[Problem] = []
    for spec in parser.SPECS:
        frame, spec_problems = validate(spec, files[spec.name])
        frames[spec.name] = frame
        found.extend(Problem(p.rule, f"derived {p.detail}", data.name) for p in spec_problems)
    if found:
        raise DataError(found)
    tables, warnings = parser._tables(frames)
    notes = [f"{data.name}: release {number} dated {version['releaseDate']} from {origin}"]
    if derived.untranslatable:
        notes.append(f"{data.name}: {derived.untranslatable} proposal(s) without a short translation of at most "
                     "70 characters: their codes are related but no structure is published (as the platform does)")
    if derived.drug_unit_only:
        notes.append(f"{data.name}: {derived.drug_unit_only} row(s) with iteration '.' or several periods define "
                     "only the drug and its unit (as the platform does)")
    if derived.drug_conflicts:
        notes.append(f"{data.name}: {derived.drug_conflicts} drug id(s) with rows that disagree on name or unit: "
                     "the first row's are kept")
    if info["blank_lines"]:
        notes.append(f"{data.name}: {info['blank_lines']} blank line(s) skipped")
    if info["c1_controls"]:
        notes.append(f"{data.name}: {info['c1_controls']} C1 control character(s) in ISO-8859-1 text, imported "
                     "as delivered")
    file_hashes = {data.name: source.RawFile(data.name, data.data).sha256}
    if raw_version is not None:
        file_hashes[raw_version.name] = raw_version.sha256
    return ParsedDataset(
        name=path.name,
        version=str(number),
        valid_from=datetime.combine(date.fromisoformat(version["releaseDate"]), time()),
        frames=tables,
        files=file_hashes,
        warnings=notes + warnings,
        details={"format": FORMAT, "source": kind, "encoding": info["encoding"], "delimiter": info["delimiter"],
                 "columns": info["columns"], "fmk_versions": list(versions), "release_date_from": origin,
                 "delivery_rows": len(rows), "derived_structures": len(derived.structures),
                 "derived_relations": len(derived.relations)},
    )


