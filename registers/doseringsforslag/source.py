"""Where a release's five files come from (a directory or a ZIP) and how their bytes become text.

A ZIP is read in memory and never extracted, so a hostile member name cannot write anywhere; members
are still checked (no absolute paths, no `..`, no duplicates) because such an archive is not a release
anyone meant to send, and every member is read with a byte cap because the sizes a ZIP declares can lie.
"""

import hashlib
import re
import zipfile
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from importer.errors import DataError, Problem

VERSION_FILE = "DosageVersion.json"
UNITS_FILE = "DosageUnits.json"
DRUGS_FILE = "Drugs.json"
STRUCTURES_FILE = "DosageStructures.json"
RELATIONS_FILE = "DrugsDosageStructures.json"
FILE_NAMES = (VERSION_FILE, UNITS_FILE, DRUGS_FILE, STRUCTURES_FILE, RELATIONS_FILE)

UTF8_BOM = b"\xef\xbb\xbf"
V2_DATA_FILE = "doseringsforslag.csv"
DATASET_DESCRIPTION = (
    "a doseringsforslag dataset is a directory or a ZIP holding either the five JSON files of format v1 "
    f"({', '.join(FILE_NAMES)}) or one delimited data file {V2_DATA_FILE} of format v2 (optionally with "
    f"{VERSION_FILE})"
)
C1_CONTROL = re.compile("[\x80-\x9f]")
_READ_CHUNK = 1 << 20


@dataclass(frozen=True)
class RawFile:
    name: str
    data: bytes

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


@dataclass(frozen=True)
class DecodedFile:
    name: str
    text: str
    encoding: str  # "utf-8", "ascii" or "iso-8859-1"
    c1_controls: int  # C1 control characters in Latin-1 text: the sign of a Windows-1252 file


def has_all_files(path: Path) -> bool:
    """Cheap completeness test for `recognise`: all five names present, nothing read."""
    try:
        if path.is_dir():
            return all((path / name).is_file() for name in FILE_NAMES)
        if path.is_file() and zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                return set(FILE_NAMES) <= set(archive.namelist())
    except (OSError, zipfile.BadZipFile):
        return False
    return False


def read_dataset(path: Path, zip_max_bytes: int) -> tuple[dict[str, RawFile], str]:
    """The five files' bytes and the kind of source; a missing file is a DataError that names it."""
    if path.is_dir():
        return _read_directory(path), "directory"
    if path.is_file() and zipfile.is_zipfile(path):
        return _read_zip(path, zip_max_bytes), "zip"
    if not path.exists():
        raise DataError.single("dataset-missing", "the dataset path does not exist", file=path.name)
    raise DataError.single("dataset-kind", f"not a dataset: {DATASET_DESCRIPTION}", file=path.name)


def _read_directory(path: Path) -> dict[str, RawFile]:
    missing = [name for name in FILE_NAMES if not (path / name).is_file()]
    if len(missing) == len(FILE_NAMES):
        raise _neither(path.name, sorted(child.name for child in path.iterdir()))
    if missing:
        raise _missing(missing, hint={})
    return {name: RawFile(name, (path / name).read_bytes()) for name in FILE_NAMES}


def _read_zip(path: Path, max_bytes: int) -> dict[str, RawFile]:
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
            _check_member_names(path.name, [member.filename for member in members])
            by_name = {member.filename: member for member in members}
            missing = [name for name in FILE_NAMES if name not in by_name]
            if len(missing) == len(FILE_NAMES) and not any("/" in name for name in by_name):
                raise _neither(path.name, sorted(by_name))
            if missing:
                nested = {PurePosixPath(m.filename).name: m.filename for m in members if "/" in m.filename}
                raise _missing(missing, hint=nested)
            budget = max_bytes
            files: dict[str, RawFile] = {}
            for name in FILE_NAMES:
                member = by_name[name]
                if member.flag_bits & 0x1:
                    raise DataError.single("zip-encrypted", "encrypted ZIP members are not supported",
                                           file=f"{path.name}/{name}")
                data = _read_capped(archive, member, budget, path.name)
                budget -= len(data)
                files[name] = RawFile(name, data)
            return files
    except zipfile.BadZipFile as error:
        raise DataError.single("zip-corrupt", f"the ZIP cannot be read: {error}", file=path.name) from None


def _check_member_names(archive: str, names: list[str]) -> None:
    problems: list[Problem] = []
    for name in names:
        parts = PurePosixPath(name.replace("\\", "/")).parts
        if name.startswith(("/", "\\")) or ".." in parts or (parts and parts[0].endswith(":")):
            problems.append(Problem("zip-member-path", f"member {name!r} has an absolute or parent path", archive))
    duplicated = sorted(name for name, count in Counter(names).items() if count > 1 and name in FILE_NAMES)
    for name in duplicated:
        problems.append(Problem("zip-duplicate-member", f"member {name!r} appears more than once", archive))
    if problems:
        raise DataError(problems)


def _read_capped(archive: zipfile.ZipFile, member: zipfile.ZipInfo, budget: int, archive_name: str) -> bytes:
    """Stop at the cap while reading, whatever size the member claims to have."""

    def too_big() -> DataError:
        return DataError.single(
            "zip-too-large",
            f"the ZIP's files exceed the limit of {budget // (1 << 20)} MB uncompressed left for {member.filename}",
            file=archive_name,
        )

    if member.file_size > budget:
        raise too_big()
    chunks: list[bytes] = []
    size = 0
    with archive.open(member) as stream:
        while chunk := stream.read(_READ_CHUNK):
            size += len(chunk)
            if size > budget:
                raise too_big()
            chunks.append(chunk)
    return b"".join(chunks)


def _neither(dataset: str, found: list[str]) -> DataError:
    """None of the v1 files (and, since v2 was not recognised, no v2 data file either)."""
    shown = ", ".join(found[:10]) + (f" and {len(found) - 10} more" if len(found) > 10 else "") or "nothing"
    return DataError.single("dataset-kind", f"not a dataset (found {shown}): {DATASET_DESCRIPTION}", file=dataset)


def _missing(names: list[str], hint: Mapping[str, str]) -> DataError:
    problems = []
    for name in names:
        detail = f"the dataset has no {name}"
        if name in hint:
            detail += f" at its top level (found {hint[name]}; files must not be in a folder)"
        problems.append(Problem("missing-file", detail, name))
    return DataError(problems)


def decode(raw: RawFile) -> DecodedFile:
    """UTF-8 when the bytes are valid UTF-8 (or carry its BOM), else ISO-8859-1, which every byte decodes.

    Real releases are either (27 and 29 are Latin-1). A Latin-1 text that happens to be valid UTF-8 needs
    byte pairs like `Ã¦` that Danish text never has, so trying UTF-8 first is safe.
    """
    data = raw.data
    if data.startswith(UTF8_BOM):
        try:
            return DecodedFile(raw.name, data[len(UTF8_BOM):].decode("utf-8"), "utf-8", 0)
        except UnicodeDecodeError as error:
            position = error.start + len(UTF8_BOM)
            line = data.count(b"\n", 0, position) + 1
            raise DataError.single(
                "encoding", f"the file starts with a UTF-8 BOM but byte 0x{data[position]:02x} at offset {position} "
                "is not valid UTF-8", file=raw.name, line=line,
            ) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = data.decode("iso-8859-1")
        return DecodedFile(raw.name, text, "iso-8859-1", len(C1_CONTROL.findall(text)))
    return DecodedFile(raw.name, text, "utf-8" if not data.isascii() else "ascii", 0)
