"""Record-level validation of one JSON file: root shape, required keys, types, lengths, ranges.

Each rule is checked on a whole column at once and every failure is reported, located as
`<root>[<record index>].<key>` (index from 0, as in the JSON array), so an operator fixes a bad delivery in
one go. The limits are the table columns' (FORMATS.md §2): what passes here fits the database.
"""

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from importer.errors import Problem

MAX_PROBLEMS = 1000
INT32 = (-(2**31), 2**31 - 1)
INT64 = (-(2**63), 2**63 - 1)
DRUG_ID = (1, 10**11 - 1)  # at most 11 digits: BIGINT(11) on the platform
DATE_PATTERN = r"\d{4}-\d{2}-\d{2}"
# Hostile JSON is refused before Python's json module would fail on it (ValueError beyond 4,300 digits,
# RecursionError from deep nesting): no column holds an integer of more than 19 digits (BIGINT), and a release
# is three levels deep (root object, array, record).
MAX_INTEGER_DIGITS = 19
MAX_DEPTH = 20
_STRING = re.compile(r'"[^"\\\n]*(?:\\.[^"\\\n]*)*"')
_OPEN = (ord("["), ord("{"))
_CLOSE = (ord("]"), ord("}"))


@dataclass(frozen=True)
class Field:
    key: str
    kind: str  # "int", "str" or "date"
    required: bool = True
    max_length: int | None = None  # characters, for "str"
    bounds: tuple[int, int] = INT64  # for "int"
    as_text: bool = False  # an int stored in a VARCHAR column (DosageStructure.code)


@dataclass(frozen=True)
class FileSpec:
    name: str
    root: str
    fields: tuple[Field, ...]
    single: bool = False  # the root holds one object, not an array


class FileProblems(Exception):
    """Problems that make the rest of a file's checks meaningless (not JSON, wrong root)."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__(problems)
        self.problems = problems


class _LongInteger(str):
    """An integer literal too long for any column, kept as its text so it can be located and reported."""


def _parse_int(text: str) -> int | _LongInteger:
    return _LongInteger(text) if len(text.lstrip("-")) > MAX_INTEGER_DIGITS else int(text)


def _nesting_problem(spec: FileSpec, text: str) -> Problem | None:
    """The first place where arrays/objects nest deeper than MAX_DEPTH, outside strings; vectorised."""
    if text.count("[") + text.count("{") <= MAX_DEPTH:
        return None
    structure = _STRING.sub("", text)  # JSON strings hold no raw line ends: lines are kept
    codes = np.frombuffer(structure.encode("utf-32-le", "replace"), dtype=np.uint32)
    steps = np.isin(codes, _OPEN).astype(np.int32) - np.isin(codes, _CLOSE).astype(np.int32)
    depth = np.cumsum(steps)
    deepest = np.flatnonzero(depth > MAX_DEPTH)
    if not len(deepest):
        return None
    line = structure.count("\n", 0, int(deepest[0])) + 1
    return Problem("nesting-too-deep", f"arrays/objects nested more than {MAX_DEPTH} levels deep (a release has 3)",
                   spec.name, line)


def _long_integer_problem(spec: FileSpec, text: str, number: str) -> Problem:
    found = re.search(r"[:\[,]\s*" + re.escape(number) + r"(?![0-9.eE])", text)
    line = text.count("\n", 0, found.end() - len(number)) + 1 if found else None
    return Problem("number-too-long", f"an integer of {len(number.lstrip('-'))} digits; no column holds more than "
                   f"{MAX_INTEGER_DIGITS}", spec.name, line)


def load_records(spec: FileSpec, text: str) -> list[Any]:
    """The root array (or the single root object, as a one-element list), or FileProblems."""
    deep = _nesting_problem(spec, text)
    if deep is not None:
        raise FileProblems([deep])
    long_integers: list[str] = []

    def parse_int(literal: str) -> int | _LongInteger:
        value = _parse_int(literal)
        if isinstance(value, _LongInteger):
            long_integers.append(literal)
        return value

    try:
        document = json.loads(text, parse_int=parse_int)
    except json.JSONDecodeError as error:
        raise FileProblems([Problem(
            "malformed-json", f"{error.msg} at line {error.lineno} column {error.colno} (character {error.pos})",
            spec.name, error.lineno,
        )]) from None
    except RecursionError:  # not reached after the depth check; a refusal all the same if it ever is
        raise FileProblems([Problem("nesting-too-deep", "arrays/objects nested too deep", spec.name)]) from None
    if long_integers:
        raise FileProblems([_long_integer_problem(spec, text, long_integers[0])])
    if not isinstance(document, dict) or spec.root not in document:
        raise FileProblems([Problem("root-key", f"the file must be a JSON object with the key {spec.root!r}",
                                    spec.name)])
    root = document[spec.root]
    if spec.single:
        if not isinstance(root, dict):
            raise FileProblems([Problem("wrong-type", f"{spec.root} must be one JSON object", spec.name)])
        return [root]
    if not isinstance(root, list):
        raise FileProblems([Problem("wrong-type", f"{spec.root} must be a JSON array", spec.name)])
    if not root:
        raise FileProblems([Problem("empty-root-array", f"{spec.root} holds no records; a release is never empty",
                                    spec.name)])
    return root


def validate(spec: FileSpec, records: Sequence[Any]) -> tuple[pd.DataFrame, list[Problem]]:
    """One object column per field (None where absent or null) and every problem found."""
    located: list[tuple[int, Problem]] = []
    is_object = pd.Series([isinstance(record, dict) for record in records], dtype=bool)
    for index in is_object.index[~is_object][:MAX_PROBLEMS]:
        located.append((int(index), Problem("wrong-type", f"{_where(spec, int(index))} must be a JSON object",
                                            spec.name)))
    frame = pd.DataFrame(
        {field.key: pd.Series([record.get(field.key) if isinstance(record, dict) else None for record in records],
                              dtype=object)
         for field in spec.fields}
    )
    for field in spec.fields:
        located.extend(_field_problems(spec, field, frame[field.key], is_object))
    located.sort(key=lambda item: item[0])  # stable: within a record, problems stay in field order
    return frame, [problem for _, problem in located]


def _field_problems(
    spec: FileSpec, field: Field, values: "pd.Series[Any]", is_object: "pd.Series[bool]"
) -> list[tuple[int, Problem]]:
    null = values.map(lambda value: value is None).astype(bool)
    absent = null & is_object
    present = ~null
    checks: list[tuple[str, pd.Series[bool], Callable[[Any], str]]] = []
    if field.required:
        checks.append(("required-key", absent, lambda _: "is required but missing or null"))

    if field.kind == "int":
        is_int = values.map(lambda value: type(value) is int).astype(bool)
        checks.append(("wrong-type", present & ~is_int, lambda v: f"must be an integer, found {_show(v)}"))
        low, high = field.bounds
        numbers = values.where(is_int, 0)
        out = is_int & ((numbers < low) | (numbers > high)).astype(bool)
        checks.append(("out-of-range", out, lambda v: f"{v} is outside {low}..{high}"))
        if field.as_text and field.max_length is not None:
            limit = field.max_length
            too_long = is_int & values.where(is_int, 0).map(lambda value: len(str(value)) > limit).astype(bool)
            checks.append(("too-long", too_long, lambda v: f"{v} has more than {limit} characters"))
    else:
        is_str = values.map(lambda value: type(value) is str).astype(bool)
        expected = "a yyyy-MM-dd date string" if field.kind == "date" else "a string"
        checks.append(("wrong-type", present & ~is_str, lambda v: f"must be {expected}, found {_show(v)}"))
        text = values.where(is_str, "").astype(str)
        if field.max_length is not None:
            limit = field.max_length
            checks.append(("too-long", is_str & (text.str.len() > limit),
                           lambda v: f"has {len(v)} characters, more than the column's {limit}"))
        if field.kind == "date":
            shaped = text.str.fullmatch(DATE_PATTERN).astype(bool)
            parsed = pd.to_datetime(text.where(shaped, None), format="%Y-%m-%d", errors="coerce")
            checks.append(("invalid-date", is_str & parsed.isna(), lambda v: f"{_show(v)} is not a yyyy-MM-dd date"))

    problems: list[tuple[int, Problem]] = []
    for rule, failing, describe in checks:
        for index in values.index[failing.to_numpy(dtype=bool)][:MAX_PROBLEMS]:
            detail = f"{_where(spec, int(index))}.{field.key} {describe(values[index])}"
            problems.append((int(index), Problem(rule, detail, spec.name)))
    return problems


def _where(spec: FileSpec, index: int) -> str:
    return spec.root if spec.single else f"{spec.root}[{index}]"


def _show(value: Any) -> str:
    """A short rendering of an offending value: its JSON type and the start of its text."""
    kinds = {bool: "boolean", int: "integer", float: "number", str: "string", list: "array", dict: "object"}
    text = json.dumps(value, ensure_ascii=False)
    if len(text) > 40:
        text = text[:37] + "..."
    return f"{kinds.get(type(value), type(value).__name__)} {text}"
