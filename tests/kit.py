"""What a register gives the conformance suite: datasets it can import, and datasets it must refuse.

Every register package has `tests/registers/<name>/kit.py` exposing `KIT`, an object with this shape.
"""

from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, Protocol

import pandas as pd


@dataclass(frozen=True)
class BadDataset:
    path: Path
    rule: str  # the rule the refusal must name
    where: str  # text the message must contain to locate the problem, e.g. "20261122AutDK.csv:3"


@dataclass
class ConformanceKit(Protocol):
    environ: dict[str, str] = field(default_factory=dict)

    def datasets(self, directory: Path) -> list[Path]:
        """At least two valid datasets, in import order, written below `directory`."""
        ...

    def bad_datasets(self, directory: Path) -> list[BadDataset]:
        """Datasets the register must refuse after `datasets()[0]` was imported."""
        ...


def normalise(value: Any) -> Any:
    """Make values read back from SQLite or MariaDB comparable with what a parser produced."""
    if value is None or (isinstance(value, float) and value != value) or value is pd.NA:
        return None
    if isinstance(value, datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal | float) and value == int(value):
        return int(value)
    if hasattr(value, "item"):  # numpy scalars
        return normalise(value.item())
    return value


def row_set(rows: list[dict[str, Any]], columns: list[str]) -> set[tuple[Any, ...]]:
    return {tuple(normalise(row[column]) for column in columns) for row in rows}


def frame_set(frame: pd.DataFrame, columns: list[str]) -> set[tuple[Any, ...]]:
    return {tuple(normalise(value) for value in values) for values in frame[columns].itertuples(index=False)}
