"""Importing the reference releases through the pipeline, on SQLite and MariaDB."""

from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from importer.errors import DataError
from importer.load.pipeline import Pipeline
from importer.load.temporal import OPEN_END
from registers.doseringsforslag import REGISTER
from registers.doseringsforslag.query import DrugProposals, proposals_for_drug
from tests.conftest import Databases
from tests.kit import normalise, row_set
from tests.registers.doseringsforslag.kit import bad_releases, release_files, write_release
from tests.registers.doseringsforslag.reference import COLUMNS, DATA, document, expected_rows

TABLES = [spec.name for spec in REGISTER.tables]


def is_open(row: dict[str, Any]) -> bool:
    return bool(normalise(row["ValidTo"]) == normalise(OPEN_END))


@pytest.fixture
def pipeline(databases: Databases) -> Any:
    pipeline = Pipeline(databases.settings())
    yield pipeline
    pipeline.close()


def test_the_single_test_release_stores_exactly_the_original_importers_values(
    databases: Databases, pipeline: Pipeline
) -> None:
    pipeline.import_dataset(REGISTER, DATA / "sdm4-test-single")

    for which in ("preflight", "production"):
        (version,) = databases.rows(which, "DosageVersion")
        assert normalise(version["releaseNumber"]) == 125
        assert [normalise(version[c]) for c in ("releaseDate", "lmsDate", "daDate")] == [
            "2011-02-15", "2011-02-02", "2011-01-24"]
        assert normalise(version["ValidFrom"]) == "2011-02-15 00:00:00"

        (unit,) = databases.rows(which, "DosageUnit")
        assert (normalise(unit["code"]), unit["textSingular"], unit["textPlural"]) == (8, "brusetablet",
                                                                                       "brusetabletter")
        (drug,) = databases.rows(which, "DosageDrug")
        assert (normalise(drug["drugId"]), drug["drugName"], normalise(drug["dosageUnitCode"])) == (
            28100009555, "Kemadrin", 53)

        (structure,) = databases.rows(which, "DosageStructure")
        assert structure["code"] == "3"
        assert structure["type"] == "M+M+A+N"
        assert structure["simpleString"] == "0.5"
        assert structure["shortTranslation"] == "1/2 tablet morgen"
        assert structure["longTranslation"] == "Daglig 1/2 tablet morgen"
        assert structure["supplementaryText"] is None
        published = document(DATA / "sdm4-test-single", "DosageStructures.json")["dosageStructures"][0]["xml"]
        assert structure["xml"].encode("utf-8") == published.encode("utf-8")
        assert structure["xml"].startswith("<b:DosageStructure\n   xsi:schemaLocation=")

        (relation,) = databases.rows(which, "DrugDosageStructureRelation")
        assert (relation["id"], normalise(relation["drugId"]), normalise(relation["dosageStructureCode"])) == (
            "28100009555-30", 28100009555, 30)

    (status,) = databases.rows("production", REGISTER.status_table_name)
    assert status["Outcome"] == "SUCCESS" and status["DatasetVersion"] == "125"
    # Structure 30 is not in the release and unit 53 is not either: both kept, both reported.
    assert status["Warnings"] == 2
    assert "1 relation(s) to 1 structure code(s) missing" in status["Message"]
    assert "dosage unit code missing" in status["Message"]


def test_the_multiple_test_release_gives_the_published_counts(databases: Databases, pipeline: Pipeline) -> None:
    summary = pipeline.import_dataset(REGISTER, DATA / "sdm4-test-multiple")

    counts = {table: len(databases.rows("production", table)) for table in TABLES}
    assert counts == {"DosageVersion": 1, "DosageUnit": 21, "DosageDrug": 3710, "DosageStructure": 587,
                      "DrugDosageStructureRelation": 8986}
    assert any("293 repeated drug/structure pair(s)" in warning for warning in summary.warnings)
    for table, expected in expected_rows(DATA / "sdm4-test-multiple").items():
        assert row_set(databases.rows("production", table), COLUMNS[table]) == expected, table


def test_every_bad_release_is_refused_and_production_is_unchanged(
    databases: Databases, pipeline: Pipeline, tmp_path: Path
) -> None:
    pipeline.import_dataset(REGISTER, write_release(tmp_path / "release-001", release_files(1)))
    before = databases.production_rows(REGISTER)

    bad = bad_releases(tmp_path / "bad", 2)
    assert {b.rule for b in bad} == {"missing-file", "malformed-json", "wrong-type", "release-number", "too-long",
                                     "empty-root-array"}
    for dataset in bad:
        with pytest.raises(DataError) as refused:
            pipeline.import_dataset(REGISTER, dataset.path)
        assert dataset.rule in str(refused.value) and dataset.where in str(refused.value), str(refused.value)
        assert databases.production_rows(REGISTER) == before


def test_a_release_dated_before_its_predecessor_starts_when_the_predecessor_did(
    databases: Databases, pipeline: Pipeline, tmp_path: Path
) -> None:
    pipeline.import_dataset(REGISTER, write_release(tmp_path / "r1", release_files(1, "2017-07-13")))
    summary = pipeline.import_dataset(REGISTER, write_release(tmp_path / "r3", release_files(3, "2016-07-18")))

    assert summary.valid_from.isoformat() == "2017-07-13T00:00:00"
    assert any("release gap: 1 -> 3" in warning for warning in summary.warnings)
    assert any("dated 2016-07-18, before release 1's validity" in warning for warning in summary.warnings)
    for table in TABLES:
        rows = databases.rows("production", table)
        assert all(normalise(row["ValidFrom"]) <= normalise(row["ValidTo"]) for row in rows), table
        assert {normalise(row["releaseNumber"]) for row in rows if is_open(row)} == {3}, table
    status = databases.rows("production", REGISTER.status_table_name, order_by="Id")
    assert [row["Warnings"] for row in status] == [0, 2]
    assert "release gap" in status[-1]["Message"]


def test_the_query_answers_what_the_release_has_even_when_its_references_dangle(
    databases: Databases, pipeline: Pipeline
) -> None:
    pipeline.migrate()
    engine = sa.create_engine(databases.production_url)
    try:
        with engine.connect() as connection:
            assert proposals_for_drug(connection, 28100009555) is None  # nothing imported yet
        pipeline.import_dataset(REGISTER, DATA / "sdm4-test-single")
        with engine.connect() as connection:
            answer = proposals_for_drug(connection, 28100009555)
    finally:
        engine.dispose()
    # Unit 53 and structure 30 are not in the release: the drug is still answered, with what exists.
    assert answer == DrugProposals(release_number=125, drug_id=28100009555, drug_name="Kemadrin", unit_code=53,
                                   unit_singular=None, unit_plural=None, proposals=[])
