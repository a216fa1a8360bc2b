"""The typed model of a dose proposal: periods of days of doses, with a unit and a supplementary text.

One model serves the parser, the translator and the XML writer, so a proposal is interpreted once and every
output agrees. Quantities are `Decimal` because the delivery writes them as decimal text (`0.5`, `12.5`) and
the outputs echo them exactly.
"""

from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum


class ExpressionError(ValueError):
    """A dose expression that cannot be read; the message says why (the caller adds file and line)."""


class DoseKind(StrEnum):
    """The delivery's `type` values for one period."""

    TIMES_OF_DAY = "M+M+A+N"  # morning + noon + evening [+ night]
    DAILY = "N daglig"  # plain doses per day
    AS_NEEDED = "PN"  # doses according to need
    FREE_TEXT = "FT"  # free text, no structure


TIMES = ("morning", "noon", "evening", "night")


@dataclass(frozen=True)
class Dose:
    quantity: Decimal
    time: str | None = None  # one of TIMES for M+M+A+N doses
    as_needed: bool = False


@dataclass(frozen=True)
class Day:
    """Day `number` of the period (1 = its first day); 0 means "any day" (as-needed, not iterated)."""

    number: int
    doses: tuple[Dose, ...]


@dataclass(frozen=True)
class Period:
    kind: DoseKind
    iteration: int  # days between repetitions; 0 = not repeated
    days: tuple[Day, ...] = ()
    free_text: str | None = None
    expression: str = ""  # the delivery's text for this period, kept for simpleString


@dataclass(frozen=True)
class Unit:
    singular: str
    plural: str


@dataclass(frozen=True)
class Proposal:
    periods: tuple[Period, ...]
    unit: Unit
    supplementary_text: str | None = None

    @property
    def type(self) -> str:
        """The structure's `type`: the period kind, or each period's kind in braces when there are several."""
        if len(self.periods) == 1:
            return self.periods[0].kind.value
        return "".join(f"{{{period.kind.value}}}" for period in self.periods)

    @property
    def single(self) -> Period | None:
        return self.periods[0] if len(self.periods) == 1 else None

    def key(self) -> tuple[object, ...]:
        """What makes two rows the same structure: the published releases merge `1+0+1` and `1+0+1+0`, and
        free-text proposals regardless of unit, so the key is the interpreted content, not the raw text."""
        periods = tuple(
            (p.kind, p.iteration, p.free_text, p.days) if p.kind is not DoseKind.FREE_TEXT else (p.kind, p.free_text)
            for p in self.periods
        )
        unit = None if all(p.kind is DoseKind.FREE_TEXT for p in self.periods) else self.unit
        return periods, unit, self.supplementary_text
