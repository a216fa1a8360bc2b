"""Conformance kit of the autorisation register."""

from dataclasses import dataclass, field
from pathlib import Path

from tests.kit import BadDataset


def write_dump(directory: Path, name: str, lines: list[str], encoding: str = "iso-8859-15") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_bytes("".join(line + "\n" for line in lines).encode(encoding))
    return path


FIRST = [
    "0A1B2;0101801234;Jensen;Anne Marie;7170",
    "0C3D4;0202851234;Ærø-Sørensen;Øjvind;5166",
    "09YM8;0101010001;;Indberettet af apotek, ej autorisationsnummer;0000",
]
SECOND = [
    "0A1B2;0101801234;Jensen-Holm;Anne Marie;7170",
    "09YM8;0101010001;;Indberettet af apotek, ej autorisationsnummer;0000",
    "1G7H8;1512901234;Nielsen;Lars;5151",
]


@dataclass
class AutorisationKit:
    environ: dict[str, str] = field(default_factory=dict)

    def datasets(self, directory: Path) -> list[Path]:
        return [
            write_dump(directory, "20261120AutDK.csv", FIRST),
            write_dump(directory, "20261121AutDK.csv", SECOND),
        ]

    def bad_datasets(self, directory: Path) -> list[BadDataset]:
        return [
            BadDataset(write_dump(directory, "20261125AutDK.csv", [FIRST[0], "0C3D4;12345;X;Y;5166"]),
                       "cpr", "20261125AutDK.csv:2"),
            BadDataset(write_dump(directory, "20261126AutDK.csv", [FIRST[0], "0C3D4;0202851234;X;5166"]),
                       "column-count", "20261126AutDK.csv:2"),
        ]

    def half_written(self, directory: Path) -> list[Path]:
        # A dump is one file with no header or trailer, so a cut file cannot be told from a whole one (the daemon
        # waits for it by rename, marker or quiet period); a dataset directory still waiting for its file can.
        empty = directory / "delivery-empty"
        empty.mkdir(parents=True)
        copying = directory / "delivery-copying"
        write_dump(copying, ".20261122AutDK.csv.part", FIRST[:1])  # still being written under a hidden name
        return [empty, copying]


KIT = AutorisationKit()
