"""The pipeline's bookkeeping: status rows, transaction times, validation, preflight re-synchronisation."""

import os
import pickle
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import sqlalchemy as sa

from importer.errors import DataError, InfrastructureError
from importer.load import inbox
from importer.load.pipeline import Pipeline
from importer.load.snapshot import Snapshot, SnapshotStore
from importer.load.temporal import OpenState
from registers.autorisation import REGISTER
from tests.conftest import Databases
from tests.registers.autorisation.kit import FIRST, SECOND, write_dump


class FrozenClock:
    """Every run at the same wall-clock second: transaction times must still increase."""

    def __init__(self, moment: datetime) -> None:
        self.moment = moment

    def now(self) -> datetime:
        return self.moment


def history_without_pids(databases: Databases, which: str) -> list[tuple[Any, ...]]:
    rows = databases.rows(which, "Autorisation2")
    return sorted(tuple(str(v) for k, v in row.items() if k != "AutorisationPID") for row in rows)


def test_status_rows_record_each_run(databases: Databases, tmp_path: Path) -> None:
    pipeline = Pipeline(databases.settings())
    try:
        summary = pipeline.import_dataset(REGISTER, write_dump(tmp_path, "20261120AutDK.csv", FIRST))
        with pytest.raises(DataError):
            pipeline.import_dataset(REGISTER, write_dump(tmp_path, "20261119AutDK.csv", FIRST))
    finally:
        pipeline.close()

    production, refused = databases.rows("production", "autorisationimporterImportStatus", order_by="Id")
    assert production["Outcome"] == "SUCCESS"
    assert production["RunId"] == summary.run_id
    assert production["Dataset"] == "20261120AutDK.csv"
    assert production["DatasetVersion"] == "20261120"
    assert '"20261120AutDK.csv": "' in production["InputFiles"]
    assert (production["RowsRead"], production["RowsInserted"], production["RowsClosed"]) == (3, 3, 0)
    assert production["EndTime"] is not None

    # The refused run is recorded in production too, though it never got there: every run has its row.
    assert (refused["Outcome"], refused["Dataset"]) == ("FAILURE", "20261119AutDK.csv")
    assert refused["Message"].startswith("refused (older-date): 20261119AutDK.csv: older-date:")
    assert refused["EndTime"] is not None

    preflight = databases.rows("preflight", "autorisationimporterImportStatus", order_by="Id")
    assert [row["Outcome"] for row in preflight] == ["SUCCESS", "FAILURE"]
    assert "older-date" in preflight[1]["Message"]
    assert preflight[1]["RunId"] == refused["RunId"]


def test_a_dataset_refused_while_parsing_leaves_a_failure_row_in_both_databases(
    databases: Databases, tmp_path: Path
) -> None:
    pipeline = Pipeline(databases.settings())
    try:
        pipeline.import_dataset(REGISTER, write_dump(tmp_path, "20261120AutDK.csv", FIRST))
        bad = write_dump(tmp_path, "20261121AutDK.csv", [FIRST[0], "0C3D4;0202851234;X;5166"])  # a column short
        with pytest.raises(DataError):
            pipeline.import_dataset(REGISTER, bad)
    finally:
        pipeline.close()
    for which in ("preflight", "production"):
        rows = databases.rows(which, "autorisationimporterImportStatus", order_by="Id")
        assert [row["Outcome"] for row in rows] == ["SUCCESS", "FAILURE"], which
        failure = rows[1]
        assert failure["Dataset"] == "20261121AutDK.csv" and failure["EndTime"] is not None
        assert failure["Message"].startswith("refused (column-count): 20261121AutDK.csv:2: column-count:"), failure
        assert "0202851234" not in failure["Message"]
        assert failure["TransactionTime"] is None  # nothing was written under it


def test_transaction_times_strictly_increase_within_one_second(databases: Databases, tmp_path: Path) -> None:
    pipeline = Pipeline(databases.settings(), clock=FrozenClock(datetime(2026, 11, 22, 12, 0, 0)))
    try:
        first = pipeline.import_dataset(REGISTER, write_dump(tmp_path, "20261120AutDK.csv", FIRST))
        second = pipeline.import_dataset(REGISTER, write_dump(tmp_path, "20261121AutDK.csv", SECOND))
    finally:
        pipeline.close()
    assert first.transaction_time == datetime(2026, 11, 22, 12, 0, 0)
    assert (second.transaction_time - first.transaction_time).total_seconds() == 1
    rows = databases.rows("production", "Autorisation2")
    stamps = {str(row["ModifiedDate"]) for row in rows}
    assert stamps == {"2026-11-22 12:00:00", "2026-11-22 12:00:01"}


def test_validate_rolls_back_everywhere(databases: Databases, tmp_path: Path) -> None:
    pipeline = Pipeline(databases.settings())
    try:
        pipeline.import_dataset(REGISTER, write_dump(tmp_path, "20261120AutDK.csv", FIRST))
        before = {which: history_without_pids(databases, which) for which in ("preflight", "production")}
        summary = pipeline.import_dataset(
            REGISTER, write_dump(tmp_path, "20261121AutDK.csv", SECOND), validate_only=True
        )
        assert not summary.committed
        assert (summary.counts.inserted, summary.counts.updated, summary.counts.closed) == (1, 1, 1)
        assert {which: history_without_pids(databases, which) for which in before} == before
        # What was only validated can still be imported.
        assert pipeline.import_dataset(REGISTER, write_dump(tmp_path, "20261121AutDK.csv", SECOND)).committed
    finally:
        pipeline.close()


def test_preflight_is_resynchronised_when_production_failed_after_it(
    databases: Databases, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pipeline = Pipeline(databases.settings())
    second = write_dump(tmp_path, "20261121AutDK.csv", SECOND)
    try:
        pipeline.import_dataset(REGISTER, write_dump(tmp_path, "20261120AutDK.csv", FIRST))

        real_load = pipeline._load

        def production_fails(engine: Any, database: str, *args: Any, **kwargs: Any) -> Any:
            if database == "production":
                raise InfrastructureError("simulated: production went away after preflight committed")
            return real_load(engine, database, *args, **kwargs)

        monkeypatch.setattr(pipeline, "_load", production_fails)
        with pytest.raises(InfrastructureError):
            pipeline.import_dataset(REGISTER, second)
        assert history_without_pids(databases, "preflight") != history_without_pids(databases, "production")

        monkeypatch.setattr(pipeline, "_load", real_load)
        summary = pipeline.import_dataset(REGISTER, second)  # would be refused as "same date" without re-sync
        assert summary.counts.updated == 1
    finally:
        pipeline.close()

    assert history_without_pids(databases, "preflight") == history_without_pids(databases, "production")
    preflight_status = databases.rows("preflight", "autorisationimporterImportStatus", order_by="Id")
    assert [row["Outcome"] for row in preflight_status] == ["SUCCESS", "REVERTED", "SUCCESS"]
    snapshots = [
        sorted(
            (r["aut_id"], r["cpr"], r["given_name"], r["surname"], r["edu_id"]) for r in databases.rows(w, "autreg2")
        )
        for w in ("preflight", "production")
    ]
    assert snapshots[0] == snapshots[1]
    assert [row[0] for row in snapshots[1]] == ["09YM8", "0A1B2", "1G7H8"]


def test_production_edited_behind_the_importers_back_is_resynchronised_not_diverged(
    databases: Databases, tmp_path: Path
) -> None:
    """The snapshot and preflight agree, production does not (a hand edit): production wins, once."""
    pipeline = Pipeline(databases.settings())
    try:
        pipeline.import_dataset(REGISTER, write_dump(tmp_path, "20261120AutDK.csv", FIRST))
        engine = sa.create_engine(databases.production_url)
        with engine.begin() as connection:  # someone closes an authorisation by hand
            connection.execute(sa.text("UPDATE Autorisation2 SET ValidTo = '2026-11-20 12:00:00' "
                                       "WHERE Autorisationsnummer = '0C3D4'"))
        engine.dispose()
        summary = pipeline.import_dataset(REGISTER, write_dump(tmp_path, "20261121AutDK.csv", SECOND))
    finally:
        pipeline.close()
    # Against production's own history 0C3D4 was already closed, so the retried import closes nothing more.
    assert (summary.counts.inserted, summary.counts.updated, summary.counts.closed) == (1, 1, 0)
    assert history_without_pids(databases, "preflight") == history_without_pids(databases, "production")
    preflight_status = databases.rows("preflight", "autorisationimporterImportStatus", order_by="Id")
    assert [row["Outcome"] for row in preflight_status][-2:] == ["REVERTED", "SUCCESS"]


def test_a_snapshot_is_only_used_for_the_databases_and_state_it_was_taken_from(
    databases: Databases, tmp_path: Path
) -> None:
    pipeline = Pipeline(databases.settings())
    try:
        summary = pipeline.import_dataset(REGISTER, write_dump(tmp_path, "20261120AutDK.csv", FIRST))
        assert pipeline.snapshots.load(REGISTER.name, summary.transaction_time) is not None
        assert pipeline.snapshots.load(REGISTER.name, datetime(2000, 1, 1)) is None
    finally:
        pipeline.close()
    other = Pipeline(databases.settings(STAMDATA_PRODUCTION_URL=databases.preflight_url))
    again = Pipeline(databases.settings())
    try:
        assert other.snapshots.load(REGISTER.name, summary.transaction_time) is None
        loaded = again.snapshots.load(REGISTER.name, summary.transaction_time)  # from disk this time
        assert loaded is not None
        (state,) = loaded.open_state.values()
        assert sorted(state.key_frame(np.arange(len(state)))["Autorisationsnummer"]) == ["09YM8", "0A1B2", "0C3D4"]
    finally:
        other.close()
        again.close()


def test_a_corrupt_or_foreign_snapshot_is_ignored_and_the_delta_read_from_the_database(
    databases: Databases, tmp_path: Path
) -> None:
    pipeline = Pipeline(databases.settings())
    try:
        pipeline.import_dataset(REGISTER, write_dump(tmp_path, "20261120AutDK.csv", FIRST))
    finally:
        pipeline.close()
    (snapshot,) = (databases.inbox.parent / "state").glob("autorisation.snapshot*")
    # A pickle that would run code if it were unpickled, then plain garbage: neither is ever executed or trusted.
    snapshot.write_bytes(pickle.dumps(os.system) + b"garbage")
    pipeline = Pipeline(databases.settings())
    try:
        summary = pipeline.import_dataset(REGISTER, write_dump(tmp_path, "20261121AutDK.csv", SECOND))
    finally:
        pipeline.close()
    assert (summary.counts.inserted, summary.counts.updated, summary.counts.closed) == (1, 1, 1)
    assert history_without_pids(databases, "production") == history_without_pids(databases, "preflight")


def test_snapshot_keys_of_every_kind_survive_the_file_format(tmp_path: Path) -> None:
    state = OpenState({"releaseNumber": np.array([29, 30], dtype=object), "code": np.array(["a", "bé"], dtype=object),
                       "id": np.array([b"0A1B2", b"09YM8"])}, np.array([1, 2**64 - 1], dtype=np.uint64))
    store = SnapshotStore(tmp_path, "databases")
    store.save("r", Snapshot("databases", datetime(2026, 11, 20, 12), {"T": state}))
    loaded = SnapshotStore(tmp_path, "databases").load("r", datetime(2026, 11, 20, 12))
    assert loaded is not None
    (table, again), = loaded.open_state.items()
    assert table == "T" and again.digests.tolist() == state.digests.tolist()
    assert {column: values.tolist() for column, values in again.keys.items()} == {
        column: values.tolist() for column, values in state.keys.items()}
    assert (tmp_path / "r.snapshot.npz").stat().st_mode & 0o777 == 0o600


def test_unreachable_database_is_an_infrastructure_error(tmp_path: Path) -> None:
    databases = Databases(
        "mariadb",
        "mysql+pymysql://root@127.0.0.1:1/nowhere",
        "mysql+pymysql://root@127.0.0.1:1/nowhere",
        tmp_path / "inbox",
    )
    with pytest.raises(InfrastructureError):
        Pipeline(databases.settings()).import_dataset(REGISTER, write_dump(tmp_path, "20261120AutDK.csv", FIRST))


def test_half_written_snapshots_of_killed_writers_are_removed(tmp_path: Path) -> None:
    dead = tmp_path / f".autorisation.snapshot.npz.tmp{2**22 + 1}"  # above the kernel's pid_max: no such process
    alive = tmp_path / f".autorisation.snapshot.npz.tmp{os.getppid()}"
    for temporary in (dead, alive):
        temporary.write_bytes(b"half")
    SnapshotStore(tmp_path, "databases")
    assert not dead.exists() and alive.exists()


def test_already_imported_is_decided_by_the_entrys_digest_without_parsing(
    databases: Databases, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pipeline = Pipeline(databases.settings())
    try:
        dump = write_dump(tmp_path / "drop", "20261120AutDK.csv", FIRST)
        pipeline.import_dataset(REGISTER, dump)

        def no_parsing(*_: object) -> None:
            raise AssertionError("parsed again")

        monkeypatch.setattr(type(REGISTER), "parse", no_parsing)
        assert pipeline.already_imported(REGISTER, dump, inbox.entry_files(dump))
        changed = write_dump(tmp_path / "again", "20261120AutDK.csv", SECOND)  # same name, other content
        assert not pipeline.already_imported(REGISTER, changed, inbox.entry_files(changed))
    finally:
        pipeline.close()
    (row,) = databases.rows("production", "autorisationimporterImportStatus")
    assert row["DatasetDigest"] == inbox.entry_digest(inbox.entry_files(dump))
