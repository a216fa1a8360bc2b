"""Dosage lookup: a drug's name, unit and dose proposals from the latest release (see query.py for why only it)."""

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path
from pydantic import BaseModel, Field

from importer.http.database import FacadeDatabase
from importer.http.problems import PROBLEM, PROBLEM_RESPONSES, ProblemDetails
from registers.doseringsforslag import query

DRUG_ID_PATTERN = r"^[0-9]{1,11}$"


class Unit(BaseModel):
    code: int
    singular: str | None = Field(description="null when the release names a unit code it does not define")
    plural: str | None


class Proposal(BaseModel):
    code: str
    type: str
    simpleString: str | None
    supplementaryText: str | None
    shortTranslation: str | None = Field(description="Danish; null when longer than 70 characters")
    longTranslation: str | None
    xml: str


class DrugProposals(BaseModel):
    releaseNumber: int
    drugId: int
    drugName: str
    unit: Unit
    proposals: list[Proposal]


EXAMPLE = {
    "releaseNumber": 125, "drugId": 28101234567, "drugName": "Panodil", "unit": {
        "code": 3, "singular": "tablet", "plural": "tabletter"},
    "proposals": [{"code": "17", "type": "M+M+A+N", "simpleString": "1+1+1+1", "supplementaryText": None,
                   "shortTranslation": "1 tablet 4 gange daglig", "longTranslation": "Doseringsforløb: …",
                   "xml": "<DosageProposals>…</DosageProposals>"}],
}


def router(database: FacadeDatabase) -> APIRouter:
    api = APIRouter(prefix="/doseringsforslag/v1", tags=["doseringsforslag"])

    @api.get(
        "/drugs/{drugId}",
        response_model=DrugProposals,
        summary="A drug's dose proposals in the latest release",
        responses={
            **PROBLEM_RESPONSES,
            404: {"model": ProblemDetails, "description": "The latest release has no such drug",
                  "content": {PROBLEM: {}}},
            200: {"content": {"application/json": {"example": EXAMPLE}}},
        },
    )
    def drug(
        drug_id: Annotated[str, Path(alias="drugId", pattern=DRUG_ID_PATTERN, description="1-11 digits",
                                     examples=["28101234567"])],
    ) -> DrugProposals:
        with database.connect() as connection:
            found = query.proposals_for_drug(connection, int(drug_id))
        if found is None:
            raise HTTPException(404, f"no drug {int(drug_id)} in the latest release")
        return DrugProposals(
            releaseNumber=found.release_number,
            drugId=found.drug_id,
            drugName=found.drug_name,
            unit=Unit(code=found.unit_code, singular=found.unit_singular, plural=found.unit_plural),
            proposals=[
                Proposal(code=item.code, type=item.type, simpleString=item.simple_string,
                         supplementaryText=item.supplementary_text, shortTranslation=item.short_translation,
                         longTranslation=item.long_translation, xml=item.xml)
                for item in found.proposals
            ],
        )

    return api
