"""An independent reading of the published reference releases, to compare the database with.

Deliberately not the register's parser: plain `json`, the two encodings the releases use, and the table
shapes of FORMATS.md §2 written out by hand.
"""

import json
from pathlib import Path
from typing import Any

from tests.conftest import SHARED_DATA

DATA = SHARED_DATA / "doseringsforslag"
COLUMNS = {
    "DosageVersion": ["releaseNumber", "releaseDate", "lmsDate", "daDate"],
    "DosageUnit": ["releaseNumber", "code", "textSingular", "textPlural"],
    "DosageDrug": ["releaseNumber", "drugId", "drugName", "dosageUnitCode"],
    "DosageStructure": ["releaseNumber", "code", "type", "simpleString", "supplementaryText", "xml",
                        "shortTranslation", "longTranslation"],
    "DrugDosageStructureRelation": ["releaseNumber", "id", "drugId", "dosageStructureCode"],
}


def document(directory: Path, name: str) -> Any:
    raw = (directory / name).read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode("iso-8859-1")
    return json.loads(text)


def expected_rows(directory: Path) -> dict[str, set[tuple[Any, ...]]]:
    """Each table's rows as the release's files define them (relation pairs once)."""
    version = document(directory, "DosageVersion.json")["version"]
    units = document(directory, "DosageUnits.json")["dosageUnits"]
    drugs = document(directory, "Drugs.json")["drugs"]
    structures = document(directory, "DosageStructures.json")["dosageStructures"]
    relations = document(directory, "DrugsDosageStructures.json")["drugsDosageStructures"]
    return {
        "DosageVersion": {tuple(version[c] for c in COLUMNS["DosageVersion"])},
        "DosageUnit": {tuple(u[c] for c in COLUMNS["DosageUnit"]) for u in units},
        "DosageDrug": {tuple(d[c] for c in COLUMNS["DosageDrug"]) for d in drugs},
        "DosageStructure": {
            (s["releaseNumber"], str(s["code"]), s["type"], s.get("simpleString"), s.get("supplementaryText"),
             s["xml"], s.get("shortTranslation"), s.get("longTranslation"))
            for s in structures
        },
        "DrugDosageStructureRelation": {
            (r["releaseNumber"], f"{r['drugId']}-{r['dosageStructureCode']}", r["drugId"], r["dosageStructureCode"])
            for r in relations
        },
    }
