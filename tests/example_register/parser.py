"""Parser for the example dataset: one file `<yyyyMMdd>Example.csv`, UTF-8, `;`-separated, header `code;name;group`.

A tiny register parses line by line; a large one vectorises (see `registers/autorisation/parser.py`).
"""

import hashlib
import re
from datetime import datetime
from pathlib import Path

import pandas as pd

from importer.errors import DataError, Problem
from importer.load.plugin import ParsedDataset

FILE_NAME = re.compile(r"^(?P<date>[0-9]{8})Example\.csv$")
HEADER = "code;name;group"
CODE = re.compile(r"^[0-9A-Z]{1,10}$")
LENGTHS = {"name": 100, "group": 20}
MAX_PROBLEMS = 100


def file_date(path: Path) -> datetime:
    match = FILE_NAME.match(path.name)
    if match is None:
        raise DataError.single("file-name", "the file name must be <yyyyMMdd>Example.csv", file=path.name)
    try:
        return datetime.strptime(match["date"], "%Y%m%d")
    except ValueError:
        raise DataError.single("file-name-date", f"{match['date']!r} is not a valid yyyyMMdd date",
                               file=path.name) from None


def is_complete(path: Path) -> bool:
    """Cheap: a file that starts with the header and ends with a line end (a half-written one does not)."""
    try:
        with path.open("rb") as stream:
            head = stream.read(len(HEADER) + 2)
            if not head.startswith(HEADER.encode()):
                return False
            stream.seek(-1, 2)
            return stream.read(1) == b"\n"
    except OSError:
        return False


def parse_file(path: Path) -> ParsedDataset:
    if not path.is_file():
        raise DataError.single("dataset-kind", "an example dataset is one file <yyyyMMdd>Example.csv", file=path.name)
    valid_from = file_date(path)
    name = path.name
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise DataError.single("encoding", f"byte 0x{raw[error.start]:02x} is not UTF-8", file=name,
                               line=raw.count(b"\n", 0, error.start) + 1) from None
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    if not lines or lines[0] != HEADER:
        raise DataError.single("header", f"the first line must be {HEADER!r}", file=name, line=1)
    if len(lines) == 1:
        raise DataError.single("empty-file", "the file holds no codes", file=name)

    problems: list[Problem] = []
    rows: list[tuple[str, str, str]] = []
    seen: dict[str, int] = {}
    for number, line in enumerate(lines[1:], start=2):
        fields = line.split(";")
        if len(fields) != 3:
            problems.append(Problem("column-count", f"expected 3 fields, found {len(fields)}", name, number))
            continue
        code, text_name, group = fields
        if not CODE.match(code):
            problems.append(Problem("code", f"code {code!r} must be 1-10 characters [0-9A-Z]", name, number))
        for column, value in (("name", text_name), ("group", group)):
            if not 1 <= len(value) <= LENGTHS[column]:
                problems.append(Problem(column, f"{column} must be 1-{LENGTHS[column]} characters", name, number))
        if code in seen:
            problems.append(Problem("duplicate-key", f"code {code!r} already on line {seen[code]}", name, number))
        seen.setdefault(code, number)
        rows.append((code, text_name, group))
        if len(problems) >= MAX_PROBLEMS:
            break
    if problems:
        raise DataError(problems)

    frame = pd.DataFrame(rows, columns=["code", "name", "group"], dtype=object)
    return ParsedDataset(
        name=name,
        version=f"{valid_from:%Y%m%d}",
        valid_from=valid_from,
        frames={"ExampleCode": frame},
        files={name: hashlib.sha256(raw).hexdigest()},
    )
