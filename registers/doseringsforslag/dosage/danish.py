"""Danish short and long translations of a proposal, worded as the platform's published releases word them.

The releases were produced by the FMK "dosis til tekst" converter; its rules are reverse-engineered here from
releases 27 and 29. Two of its quirks are reproduced on purpose because consumers see them:

* The converter's fixed wording reached the releases double-encoded (UTF-8 read as ISO-8859-1), e.g.
  `Doseringsforløbet` is published as `DoseringsforlÃ¸bet`, while unit names, supplementary texts and weekday
  names are correct. `_m` applies that transformation to the fixed wording only.
* The long translation dates the course from a fixed start (Monday 3 June 2013) to a fixed end (1 June 2015).

The short translation tries the converter's rules in order and keeps the first text of at most 70 characters;
when none fits, there is no short translation (`None`).
"""

from collections.abc import Callable, Iterator, Sequence
from datetime import date, timedelta
from decimal import Decimal

from registers.doseringsforslag.dosage.expression import plain
from registers.doseringsforslag.dosage.model import Day, Dose, DoseKind, Period, Proposal, Unit

SHORT_MAX = 70
START = date(2013, 6, 3)
WEEKDAYS = ("mandag", "tirsdag", "onsdag", "torsdag", "fredag", "lørdag", "søndag")
MONTHS = ("januar", "februar", "marts", "april", "maj", "juni", "juli", "august", "september", "oktober",
          "november", "december")


def _m(text: str) -> str:
    """The converter's fixed wording as published: UTF-8 bytes read as ISO-8859-1."""
    return text.encode("utf-8").decode("iso-8859-1")


_REPAIRS = {_m(letter): letter for letter in "æøåÆØÅ"}


def repaired(text: str) -> str:
    """The same translation with the double-encoded Danish letters put right (`forlÃ¸b` -> `forløb`), for
    operators who prefer correct Danish to the published releases' bytes."""
    for wrong, right in _REPAIRS.items():
        text = text.replace(wrong, right)
    return text


_TIME_WORDS = {"morning": "morgen", "noon": "middag", "evening": "aften", "night": _m("før sengetid")}
_FRACTIONS = {Decimal("0.25"): "1/4", Decimal("0.5"): "1/2", Decimal("0.75"): "3/4"}
_START_TEXT = _m("Doseringsforløbet starter mandag den 3. juni 2013")
_END_TEXT = _m("ophører mandag den 1. juni 2015")
_COMPLEX = _m(".\nBemærk at doseringen har et komplekst forløb:")
_COURSE = _m("   Doseringsforløb:")


def long_quantity(value: Decimal) -> str:
    return plain(value).replace(".", ",")


def short_quantity(value: Decimal) -> str:
    """Halves and quarters below two as fractions (`1/2`, `1 1/2`), anything else with a decimal comma."""
    whole, part = divmod(value, 1)
    if part in _FRACTIONS and whole <= 1:
        return _FRACTIONS[part] if whole == 0 else f"{whole} {_FRACTIONS[part]}"
    return long_quantity(value)


def unit_text(unit: Unit, value: Decimal) -> str:
    return unit.singular if value <= 1 else unit.plural


def supplement(text: str | None) -> str:
    """A supplementary text follows the dose after a space, or directly when it starts with a comma."""
    if not text:
        return ""
    return text if text.startswith(",") else f" {text}"


def _join(words: Sequence[str]) -> str:
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} og {words[-1]}"


def _weekday(number: int) -> str:
    return WEEKDAYS[(number - 1) % 7]


def _dated(number: int) -> str:
    day = START + timedelta(days=number - 1)
    return f"{_weekday(number).capitalize()} den {day.day}. {MONTHS[day.month - 1]} {day.year}"


def _equal(doses: Sequence[Dose]) -> Decimal | None:
    quantities = {dose.quantity for dose in doses}
    return quantities.pop() if len(quantities) == 1 else None


def _consecutive(days: Sequence[Day]) -> bool:
    return [day.number for day in days] == list(range(1, len(days) + 1))


def _same_days(days: Sequence[Day]) -> bool:
    return len({tuple(day.doses) for day in days}) == 1


# --- long translation -----------------------------------------------------------------------------------------


def _long_dose(period: Period, day: Day, unit: Unit, text: str | None, daily: bool) -> str:
    extra = supplement(text)
    if period.kind is DoseKind.TIMES_OF_DAY:
        return " + ".join(
            f"{long_quantity(d.quantity)} {unit_text(unit, d.quantity)} {_TIME_WORDS[d.time or 'morning']}{extra}"
            for d in day.doses
        )
    quantity = _equal(day.doses)
    count = len(day.doses)
    if quantity is None:
        return " + ".join(f"{long_quantity(d.quantity)} {unit_text(unit, d.quantity)}" for d in day.doses) + extra
    dose = f"{long_quantity(quantity)} {unit_text(unit, quantity)}"
    if period.kind is DoseKind.AS_NEEDED:
        if day.number == 0:
            return f"{dose} efter behov{extra}"
        per = " daglig" if period.iteration == 1 else ""
        return f"{dose} efter behov {_m('højst')} {count} {'gang' if count == 1 else 'gange'}{per}{extra}"
    if count == 1:
        return f"{dose}{extra}"
    return f"{dose} {count} gange{' daglig' if daily else ''}{extra}"


def _header(period: Period) -> str:
    if period.kind is DoseKind.FREE_TEXT:
        return f"{_START_TEXT} og {_END_TEXT}."
    iteration = period.iteration
    if iteration == 0:
        if period.kind is DoseKind.AS_NEEDED:
            return f"{_START_TEXT}:"
        middle = f", og {_END_TEXT}"
    elif iteration == 1:
        middle = f", gentages hver dag, og {_END_TEXT}"
    elif iteration == 7:
        middle = _m(", forløbet gentages hver uge")
    elif iteration == 2:
        middle = _m(f", forløbet gentages hver {iteration}. dag, og ") + _END_TEXT
    else:
        middle = _m(f", forløbet gentages efter {iteration} dage, og ") + _END_TEXT
    days = [day for day in period.days if day.number]
    return _START_TEXT + middle + (_COMPLEX if days and not _consecutive(days) else ":")


def long_translation(proposal: Proposal) -> str | None:
    period = proposal.single
    if period is None:
        return None
    text = proposal.supplementary_text
    lines = [_header(period), _COURSE]
    if period.kind is DoseKind.FREE_TEXT:
        lines.append(f"   {period.free_text}")
        return "\n".join(lines)
    daily = period.iteration == 1 and len(period.days) == 1 and period.days[0].number == 1
    for day in period.days:
        dose = _long_dose(period, day, proposal.unit, text, daily)
        if day.number == 0:
            label = "Efter behov: "
        elif daily:
            label = ""
        elif period.iteration == 7:
            label = f"{_weekday(day.number).capitalize()}: "
        elif period.iteration == 2:
            label = f"Dag {day.number}: "
        else:
            label = f"{_dated(day.number)}: "
        lines.append(f"   {label}{dose}")
    return "\n".join(lines)


# --- short translation ----------------------------------------------------------------------------------------


def _short_dose(unit: Unit, quantity: Decimal) -> str:
    return f"{short_quantity(quantity)} {unit_text(unit, quantity)}"


def _times(day: Day, unit: Unit) -> str | None:
    quantity = _equal(day.doses)
    if quantity is not None:
        return f"{_short_dose(unit, quantity)} {_join([_TIME_WORDS[d.time or 'morning'] for d in day.doses])}"
    return _join([f"{_short_dose(unit, d.quantity)} {_TIME_WORDS[d.time or 'morning']}" for d in day.doses])


def _per_day(day: Day, unit: Unit) -> str | None:
    """`1 tablet 3 gange` / `2 tabletter 1 gang` for equal plain doses."""
    quantity = _equal(day.doses)
    if quantity is None:
        return None
    count = len(day.doses)
    return f"{_short_dose(unit, quantity)} {count} {'gang' if count == 1 else 'gange'}"


def _duration(days: int, weeks_from: int) -> str:
    if days % 7 == 0 and days // 7 >= weeks_from:
        weeks = days // 7
        return f"{weeks} {'uge' if weeks == 1 else 'uger'}"
    return f"{days} dage"


def _pause(days: int) -> str:
    if days == 7:
        return "en uges"
    if days % 7 == 0:
        return f"{days // 7} ugers"
    return f"{days} dages"


def _every(iteration: int) -> str | None:
    if iteration % 30 == 0:
        months = iteration // 30
        return _m("1 gang om måneden") if months == 1 else _m(f"hver {months}. måned")
    if iteration % 7 == 0:
        return f"mandag hver {iteration // 7}. uge"
    return f"hver {iteration}. dag"


Rule = Callable[[Proposal, Period], str | None]


def _free_text(proposal: Proposal, period: Period) -> str | None:
    return period.free_text if period.kind is DoseKind.FREE_TEXT else None


def _as_needed(proposal: Proposal, period: Period) -> str | None:
    if period.kind is not DoseKind.AS_NEEDED or len(period.days) != 1:
        return None
    day = period.days[0]
    quantity = _equal(day.doses)
    if quantity is None:
        return None
    text = supplement(proposal.supplementary_text)
    dose = _short_dose(proposal.unit, quantity)
    if day.number == 0 and len(day.doses) == 1:
        return f"{dose} efter behov{text}"
    if period.iteration == 1 and day.number == 1 and len(day.doses) > 1:
        return f"{dose} efter behov, {_m('højst')} {len(day.doses)} gange daglig{text}"
    return None


def _daily(proposal: Proposal, period: Period) -> str | None:
    if period.iteration != 1 or len(period.days) != 1 or period.days[0].number != 1:
        return None
    day, unit, text = period.days[0], proposal.unit, supplement(proposal.supplementary_text)
    if period.kind is DoseKind.TIMES_OF_DAY:
        times = _times(day, unit)
        return f"{times}{text}" if times else None
    if period.kind is not DoseKind.DAILY:
        return None
    quantity = _equal(day.doses)
    if quantity is None:
        return None
    if len(day.doses) == 1 and quantity <= 1:
        return f"{_short_dose(unit, quantity)} daglig{text}"
    count = len(day.doses)
    return f"{_short_dose(unit, quantity)} {count} {'gang' if count == 1 else 'gange'} daglig{text}"


def _weekly(proposal: Proposal, period: Period) -> str | None:
    if period.iteration != 7 or not _same_days(period.days) or any(d.number > 7 for d in period.days):
        return None
    day, unit = period.days[0], proposal.unit
    if period.kind is DoseKind.TIMES_OF_DAY:
        dose = _times(day, unit)
    elif period.kind is DoseKind.DAILY and len(day.doses) == 1:
        dose = _short_dose(unit, day.doses[0].quantity)
    else:
        return None
    weekdays = _join([_weekday(d.number) for d in period.days])
    return f"{dose} {weekdays} hver uge{supplement(proposal.supplementary_text)}"


def _repeated_single(proposal: Proposal, period: Period) -> str | None:
    if period.iteration in (0, 1, 7) or len(period.days) != 1 or period.days[0].number != 1:
        return None
    day = period.days[0]
    if period.kind is not DoseKind.DAILY or len(day.doses) != 1:
        return None
    every = _every(period.iteration)
    return f"{_short_dose(proposal.unit, day.doses[0].quantity)} {every}{supplement(proposal.supplementary_text)}"


def _not_repeated(proposal: Proposal, period: Period) -> str | None:
    if period.iteration != 0 or period.kind is DoseKind.FREE_TEXT:
        return None
    days, unit, text = period.days, proposal.unit, supplement(proposal.supplementary_text)
    if not _same_days(days):
        return None
    if period.kind is DoseKind.TIMES_OF_DAY:
        times = _times(days[0], unit)
        if times is None or not _consecutive(days):
            return None
        return f"{times} i {len(days)} dage{text}"
    per_day = _per_day(days[0], unit)
    if per_day is None:
        return None
    if len(days) == 1 and days[0].number == 1:
        return f"{per_day}{text}"
    if _consecutive(days):
        return f"{per_day} daglig i {_duration(len(days), 1)}{text}"
    return f"{per_day} daglig dag {_join([str(d.number) for d in days])}{text}"


def _with_pause(proposal: Proposal, period: Period) -> str | None:
    """A run of identical days from day 1, then a pause until the iteration repeats (no supplementary text)."""
    days, unit = period.days, proposal.unit
    if period.iteration <= 1 or period.kind is not DoseKind.DAILY or not _same_days(days):
        return None
    quantity = _equal(days[0].doses)
    if quantity is None or len(days[0].doses) != 1:
        return None
    dose = _short_dose(unit, quantity)
    numbers = [d.number for d in days]
    if _consecutive(days) and len(days) < period.iteration:
        return f"{dose} daglig i {_duration(len(days), 2)}, herefter {_pause(period.iteration - len(days))} pause"
    if period.iteration % 7 == 0 and numbers == list(range(1, 7 * len(days), 7)):
        weeks = len(days)
        return (f"{dose} daglig mandag i de {_m('første')} {weeks} uger, herefter "
                f"{period.iteration // 7 - weeks} uges pause")
    return None


def _plain_daily(proposal: Proposal, period: Period) -> str | None:
    """Last resort for one dose a day, the same every day: `1 engangssprøjte daglig`, without the duration or
    the supplementary text."""
    days = period.days
    if period.iteration != 0 or period.kind is not DoseKind.DAILY or not _same_days(days) or not _consecutive(days):
        return None
    if len(days[0].doses) != 1:
        return None
    return f"{_short_dose(proposal.unit, days[0].doses[0].quantity)} daglig"


RULES: tuple[Rule, ...] = (
    _free_text, _as_needed, _daily, _weekly, _repeated_single, _not_repeated, _with_pause, _plain_daily,
)


def _candidates(proposal: Proposal) -> Iterator[str]:
    period = proposal.single
    if period is None:
        return
    for rule in RULES:
        text = rule(proposal, period)
        if text is not None:
            yield text


def short_translation(proposal: Proposal) -> str | None:
    """The first rule's text that fits in 70 characters, or None."""
    return next((text for text in _candidates(proposal) if len(text) <= SHORT_MAX), None)
