"""Every kind of bad autorisation dump is refused through the CLI: exit 1, a message naming the rule (and the
line where there is one) on stderr, no unmasked CPR in it, and production exactly as it was."""

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from importer.cli import app
from registers.autorisation import REGISTER
from tests.conftest import Databases
from tests.registers.autorisation.kit import write_dump

BASE_DAY = "20261110"


def person(index: int) -> str:
    return f"{index:05d};{1000000000 + index:010d};Efternavn{index};Fornavn {index};7170"


BASELINE = [person(i) for i in range(150)]


@dataclass(frozen=True)
class Case:
    name: str
    make: Callable[[Path], Path]
    rule: str
    where: str


def dump(name: str, lines: list[str], **kwargs: Any) -> Callable[[Path], Path]:
    return lambda directory: write_dump(directory, name, lines, **kwargs)


def raw(name: str, content: bytes) -> Callable[[Path], Path]:
    def make(directory: Path) -> Path:
        directory.mkdir(parents=True, exist_ok=True)
        (directory / name).write_bytes(content)
        return directory / name

    return make


def two_files(directory: Path) -> Path:
    dataset = directory / "20261111-delivery"
    write_dump(dataset, "20261111AutDK.csv", BASELINE)
    write_dump(dataset, "20261111AutDK-copy.csv", BASELINE)
    return dataset


OK = BASELINE[:149]  # one removal: well within the reduction guard

CASES = [
    Case(
        "wrong column count",
        dump("20261111AutDK.csv", [*OK[:2], "00002;1000000002;A;B;7170;extra", *OK[3:]]),
        "column-count",
        "20261111AutDK.csv:3",
    ),
    Case(
        "bad cpr",
        dump("20261111AutDK.csv", [*OK[:4], "00004;10000000X4;A;B;7170", *OK[5:]]),
        "cpr",
        "20261111AutDK.csv:5",
    ),
    Case(
        "bad autorisationsnummer",
        dump("20261111AutDK.csv", [*OK[:1], "0a001;1000000001;A;B;7170", *OK[2:]]),
        "autorisationsnummer",
        "20261111AutDK.csv:2",
    ),
    Case(
        "bad education code",
        dump("20261111AutDK.csv", [*OK[:7], "00007;1000000007;A;B;71 0", *OK[8:]]),
        "uddannelseskode",
        "20261111AutDK.csv:8",
    ),
    Case(
        "over-long name",
        dump("20261111AutDK.csv", [*OK[:3], f"00003;1000000003;{'x' * 101};B;7170", *OK[4:]]),
        "name-length",
        "20261111AutDK.csv:4",
    ),
    Case("duplicate key", dump("20261111AutDK.csv", [*OK, OK[10]]), "duplicate-key", "20261111AutDK.csv:150"),
    Case("empty file", raw("20261111AutDK.csv", b""), "empty-file", "20261111AutDK.csv"),
    Case("blank line", dump("20261111AutDK.csv", [*OK[:20], "", *OK[20:]]), "blank-line", "20261111AutDK.csv:21"),
    Case(
        "undecodable bytes",
        raw("20261111AutDK.csv", ("\n".join(OK[:5]) + "\n00005;1000000005;A\x81;B;7170\n").encode("latin-1")),
        "encoding",
        "20261111AutDK.csv:6",
    ),
    Case(
        "invalid utf-8 after a BOM",
        raw("20261111AutDK.csv", b"\xef\xbb\xbf" + "\n".join(OK).encode() + b"\n\xff;"),
        "encoding",
        "20261111AutDK.csv:150",
    ),
    Case("bad date in the file name", dump("20261341AutDK.csv", OK), "file-name-date", "20261341AutDK.csv"),
    Case("file name without a date", dump("AutDK.csv", OK), "file-name", "AutDK.csv"),
    Case("same date again", dump(f"{BASE_DAY}AutDK-again.csv", OK), "same-date", f"{BASE_DAY}AutDK-again.csv"),
    Case("older date", dump("20261109AutDK.csv", OK), "older-date", "20261109AutDK.csv"),
    Case(
        "mass removal without --force", dump("20261111AutDK.csv", BASELINE[:40]), "reduction-guard", "20261111AutDK.csv"
    ),
    Case("a directory holding two files", two_files, "one-file-per-dataset", "20261111-delivery"),
    Case(
        "a path that does not exist",
        lambda directory: directory / "20261111AutDK.csv",
        "dataset-missing",
        "20261111AutDK.csv",
    ),
    Case(
        "surname missing for a person",
        dump("20261111AutDK.csv", [*OK[:9], "00009;1000000009;;B;7170", *OK[10:]]),
        "surname-required",
        "20261111AutDK.csv:10",
    ),
]


def invoke(databases: Databases, *args: str) -> Any:
    return CliRunner().invoke(app, list(args), env=databases.environ(), catch_exceptions=False)


def production(databases: Databases) -> dict[str, list[dict[str, Any]]]:
    return databases.production_rows(REGISTER)


@pytest.fixture
def imported(databases: Databases, tmp_path: Path) -> Databases:
    result = invoke(databases, "import", "autorisation", str(write_dump(tmp_path, f"{BASE_DAY}AutDK.csv", BASELINE)))
    assert result.exit_code == 0, result.output
    return databases


def test_there_are_at_least_fifteen_distinct_bad_inputs() -> None:
    assert len({case.rule for case in CASES}) >= 15


def test_every_bad_input_is_refused_and_production_is_untouched(imported: Databases, tmp_path: Path) -> None:
    before = production(imported)
    for number, case in enumerate(CASES):
        path = case.make(tmp_path / f"case{number}")
        result = invoke(imported, "import", "autorisation", str(path))
        assert result.exit_code == 1, f"{case.name}: exit {result.exit_code}\n{result.output}"
        message = result.stderr
        assert case.rule in message and case.where in message, f"{case.name}: {message}"
        assert "1000000" not in message.replace("-****", ""), f"{case.name}: CPR in the message: {message}"
        assert production(imported) == before, f"{case.name} changed production"
        failed = imported.failed_runs("production", REGISTER)
        assert len(failed) == number + 1 and case.rule in failed[-1]["Message"], f"{case.name}: not recorded"
        assert "1000000" not in failed[-1]["Message"].replace("-****", ""), f"{case.name}: CPR in the status row"


def test_mass_removal_is_imported_when_forced_and_audited(imported: Databases, tmp_path: Path) -> None:
    result = invoke(
        imported, "import", "autorisation", str(write_dump(tmp_path, "20261111AutDK.csv", BASELINE[:40])), "--force"
    )
    assert result.exit_code == 0, result.output
    assert "closed 110" in result.stdout
    last = imported.rows("production", "autorisationimporterImportStatus", order_by="Id")[-1]
    assert last["Forced"] in (True, 1)
    assert "reduction guard overridden by --force: 110" in last["Message"]
    assert len(imported.rows("production", "autreg2")) == 40
