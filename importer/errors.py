"""The three kinds of failure an operator must tell apart, each with its own exit code.

A *data* error is the dataset's fault: it is refused and the register locks until an operator looks.
An *infrastructure* error is the environment's fault (database down, disk full): retry later, never lock.
A *usage* error is the caller's fault (unknown register, bad option).
"""

from collections.abc import Iterator
from dataclasses import dataclass

import sqlalchemy as sa

from importer.privacy import mask_cpr

MAX_PROBLEMS_IN_MESSAGE = 20


@dataclass(frozen=True)
class Problem:
    """One broken rule, located as precisely as the format allows."""

    rule: str
    detail: str
    file: str | None = None
    line: int | None = None

    def __str__(self) -> str:
        where = ""
        if self.file is not None:
            where = f"{self.file}:{self.line}: " if self.line is not None else f"{self.file}: "
        return mask_cpr(f"{where}{self.rule}: {self.detail}")


class ImporterError(Exception):
    exit_code = 3


class DataError(ImporterError):
    """The dataset is refused. Carries every problem found, the message lists the first few."""

    exit_code = 1

    def __init__(self, problems: list[Problem]) -> None:
        if not problems:
            raise ValueError("a DataError needs at least one problem")
        self.problems = problems
        super().__init__(self._message())

    @classmethod
    def single(cls, rule: str, detail: str, file: str | None = None, line: int | None = None) -> "DataError":
        return cls([Problem(rule, detail, file, line)])

    def in_file(self, file: str) -> "DataError":
        """The same refusal, with problems that name no file attributed to `file` (the dataset)."""
        return DataError([p if p.file is not None else Problem(p.rule, p.detail, file, p.line) for p in self.problems])

    @property
    def rule(self) -> str:
        return self.problems[0].rule

    def _message(self) -> str:
        shown = [str(problem) for problem in self.problems[:MAX_PROBLEMS_IN_MESSAGE]]
        hidden = len(self.problems) - len(shown)
        if hidden:
            shown.append(f"... and {hidden} more problem(s)")
        return "\n".join(shown)


class InfrastructureError(ImporterError):
    """Not the dataset's fault; the same dataset should be retried later."""

    exit_code = 3

    def __init__(self, message: str) -> None:
        super().__init__(mask_cpr(message))


class UsageError(ImporterError):
    exit_code = 2


def causes(error: BaseException) -> Iterator[BaseException]:
    """The error and everything behind it (`raise … from`, and what was being handled when it was raised)."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def infrastructure_cause(error: BaseException) -> BaseException | None:
    """The environment's fault behind `error`, if any: a lost or refused database connection, a database
    error of the operational kind, or a file-system error (ENOSPC, EIO, …).

    Judged by the whole chain, because clean-up on a broken connection raises errors of its own
    (`PendingRollbackError`, "connection invalidated") that would otherwise hide the outage and turn a
    transient fault into a refused dataset.
    """
    for cause in causes(error):
        if isinstance(cause, DataError):
            return None  # the dataset's fault, whatever happened while it was found
        if isinstance(cause, InfrastructureError):
            return cause
        if isinstance(cause, sa.exc.DBAPIError) and (
            cause.connection_invalidated
            or isinstance(cause, sa.exc.OperationalError | sa.exc.InterfaceError | sa.exc.InternalError)
        ):
            return cause
        if isinstance(cause, sa.exc.PendingRollbackError | sa.exc.DisconnectionError | sa.exc.TimeoutError):
            return cause
        if isinstance(cause, OSError):
            return cause
        if type(cause).__module__.startswith("pymysql") and type(cause).__name__ in {
            "OperationalError", "InterfaceError", "InternalError"
        }:
            return cause
    return None


def as_infrastructure(error: BaseException, doing: str) -> InfrastructureError | None:
    """`error` as an InfrastructureError naming what was being done, or None if it is not the environment's."""
    cause = infrastructure_cause(error)
    if cause is None:
        return None
    if isinstance(cause, InfrastructureError):
        return cause
    detail = getattr(cause, "orig", None) or cause
    kind = "system" if isinstance(cause, OSError) else "database"
    return InfrastructureError(f"{kind} error while {doing}: {detail}")
