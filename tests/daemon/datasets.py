"""Autorisation dumps for the daemon tests: small ones from the conformance kit, and big ones that take a
while to import, so a test can act (cut the database, kill, stop) while an import is running."""

import string
from pathlib import Path

from tests.registers.autorisation.kit import FIRST, SECOND, write_dump

ALPHABET = string.digits + string.ascii_uppercase


def key(number: int) -> str:
    digits = []
    for _ in range(5):
        number, rest = divmod(number, len(ALPHABET))
        digits.append(ALPHABET[rest])
    return "".join(reversed(digits))


def big_lines(rows: int, variant: int = 0) -> list[str]:
    """`rows` valid lines; a different `variant` changes every surname, so a later dump updates them all."""
    return [f"{key(i + 100)};{(i * 7919) % 10**10:010d};Navn{variant}x{i};Fornavn;7170" for i in range(rows)]


def small(directory: Path, name: str, which: int = 0) -> Path:
    return write_dump(directory, name, FIRST if which == 0 else SECOND)


def write_lines(directory: Path, name: str, lines: list[str]) -> Path:
    return write_dump(directory, name, lines)
