"""Parser for the daily authorisation dump: `<yyyyMMdd><anything>.csv`, `;`-separated, no header.

Validation is vectorised over the whole file and reports every broken rule with its line, so an operator
fixes a bad delivery in one go. Values are kept exactly as delivered (no trimming): the register is the
authority on its own spelling.
"""

import csv
import hashlib
import io
import re
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd

from importer.errors import DataError, Problem
from importer.load.plugin import ParsedDataset

FILE_NAME = re.compile(r"^(?P<date>.{8}).*\.csv$", re.IGNORECASE | re.DOTALL)
DATE_DIGITS = re.compile(r"[0-9]{8}")
_SCAN_SLICE = 1 << 23  # bytes searched for UTF-8 sequences at a time
FIELDS = ("Autorisationsnummer", "CPR", "Efternavn", "Fornavn", "UddannelsesKode")
FIELD_LABELS = {
    "Autorisationsnummer": "column 1 (autorisationsnummer)",
    "CPR": "column 2 (cpr)",
    "Efternavn": "column 3 (efternavn)",
    "Fornavn": "column 4 (fornavn)",
    "UddannelsesKode": "column 5 (uddannelseskode)",
}
NAME_LENGTH = 100
REPEATING = ("Efternavn", "Fornavn", "UddannelsesKode")
READ_SLICE = 100_000  # rows parsed at a time

# Replacement numbers that do not identify persons: they have no surname (FORMATS.md §1).
SPECIAL_NUMBERS = frozenset({"09YM8", "09YM9", "09YMB"})

EDUCATION = {
    "0000": "Erstatningsautorisation",
    "4498": "Optiker",
    "5151": "Fysioterapeut",
    "5152": "Social- og sundhedsassistent",
    "5153": "Ergoterapeut",
    "5155": "Fodterapeut",
    "5158": "Radiograf",
    "5159": "Bioanalytiker",
    "5166": "Sygeplejerske",
    "5175": "Jordemoder",
    "5176": "Kontaktlinseoptiker / Optometrist",
    "5265": "Kiropraktor",
    "5431": "Tandplejer",
    "5432": "Klinisk tandtekniker",
    "5433": "Tandlæge",
    "5451": "Klinisk diætist",
    "7170": "Læge",
    "9495": "Bandagist",
}

# C0/C1 control characters have no place in names and codes; in an ISO-8859-15 file they are the sign of
# bytes that are not text (every byte decodes in ISO-8859-15, so this is how undecodable input shows).
CONTROL = re.compile(r"[\x00-\x09\x0b\x0c\x0e-\x1f\x7f-\x9f]|\r(?!\n)")
MAX_PROBLEMS = 1000

# A line that breaks no per-field rule: number, CPR, surname and given names of at most 100 characters, code.
_NAME = rf"[^;\n]{{0,{NAME_LENGTH}}}"
WELL_FORMED_LINE = re.compile(rf"^[0-9A-Z]{{5}};[0-9]{{10}};{_NAME};{_NAME};[0-9A-Z]{{4}}\r?$", re.MULTILINE)


def dataset_file(path: Path) -> Path:
    """A dataset is one file, or a directory holding exactly one (markers and hidden files aside)."""
    if not path.exists():
        raise DataError.single("dataset-missing", "the dataset path does not exist", file=str(path))
    if path.is_file():
        return path
    files = sorted(p for p in path.iterdir() if not p.name.startswith(".") and p.name != "READY")
    if len(files) != 1 or not files[0].is_file():
        names = ", ".join(p.name for p in files) or "nothing"
        raise DataError.single(
            "one-file-per-dataset", f"a dataset directory must hold exactly one file, found {names}", file=path.name
        )
    return files[0]


def file_date(file: Path) -> datetime:
    match = FILE_NAME.match(file.name)
    if match is None:
        raise DataError.single(
            "file-name", "the file name must be <yyyyMMdd><anything>.csv", file=file.name
        )
    # Eight ASCII digits, nothing else: strptime alone would read "202611 2" as 2026-11-02.
    if not DATE_DIGITS.fullmatch(match["date"]):
        raise DataError.single(
            "file-name-date", f"{match['date']!r} is not a yyyyMMdd date (eight digits 0-9)", file=file.name
        )
    try:
        return datetime.strptime(match["date"], "%Y%m%d")
    except ValueError:
        raise DataError.single(
            "file-name-date", f"{match['date']!r} is not a valid yyyyMMdd date", file=file.name
        ) from None


def decode(raw: bytes, name: str) -> tuple[str, str]:
    """The encoding decided strictly, for the whole file at once (README, "Encoding"):

    - a UTF-8 BOM, or bytes that are valid UTF-8 as a whole: UTF-8 (an invalid byte after a BOM is refused);
    - else, bytes holding no valid multi-byte UTF-8 sequence at all: ISO-8859-15, the register's contract;
    - else UTF-8 sequences mixed with bytes that are not UTF-8 (a UTF-8 dump with a stray Latin-1 byte, a
      Latin-1 dump with pasted UTF-8): refused as `mixed-encoding`, naming the line of the first byte that is
      not UTF-8. Reading it either way would rewrite names (`SÃ¸rensen`) without a word.
    """
    if raw.startswith(b"\xef\xbb\xbf"):
        return _strict(raw[3:], "utf-8", name, offset=3), "utf-8"
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        sequence = first_utf8_sequence(raw)
        if sequence is None:
            return raw.decode("iso-8859-15"), "iso-8859-15"
        bad_line = raw.count(b"\n", 0, error.start) + 1
        utf8_line = raw.count(b"\n", 0, sequence) + 1
        raise DataError.single(
            "mixed-encoding",
            f"byte 0x{raw[error.start]:02x} is not UTF-8, but the file also holds UTF-8 (first on line "
            f"{utf8_line}): a mixture of encodings is refused rather than guessed",
            file=name, line=bad_line,
        ) from None
    return text, ("utf-8" if not raw.isascii() else "ascii")


def first_utf8_sequence(raw: bytes) -> int | None:
    """The offset of the first well-formed multi-byte UTF-8 sequence (no overlongs, no surrogates, at most
    U+10FFFF), or None. Vectorised over the possible lead bytes, a slice of the file at a time."""
    data = np.frombuffer(raw, dtype=np.uint8)
    for start in range(0, len(data), _SCAN_SLICE):
        window = data[start:start + _SCAN_SLICE + 3]
        lead = np.flatnonzero(window[:_SCAN_SLICE] >= 0xC2)
        if not len(lead):
            continue
        padded = np.concatenate([window, np.zeros(3, dtype=np.uint8)])
        first, second, third, fourth = (padded[lead + step] for step in range(4))

        def between(values: np.ndarray, low: int, high: int) -> np.ndarray:
            result: np.ndarray = (values >= low) & (values <= high)
            return result

        two = between(first, 0xC2, 0xDF) & between(second, 0x80, 0xBF)
        three = (
            ((first == 0xE0) & between(second, 0xA0, 0xBF))
            | ((between(first, 0xE1, 0xEC) | between(first, 0xEE, 0xEF)) & between(second, 0x80, 0xBF))
            | ((first == 0xED) & between(second, 0x80, 0x9F))
        ) & between(third, 0x80, 0xBF)
        four = (
            ((first == 0xF0) & between(second, 0x90, 0xBF))
            | (between(first, 0xF1, 0xF3) & between(second, 0x80, 0xBF))
            | ((first == 0xF4) & between(second, 0x80, 0x8F))
        ) & between(third, 0x80, 0xBF) & between(fourth, 0x80, 0xBF)
        found = np.flatnonzero(two | three | four)
        if len(found):
            return start + int(lead[found[0]])
    return None


def _strict(raw: bytes, encoding: str, name: str, offset: int = 0) -> str:
    try:
        return raw.decode(encoding)
    except UnicodeDecodeError as error:
        line = raw.count(b"\n", 0, error.start) + 1
        raise DataError.single(
            "encoding", f"byte 0x{raw[error.start]:02x} at offset {error.start + offset} is not valid {encoding}",
            file=name, line=line,
        ) from None


def parse_file(file: Path) -> ParsedDataset:
    valid_from = file_date(file)
    raw = file.read_bytes()
    name = file.name
    sha256 = hashlib.sha256(raw).hexdigest()
    if not raw.strip(b"\r\n"):
        raise DataError.single("empty-file", "the file holds no authorisations", file=name)
    text, encoding = decode(raw, name)

    control = CONTROL.search(text)
    if control is not None:
        line = text.count("\n", 0, control.start()) + 1
        raise DataError.single(
            "encoding",
            f"character U+{ord(control.group()[0]):04X} is a control character, not text (undecodable bytes?)",
            file=name,
            line=line,
        )

    line_count = text.count("\n") + (0 if text.endswith("\n") else 1)
    if WELL_FORMED_LINE.subn("", text)[1] == line_count:
        # Every line has five fields of the right shape and length (one pass of the regex engine), so only
        # the rules that span fields or lines remain. The C parser reads the bytes itself: no text copies.
        del text  # a dump's size again, not needed from here on; nor are the bytes once read
        frame = _read(io.BytesIO(raw), "iso-8859-15" if encoding == "iso-8859-15" else "utf-8-sig")
        del raw
        problems = _record_problems(frame, name)
    else:
        body = text[:-1] if text.endswith("\n") else text
        lines = pd.Series(body.split("\n"), dtype=object).str.removesuffix("\r")
        problems = _line_shape_problems(lines, name)
        if problems:
            raise DataError(problems)
        frame = _read(io.StringIO("\n".join(lines)), None)
        problems = sorted(_field_problems(frame, name) + _record_problems(frame, name), key=lambda p: p.line or 0)
    if problems:
        raise DataError(problems)

    unknown = sorted(set(frame["UddannelsesKode"].unique()) - set(EDUCATION))
    warnings = []
    if unknown:
        count = int(frame["UddannelsesKode"].isin(unknown).sum())
        warnings.append(f"{count} row(s) with unknown education code(s): {', '.join(unknown[:20])}")

    columns = ["Autorisationsnummer", "CPR", "Fornavn", "Efternavn", "UddannelsesKode"]
    return ParsedDataset(
        name=name,
        version=valid_from.strftime("%Y%m%d"),
        valid_from=valid_from,
        frames={"Autorisation2": frame[columns]},
        files={name: sha256},
        warnings=warnings,
        details={"encoding": encoding},
    )


def _read(source: io.BytesIO | io.StringIO, encoding: str | None) -> pd.DataFrame:
    # Names and codes repeat across a million rows. Read a slice at a time and give each distinct value
    # one string object, shared by every row that has it: a full dump's frame is then a fraction of the
    # memory, and the per-cell strings of only one slice exist at once.
    shared: dict[str, str] = {}
    slices = []
    for part in pd.read_csv(
        source,
        encoding=encoding,
        sep=";",
        header=None,
        names=list(FIELDS),
        dtype=str,  # never "category": its inferred categories would turn the code 0000 into the number 0
        na_filter=False,
        quoting=csv.QUOTE_NONE,
        skip_blank_lines=False,
        engine="c",
        chunksize=READ_SLICE,
    ):
        for column in REPEATING:
            codes, uniques = pd.factorize(part[column])
            part[column] = pd.Index([shared.setdefault(value, value) for value in uniques], dtype=str).take(codes)
        slices.append(part)
    return pd.concat(slices, ignore_index=True)


def _line_shape_problems(lines: "pd.Series[str]", name: str) -> list[Problem]:
    problems: list[Problem] = []
    for index in lines.index[lines == ""][:MAX_PROBLEMS]:
        problems.append(Problem("blank-line", "blank lines are not allowed", name, int(index) + 1))
    separators = lines.str.count(";")
    for index in lines.index[(separators != len(FIELDS) - 1) & (lines != "")][:MAX_PROBLEMS]:
        found = int(separators[index]) + 1
        problems.append(
            Problem("column-count", f"expected {len(FIELDS)} ';'-separated fields, found {found}", name, int(index) + 1)
        )
    return sorted(problems, key=lambda p: p.line or 0)


def _field_problems(frame: pd.DataFrame, name: str) -> list[Problem]:
    checks: list[tuple[str, pd.Series[bool], str]] = [
        ("autorisationsnummer", ~frame["Autorisationsnummer"].str.fullmatch(r"[0-9A-Z]{5}"),
         f"{FIELD_LABELS['Autorisationsnummer']} must be 5 characters 0-9/A-Z"),
        ("cpr", ~frame["CPR"].str.fullmatch(r"[0-9]{10}"), f"{FIELD_LABELS['CPR']} must be 10 digits"),
        ("uddannelseskode", ~frame["UddannelsesKode"].str.fullmatch(r"[0-9A-Z]{4}"),
         f"{FIELD_LABELS['UddannelsesKode']} must be 4 characters 0-9/A-Z"),
        ("name-length", frame["Efternavn"].str.len() > NAME_LENGTH,
         f"{FIELD_LABELS['Efternavn']} is longer than {NAME_LENGTH} characters"),
        ("name-length", frame["Fornavn"].str.len() > NAME_LENGTH,
         f"{FIELD_LABELS['Fornavn']} is longer than {NAME_LENGTH} characters"),
    ]
    problems: list[Problem] = []
    for rule, failing, detail in checks:
        for index in frame.index[failing.fillna(True)][:MAX_PROBLEMS]:
            problems.append(Problem(rule, detail, name, int(index) + 1))

    return sorted(problems, key=lambda p: p.line or 0)


def _record_problems(frame: pd.DataFrame, name: str) -> list[Problem]:
    """Rules beyond a single field's shape: who may lack a surname, and one line per authorisation."""
    numbers = frame["Autorisationsnummer"]
    problems: list[Problem] = []
    nameless = (frame["Efternavn"] == "") & ~numbers.isin(SPECIAL_NUMBERS)
    for index in frame.index[nameless][:MAX_PROBLEMS]:
        problems.append(Problem(
            "surname-required",
            f"{FIELD_LABELS['Efternavn']} may only be empty for the replacement numbers "
            f"{', '.join(sorted(SPECIAL_NUMBERS))}",
            name, int(index) + 1,
        ))
    duplicated = numbers.duplicated(keep="first")
    if duplicated.any():
        first_line = {number: position + 1 for position, number in zip(frame.index[~duplicated], numbers[~duplicated],
                                                                           strict=True)}
        for index in frame.index[duplicated][:MAX_PROBLEMS]:
            number = numbers[index]
            problems.append(
                Problem("duplicate-key", f"autorisationsnummer {number} already appears on line "
                        f"{first_line[number]}", name, int(index) + 1)
            )
    return sorted(problems, key=lambda p: p.line or 0)
