"""The contract every register must honour, run on every register the entry points discover.

A register without a conformance kit (`tests/registers/<name>/kit.py`) fails here: a new register is
not done until it passes the same checks as the others.
"""

import importlib
from pathlib import Path
from typing import Any

import pytest

from importer.errors import DataError
from importer.load.pipeline import Pipeline
from importer.load.plugin import Register, discover
from importer.load.temporal import OPEN_END
from tests.conftest import Databases
from tests.kit import ConformanceKit, frame_set, row_set

REGISTERS = discover()


def kit_for(register: Register) -> ConformanceKit:
    module = importlib.import_module(f"tests.registers.{register.name}.kit")
    kit: ConformanceKit = module.KIT
    return kit


@pytest.fixture(params=sorted(REGISTERS))
def register(request: pytest.FixtureRequest) -> Register:
    return REGISTERS[request.param]


def open_rows(databases: Databases, which: str, register: Register) -> dict[str, set[tuple[Any, ...]]]:
    result = {}
    for spec in register.tables:
        rows = [row for row in databases.rows(which, spec.name) if row["ValidTo"] in (OPEN_END, str(OPEN_END))]
        result[spec.name] = row_set(rows, spec.value_columns)
    return result


def test_every_discovered_register_has_a_conformance_kit(register: Register) -> None:
    assert kit_for(register) is not None
    assert register.tables, "a register owns at least one history table"
    assert register.status_table_name in register.metadata.tables


def test_round_trip_and_sequence(register: Register, databases: Databases, tmp_path: Path) -> None:
    kit = kit_for(register)
    first, second, *_ = kit.datasets(tmp_path / "good")
    assert register.recognise(first) is not None
    pipeline = Pipeline(databases.settings(**kit.environ))
    settings = pipeline.settings.for_register(register.name, register.settings_defaults)
    try:
        for dataset in (first, second):
            summary = pipeline.import_dataset(register, dataset)
            parsed = register.parse(dataset, settings)
            expected = {spec.name: frame_set(parsed.frames[spec.name], spec.value_columns) for spec in register.tables}
            assert open_rows(databases, "production", register) == expected
            assert open_rows(databases, "preflight", register) == expected
            assert summary.counts.rows_read == parsed.rows_read

        status = databases.rows("production", register.status_table_name, order_by="Id")
        assert [row["Outcome"] for row in status] == ["SUCCESS", "SUCCESS"]
        assert all(row["RunId"].startswith(f"{register.name}-") and row["InputFiles"] for row in status)

        before = databases.production_rows(register)
        for stale in (second, first):  # the same dataset again, then an older one
            with pytest.raises(DataError):
                pipeline.import_dataset(register, stale)
            assert databases.production_rows(register) == before
    finally:
        pipeline.close()


def test_bad_input_is_refused_with_its_location(register: Register, databases: Databases, tmp_path: Path) -> None:
    kit = kit_for(register)
    first = kit.datasets(tmp_path / "good")[0]
    pipeline = Pipeline(databases.settings(**kit.environ))
    try:
        pipeline.import_dataset(register, first)
        before = databases.production_rows(register)
        bad_datasets = kit.bad_datasets(tmp_path / "bad")
        assert bad_datasets, "a kit names at least one dataset to refuse"
        for number, bad in enumerate(bad_datasets, start=1):
            with pytest.raises(DataError) as refused:
                pipeline.import_dataset(register, bad.path)
            assert bad.rule in str(refused.value), str(refused.value)
            assert bad.where in str(refused.value), str(refused.value)
            assert databases.production_rows(register) == before
            # Each refusal is recorded, in both databases, with its rule.
            for which in ("preflight", "production"):
                failed = databases.failed_runs(which, register)
                assert len(failed) == number and bad.rule in failed[-1]["Message"], (which, failed[-1:])
    finally:
        pipeline.close()
