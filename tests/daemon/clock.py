"""A clock the test moves by hand, so quiet periods, backoff and overdue deadlines need no sleeping."""

from datetime import datetime, timedelta


class ManualClock:
    def __init__(self, start: datetime = datetime(2026, 11, 22, 12, 0, 0)) -> None:
        self.moment = start

    def now(self) -> datetime:
        return self.moment

    def advance(self, seconds: float) -> None:
        self.moment += timedelta(seconds=seconds)
