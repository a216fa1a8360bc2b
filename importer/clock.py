"""Time is injected, so tests drive it instead of sleeping. All stored times are naive UTC, whole seconds."""

from datetime import UTC, datetime
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime: ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC).replace(tzinfo=None)


def whole_seconds(moment: datetime) -> datetime:
    return moment.replace(microsecond=0)
