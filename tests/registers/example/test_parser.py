"""The example register's own rules (`tests/example_register/`), beyond what the conformance suite checks."""

import re
from datetime import datetime
from pathlib import Path

import pytest

from importer.errors import DataError
from tests.example_register import REGISTER
from tests.kit import out_of_chain_revisions
from tests.registers.example.kit import FIRST, write_dump

REVISION_FILE = re.compile(r"^(V\d{8}_\d{4})_[a-z0-9_]+\.py$")


def test_a_dump_is_parsed_into_typed_rows(tmp_path: Path) -> None:
    path = write_dump(tmp_path, "20261120Example.csv", [*FIRST, "E5;Ærø;G9"])
    parsed = REGISTER.parse(path, REGISTER.settings_defaults)
    assert (parsed.version, parsed.valid_from) == ("20261120", datetime(2026, 11, 20))
    assert parsed.frames["ExampleCode"].values.tolist() == [line.split(";") for line in [*FIRST, "E5;Ærø;G9"]]
    assert list(parsed.files) == ["20261120Example.csv"]


@pytest.mark.parametrize(("name", "content", "rule", "where"), [
    ("2026112Example.csv", "code;name;group\nA1;Alfa;G1\n", "file-name", "2026112Example.csv"),
    ("20261131Example.csv", "code;name;group\nA1;Alfa;G1\n", "file-name-date", "20261131Example.csv"),
    ("20261120Example.csv", "code;name;group\n", "empty-file", "20261120Example.csv"),
    ("20261120Example.csv", "code;name;group\nA1;\xe6;G1\n".encode("latin-1"), "encoding", "20261120Example.csv:2"),
    ("20261120Example.csv", "code;name;group\nA1;Alfa;" + "G" * 21 + "\n", "group", "20261120Example.csv:2"),
    ("20261120Example.csv", "code;name;group\nA1;;G1\n", "name", "20261120Example.csv:2"),
])
def test_bad_dumps_are_refused_with_rule_and_place(
    tmp_path: Path, name: str, content: str | bytes, rule: str, where: str
) -> None:
    path = tmp_path / name
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    with pytest.raises(DataError) as refused:
        REGISTER.parse(path, REGISTER.settings_defaults)
    assert f"{where}: {rule}:" in str(refused.value)


def test_every_problem_of_a_file_is_reported_at_once(tmp_path: Path) -> None:
    path = write_dump(tmp_path, "20261120Example.csv", ["a1;Alfa;G1", "B2;Beta", "C3;Gamma;G2", "C3;Again;G2"])
    with pytest.raises(DataError) as refused:
        REGISTER.parse(path, REGISTER.settings_defaults)
    assert [(problem.rule, problem.line) for problem in refused.value.problems] == [
        ("code", 2), ("column-count", 3), ("duplicate-key", 5)]


def test_only_csv_files_have_the_shape_of_a_dataset(tmp_path: Path) -> None:
    assert REGISTER.could_be_dataset(tmp_path / "20261120Example.csv")
    assert not REGISTER.could_be_dataset(tmp_path / "notes.txt")


def test_its_revision_is_named_as_the_guide_says() -> None:
    (path,) = out_of_chain_revisions(REGISTER)
    match = REVISION_FILE.match(path.name)
    assert match is not None
    assert f'revision = "{match.group(1)}"' in path.read_text(encoding="utf-8")
