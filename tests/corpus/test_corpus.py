"""The corpus of malformed datasets (tests/corpus/cases.py) through the real command line, on SQLite and MariaDB.

Per backend and register the baseline is imported once; then every case must be refused: exit 1, the message on
stderr names the rule, the dataset (its inbox entry) and the location (file, and line where there is one),
production is exactly as it was (a refusal adds only its FAILURE status row), and no CPR number appears unmasked
in any output.
"""

from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from importer.cli import app
from importer.load.plugin import discover
from tests.conftest import Databases
from tests.corpus.cases import BASELINES, CASES, CPR_PREFIX, Case, good_next, good_next_v2

REGISTERS = discover()


def invoke(databases: Databases, *args: str, env: dict[str, str] | None = None) -> Any:
    return CliRunner().invoke(app, list(args), env=databases.environ(**(env or {})), catch_exceptions=False)


def unmasked_cpr(text: str) -> bool:
    return CPR_PREFIX in text.replace("-****", "")


def test_the_corpus_is_large_and_covers_every_form() -> None:
    autorisation, dosering = CASES["autorisation"], CASES["doseringsforslag"]
    assert len(autorisation) >= 35 and len(dosering) >= 25 and len(autorisation) + len(dosering) >= 60
    assert {case.form for case in dosering} >= {"v1", "v1-zip", "v2", "v2-zip", "other"}
    for cases in (autorisation, dosering):
        names = [case.name for case in cases]
        assert len(names) == len(set(names)), "every case has its own name"


@pytest.mark.parametrize("register", sorted(CASES))
def test_every_malformed_dataset_is_refused_with_its_rule_and_location(
    register: str, databases: Databases, tmp_path: Path
) -> None:
    baseline = BASELINES[register](tmp_path / "baseline")
    result = invoke(databases, "import", register, str(baseline))
    assert result.exit_code == 0, result.output
    before = databases.production_rows(REGISTERS[register])

    failures: list[str] = []
    refused = 0
    for number, case in enumerate(CASES[register]):
        problem = _refusal_problem(databases, register, case, tmp_path / f"case{number:03d}")
        if problem:
            failures.append(f"{case.name}: {problem}")
        else:
            refused += 1
    assert not failures, "\n".join(failures)

    # A refusal never removes anything, so whatever one had written would still be here: compared once, at the
    # end (once per case would double the test's time on MariaDB); a SUCCESS status row would name the culprit.
    after = databases.production_rows(REGISTERS[register])
    status = REGISTERS[register].status_table_name
    assert [row["Dataset"] for row in after[status]] == [baseline.name], "a malformed dataset was imported"
    assert after == before, "production changed"

    # Each refusal left its FAILURE row (naming its rule), without a CPR in it.
    failed = databases.failed_runs("production", REGISTERS[register])
    assert len(failed) == refused
    for case, row in zip(CASES[register], failed, strict=True):
        assert case.rule in row["Message"] and not unmasked_cpr(row["Message"]), (case.name, row["Message"])

    # The corpus proves something only if the same register then accepts the untouched next dataset.
    for good in [good_next(register, tmp_path / "good")] + (
            [good_next_v2(tmp_path / "good-v2")] if register == "doseringsforslag" else []):
        result = invoke(databases, "validate", register, str(good))
        assert result.exit_code == 0, result.output


def _refusal_problem(databases: Databases, register: str, case: Case, directory: Path) -> str | None:
    path = case.make(directory)
    result = invoke(databases, "import", register, str(path), env=case.env)
    output = result.stdout + result.stderr
    if result.exit_code != 1:
        return f"exit {result.exit_code}, expected 1\n{output}"
    message = result.stderr
    if f"{case.rule}:" not in message:
        return f"the message does not name the rule {case.rule}:\n{message}"
    if case.where not in message:
        return f"the message does not name {case.where}:\n{message}"
    missing = [text for text in (path.name, *case.also) if text not in message]  # the inbox entry, always
    if missing:
        return f"the message does not name {missing}:\n{message}"
    if "Traceback" in output:
        return f"a traceback:\n{output}"
    if unmasked_cpr(output):
        return f"an unmasked CPR number:\n{output}"
    return None
