"""The delivery's dose expressions (`type`, `iteration`, `mapning`) to the model and back (FORMATS.md §3).

`M+M+A+N` is 3-4 `+`-separated quantities; `N daglig` and `PN` are `;`-separated quantities, optionally per
day as `dag 1: 2 dag 4: 2`; `FT` is free text; several periods are wrapped in braces in every column.

Reading is as lenient as the platform's own converter, because the published releases show what it accepted:
a day fragment without a colon (`dag 4; 1;1`, a trailing `dag`) is skipped, an empty item (`1;1;`) and
spaces (`10; 10`) are ignored, `Dag` and `dag` are the same. Anything else that is not a number is an error.
"""

import re
from decimal import Decimal, InvalidOperation

from registers.doseringsforslag.dosage.model import (
    TIMES,
    Day,
    Dose,
    DoseKind,
    ExpressionError,
    Period,
    Proposal,
    Unit,
)

_BRACES = re.compile(r"\{([^{}]*)\}")
# Hostile or mistyped numbers are refused as such instead of failing int() (over 4,300 digits) or rendering a
# billion-digit quantity: days and iterations have at most 5 digits, quantities at most 9 on each side.
MAX_DAY_DIGITS = 5
MAX_QUANTITY_DIGITS = 9
_SMALL_NUMBER = re.compile(rf"[0-9]{{1,{MAX_DAY_DIGITS}}}")
_DAY = re.compile(r"dag\s*(\d+)\s*:\s*([^a-zA-Z]*)", re.IGNORECASE)
_KINDS = {kind.value: kind for kind in DoseKind}


def split_periods(text: str) -> list[str]:
    """`{a}{b}` -> ["a", "b"]; text without braces is one period. Unbalanced braces are an error."""
    text = text.strip()
    if "{" not in text and "}" not in text:
        return [text]
    parts = _BRACES.findall(text)
    if not parts or "".join(f"{{{part}}}" for part in parts) != re.sub(r"\}\s*\{", "}{", text):
        raise ExpressionError(f"unbalanced or stray braces in {text!r}")
    return [part.strip() for part in parts]


def quantity(text: str) -> Decimal:
    try:
        value = Decimal(text.strip())
    except InvalidOperation:
        raise ExpressionError(f"{text.strip()!r} is not a quantity") from None
    if not value.is_finite() or value < 0:
        raise ExpressionError(f"{text.strip()!r} is not a quantity")
    exponent = value.as_tuple().exponent
    if value.adjusted() >= MAX_QUANTITY_DIGITS or (isinstance(exponent, int) and exponent < -MAX_QUANTITY_DIGITS):
        shown = text.strip() if len(text.strip()) <= 40 else text.strip()[:37] + "..."
        raise ExpressionError(f"{shown!r} is not a plausible quantity (at most {MAX_QUANTITY_DIGITS} digits before "
                              f"and after the decimal point)")
    return value


def _quantities(text: str, separator: str) -> list[Decimal]:
    return [quantity(item) for item in text.split(separator) if item.strip()]


def _doses(kind: DoseKind, text: str) -> tuple[Dose, ...]:
    if kind is DoseKind.TIMES_OF_DAY:
        values = [item for item in text.split("+")]
        if len(values) not in (3, 4) or any(not item.strip() for item in values):
            raise ExpressionError(f"M+M+A+N needs 3 or 4 '+'-separated quantities, found {text.strip()!r}")
        return tuple(Dose(q, time) for q, time in zip(map(quantity, values), TIMES, strict=False) if q != 0)
    doses = tuple(Dose(q, None, kind is DoseKind.AS_NEEDED) for q in _quantities(text, ";"))
    if not doses:
        raise ExpressionError(f"no dose in {text.strip()!r}")
    return doses


def parse_period(kind_text: str, iteration_text: str, expression: str) -> Period:
    kind = _KINDS.get(kind_text.strip())
    if kind is None:
        raise ExpressionError(f"unknown type {kind_text.strip()!r} (expected M+M+A+N, N daglig, PN or FT)")
    iteration_text = iteration_text.strip()
    if not _SMALL_NUMBER.fullmatch(iteration_text):
        shown = iteration_text if len(iteration_text) <= 40 else iteration_text[:37] + "..."
        raise ExpressionError(f"iteration {shown!r} is not a number of days (at most {MAX_DAY_DIGITS} digits)")
    iteration = int(iteration_text)
    expression = expression.strip()
    if not expression:
        raise ExpressionError(f"a {kind.value} row without a dose expression")
    if kind is DoseKind.FREE_TEXT:
        return Period(kind, iteration, (), expression, expression)
    if re.search("dag", expression, re.IGNORECASE):
        found = _DAY.findall(expression)
        for number, _ in found:
            if not _SMALL_NUMBER.fullmatch(number):
                shown = number if len(number) <= 40 else number[:37] + "..."
                raise ExpressionError(f"day number {shown!r} is not a day (at most {MAX_DAY_DIGITS} digits)")
        days = tuple(Day(int(number), _doses(kind, text)) for number, text in found)
        if not days:
            raise ExpressionError(f"no 'dag N: ...' in {expression!r}")
        if any(day.number < 1 for day in days):
            raise ExpressionError(f"day numbers start at 1 in {expression!r}")
    else:
        doses = _doses(kind, expression)
        # The platform writes a single not-iterated as-needed dose as "any day", several as day 1.
        number = 0 if kind is DoseKind.AS_NEEDED and iteration == 0 and len(doses) == 1 else 1
        days = (Day(number, doses),)
    return Period(kind, iteration, days, None, expression)


def parse(kind_text: str, iteration_text: str, expression: str, unit: Unit, text: str | None) -> Proposal:
    """One row's proposal; several periods when the columns hold braces (the counts must agree)."""
    kinds = split_periods(kind_text)
    expressions = split_periods(expression)
    iterations = split_periods(iteration_text)
    if len(iterations) == 1 and len(kinds) > 1:
        iterations = iterations * len(kinds)
    if not len(kinds) == len(expressions) == len(iterations):
        raise ExpressionError(
            f"{len(kinds)} period type(s), {len(expressions)} expression(s) and {len(iterations)} iteration(s) "
            "do not match"
        )
    periods = tuple(parse_period(k, i, e) for k, i, e in zip(kinds, iterations, expressions, strict=True))
    return Proposal(periods, unit, text or None)


def plain(value: Decimal) -> str:
    """A quantity as the delivery and the XML write it: `0.5`, `10`, never `1E+1`."""
    return format(value.normalize(), "f")


def format_period(period: Period) -> str:
    """The `mapning` text of a period (the inverse of `parse_period`, up to spacing and zero doses)."""
    if period.kind is DoseKind.FREE_TEXT:
        return period.free_text or ""

    def doses(day: Day) -> str:
        if period.kind is DoseKind.TIMES_OF_DAY:
            by_time = {dose.time: dose.quantity for dose in day.doses}
            return "+".join(plain(by_time.get(time, Decimal(0))) for time in TIMES)
        return ";".join(plain(dose.quantity) for dose in day.doses)

    first = period.days[0] if period.days else None
    as_any_day = period.kind is DoseKind.AS_NEEDED and period.iteration == 0 and first and len(first.doses) == 1
    if len(period.days) == 1 and first and first.number == (0 if as_any_day else 1):
        return doses(period.days[0])
    return " ".join(f"dag {day.number}: {doses(day)}" for day in period.days)


def format_expression(proposal: Proposal) -> tuple[str, str, str]:
    """(type, iteration, mapning) columns for a proposal."""
    if len(proposal.periods) == 1:
        period = proposal.periods[0]
        return period.kind.value, str(period.iteration), format_period(period)
    return (
        "".join(f"{{{p.kind.value}}}" for p in proposal.periods),
        "".join(f"{{{p.iteration}}}" for p in proposal.periods),
        "".join(f"{{{format_period(p)}}}" for p in proposal.periods),
    )
