"""The published releases 11, 14, 27 and 29 replayed through the real command line, on SQLite and MariaDB."""

from pathlib import Path

import sqlalchemy as sa

from importer.load.temporal import OPEN_END
from registers.doseringsforslag import REGISTER
from registers.doseringsforslag.query import proposals_for_drug
from tests.conftest import Databases, run_cli
from tests.kit import normalise, row_set
from tests.registers.doseringsforslag.reference import COLUMNS, DATA, document, expected_rows

RELEASES = ["release-011-v1", "release-014-v1", "release-027-v1", "release-029-v1"]
TABLES = [spec.name for spec in REGISTER.tables]


def test_replaying_the_published_releases_leaves_release_29_open_and_all_history_closed(
    databases: Databases, tmp_path: Path
) -> None:
    drops = tmp_path / "drops"
    drops.mkdir()
    for name in RELEASES:
        (drops / name).symlink_to(DATA / name, target_is_directory=True)

    replayed = run_cli("replay", "doseringsforslag", str(drops), env=databases.environ(), timeout=300)
    assert replayed.exit_code == 0, replayed.stderr
    assert "release gap: 27 -> 29" in replayed.stdout
    assert "release 29 is dated 2016-07-18, before release 27's validity" in replayed.stdout

    latest = expected_rows(DATA / "release-029-v1")
    open_end = normalise(OPEN_END)
    for which in ("production", "preflight"):
        for table in TABLES:
            rows = databases.rows(which, table)
            open_rows = [row for row in rows if normalise(row["ValidTo"]) == open_end]
            assert row_set(open_rows, COLUMNS[table]) == latest[table], (which, table)
            closed = [row for row in rows if normalise(row["ValidTo"]) != open_end]
            assert {normalise(row["releaseNumber"]) for row in closed} == {11, 14, 27}, (which, table)
            assert all(normalise(row["ValidFrom"]) <= normalise(row["ValidTo"]) for row in rows), (which, table)

    version_rows = databases.rows("production", "DosageVersion", order_by="releaseNumber")
    assert [(normalise(r["releaseNumber"]), normalise(r["ValidFrom"]), normalise(r["ValidTo"]))
            for r in version_rows] == [
        (11, "2013-11-22 00:00:00", "2014-02-21 00:00:00"),
        (14, "2014-02-21 00:00:00", "2017-07-13 00:00:00"),
        (27, "2017-07-13 00:00:00", "2017-07-13 00:00:00"),  # release 29's date is earlier: never inverted
        (29, "2017-07-13 00:00:00", open_end),
    ]
    status = databases.rows("production", REGISTER.status_table_name, order_by="Id")
    assert [(row["DatasetVersion"], row["Outcome"]) for row in status] == [
        ("11", "SUCCESS"), ("14", "SUCCESS"), ("27", "SUCCESS"), ("29", "SUCCESS")]
    assert "72 relation(s) to 72 structure code(s) missing" in status[-1]["Message"]
    assert "286 repeated drug/structure pair(s)" in status[-1]["Message"]

    _query_answers_from_release_29(databases)

    before = databases.production_rows(REGISTER)
    for stale, rule in (("release-029-v1", "same-release"), ("release-014-v1", "older-release")):
        refused = run_cli("import", "doseringsforslag", str(DATA / stale), env=databases.environ())
        assert refused.exit_code == 1, refused.stderr
        assert rule in refused.stderr
        assert databases.production_rows(REGISTER) == before  # refused in preflight: production never saw it


def _query_answers_from_release_29(databases: Databases) -> None:
    drugs = document(DATA / "release-029-v1", "Drugs.json")["drugs"]
    relations = document(DATA / "release-029-v1", "DrugsDosageStructures.json")["drugsDosageStructures"]
    structures = {s["code"]: s for s in document(DATA / "release-029-v1", "DosageStructures.json")["dosageStructures"]}
    units = {u["code"]: u for u in document(DATA / "release-029-v1", "DosageUnits.json")["dosageUnits"]}
    drug = next(d for d in drugs if sum(r["drugId"] == d["drugId"] for r in relations) >= 3)
    codes = sorted({r["dosageStructureCode"] for r in relations if r["drugId"] == drug["drugId"]} & set(structures))

    engine = sa.create_engine(databases.production_url)
    try:
        with engine.connect() as connection:
            answer = proposals_for_drug(connection, drug["drugId"])
            assert proposals_for_drug(connection, 99999999999) is None
    finally:
        engine.dispose()
    assert answer is not None
    assert (answer.release_number, answer.drug_name, answer.unit_code) == (29, drug["drugName"],
                                                                          drug["dosageUnitCode"])
    assert (answer.unit_singular, answer.unit_plural) == (units[drug["dosageUnitCode"]]["textSingular"],
                                                          units[drug["dosageUnitCode"]]["textPlural"])
    assert [p.code for p in answer.proposals] == [str(code) for code in codes]
    for proposal in answer.proposals:
        published = structures[int(proposal.code)]
        assert (proposal.type, proposal.xml, proposal.short_translation, proposal.long_translation) == (
            published["type"], published["xml"], published.get("shortTranslation"), published.get("longTranslation"))
