"""The FMK `<DosageProposals>` XML: one `<Dosage>` per configured interface version that can express a proposal.

Each version's shape is copied from the published releases (1.2.6, 1.4.0, 1.4.2, 1.4.4) and from the platform
description's example (1.4.6), down to namespace prefixes and schema locations, because consumers compare
and parse these documents as delivered. The fixed start and end dates are the platform's placeholders
("it will be necessary to adjust StartDate and EndDate").
"""

from collections.abc import Callable, Sequence
from xml.sax.saxutils import escape

from registers.doseringsforslag.dosage.expression import plain
from registers.doseringsforslag.dosage.model import Day, Dose, DoseKind, Period, Proposal

VERSIONS = ("1.2.6", "1.4.0", "1.4.2", "1.4.4", "1.4.6")
DEFAULT_VERSIONS = ("1.4.0", "1.4.2", "1.4.4", "1.4.6")
START, END = "2010-01-01", "2110-01-01"
XSI = 'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"'
_NS = "http://www.dkma.dk/medicinecard/xml.schema"
HEADER = (
    '<?xml version="1.0" encoding="UTF-8"?><DosageProposals '
    f'xsi:schemaLocation="{_NS}/2013/11/01 DosageProposals.xsd" xmlns="{_NS}/2013/11/01" {XSI}>'
)
FOOTER = "</DosageProposals>"
_TIME_126 = {"morning": "Morning", "noon": "Noon", "evening": "Evening", "night": "Night"}


def _t(text: str) -> str:
    return escape(text)


def _quantities_all_below_one(proposal: Proposal) -> bool:
    return all(dose.quantity < 1 for p in proposal.periods for day in p.days for dose in day.doses)


def _v126(proposal: Proposal) -> str | None:
    period = proposal.single
    if period is None:
        return None  # 1.2.6 holds one structure
    open_ = (
        f'<m09:DosageStructure xsi:schemaLocation="{_NS}/2009/01/01 ../../../2009/01/01/DKMA_DosageStructure.xsd" '
        f'xmlns:m08="{_NS}/2008/06/01" xmlns:m09="{_NS}/2009/01/01" {XSI}>'
    )
    if period.kind is DoseKind.FREE_TEXT:
        return f"{open_}<m09:DosageFreeText>{_t(period.free_text or '')}</m09:DosageFreeText></m09:DosageStructure>"
    # The 2016 releases write the singular only when every quantity is below one.
    unit = proposal.unit.singular if _quantities_all_below_one(proposal) else proposal.unit.plural
    parts = [
        open_, "<m09:DosageTimesStructure>",
        f"<m08:DosageTimesIterationIntervalQuantity>{period.iteration}</m08:DosageTimesIterationIntervalQuantity>",
        f"<m08:DosageTimesStartDate>{START}</m08:DosageTimesStartDate>",
        f"<m08:DosageTimesEndDate>{END}</m08:DosageTimesEndDate>",
        f"<m09:DosageQuantityUnitText>{_t(unit)}</m09:DosageQuantityUnitText>",
    ]
    if proposal.supplementary_text:
        parts.append(f"<m09:DosageSupplementaryText>{_t(proposal.supplementary_text)}</m09:DosageSupplementaryText>")
    for day in period.days:
        parts.append(f"<m09:DosageDayElementStructure><m08:DosageDayIdentifier>{day.number}</m08:DosageDayIdentifier>")
        for dose in day.doses:
            element = ("AccordingToNeed" if dose.as_needed else _TIME_126[dose.time] if dose.time else "") + (
                "DosageTimeElementStructure"
            )
            parts.append(
                f"<m09:{element}><m08:DosageQuantityValue>{plain(dose.quantity)}</m08:DosageQuantityValue></m09:{element}>"
            )
        parts.append("</m09:DosageDayElementStructure>")
    parts.append("</m09:DosageTimesStructure></m09:DosageStructure>")
    return "".join(parts)


def _dose(ns: str, dose: Dose) -> str:
    time = f"<{ns}:Time>{dose.time}</{ns}:Time>" if dose.time else ""
    need = f"<{ns}:IsAccordingToNeed/>" if dose.as_needed else ""
    return f"<{ns}:Dose>{time}<{ns}:Quantity>{plain(dose.quantity)}</{ns}:Quantity>{need}</{ns}:Dose>"


def _days(outer: str, inner: str, days: Sequence[Day]) -> str:
    """Days in `outer` namespace elements, their numbers and doses in `inner` (1.4.2 mixes m13 and m12)."""
    parts = []
    for day in days:
        doses = "".join(_dose(inner, dose) for dose in day.doses)
        if day.number == 0:
            parts.append(f"<{outer}:AnyDay>{doses}</{outer}:AnyDay>")
        else:
            parts.append(f"<{outer}:Day><{inner}:Number>{day.number}</{inner}:Number>{doses}</{outer}:Day>")
    return "".join(parts)


def _iteration(ns: str, period: Period) -> str:
    if period.iteration == 0:
        return f"<{ns}:NotIterated/>"
    return f"<{ns}:IterationInterval>{period.iteration}</{ns}:IterationInterval>"


def _supplementary(ns: str, proposal: Proposal) -> str:
    text = proposal.supplementary_text
    return f"<{ns}:SupplementaryText>{_t(text)}</{ns}:SupplementaryText>" if text else ""


def _unit_texts(outer: str, inner: str, proposal: Proposal) -> str:
    unit = proposal.unit
    return (
        f'<{outer}:UnitTexts source="Doseringsforslag"><{inner}:Singular>{_t(unit.singular)}</{inner}:Singular>'
        f"<{inner}:Plural>{_t(unit.plural)}</{inner}:Plural></{outer}:UnitTexts>"
    )


def _v140(proposal: Proposal) -> str | None:
    period = proposal.single
    if period is None:
        return None  # 1.4.0 holds one structure
    open_ = (
        f'<m12:Dosage xsi:schemaLocation="{_NS}/2012/06/01 ../../../2012/06/01/Dosage.xsd" '
        f'xmlns:m12="{_NS}/2012/06/01" {XSI}>'
    )
    if period.kind is DoseKind.FREE_TEXT:
        return f"{open_}<m12:FreeText>{_t(period.free_text or '')}</m12:FreeText></m12:Dosage>"
    return (
        f"{open_}<m12:Structure>{_iteration('m12', period)}<m12:StartDate>{START}</m12:StartDate>"
        f"<m12:EndDate>{END}</m12:EndDate>{_unit_texts('m12', 'm12', proposal)}{_supplementary('m12', proposal)}"
        f"{_days('m12', 'm12', period.days)}</m12:Structure></m12:Dosage>"
    )


def _free_text(ns: str, text: str) -> str:
    return (
        f"<{ns}:FreeText><{ns}:StartDate></{ns}:StartDate><{ns}:EndDate></{ns}:EndDate>"
        f"<{ns}:Text>{_t(text)}</{ns}:Text></{ns}:FreeText>"
    )


def _structures(outer: str, inner: str, proposal: Proposal) -> str:
    return "".join(
        f"<{outer}:Structure>{_iteration(outer, p)}<{outer}:StartDate>{START}</{outer}:StartDate>"
        f"<{outer}:EndDate>{END}</{outer}:EndDate>{_supplementary(outer, proposal)}"
        f"{_days(outer, inner, p.days)}</{outer}:Structure>"
        for p in proposal.periods
    )


def _is_free_text(proposal: Proposal) -> str | None:
    if len(proposal.periods) == 1 and proposal.periods[0].kind is DoseKind.FREE_TEXT:
        return proposal.periods[0].free_text or ""
    if any(p.kind is DoseKind.FREE_TEXT for p in proposal.periods):
        raise ValueError("free text cannot be one period among several")
    return None


def _v142(proposal: Proposal) -> str | None:
    open_ = (
        f'<m13:Dosage xsi:schemaLocation="{_NS}/2013/06/01 ../../../2013/06/01/DosageForRequest.xsd" '
        f'xmlns:m12="{_NS}/2012/06/01" xmlns:m13="{_NS}/2013/06/01" {XSI}>'
    )
    text = _is_free_text(proposal)
    if text is not None:
        return f"{open_}{_free_text('m13', text)}</m13:Dosage>"
    return (
        f"{open_}<m13:Structures>{_unit_texts('m13', 'm12', proposal)}{_structures('m13', 'm12', proposal)}"
        "</m13:Structures></m13:Dosage>"
    )


def _v144(proposal: Proposal) -> str | None:
    open_ = (
        f'<m15:Dosage xsi:schemaLocation="{_NS}/2015/01/01 ../../../2015/01/01/DosageForRequest.xsd" '
        f'xmlns:m15="{_NS}/2015/01/01" {XSI}>'
    )
    text = _is_free_text(proposal)
    if text is not None:
        return f"{open_}{_free_text('m15', text)}</m15:Dosage>"
    return (
        f"{open_}<m15:Structures>{_unit_texts('m15', 'm15', proposal)}{_structures('m15', 'm15', proposal)}"
        "</m15:Structures></m15:Dosage>"
    )


def _v146(proposal: Proposal) -> str | None:
    """Shaped like the platform description's example: UnitTexts first, then StructuresFixed (or
    StructuresAccordingToNeed when every dose is as needed)."""
    open_ = (
        f'<m16:Dosage xsi:schemaLocation="{_NS}/2015/06/01 ../../../2015/06/01/DosageForRequest.xsd" '
        f'xmlns:m16="{_NS}/2015/06/01" {XSI}>'
    )
    text = _is_free_text(proposal)
    if text is not None:
        return f"{open_}{_free_text('m16', text)}</m16:Dosage>"
    as_needed = all(d.as_needed for p in proposal.periods for day in p.days for d in day.doses)
    wrapper = "m16:StructuresAccordingToNeed" if as_needed else "m16:StructuresFixed"
    return (
        f"{open_}{_unit_texts('m16', 'm16', proposal)}<{wrapper}>{_structures('m16', 'm16', proposal)}"
        f"</{wrapper}></m16:Dosage>"
    )


WRITERS: dict[str, Callable[[Proposal], str | None]] = {
    "1.2.6": _v126, "1.4.0": _v140, "1.4.2": _v142, "1.4.4": _v144, "1.4.6": _v146,
}


def check_versions(versions: Sequence[str]) -> tuple[str, ...]:
    unknown = [v for v in versions if v not in WRITERS]
    if unknown or not versions:
        raise ValueError(f"unknown FMK interface version(s) {unknown} (known: {', '.join(VERSIONS)})")
    return tuple(versions)


MAX_LENGTH = 10_000  # the platform's xml column is VARCHAR(10000)


def dosage_proposals(proposal: Proposal, versions: Sequence[str], max_length: int = MAX_LENGTH) -> str:
    """The whole `xml` value: the wrapper with one `<Dosage>` per version that can express the proposal.

    When the document would exceed the column's 10,000 characters, the oldest versions are left out until it
    fits (the releases drop 1.2.6, then 1.4.0, for long courses); the newest version always stays.
    """
    dosages = []
    for version in versions:
        body = WRITERS[version](proposal)
        if body is not None:
            dosages.append(f"<Dosage><Version>{version}</Version>{body}</Dosage>")
    while len(dosages) > 1 and len(HEADER) + sum(map(len, dosages)) + len(FOOTER) > max_length:
        dosages.pop(0)
    return HEADER + "".join(dosages) + FOOTER
