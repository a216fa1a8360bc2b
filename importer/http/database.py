"""The façades' database: read-only connections with the façade account, and the clock their answers use.

Everything a façade reads goes through `FacadeDatabase`, which connects with the façade account (`facade_url`, by
default the production URL) and additionally marks every session read-only. That flag belongs to the session,
which can switch it off again (`PRAGMA query_only = OFF`, `SET SESSION TRANSACTION READ WRITE`), so it is a second
line only: the first is an account that cannot write at all. `check_cannot_write`, run when the façades start,
refuses an account that can (README, "Façades"): on MariaDB/MySQL one granted anything beyond reading, on SQLite
a file that is not opened read-only.
"""

import itertools
import math
import re
import sqlite3
import time
import uuid
from collections import namedtuple
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import make_url

from importer.clock import Clock, SystemClock
from importer.config import split_urls
from importer.db import LazyEngine, create_engine
from importer.errors import UsageError
from importer.load import heartbeat
from importer.logs import get_logger
from importer.privacy import mask_cpr

log = get_logger(__name__)

T = TypeVar("T")

# How long the start-up check waits for the database; an unreachable one is not a reason to refuse to start.
CHECK_TIMEOUT_S = 3.0


class Behind(Exception):
    """No database of this façade has reached what a request needs yet: a replica behind what the client has
    already read elsewhere. Answered 503 with Retry-After (README, "Beyond one machine")."""

    def __init__(self, message: str, retry_after_s: int = 5) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


@dataclass(frozen=True)
class Lag:
    """How far one façade database is behind the importers: its newest heartbeat against this host's clock."""

    database: str  # its URL, password hidden
    lag_s: float | None  # None: not known (no heartbeat yet, unreachable, or not measured)
    heartbeat: datetime | None = None
    error: str | None = None  # why it could not be read
    measured: bool = True  # False on SQLite: the façades read the importer's own file, nothing replicates

    def within(self, max_lag_s: float) -> bool:
        """Good to read from: reachable, and not known to be more than `max_lag_s` behind (0: no limit)."""
        return self.error is None and (max_lag_s <= 0 or self.lag_s is None or self.lag_s <= max_lag_s)


# After a database failed to connect, the façades read from their others for this long before trying it again.
DOWN_FOR_S = 5.0
# A database's lag is read at most this often to choose where to read from (one small query).
LAG_FRESH_S = 1.0
# The lag read for /status and for choosing a database is bounded by this (a frozen replica must not hang it).
PROBE_TIMEOUT_S = 5.0
# Connections kept open to each database (per process): requests beyond it wait for one (for at most 30 s, then
# 503), as many as the server's threads could use at once.
POOL_SIZE = 20
# A pooled connection is pinged before use only after this long unused (importer/db.py, create_engine).
PING_IDLE_S = 1.0


class _Member:
    """One database the façades may read from, with what they know of it."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.shown = make_url(url).render_as_string(hide_password=True)
        self.engine = LazyEngine(lambda: _read_only(create_engine(url, readonly=True, pool_size=POOL_SIZE,
                                                                   ping_idle_s=PING_IDLE_S)))
        # Single statements (the look-ups), in autocommit: a pool of their own, so pages of the feed never keep
        # a look-up waiting for a connection.
        self.statements = LazyEngine(lambda: _read_only(create_engine(url, readonly=True, pool_size=POOL_SIZE,
                                                                       ping_idle_s=PING_IDLE_S, autocommit=True)))
        # With timeouts: the lag read for /status and for choosing.
        self.probe = LazyEngine(lambda: _read_only(create_engine(url, readonly=True, timeout_s=PROBE_TIMEOUT_S)))
        self.down_until = 0.0
        self.lag: Lag | None = None
        self.lag_read_at = -math.inf


class FacadeDatabase:
    """Read-only connections, created lazily so an unreachable database is a 503, not a failed start.

    `url` may name several databases, comma-separated (replicas to spread over; README, "Beyond one machine"):
    each request then reads from the next in turn that answers and is not more than `max_lag_s` behind the
    importers' heartbeat. With one database nothing of that costs a query."""

    def __init__(self, url: str, clock: Clock | None = None, *, max_lag_s: float = 0.0) -> None:
        self.urls = split_urls(url) or [url]
        self.url = self.urls[0]
        self.clock = clock or SystemClock()  # "now" of every answer (the feed's `updated`, a look-up's default)
        self.max_lag_s = max_lag_s
        self._members = [_Member(member) for member in self.urls]
        self._turn = itertools.count()

    def engine(self) -> sa.Engine:
        """The first database's engine (the only one, unless several are configured)."""
        return self._members[0].engine.get()

    @contextmanager
    def connect(self) -> Iterator[sa.Connection]:
        """One transaction per request (one consistent snapshot), always rolled back: nothing is written."""
        with self.connect_reaching(None) as connection:
            yield connection

    @contextmanager
    def connect_reaching(self, reached: Callable[[sa.Connection], bool] | None) -> Iterator[sa.Connection]:
        """Like `connect`, from a database where `reached(connection)` holds (tried in turn); Behind if none.

        Where several databases are configured, a database that cannot be connected to is passed over (and left
        alone for DOWN_FOR_S), the last error raised only when none answers."""
        for _member, connection in self._connected(lambda member: member.engine.get().connect()):
            with connection:
                transaction = connection.begin()
                try:
                    if reached is None or reached(connection):
                        yield connection
                        return
                finally:
                    transaction.rollback()
        raise Behind("this service's database has not yet reached the position asked for (it replicates from the "
                     "primary); ask again shortly")

    def fetch(self, query: "Query", **parameters: Any) -> list[Any]:
        """The rows of one SELECT, run by itself (one statement reads one consistent state) on a pooled
        connection in autocommit, straight through the driver: no transaction to end afterwards, and none of
        SQLAlchemy's per-statement work, which cost more than the indexed read itself (README, "Façades under
        load"). Databases are tried as `connect` tries them; errors are SQLAlchemy's, as from `connect`."""
        for member, connection in self._connected(lambda member: member.statements.get().raw_connection()):
            try:
                return query.run(connection, member.statements.get().dialect, parameters)
            finally:
                connection.close()
        raise AssertionError("unreachable: _connected raises when no database could be connected to")

    def _connected(self, connect: Callable[[_Member], T]) -> Iterator[tuple[_Member, T]]:
        """Each database in turn (`_order`) with a connection `connect` opened to it. Where several are configured,
        one that cannot be connected to is passed over (and left alone for DOWN_FOR_S); when none could be, the
        last error is raised."""
        failure: BaseException | None = None
        answered = False
        for member in self._order():
            try:
                connection = connect(member)
            except (sa.exc.DBAPIError, sa.exc.TimeoutError) as error:
                if len(self._members) == 1:
                    raise
                member.down_until = time.monotonic() + DOWN_FOR_S
                failure = error
                continue
            answered = True
            yield member, connection
        if failure is not None and not answered:
            raise failure

    def _order(self) -> list[_Member]:
        """The databases to read from, best first: in turn among those up and within the lag limit, then those
        behind (least first), then those that failed lately."""
        members = self._members
        if len(members) == 1:
            return list(members)
        start = next(self._turn) % len(members)
        rotated = members[start:] + members[:start]
        now = time.monotonic()
        up = [member for member in rotated if member.down_until <= now]
        if self.max_lag_s > 0:
            lags = {id(member): self._lag(member, cached=True) for member in up}
            fresh = [member for member in up if lags[id(member)].within(self.max_lag_s)]
            behind = sorted((member for member in up if member not in fresh),
                            key=lambda member: lags[id(member)].lag_s or math.inf)
            up = fresh + behind
        return up + [member for member in rotated if member not in up]

    def lags(self) -> list[Lag]:
        """Every database's lag, read now (for /status)."""
        return [self._lag(member, cached=False) for member in self._members]

    def _lag(self, member: _Member, cached: bool) -> Lag:
        if cached and member.lag is not None and time.monotonic() - member.lag_read_at < LAG_FRESH_S:
            return member.lag
        lag = self._read_lag(member)
        member.lag, member.lag_read_at = lag, time.monotonic()
        if lag.error is not None:
            member.down_until = time.monotonic() + DOWN_FOR_S
        return lag

    def _read_lag(self, member: _Member) -> Lag:
        if make_url(member.url).get_backend_name() == "sqlite":
            return Lag(member.shown, None, measured=False)
        try:
            with member.probe.get().connect() as connection:
                beat = heartbeat.newest(connection)
                connection.rollback()
        except (sa.exc.SQLAlchemyError, OSError) as error:
            detail = str(getattr(error, "orig", None) or error).strip()
            return Lag(member.shown, None, error=mask_cpr(detail.splitlines()[0] if detail else type(error).__name__))
        if beat is None:
            return Lag(member.shown, None)
        return Lag(member.shown, max(0.0, (self.clock.now() - beat).total_seconds()), beat)

    def close(self) -> None:
        for member in self._members:
            member.engine.dispose()
            member.statements.dispose()
            member.probe.dispose()

    def check_cannot_write(self, allow_writable: bool) -> None:
        """Refuse to serve (UsageError, exit 2) through an account that can write, unless `allow_writable` says
        it is intended (then a warning). A database that cannot be reached now is no reason to refuse to start
        (the façades answer 503 until it is back): the check is skipped with a warning. Every configured database
        is checked."""
        for member in self._members:
            self._check_cannot_write(member, allow_writable)

    def _check_cannot_write(self, member: _Member, allow_writable: bool) -> None:
        url = make_url(member.url)
        shown = url.render_as_string(hide_password=True)
        if url.get_backend_name() == "sqlite" and url.database and not Path(url.database).exists():
            log.info("façade database not checked for write access: it does not exist yet (the check runs again "
                     "at the next start)", url=shown)
            return
        try:
            reasons = self._sqlite_writes(member) if url.get_backend_name() == "sqlite" else _mysql_writes(url)
        except (sa.exc.DBAPIError, sa.exc.TimeoutError, OSError) as error:
            detail = str(getattr(error, "orig", None) or error).strip()
            log.warning("façade account not checked for write access: the database is unreachable (the façades "
                        "answer 503 until it is back; the check runs again at the next start)", url=shown,
                        reason=mask_cpr(detail.splitlines()[0] if detail else type(error).__name__))
            return
        if not reasons:
            log.info("façade account cannot write", url=shown)
            return
        if allow_writable:
            log.warning("the façade account can write; allowed by allow_writable_facade", url=shown,
                        reasons=reasons[:5])
            return
        shown_reasons = "; ".join(reasons[:5]) + (f"; and {len(reasons) - 5} more" if len(reasons) > 5 else "")
        if url.get_backend_name() == "sqlite":
            what = "database file"
            fix = ("the façades open the SQLite file read-only (mode=ro), and here they could write: "
                   "this is a defect of the importer, report it")
        else:
            what = "account"
            fix = ("give the façades an account granted SELECT only, on the production database "
                   "(set facade_url / STAMDATA_FACADE_URL to it; README, \"Façades\", has the SQL)")
        raise UsageError(
            f"the façade {what} {shown} can write ({shown_reasons}). The façades must read through an account "
            f"that cannot change the registers, not even when a session switches its read-only flag off: {fix}; "
            f"or, if a writable account is intended, set allow_writable_facade = true "
            f"(STAMDATA_ALLOW_WRITABLE_FACADE=true)."
        )

    def _sqlite_writes(self, member: _Member) -> list[str]:
        """Write through the façades' own engine with the session flag off, in a transaction rolled back anyway:
        it must fail because the file is open read-only, so a change that breaks that opening is caught here."""
        with member.engine.get().connect() as connection:
            try:
                connection.exec_driver_sql("PRAGMA busy_timeout = 0")  # a writer's lock must not make us wait
                connection.exec_driver_sql("PRAGMA query_only = OFF")
                probe = f"stamdata_facade_write_probe_{uuid.uuid4().hex}"
                try:
                    connection.exec_driver_sql(f'CREATE TABLE "{probe}" (x INTEGER)')
                except sa.exc.OperationalError as error:
                    code = getattr(error.orig, "sqlite_errorcode", None)
                    if code is not None and code & 0xFF == sqlite3.SQLITE_READONLY:
                        return []
                    if code is not None and code & 0xFF in {sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED}:
                        return ["the file is open for writing: a write waited for another writer's lock"]
                    raise
                return ["the file is open for writing: a table could be created with the session flag off"]
            finally:
                connection.rollback()
                connection.invalidate()  # never back into the pool with the flag off


def _mysql_writes(url: sa.URL) -> list[str]:
    """What the account may do beyond reading, from its grants and those of every role granted to it.

    Connected without a default database, so the check works before the importer has created it."""
    server = sa.URL.create(url.drivername, url.username, url.password, url.host, url.port, None, url.query)
    engine = create_engine(server.render_as_string(hide_password=False), readonly=True, timeout_s=CHECK_TIMEOUT_S)
    try:
        with engine.connect() as connection:
            return writable_grants(_account_grants(connection), url.database)
    finally:
        engine.dispose()


# Privileges that read, show or monitor, and change nothing. Anything else counts as writing.
READ_ONLY_PRIVILEGES = frozenset({
    "SELECT", "SHOW VIEW", "USAGE", "PROCESS", "SHOW DATABASES", "REPLICATION CLIENT", "BINLOG MONITOR",
    "SLAVE MONITOR", "REPLICA MONITOR", "SHOW_ROUTINE", "SHOW CREATE ROUTINE",
})


def _show_grants(connection: sa.Connection, target: str) -> list[str]:
    # `%` doubled: the driver formats the statement with (no) parameters; a role's host may be `%`.
    return [str(row[0]) for row in connection.exec_driver_sql(f"SHOW GRANTS FOR {target}".replace("%", "%%"))]


def _account_grants(connection: sa.Connection) -> list[str]:
    """The account's grant lines, PUBLIC's (MariaDB) and every granted role's, nested ones included. A role
    whose grants cannot be read becomes a line `UNCHECKED <role>`, which counts as writable."""
    lines = _show_grants(connection, "CURRENT_USER()")
    try:
        # Without FOR, MariaDB adds what is granted to PUBLIC and to the active role.
        lines += [str(row[0]) for row in connection.exec_driver_sql("SHOW GRANTS")]
    except sa.exc.DBAPIError as error:
        if error.connection_invalidated:
            raise
    asked: set[tuple[str, str | None]] = set()
    while True:
        grants = [grant for grant in map(_parse_or_none, lines) if grant is not None]
        covered = {grant.grantee for grant in grants} | asked
        missing = [role for grant in grants for role in grant.roles if role not in covered]
        if not missing:
            return lines
        role = missing[0]
        asked.add(role)
        lines += _role_grants(connection, role)


def _parse_or_none(line: str) -> "Grant | None":
    try:
        return parse_grant(line)
    except ValueError:
        return None  # writable_grants reports it


def _role_grants(connection: sa.Connection, role: tuple[str, str | None]) -> list[str]:
    """A granted role's grant lines, by the first way the server allows: directly; MariaDB, once the role is
    active (this connection is the check's own); MySQL 8, the current user's privileges with the role in use."""
    name = _identity_sql(role)
    for before, target in ((None, name), (f"SET ROLE {name}", name), (None, f"CURRENT_USER() USING {name}")):
        try:
            if before is not None:
                connection.exec_driver_sql(before.replace("%", "%%"))
            return _show_grants(connection, target)
        except sa.exc.DBAPIError as error:
            if error.connection_invalidated:
                raise
            connection.rollback()
    return [f"UNCHECKED {name}"]


@dataclass(frozen=True)
class Grant:
    """One line of SHOW GRANTS: privileges on an object, or roles, to a grantee."""

    privileges: tuple[str, ...]  # upper case, column lists dropped; empty for a grant of roles
    object_type: str  # "" (table, database or global), FUNCTION, PROCEDURE, PACKAGE, PACKAGE BODY, PROXY
    database: str | None  # a pattern for a database-wide grant; None for `*.*`
    table: str | None  # the table or routine of a grant on one
    roles: tuple[tuple[str, str | None], ...]  # the roles granted (name, host)
    grantee: tuple[str, str | None]
    with_option: str  # "GRANT OPTION", "ADMIN OPTION" or ""


_TOKEN = re.compile(r"""\s*(`(?:[^`]|``)*`|"(?:[^"]|"")*"|'(?:[^'\\]|\\.|'')*'|[A-Za-z0-9_$]+|\S)""")


def _tokens(line: str) -> list[str]:
    tokens: list[str] = []
    position = 0
    while True:
        match = _TOKEN.match(line, position)
        if match is None:
            return tokens
        tokens.append(match.group(1))
        position = match.end()


def _unquote(token: str) -> str:
    if len(token) >= 2 and token[0] == token[-1] and token[0] in "`\"'":
        return token[1:-1].replace(token[0] * 2, token[0])
    return token


def _is_word(token: str, *words: str) -> bool:
    return token.upper() in words and token[:1] not in "`\"'"


def parse_grant(line: str) -> Grant | None:
    """A SHOW GRANTS line as a Grant; None for lines that grant nothing (SET DEFAULT ROLE, REVOKE of a partial
    revoke), a ValueError for a GRANT line it cannot read."""
    tokens = _tokens(line)
    if not tokens or not _is_word(tokens[0], "GRANT"):
        return None
    depth, on, to = 0, None, None
    for index, token in enumerate(tokens[1:], 1):
        if token == "(":
            depth += 1
        elif token == ")":
            depth -= 1
        elif depth == 0 and on is None and to is None and _is_word(token, "ON"):
            on = index
        elif depth == 0 and to is None and _is_word(token, "TO"):
            to = index
    if to is None:
        raise ValueError(f"unrecognised grant: {line}")
    grantee, rest = _identity(tokens[to + 1:])
    tail = " ".join(token.upper() for token in rest if token[:1] not in "`\"'")
    with_option = "GRANT OPTION" if "GRANT OPTION" in tail else "ADMIN OPTION" if "ADMIN OPTION" in tail else ""
    if on is None:  # GRANT role [, role] TO grantee
        roles, items = [], _split(tokens[1:to])
        for item in items:
            role, left = _identity(item)
            if left:
                raise ValueError(f"unrecognised grant: {line}")
            roles.append(role)
        return Grant((), "", None, None, tuple(roles), grantee, with_option)
    privileges = tuple(" ".join(token.upper() for token in _drop_parentheses(item)) for item in _split(tokens[1:on]))
    target = tokens[on + 1:to]
    object_type = ""
    if privileges == ("PROXY",):
        return Grant(privileges, "PROXY", None, None, (), grantee, with_option)
    while target and _is_word(target[0], "TABLE", "FUNCTION", "PROCEDURE", "PACKAGE", "BODY"):
        object_type = f"{object_type} {target[0].upper()}".strip()
        target = target[1:]
    table = None
    if target in (["*", ".", "*"], ["*"]):
        database = None if target == ["*", ".", "*"] else "%"  # `*`: the default database of the time, any
    elif len(target) == 3 and target[1] == ".":
        database, table = _unquote(target[0]), None if target[2] == "*" else _unquote(target[2])
    elif len(target) == 1:
        database, table = "%", _unquote(target[0])  # a table of the default database of the time: any
    else:
        raise ValueError(f"unrecognised grant: {line}")
    if not privileges or any(not privilege for privilege in privileges):
        raise ValueError(f"unrecognised grant: {line}")
    return Grant(privileges, object_type, database, table, (), grantee, with_option)


def _identity(tokens: list[str]) -> tuple[tuple[str, str | None], list[str]]:
    """`name` or `name`@`host` at the start of tokens (PUBLIC too), and what follows."""
    if not tokens:
        raise ValueError("a grantee is missing")
    if len(tokens) >= 3 and tokens[1] == "@":
        return (_unquote(tokens[0]), _unquote(tokens[2])), tokens[3:]
    return (_unquote(tokens[0]), None), tokens[1:]


def _identity_sql(identity: tuple[str, str | None]) -> str:
    name, host = identity
    quoted = "`" + name.replace("`", "``") + "`"
    return quoted if host is None else quoted + "@`" + host.replace("`", "``") + "`"


def _split(tokens: list[str]) -> list[list[str]]:
    """Split at top-level commas."""
    items: list[list[str]] = [[]]
    depth = 0
    for token in tokens:
        depth += token == "("
        depth -= token == ")"
        if token == "," and depth == 0:
            items.append([])
        else:
            items[-1].append(token)
    return items


def _drop_parentheses(tokens: list[str]) -> list[str]:
    kept, depth = [], 0
    for token in tokens:
        if token == "(":
            depth += 1
        elif token == ")":
            depth -= 1
        elif depth == 0:
            kept.append(token)
    return kept


def _like(pattern: str, name: str) -> bool:
    """Whether a database-wide grant's name pattern (`%`, `_`, `\\` escapes) covers the database, in any case."""
    parts = re.findall(r"\\.|.", pattern, re.S)
    regex = "".join(".*" if part == "%" else "." if part == "_" else re.escape(part[-1]) for part in parts)
    return re.fullmatch(regex, name, re.I | re.S) is not None


def writable_grants(lines: list[str], database: str | None) -> list[str]:
    """Why an account with these SHOW GRANTS lines can write to `database`; empty if it cannot.

    Writing means any privilege beyond READ_ONLY_PRIVILEGES (or the right to grant) on `*.*`, on the database,
    on any of its tables or routines; a proxy grant; a role whose grants could not be read; a line not understood.
    """
    reasons: list[str] = []
    for line in lines:
        if line.startswith("UNCHECKED "):
            reasons.append(f"role {line.removeprefix('UNCHECKED ')}, whose grants cannot be read")
            continue
        try:
            grant = parse_grant(line)
        except ValueError:
            reasons.append(f"a grant not understood: {line}")
            continue
        if grant is None or (not grant.privileges and not grant.with_option):
            continue
        if grant.object_type == "PROXY":
            reasons.append("PROXY (it may act as another account)")
            continue
        covers = grant.database is None or database is None or _like(grant.database, database)
        if not covers:
            continue
        where = "*.*" if grant.database is None else f"{grant.object_type} {grant.database}.{grant.table or '*'}"
        where = where.strip()
        beyond = [privilege for privilege in grant.privileges if privilege not in READ_ONLY_PRIVILEGES]
        if beyond:
            reasons.append(f"{', '.join(beyond)} on {where}")
        if grant.with_option:
            reasons.append(f"{grant.with_option} on {where if grant.privileges else 'its roles'}")
    return list(dict.fromkeys(reasons))


class Query:
    """A SELECT built once and compiled once per kind of database, for `FacadeDatabase.fetch`.

    Its parameters and rows are converted by the statement's own column types (on SQLite a DATETIME is text in
    the file), as SQLAlchemy converts them; a row is a named tuple of the selected columns' keys.
    """

    def __init__(self, statement: sa.Select[Any]) -> None:
        self.statement = statement
        self.row: Any = namedtuple("Row", [column.key for column in statement.selected_columns])  # type: ignore[misc]
        self._compiled: dict[str, _Compiled] = {}

    def run(self, connection: Any, dialect: sa.Dialect, parameters: dict[str, Any]) -> list[Any]:
        compiled = self._compiled.get(dialect.name) or self._compile(dialect)
        values = {**compiled.defaults, **parameters}
        bound = {name: convert(values[name]) if convert else values[name]
                 for name, convert in compiled.binds.items()}
        arguments: Any = tuple(bound[name] for name in compiled.positions) if compiled.positions else bound
        cursor = connection.cursor()
        try:
            cursor.execute(compiled.sql, arguments)
            rows = cursor.fetchall()
        except dialect.loaded_dbapi.Error as error:
            lost = dialect.is_disconnect(error, connection, cursor)
            if lost:
                connection.invalidate(error)  # the pool opens a new one for the next request
            raise sa.exc.DBAPIError.instance(compiled.sql, arguments, error, dialect.loaded_dbapi.Error,
                                             connection_invalidated=lost, dialect=dialect) from error
        finally:
            cursor.close()
        converters = compiled.results
        make = self.row._make
        if not any(converters):
            return [make(row) for row in rows]
        return [make([convert(value) if convert else value for convert, value in zip(converters, row, strict=True)])
                for row in rows]

    def _compile(self, dialect: sa.Dialect) -> "_Compiled":
        compiled = self.statement.compile(dialect=dialect)
        binds = {name: bind.type.dialect_impl(dialect).bind_processor(dialect)
                 for name, bind in compiled.binds.items()}
        defaults = {name: bind.value for name, bind in compiled.binds.items() if not bind.required}
        results = tuple(column.type.dialect_impl(dialect).result_processor(dialect, None)
                        for column in self.statement.selected_columns)
        positions = tuple(compiled.positiontup or ()) if compiled.positional else ()
        made = _Compiled(compiled.string, binds, defaults, results, positions)
        self._compiled[dialect.name] = made
        return made


@dataclass(frozen=True)
class _Compiled:
    sql: str
    binds: Mapping[str, Callable[[Any], Any] | None]  # every parameter, with its conversion
    defaults: dict[str, Any]  # values the statement carries itself (its LIMIT)
    results: tuple[Callable[[Any], Any] | None, ...]  # each column's conversion
    positions: tuple[str, ...]  # the parameters' order, for drivers that take them by position


def _read_only(engine: sa.Engine) -> sa.Engine:
    """Every connection of `engine` opens a read-only session (importer/http/database.py's account rule)."""
    sa.event.listen(engine, "connect", _read_only_session)
    return engine


def _read_only_session(dbapi_connection: Any, _: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        if type(dbapi_connection).__module__.startswith("sqlite3"):
            cursor.execute("PRAGMA query_only = ON")
        else:
            cursor.execute("SET SESSION TRANSACTION READ ONLY")
    finally:
        cursor.close()
