"""Conformance kit of the example register (`tests/example_register/`), and its dumps for its own tests."""

from dataclasses import dataclass, field
from pathlib import Path

from tests.kit import BadDataset

HEADER = "code;name;group"
FIRST = ["A1;Alfa;G1", "B2;Beta;G1", "C3;Gamma;G2"]
SECOND = ["A1;Alfa;G2", "C3;Gamma;G2", "D4;Delta;G3"]  # A1 changed, B2 removed, D4 added, C3 unchanged


def write_dump(directory: Path, name: str, lines: list[str], *, header: str = HEADER, end: str = "\n") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_bytes(("\n".join([header, *lines]) + end).encode("utf-8"))
    return path


@dataclass
class ExampleKit:
    environ: dict[str, str] = field(default_factory=dict)

    def datasets(self, directory: Path) -> list[Path]:
        return [
            write_dump(directory, "20261120Example.csv", FIRST),
            write_dump(directory, "20261121Example.csv", SECOND),
        ]

    def bad_datasets(self, directory: Path) -> list[BadDataset]:
        return [
            BadDataset(write_dump(directory, "20261125Example.csv", [FIRST[0], "B2;Beta"]),
                       "column-count", "20261125Example.csv:3"),
            BadDataset(write_dump(directory, "20261126Example.csv", [FIRST[0], "b2;Beta;G1"]),
                       "code", "20261126Example.csv:3"),
            BadDataset(write_dump(directory, "20261127Example.csv", [*FIRST, "A1;Again;G1"]),
                       "duplicate-key", "20261127Example.csv:5"),
            BadDataset(write_dump(directory, "20261128Example.csv", FIRST, header="code;name"),
                       "header", "20261128Example.csv:1"),
        ]

    def half_written(self, directory: Path) -> list[Path]:
        cut = write_dump(directory / "cut", "20261122Example.csv", FIRST)
        cut.write_bytes(cut.read_bytes()[:-4])  # stopped in the middle of the last line
        empty = directory / "empty" / "20261122Example.csv"
        empty.parent.mkdir(parents=True)
        empty.touch()  # created, nothing written yet
        header_only = write_dump(directory / "header", "20261122Example.csv", [], header="code;na", end="")
        return [cut, empty, header_only]


KIT = ExampleKit()
