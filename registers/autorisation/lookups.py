"""The look-ups both façades answer from (HTTP/JSON and the platform's SOAP `Authorization`): one query each, so
the two can never disagree about who holds which authorisation.
"""

from dataclasses import dataclass

import sqlalchemy as sa

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


def person(connection: sa.Connection, cpr: str) -> Person:
    """From `autreg2`, the snapshot of currently valid authorisations indexed by CPR."""
    table = schema.autreg2.c
    rows = connection.execute(
        sa.select(table.aut_id, table.edu_id, table.given_name, table.surname)
        .where(table.cpr == cpr)
        .order_by(table.aut_id)
    ).all()
    found = tuple(ValidAuthorisation(row.aut_id, row.edu_id, row.given_name, row.surname) for row in rows)
    # The names of a person: those of the first authorisation with a surname (replacement numbers have none).
    named = next((item for item in found if item.surname), found[0] if found else None)
    return Person(cpr, named.given_name if named else "", named.surname if named else "", found)
