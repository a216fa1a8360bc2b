"""API clients: a name, credentials and scopes, kept in production so every façade host sees the same clients.

A client authenticates with a bearer token or, where the server speaks mutual TLS, with a certificate whose
subject is registered for it. A token is 32 random bytes shown once, when the client is added; only its sha256
is stored. A random token needs no slow hash: nothing can be guessed from a digest of 256 random bits, and
looking it up by its digest means the database compares digests, never secrets, so the time an answer takes says
nothing about how close a guess was; the match is compared once more with `hmac.compare_digest`. A token holds
no client name, so a wrong token says nothing about which clients exist.

A revoked client keeps its row (its name is its identity in the audit trail); names are never reused.
"""

import hashlib
import hmac
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from importer.db import MYSQL_TABLE_OPTIONS, DateTimeSeconds
from importer.errors import UsageError

metadata = sa.MetaData()

client_table = sa.Table(
    "stamdata_client",
    metadata,
    sa.Column("Name", sa.String(100), primary_key=True),
    sa.Column("TokenHash", sa.CHAR(64)),
    sa.Column("CertificateSubject", sa.String(500)),
    sa.Column("Scopes", sa.String(2000), nullable=False),
    sa.Column("CreatedDate", DateTimeSeconds, nullable=False),
    sa.Column("RevokedDate", DateTimeSeconds),
    # Unique indexes, named (SQLite and MariaDB then report the same schema): a token or subject is one client's.
    sa.Index("ux_stamdata_client_token", "TokenHash", unique=True),
    sa.Index("ux_stamdata_client_subject", "CertificateSubject", unique=True),
    **MYSQL_TABLE_OPTIONS,
)

TOKEN_PREFIX = "stm_"
FIXED_SCOPES = ("notifications", "testdata", "operator")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,99}$")
_SCOPE = re.compile(r"^(feed|lookup):[a-z][a-z0-9_-]*$")


@dataclass(frozen=True)
class Client:
    name: str
    scopes: frozenset[str]
    created: datetime
    revoked: datetime | None
    certificate_subject: str | None

    def allows(self, scope: str) -> bool:
        return scope in self.scopes


def known_scopes(registers: Iterable[str]) -> list[str]:
    """Every scope a client may hold: a feed and a look-up per register, and the services'."""
    names = sorted(registers)
    return [*(f"feed:{name}" for name in names), *(f"lookup:{name}" for name in names), *FIXED_SCOPES]


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).hexdigest()


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def _client(row: Any) -> Client:
    return Client(row.Name, frozenset(row.Scopes.split()), row.CreatedDate, row.RevokedDate, row.CertificateSubject)


_COLUMNS = (client_table.c.Name, client_table.c.Scopes, client_table.c.CreatedDate, client_table.c.RevokedDate,
            client_table.c.CertificateSubject)


_BY_TOKEN = sa.select(*_COLUMNS, client_table.c.TokenHash).where(client_table.c.TokenHash == sa.bindparam("digest"))
_BY_SUBJECT = sa.select(*_COLUMNS).where(client_table.c.CertificateSubject == sa.bindparam("subject"))


def by_token(connection: sa.Connection, token: str) -> Client | None:
    """The active client this token belongs to, or None (unknown, revoked: the caller cannot tell which)."""
    digest = token_hash(token)
    row = connection.execute(_BY_TOKEN, {"digest": digest}).first()
    if row is None or row.RevokedDate is not None or not hmac.compare_digest(row.TokenHash, digest):
        return None
    return _client(row)


def by_certificate(connection: sa.Connection, subject: str) -> Client | None:
    row = connection.execute(_BY_SUBJECT, {"subject": subject}).first()
    if row is None or row.RevokedDate is not None:
        return None
    return _client(row)


def all_clients(connection: sa.Connection) -> list[Client]:
    return [_client(row) for row in connection.execute(sa.select(*_COLUMNS).order_by(client_table.c.Name))]


def add(connection: sa.Connection, name: str, scopes: Iterable[str], allowed: Iterable[str], now: datetime,
        certificate_subject: str | None = None, with_token: bool = True) -> str | None:
    """Registers a client and returns its new token (None for a certificate-only client)."""
    scopes = sorted(set(scopes))
    if not _NAME.match(name):
        raise UsageError(f"client name {name!r}: 1-100 characters, letters, digits and . _ @ - "
                         "(starting with a letter or digit)")
    allowed = list(allowed)
    unknown = [scope for scope in scopes if scope not in allowed]
    if unknown or not scopes:
        raise UsageError(f"scope {unknown[0] if unknown else '(none)'}: a client needs one or more of "
                         f"{', '.join(allowed)}")
    if connection.execute(sa.select(client_table.c.Name).where(client_table.c.Name == name)).first() is not None:
        raise UsageError(f"client {name} exists already (names are never reused: they identify callers in the "
                         "audit trail); revoke it and choose another name")
    if certificate_subject is not None and connection.execute(
        sa.select(client_table.c.Name).where(client_table.c.CertificateSubject == certificate_subject)
    ).first() is not None:
        raise UsageError(f"certificate subject {certificate_subject!r} belongs to another client")
    token = new_token() if with_token else None
    connection.execute(client_table.insert().values(
        Name=name, TokenHash=token_hash(token) if token else None, CertificateSubject=certificate_subject,
        Scopes=" ".join(scopes), CreatedDate=now, RevokedDate=None))
    return token


def revoke(connection: sa.Connection, name: str, now: datetime) -> bool:
    """True when the client was active and is revoked now; False when it was revoked already."""
    row = connection.execute(sa.select(client_table.c.RevokedDate).where(client_table.c.Name == name)).first()
    if row is None:
        raise UsageError(f"no client named {name}")
    if row.RevokedDate is not None:
        return False
    connection.execute(client_table.update().where(client_table.c.Name == name).values(RevokedDate=now))
    return True
