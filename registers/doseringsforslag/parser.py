"""Parser for a doseringsforslag release in format v1: five JSON files (FORMATS.md §2).

Every file is read, decoded and validated before anything is refused, so one refusal lists every
problem of the release. What only deserves attention (repeated relation pairs, relations to structures
that do not exist) is kept and reported as warnings: the release is the authority on its own content.
"""

import re
from dataclasses import dataclass
from datetime import date, datetime, time
from pathlib import Path

import pandas as pd

from importer.errors import DataError, Problem
from importer.load.plugin import ParsedDataset
from registers.doseringsforslag import source
from registers.doseringsforslag import tables as schema
from registers.doseringsforslag.records import DRUG_ID, INT32, Field, FileProblems, FileSpec, load_records, validate

FORMAT = "v1"
RELEASE = Field("releaseNumber", "int", bounds=(1, 2**63 - 1))

SPECS = (
    FileSpec(source.VERSION_FILE, "version", (
        RELEASE, Field("releaseDate", "date"), Field("lmsDate", "date"), Field("daDate", "date"),
    ), single=True),
    FileSpec(source.UNITS_FILE, "dosageUnits", (
        RELEASE, Field("code", "int", bounds=INT32),
        Field("textSingular", "str", max_length=100), Field("textPlural", "str", max_length=100),
    )),
    FileSpec(source.DRUGS_FILE, "drugs", (
        RELEASE, Field("drugId", "int", bounds=DRUG_ID), Field("drugName", "str", max_length=200),
        Field("dosageUnitCode", "int"),
    )),
    FileSpec(source.STRUCTURES_FILE, "dosageStructures", (
        RELEASE, Field("code", "int", max_length=11, as_text=True), Field("type", "str", max_length=100),
        Field("xml", "str", max_length=10000),
        Field("simpleString", "str", required=False, max_length=100),
        Field("supplementaryText", "str", required=False, max_length=200),
        Field("shortTranslation", "str", required=False, max_length=70),
        Field("longTranslation", "str", required=False, max_length=10000),
    )),
    FileSpec(source.RELATIONS_FILE, "drugsDosageStructures", (
        RELEASE, Field("drugId", "int", bounds=DRUG_ID), Field("dosageStructureCode", "int"),
    )),
)
SPEC_BY_FILE = {spec.name: spec for spec in SPECS}

# The structure types the platform documents; others are imported and reported (the list may grow).
_TYPE = r"(?:M\+M\+A\+N|N daglig|PN|FT|Fritekst|Kompleks)"
KNOWN_TYPE = re.compile(rf"{_TYPE}|(?:\{{{_TYPE}\}})+")


@dataclass
class _Release:
    frames: dict[str, pd.DataFrame]  # by file name, one column per field, index = record index
    encodings: dict[str, str]
    warnings: list[str]


def parse_dataset(path: Path, zip_max_bytes: int) -> ParsedDataset:
    raw, kind = source.read_dataset(path, zip_max_bytes)
    release = _read_release(raw)
    version = release.frames[source.VERSION_FILE].iloc[0]
    number = int(version["releaseNumber"])
    frames, warnings = _tables(release.frames)
    return ParsedDataset(
        name=path.name,
        version=str(number),
        valid_from=datetime.combine(_date(version["releaseDate"]), time()),
        frames=frames,
        files={name: file.sha256 for name, file in raw.items()},
        warnings=release.warnings + warnings,
        details={"format": FORMAT, "source": kind, "encodings": release.encodings},
    )


def _read_release(raw: dict[str, source.RawFile]) -> _Release:
    problems: list[Problem] = []
    frames: dict[str, pd.DataFrame] = {}
    encodings: dict[str, str] = {}
    warnings: list[str] = []
    for spec in SPECS:
        try:
            decoded = source.decode(raw[spec.name])
            frame, found = validate(spec, load_records(spec, decoded.text))
        except (FileProblems, DataError) as error:  # this file cannot be checked further; the others can
            problems.extend(error.problems)
            continue
        encodings[spec.name] = decoded.encoding
        if decoded.c1_controls:
            warnings.append(f"{spec.name}: {decoded.c1_controls} C1 control character(s) in ISO-8859-1 text "
                            "(was the file Windows-1252?), imported as delivered")
        problems.extend(found)
        frames[spec.name] = frame
    if source.VERSION_FILE in frames and not any(p.file == source.VERSION_FILE for p in problems):
        number = frames[source.VERSION_FILE].iloc[0]["releaseNumber"]
        for spec in SPECS[1:]:
            if spec.name in frames:
                problems.extend(_other_release(spec, frames[spec.name], number))
    if problems:
        raise DataError(problems)
    return _Release(frames, encodings, warnings)


def _other_release(spec: FileSpec, frame: pd.DataFrame, number: int) -> list[Problem]:
    values = frame["releaseNumber"]
    wrong = values.map(lambda value: type(value) is int and value != number).astype(bool)
    return [
        Problem("release-number", f"{spec.root}[{index}].releaseNumber is {values[index]}, but "
                f"{source.VERSION_FILE} says release {number}", spec.name)
        for index in values.index[wrong.to_numpy(dtype=bool)][:1000]
    ]


def _tables(files: dict[str, pd.DataFrame]) -> tuple[dict[str, pd.DataFrame], list[str]]:
    """The five table frames, each key unique; what is repeated or dangling is counted in warnings."""
    warnings: list[str] = []
    version = files[source.VERSION_FILE].copy()
    for column in ("releaseDate", "lmsDate", "daDate"):
        version[column] = version[column].map(_date)

    units = _unique(files[source.UNITS_FILE], "code", source.UNITS_FILE, warnings)
    drugs = _unique(files[source.DRUGS_FILE], "drugId", source.DRUGS_FILE, warnings)
    structures = _unique(files[source.STRUCTURES_FILE], "code", source.STRUCTURES_FILE, warnings)
    structures["code"] = structures["code"].map(str)

    relations = files[source.RELATIONS_FILE]
    repeated = relations.duplicated(subset=["drugId", "dosageStructureCode"])
    if repeated.any():
        warnings.append(f"{source.RELATIONS_FILE}: {int(repeated.sum())} repeated drug/structure pair(s), "
                        "each pair kept once")
    relations = relations.loc[~repeated].copy()
    relations["id"] = relations["drugId"].map(str) + "-" + relations["dosageStructureCode"].map(str)
    warnings.extend(_dangling(units, drugs, structures, relations))

    unknown = structures.loc[~structures["type"].map(lambda kind: bool(KNOWN_TYPE.fullmatch(kind))), "type"]
    if len(unknown):
        warnings.append(f"{source.STRUCTURES_FILE}: {len(unknown)} structure(s) of undocumented type(s) "
                        f"{', '.join(sorted(set(unknown))[:10])}, imported as delivered")

    frames = {
        schema.VERSION.name: version,
        schema.UNIT.name: units,
        schema.DRUG.name: drugs,
        schema.STRUCTURE.name: structures,
        schema.RELATION.name: relations,
    }
    return {name: frame.reset_index(drop=True).astype(object) for name, frame in frames.items()}, warnings


def _unique(frame: pd.DataFrame, key: str, name: str, warnings: list[str]) -> pd.DataFrame:
    """Identical repeated records are kept once (a warning); two different records for one key are refused."""
    spec = SPEC_BY_FILE[name]
    identical = frame.duplicated()
    if identical.any():
        warnings.append(f"{name}: {int(identical.sum())} identical repeated record(s), each kept once")
        frame = frame.loc[~identical].copy()
    clash = frame.duplicated(subset=key, keep=False)
    if clash.any():
        problems = []
        groups = frame.loc[clash].groupby(key, sort=False).groups
        for value, indexes in list(groups.items())[:1000]:
            first, *others = (int(index) for index in indexes)
            for other in others:
                problems.append(Problem(
                    "duplicate-key", f"{spec.root}[{other}].{key} {value} already appears in "
                    f"{spec.root}[{first}] with other values", name,
                ))
        raise DataError(problems)
    return frame


def _dangling(units: pd.DataFrame, drugs: pd.DataFrame, structures: pd.DataFrame,
              relations: pd.DataFrame) -> list[str]:
    warnings = []
    no_structure = ~relations["dosageStructureCode"].map(str).isin(set(structures["code"]))
    if no_structure.any():
        codes = relations.loc[no_structure, "dosageStructureCode"].nunique()
        warnings.append(f"{source.RELATIONS_FILE}: {int(no_structure.sum())} relation(s) to {codes} structure "
                        f"code(s) missing from {source.STRUCTURES_FILE}, kept")
    no_drug = ~relations["drugId"].isin(set(drugs["drugId"]))
    if no_drug.any():
        warnings.append(f"{source.RELATIONS_FILE}: {int(no_drug.sum())} relation(s) to drug id(s) missing from "
                        f"{source.DRUGS_FILE}, kept")
    no_unit = ~drugs["dosageUnitCode"].isin(set(units["code"]))
    if no_unit.any():
        warnings.append(f"{source.DRUGS_FILE}: {int(no_unit.sum())} drug(s) with a dosage unit code missing from "
                        f"{source.UNITS_FILE}, kept")
    return warnings


def _date(value: str) -> date:
    return datetime.strptime(value, "%Y-%m-%d").date()
