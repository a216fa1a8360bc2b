"""The look-ups both façades answer from (HTTP/JSON and the platform's SOAP `Authorization`): one query each, so
the two can never disagree about who holds which authorisation.
"""

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from importer.http.database import FacadeDatabase, Query
from registers.autorisation import tables as schema
from registers.autorisation.parser import EDUCATION


@dataclass(frozen=True)
class ValidAuthorisation:
    number: str
    education_code: str
    given_name: str
    surname: str

    @property
    def education_name(self) -> str | None:
        """Faggruppe; None for a code not (yet) in the known list."""
        return EDUCATION.get(self.education_code)


@dataclass(frozen=True)
class Person:
    """A person's currently valid authorisations. An unknown CPR number and one without valid authorisations
    look alike (no names, no authorisations), so an answer cannot tell who exists."""

    cpr: str
    given_name: str
    surname: str
    authorisations: tuple[ValidAuthorisation, ...]


# Built once for each number of keys (rounded up to a power of two, the rest of the list filled with the first key):
# a statement built per request costs more in SQLAlchemy (its cache key) than the query in the database.


def _sized(keys: Sequence[str]) -> tuple[int, dict[str, str]]:
    size = 1 << max(0, len(keys) - 1).bit_length()
    return size, {f"k{index}": keys[index] if index < len(keys) else keys[0] for index in range(size)}


def _key_list(size: int) -> list[sa.BindParameter[str]]:
    """The parameters `_sized` fills, in its order."""
    return [sa.bindparam(f"k{index}") for index in range(size)]


@functools.cache
def _persons_query(size: int) -> Query:
    autreg2 = schema.autreg2.c
    return Query(sa.select(autreg2.cpr, autreg2.aut_id, autreg2.edu_id, autreg2.given_name, autreg2.surname)
                 .where(autreg2.cpr.in_(_key_list(size)))
                 .order_by(autreg2.cpr, autreg2.aut_id))


@functools.cache
def _authorisations_at_query(size: int) -> Query:
    history = schema.autorisation2.c
    at: sa.BindParameter[datetime] = sa.bindparam("at")
    return Query(sa.select(history.Autorisationsnummer, history.CPR, history.Fornavn, history.Efternavn,
                           history.UddannelsesKode, history.ValidFrom, history.ValidTo)
                 .where(history.Autorisationsnummer.in_(_key_list(size)), history.ValidFrom <= at,
                        history.ValidTo > at)
                 .order_by(history.Autorisationsnummer, history.ValidFrom.desc()))


def persons(database: FacadeDatabase, cprs: Sequence[str]) -> dict[str, Person]:
    """From `autreg2`, the snapshot of currently valid authorisations indexed by CPR: every person of `cprs` in
    one statement (look-ups asked at the same time, importer/http/batch.py)."""
    size, keys = _sized(cprs)
    found: dict[str, list[ValidAuthorisation]] = {cpr: [] for cpr in cprs}
    for row in database.fetch(_persons_query(size), **keys):
        found[row.cpr].append(ValidAuthorisation(row.aut_id, row.edu_id, row.given_name, row.surname))
    return {cpr: _person(cpr, tuple(items)) for cpr, items in found.items()}


def _person(cpr: str, found: tuple[ValidAuthorisation, ...]) -> Person:
    # The names of a person: those of the first authorisation with a surname (replacement numbers have none).
    named = next((item for item in found if item.surname), found[0] if found else None)
    return Person(cpr, named.given_name if named else "", named.surname if named else "", found)


def person(database: FacadeDatabase, cpr: str) -> Person:
    return persons(database, [cpr])[cpr]


NumberAt = tuple[str, datetime]


def authorisations_at(database: FacadeDatabase, asked: Sequence[NumberAt]) -> dict[NumberAt, Any]:
    """For each (number, moment), the version of authorisation `number` valid at that moment (its newest, should
    versions overlap), from `Autorisation2` through its (Autorisationsnummer, ValidTo, ValidFrom) index; None if
    there is none. One statement for each distinct moment (look-ups made now share one)."""
    by_moment: dict[datetime, list[str]] = {}
    for number, at in asked:
        by_moment.setdefault(at, []).append(number)
    answers: dict[NumberAt, Any] = {(number, at): None for number, at in asked}
    for at, numbers in by_moment.items():
        size, keys = _sized(numbers)
        for row in database.fetch(_authorisations_at_query(size), at=at, **keys):
            if answers[row.Autorisationsnummer, at] is None:  # each number's rows come newest first
                answers[row.Autorisationsnummer, at] = row
    return answers


def authorisation_at(database: FacadeDatabase, number: str, at: datetime) -> Any:
    return authorisations_at(database, [(number, at)])[number, at]
