"""Autorisation lookups: the check a treatment-relation or allergy service makes before it trusts an
`AuthorisationIdentifier` or a `recorder` code, with the platform's FHIR-style identifier systems.

Privacy: asked about a CPR number, the answer is the same whether the person is unknown or merely holds no
valid authorisation (an empty list and empty names, status 200), so the service cannot be used to learn who
exists. By person it reads `autreg2`, the snapshot of currently valid authorisations indexed by CPR; by number
and date it reads the history in `Autorisation2` through its (Autorisationsnummer, ValidTo, ValidFrom) index.
"""

from datetime import UTC, date, datetime, timedelta
from functools import partial
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, HTTPException, Path, Query, Request, Response
from pydantic import BaseModel, Field

from importer.clock import whole_seconds
from importer.http.access import caller_of
from importer.http.audit import Auditor
from importer.http.batch import Batcher
from importer.http.database import FacadeDatabase
from importer.http.problems import PROBLEM, PROBLEM_RESPONSES, ProblemDetails
from registers.autorisation import lookups
from registers.autorisation.parser import EDUCATION

AUTHORISATION_SYSTEM = "urn:oid:1.2.208.176.1.3"
CPR_SYSTEM = "urn:oid:1.2.208.176.1.2"
CPR_PATTERN = r"^[0-9]{10}$"
NUMBER_PATTERN = r"^[0-9A-Z]{5}$"


class Identifier(BaseModel):
    system: str
    value: str


class Authorisation(BaseModel):
    identifier: Identifier = Field(description=f"The authorisation code, system {AUTHORISATION_SYSTEM}")
    educationCode: str
    educationName: str | None = Field(description="Faggruppe; null for a code not (yet) in the known list")
    givenName: str
    surname: str


class PersonAuthorisations(BaseModel):
    person: Identifier
    givenName: str = Field(description="Empty when the CPR number has no valid authorisation")
    surname: str
    authorisations: list[Authorisation]


class AuthorisationAt(Authorisation):
    person: Identifier
    at: str = Field(description="The moment asked about (UTC)")
    validFrom: str
    validTo: str = Field(description="2999-12-31T00:00:00Z while open")


def _time(moment: datetime) -> str:
    return f"{moment:%Y-%m-%dT%H:%M:%S}Z"


def moment_of(at: datetime | date | None, now: datetime) -> datetime:
    """A date means its first second; zoned times are converted to UTC, naive ones are UTC already; none is `now`.

    A zone that would carry the moment past the calendar's ends clamps it there (nothing is valid at either end).
    """
    if at is None:
        return whole_seconds(now)
    if not isinstance(at, datetime):
        return datetime(at.year, at.month, at.day)
    offset = at.utcoffset()
    if offset is not None:
        try:
            at = at.astimezone(UTC)
        except OverflowError:
            at = datetime.max if offset < timedelta(0) else datetime.min
    return at.replace(tzinfo=None, microsecond=0)


PERSON_ENDPOINT = "/autorisation/v1/persons/{cpr}"
AUTHORISATION_ENDPOINT = "/autorisation/v1/authorisations/{autorisationsnummer}"


def router(database: FacadeDatabase, audit: Auditor) -> APIRouter:
    """Both answers name a person found by CPR number or carrying one: each is recorded in the audit trail,
    with the caller, before it is sent."""
    api = APIRouter(prefix="/autorisation/v1", tags=["autorisation"])
    # Look-ups asked at the same time are read together, one statement for all of them (importer/http/batch.py).
    persons: Batcher[str, lookups.Person] = Batcher(partial(lookups.persons, database), "lookup-persons")
    authorisations: Batcher[lookups.NumberAt, Any] = Batcher(partial(lookups.authorisations_at, database),
                                                             "lookup-authorisations")

    @api.get(
        "/persons/{cpr}",
        response_model=PersonAuthorisations,
        summary="A person's currently valid authorisations",
        description="An unknown CPR number and one without valid authorisations get the same answer: an empty "
                    "list and empty names.",
        responses={**PROBLEM_RESPONSES, 200: {"content": {"application/json": {"example": {
            "person": {"system": CPR_SYSTEM, "value": "0101801234"}, "givenName": "Anne Marie", "surname": "Jensen",
            "authorisations": [{"identifier": {"system": AUTHORISATION_SYSTEM, "value": "0A1B2"},
                                "educationCode": "7170", "educationName": "Læge", "givenName": "Anne Marie",
                                "surname": "Jensen"}]}}}}},
    )
    async def person(
        request: Request,
        cpr: Annotated[str, Path(pattern=CPR_PATTERN, description="CPR number, 10 digits", examples=["0101801234"])],
    ) -> Response:
        found = await persons.get(cpr)
        # An unknown person too: it was looked up. Answered only once the row is committed.
        await audit.record_async(caller_of(request).name, cpr, PERSON_ENDPOINT)
        return _json({
            "person": _identifier_json(CPR_SYSTEM, cpr),
            "givenName": found.given_name,
            "surname": found.surname,
            "authorisations": [_authorisation_json(item.number, item.education_code, item.given_name, item.surname)
                               for item in found.authorisations],
        })

    @api.get(
        "/authorisations/{autorisationsnummer}",
        response_model=AuthorisationAt,
        summary="One authorisation as valid at a moment (default now)",
        responses={
            **PROBLEM_RESPONSES,
            404: {"model": ProblemDetails, "description": "No such authorisation valid at that moment",
                  "content": {PROBLEM: {}}},
            200: {"content": {"application/json": {"example": {
                "identifier": {"system": AUTHORISATION_SYSTEM, "value": "0A1B2"}, "educationCode": "7170",
                "educationName": "Læge", "givenName": "Anne Marie", "surname": "Jensen",
                "person": {"system": CPR_SYSTEM, "value": "0101801234"}, "at": "2026-11-22T00:00:00Z",
                "validFrom": "2026-11-20T00:00:00Z", "validTo": "2999-12-31T00:00:00Z"}}}},
        },
    )
    async def authorisation(
        request: Request,
        autorisationsnummer: Annotated[str, Path(
            pattern=NUMBER_PATTERN, description="5 characters [0-9A-Z]", examples=["0A1B2"])],
        at: Annotated[datetime | date | None, Query(
            description="A date (yyyy-MM-dd: its first second, UTC) or an ISO 8601 date-time; default now",
            examples=["2026-11-21"])] = None,
    ) -> Response:
        moment = moment_of(at, database.clock.now())
        row = await authorisations.get((autorisationsnummer, moment))
        if row is None:
            raise HTTPException(404, f"no authorisation {autorisationsnummer} valid at {_time(moment)}")
        await audit.record_async(caller_of(request).name, row.CPR, AUTHORISATION_ENDPOINT)
        return _json({
            **_authorisation_json(row.Autorisationsnummer, row.UddannelsesKode, row.Fornavn, row.Efternavn),
            "person": _identifier_json(CPR_SYSTEM, row.CPR),
            "at": _time(moment),
            "validFrom": _time(row.ValidFrom),
            "validTo": _time(row.ValidTo),
        })

    return api


# The answers are written as the models above describe them (the OpenAPI document is generated from the models;
# tests/http/test_lookups_http.py compares whole answers, schemathesis checks them against the document), without
# building and validating the models on every request.

def _json(document: dict[str, Any]) -> Response:
    return Response(orjson.dumps(document), media_type="application/json")


def _identifier_json(system: str, value: str) -> dict[str, str]:
    return {"system": system, "value": value}


def _authorisation_json(number: str, education: str, given: str, surname: str) -> dict[str, Any]:
    return {"identifier": _identifier_json(AUTHORISATION_SYSTEM, number), "educationCode": education,
            "educationName": EDUCATION.get(education), "givenName": given, "surname": surname}
