"""Conformance kit of the doseringsforslag register, and small releases for its own tests."""

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.kit import BadDataset

XML = "<b:DosageStructure><b:DosageQuantityValue>1</b:DosageQuantityValue></b:DosageStructure>"


def release_files(number: int, release_date: str = "2026-01-05") -> dict[str, dict[str, Any]]:
    """The five documents of a small, valid release: two units, two drugs, two structures, three relations."""
    return {
        "DosageVersion.json": {"version": {"releaseNumber": number, "releaseDate": release_date,
                                           "lmsDate": "2000-01-01", "daDate": "2000-01-01"}},
        "DosageUnits.json": {"dosageUnits": [
            {"releaseNumber": number, "code": 1, "textSingular": "tablet", "textPlural": "tabletter"},
            {"releaseNumber": number, "code": 2, "textSingular": "øjendråbe", "textPlural": "øjendråber"},
        ]},
        "Drugs.json": {"drugs": [
            {"releaseNumber": number, "drugId": 28100009555, "drugName": "Kemadrin", "dosageUnitCode": 1},
            {"releaseNumber": number, "drugId": 28100010554, "drugName": f"Ventoline {number}", "dosageUnitCode": 2},
        ]},
        "DosageStructures.json": {"dosageStructures": [
            {"releaseNumber": number, "code": 1, "type": "M+M+A+N", "simpleString": "1", "xml": XML,
             "shortTranslation": "1 tablet morgen", "longTranslation": "Daglig 1 tablet morgen"},
            {"releaseNumber": number, "code": 2, "type": "PN", "xml": XML, "supplementaryText": "ved anfald",
             "longTranslation": "Efter behov 2 øjendråber"},
        ]},
        "DrugsDosageStructures.json": {"drugsDosageStructures": [
            {"releaseNumber": number, "drugId": 28100009555, "dosageStructureCode": 1},
            {"releaseNumber": number, "drugId": 28100010554, "dosageStructureCode": 2},
            {"releaseNumber": number, "drugId": 28100010554, "dosageStructureCode": 1},
        ]},
    }


def write_release(directory: Path, documents: dict[str, Any], *, encoding: str = "utf-8",
                  raw: dict[str, bytes] | None = None) -> Path:
    """Write documents as JSON (None drops a file); `raw` replaces a file's bytes outright."""
    directory.mkdir(parents=True, exist_ok=True)
    for name, document in documents.items():
        if document is not None:
            text = json.dumps(document, ensure_ascii=False, indent=1)
            (directory / name).write_bytes(text.encode(encoding))
    for name, data in (raw or {}).items():
        (directory / name).write_bytes(data)
    return directory


def bad_releases(directory: Path, number: int) -> list[BadDataset]:
    """Each way a release must be refused (issue 4), with the rule and the location the refusal names."""
    bad: list[BadDataset] = []
    for name in release_files(number):
        documents: dict[str, Any] = release_files(number)
        documents[name] = None
        bad.append(BadDataset(write_release(directory / f"missing-{name}", documents), "missing-file", name))

    bad.append(BadDataset(
        write_release(directory / "malformed", release_files(number),
                      raw={"Drugs.json": b'{"drugs":[\n {"releaseNumber": 1, "drugId": 28100009555,,}\n]}'}),
        "malformed-json", "Drugs.json:2",
    ))

    wrong_type = release_files(number)
    wrong_type["Drugs.json"]["drugs"][1]["drugId"] = "28100010554"
    bad.append(BadDataset(write_release(directory / "wrong-type", wrong_type), "wrong-type", "drugs[1].drugId"))

    other_release = release_files(number)
    other_release["DosageUnits.json"]["dosageUnits"][1]["releaseNumber"] = number - 1
    bad.append(BadDataset(write_release(directory / "other-release", other_release),
                          "release-number", "dosageUnits[1].releaseNumber"))

    long_xml = release_files(number)
    long_xml["DosageStructures.json"]["dosageStructures"][1]["xml"] = "<x>" + "æ" * 9994 + "</x>"  # 10,001 chars
    bad.append(BadDataset(write_release(directory / "long-xml", long_xml), "too-long", "dosageStructures[1].xml"))

    empty = release_files(number)
    empty["DosageStructures.json"] = {"dosageStructures": []}
    bad.append(BadDataset(write_release(directory / "empty", empty), "empty-root-array", "DosageStructures.json"))
    return bad


@dataclass
class DoseringsforslagKit:
    environ: dict[str, str] = field(default_factory=dict)

    def datasets(self, directory: Path) -> list[Path]:
        return [
            write_release(directory / "release-001", release_files(1, "2026-01-05")),
            # Latin-1, as real releases 27 and 29 are, and a later release number.
            write_release(directory / "release-002", release_files(2, "2026-02-16"), encoding="iso-8859-1"),
        ]

    def bad_datasets(self, directory: Path) -> list[BadDataset]:
        return bad_releases(directory, 3)

    def half_written(self, directory: Path) -> list[Path]:
        # A directory whose last file has not arrived yet, and a ZIP cut short (its central directory, at the end,
        # is missing): neither may be recognised before the rest is there.
        documents: dict[str, Any] = release_files(3)
        documents["DrugsDosageStructures.json"] = None
        partial = write_release(directory / "release-003", documents)
        complete = write_release(directory / "zip-source", release_files(3))
        archive = Path(shutil.make_archive(str(directory / "release-003"), "zip", complete))
        archive.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
        return [partial, archive]


KIT = DoseringsforslagKit()
