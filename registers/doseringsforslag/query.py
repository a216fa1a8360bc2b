"""Dosage proposals for one drug from the latest release: the look-up the façade exposes.

Consumers must only use the latest release (the platform says so), so every answer comes from the one
release whose version row is open, never a mix: older releases stay in the tables for replication only.
Relations to structure codes the release lacks are skipped, as there is nothing to propose.
"""

from dataclasses import dataclass

import sqlalchemy as sa

from importer.load.temporal import OPEN_END
from registers.doseringsforslag import tables as schema


@dataclass(frozen=True)
class Proposal:
    code: str
    type: str
    simple_string: str | None
    supplementary_text: str | None
    short_translation: str | None
    long_translation: str | None
    xml: str


@dataclass(frozen=True)
class DrugProposals:
    release_number: int
    drug_id: int
    drug_name: str
    unit_code: int
    unit_singular: str | None  # None when the release names a unit code it does not define
    unit_plural: str | None
    proposals: list[Proposal]


def latest_release(connection: sa.Connection) -> int | None:
    version = schema.dosage_version.c
    value = connection.execute(
        sa.select(sa.func.max(version.releaseNumber)).where(version.ValidTo == OPEN_END)
    ).scalar()
    return None if value is None else int(value)


def proposals_for_drug(connection: sa.Connection, drug_id: int) -> DrugProposals | None:
    """The drug's name, unit and proposals in the latest release, or None if that release lacks the drug."""
    release = latest_release(connection)
    if release is None:
        return None
    drug, unit = schema.dosage_drug.c, schema.dosage_unit.c
    row = connection.execute(
        sa.select(drug.drugName, drug.dosageUnitCode, unit.textSingular, unit.textPlural)
        .select_from(
            schema.dosage_drug.outerjoin(
                schema.dosage_unit,
                sa.and_(unit.code == drug.dosageUnitCode, unit.releaseNumber == release, unit.ValidTo == OPEN_END),
            )
        )
        .where(drug.drugId == drug_id, drug.releaseNumber == release, drug.ValidTo == OPEN_END)
    ).first()
    if row is None:
        return None
    return DrugProposals(
        release_number=release,
        drug_id=drug_id,
        drug_name=row.drugName,
        unit_code=int(row.dosageUnitCode),
        unit_singular=row.textSingular,
        unit_plural=row.textPlural,
        proposals=_proposals(connection, drug_id, release),
    )


def _proposals(connection: sa.Connection, drug_id: int, release: int) -> list[Proposal]:
    relation, structure = schema.drug_dosage_structure_relation.c, schema.dosage_structure.c
    rows = connection.execute(
        sa.select(structure.code, structure.type, structure.simpleString, structure.supplementaryText,
                  structure.shortTranslation, structure.longTranslation, structure.xml)
        .select_from(
            schema.drug_dosage_structure_relation.join(
                schema.dosage_structure,
                sa.and_(
                    # DosageStructure.code is a VARCHAR on the platform, the relation's code a BIGINT.
                    structure.code == sa.cast(relation.dosageStructureCode, sa.String),
                    structure.releaseNumber == release,
                    structure.ValidTo == OPEN_END,
                ),
            )
        )
        .where(
            # The id is "<drugId>-<code>": its prefix lets the (id, ValidTo, ValidFrom) index find the drug's rows.
            relation.id.like(f"{int(drug_id)}-%"),
            relation.drugId == drug_id,
            relation.releaseNumber == release,
            relation.ValidTo == OPEN_END,
        )
        .order_by(relation.dosageStructureCode)
    )
    return [
        Proposal(
            code=row.code,
            type=row.type,
            simple_string=row.simpleString,
            supplementary_text=row.supplementaryText,
            short_translation=row.shortTranslation,
            long_translation=row.longTranslation,
            xml=row.xml,
        )
        for row in rows
    ]
