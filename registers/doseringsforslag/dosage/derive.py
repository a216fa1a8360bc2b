"""Delivery rows to the five tables' records, numbered and deduplicated as the published releases are.

What releases 27 and 29 show, and this module reproduces:

* units are the distinct (singular, plural) pairs, numbered from 1 in case-insensitive order;
* drugs are the distinct drug ids (first row's name and unit), in drug id order;
* structures are numbered from 1 in order of first appearance of each distinct *short translation*: the
  platform deduplicated on it (no two published structures share one; `1+0+1` and `1+0+1+0`, free text in two
  units, and even a three-day course whose text is too long for anything but "1 kapsel daglig" all land on the
  first structure with that text); every row with a structure gives one relation, repeated pairs included;
* a proposal the converter cannot translate briefly (no short text of at most 70 characters) still consumes a
  code and still gets its relation, but no structure is published for it, and it is not remembered: the next
  row with the same proposal consumes a new code. The releases have such dangling codes (72 in release 27);
* rows whose iteration is `.` (with or without a dose) and multi-period rows define only the drug and its unit:
  the releases carry no structure for them.

Translation and XML run once per distinct proposal, not once per row.
"""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from registers.doseringsforslag.dosage import danish, fmk
from registers.doseringsforslag.dosage.expression import parse
from registers.doseringsforslag.dosage.model import ExpressionError, Proposal, Unit


@dataclass(frozen=True)
class Row:
    """One delivery line, cells trimmed, a lone space already made empty."""

    line: int
    drug_id: str
    name: str
    singular: str
    plural: str
    iteration: str
    type: str
    expression: str
    text: str


@dataclass(frozen=True)
class Structure:
    code: int
    type: str
    simple_string: str | None
    supplementary_text: str | None
    xml: str
    short_translation: str | None
    long_translation: str | None


@dataclass
class Derived:
    units: list[tuple[int, str, str]] = field(default_factory=list)  # code, singular, plural
    drugs: list[tuple[int, str, int]] = field(default_factory=list)  # drug id, name, unit code
    structures: list[Structure] = field(default_factory=list)
    relations: list[tuple[int, int]] = field(default_factory=list)  # drug id, structure code
    problems: list[tuple[int, str, str]] = field(default_factory=list)  # line, rule, detail
    untranslatable: int = 0  # codes consumed without a published structure
    drug_unit_only: int = 0  # rows with a dose that define only the drug and unit (iteration '.', several periods)
    drug_conflicts: int = 0  # drug ids whose rows disagree on name or unit (the first row wins)


def is_unit_only(row: Row) -> bool:
    """The known "drug and unit only" rows: no type and no expression (the releases' `.| | |` lines)."""
    return not row.type and not row.expression


def row_proposal(row: Row) -> Proposal | None:
    """The row's proposal, or None for a drug-and-unit-only row. Raises ExpressionError."""
    if is_unit_only(row):
        return None
    if not row.type:
        raise ExpressionError(f"a dose expression {row.expression!r} without a type")
    if row.iteration == ".":
        return None
    return parse(row.type, row.iteration, row.expression, Unit(row.singular, row.plural), row.text or None)


def simple_string(row: Row, proposal: Proposal) -> str | None:
    """The delivery's expression, for daily-repeated single-period proposals written without days."""
    period = proposal.single
    if period is None or period.iteration != 1 or "dag" in row.expression.lower():
        return None
    return row.expression


def build(proposal: Proposal, row: Row, code: int, short: str, versions: Sequence[str],
          double_encoded: bool = True) -> Structure:
    long = danish.long_translation(proposal)
    if not double_encoded:
        short, long = danish.repaired(short), long and danish.repaired(long)
    return Structure(
        code=code,
        type=proposal.type,
        simple_string=simple_string(row, proposal),
        supplementary_text=proposal.supplementary_text,
        xml=fmk.dosage_proposals(proposal, versions),
        short_translation=short,
        long_translation=long,
    )


def derive(rows: Iterable[Row], versions: Sequence[str], double_encoded: bool = True) -> Derived:
    """The five tables' records; `double_encoded=False` repairs the translations' Danish letters (see `danish`)."""
    out = Derived()
    rows = list(rows)
    unit_pairs = sorted({(r.singular, r.plural) for r in rows}, key=lambda pair: (pair[0].casefold(), pair))
    unit_codes = {pair: code for code, pair in enumerate(unit_pairs, start=1)}
    out.units = [(code, s, p) for (s, p), code in unit_codes.items()]
    seen_drugs: dict[str, tuple[str, str, str]] = {}
    conflicting: set[str] = set()
    known: dict[str, int] = {}  # short translation -> code
    shorts: dict[tuple[object, ...], str | None] = {}  # translate each distinct proposal once
    next_code = 1
    for row in rows:
        drug = (row.name, row.singular, row.plural)
        first = seen_drugs.setdefault(row.drug_id, drug)
        if first is drug:
            out.drugs.append((int(row.drug_id), row.name, unit_codes[(row.singular, row.plural)]))
        elif first != drug:
            conflicting.add(row.drug_id)
        try:
            proposal = row_proposal(row)
        except ExpressionError as error:
            out.problems.append((row.line, "dose-expression", str(error)))
            continue
        if proposal is None:
            out.drug_unit_only += not is_unit_only(row)
            continue
        if proposal.single is None:
            out.drug_unit_only += 1
            continue
        key = proposal.key()
        if key not in shorts:
            shorts[key] = danish.short_translation(proposal)
        short = shorts[key]
        code = known.get(short) if short is not None else None
        if code is None:
            code, next_code = next_code, next_code + 1
            if short is None:
                out.untranslatable += 1
            else:
                known[short] = code
                out.structures.append(build(proposal, row, code, short, versions, double_encoded))
        out.relations.append((int(row.drug_id), code))
    out.drugs.sort()
    out.drug_conflicts = len(conflicting)
    return out
