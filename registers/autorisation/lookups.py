"""The look-ups both façades answer from (HTTP/JSON and the platform's SOAP `Authorization`): one query each, so
the two can never disagree about who holds which authorisation.
"""

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


# Built once: a statement built per request costs more in SQLAlchemy (its cache key) than the query in the database.
_PERSON = Query(
    sa.select(schema.autreg2.c.aut_id, schema.autreg2.c.edu_id, schema.autreg2.c.given_name,
              schema.autreg2.c.surname)
    .where(schema.autreg2.c.cpr == sa.bindparam("cpr"))
    .order_by(schema.autreg2.c.aut_id)
)
_AT: sa.BindParameter[datetime] = sa.bindparam("at")
_AUTHORISATION_AT = Query(
    sa.select(schema.autorisation2.c.Autorisationsnummer, schema.autorisation2.c.CPR, schema.autorisation2.c.Fornavn,
              schema.autorisation2.c.Efternavn, schema.autorisation2.c.UddannelsesKode,
              schema.autorisation2.c.ValidFrom, schema.autorisation2.c.ValidTo)
    .where(schema.autorisation2.c.Autorisationsnummer == sa.bindparam("number"),
           schema.autorisation2.c.ValidFrom <= _AT, schema.autorisation2.c.ValidTo > _AT)
    .order_by(schema.autorisation2.c.ValidFrom.desc())
    .limit(1)
)


def person(database: FacadeDatabase, cpr: str) -> Person:
    """From `autreg2`, the snapshot of currently valid authorisations indexed by CPR."""
    rows = database.fetch(_PERSON, cpr=cpr)
    found = tuple(ValidAuthorisation(row.aut_id, row.edu_id, row.given_name, row.surname) for row in rows)
    # The names of a person: those of the first authorisation with a surname (replacement numbers have none).
    named = next((item for item in found if item.surname), found[0] if found else None)
    return Person(cpr, named.given_name if named else "", named.surname if named else "", found)


def authorisation_at(database: FacadeDatabase, number: str, at: datetime) -> Any:
    """The version of authorisation `number` valid at `at` (its newest, should versions overlap), from
    `Autorisation2` through its (Autorisationsnummer, ValidTo, ValidFrom) index; None if there is none."""
    rows = database.fetch(_AUTHORISATION_AT, number=number, at=at)
    return rows[0] if rows else None
