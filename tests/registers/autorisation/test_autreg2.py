"""autreg2, the token service's table of currently valid authorisations, follows Autorisation2 exactly."""

from pathlib import Path

import sqlalchemy as sa
import structlog

from importer.load.pipeline import Pipeline
from importer.load.temporal import OPEN_END
from registers.autorisation import REGISTER
from tests.conftest import Databases
from tests.registers.autorisation.kit import FIRST, SECOND, write_dump


def autreg2_and_open_rows(databases: Databases, which: str) -> tuple[list[tuple[str, ...]], list[tuple[str, ...]]]:
    autreg2 = sorted((r["cpr"], r["aut_id"], r["given_name"], r["surname"], r["edu_id"])
                     for r in databases.rows(which, "autreg2"))
    open_rows = sorted((r["CPR"], r["Autorisationsnummer"], r["Fornavn"], r["Efternavn"], r["UddannelsesKode"])
                       for r in databases.rows(which, "Autorisation2")
                       if str(r["ValidTo"]).startswith(str(OPEN_END.year)))
    return autreg2, open_rows


def test_an_autreg2_edited_by_hand_is_rebuilt_by_the_next_import(databases: Databases, tmp_path: Path) -> None:
    pipeline = Pipeline(databases.settings())
    try:
        pipeline.import_dataset(REGISTER, write_dump(tmp_path, "20261120AutDK.csv", FIRST))
        engine = sa.create_engine(databases.production_url)
        with engine.begin() as connection:  # someone removes the row of an authorisation the next dump changes
            connection.execute(sa.text("DELETE FROM autreg2 WHERE aut_id = '0A1B2'"))
        engine.dispose()
        with structlog.testing.capture_logs() as logs:
            summary = pipeline.import_dataset(REGISTER, write_dump(tmp_path, "20261121AutDK.csv", SECOND))
    finally:
        pipeline.close()
    assert (summary.counts.inserted, summary.counts.updated, summary.counts.closed) == (1, 1, 1)
    for which in ("preflight", "production"):
        autreg2, open_rows = autreg2_and_open_rows(databases, which)
        assert autreg2 == open_rows
        assert [row[1] for row in autreg2] == ["09YM8", "0A1B2", "1G7H8"]
    assert [log["event"] for log in logs if log["log_level"] == "warning"] == [
        "autreg2 was not in step with Autorisation2; rebuilt in full"
    ]
