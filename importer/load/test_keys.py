"""The business keys a register holds as restored test data (`stamdata_testdata_key`), in both databases.

A full dump lacks test persons; without this list the next import would close their rows as removed. A reset
forgets a person's keys; a key the register later delivers itself is forgotten too (it is real data again).
"""

from collections.abc import Iterable
from datetime import datetime

import sqlalchemy as sa

from importer.db import MYSQL_TABLE_OPTIONS, DateTimeSeconds, chunks

metadata = sa.MetaData()

test_key_table = sa.Table(
    "stamdata_testdata_key",
    metadata,
    sa.Column("Register", sa.String(50), primary_key=True),
    sa.Column("KeyValue", sa.String(100), primary_key=True),
    sa.Column("CPR", sa.CHAR(10)),
    sa.Column("CreatedDate", DateTimeSeconds, nullable=False),
    sa.Index("ix_stamdata_testdata_key_cpr", "Register", "CPR"),
    **MYSQL_TABLE_OPTIONS,
)
_KEYS = test_key_table.c



def of(connection: sa.Connection, register: str) -> frozenset[str]:
    rows = connection.execute(sa.select(_KEYS.KeyValue).where(_KEYS.Register == register))
    return frozenset(str(value) for (value,) in rows)


def of_person(connection: sa.Connection, register: str, cpr: str) -> frozenset[str]:
    rows = connection.execute(sa.select(_KEYS.KeyValue).where(_KEYS.Register == register, _KEYS["CPR"] == cpr))
    return frozenset(str(value) for (value,) in rows)


def add(connection: sa.Connection, register: str, keys: Iterable[str], cpr: str | None, now: datetime) -> None:
    values = sorted(set(keys))
    forget(connection, register, values)
    rows = [{"Register": register, "KeyValue": key, "CPR": cpr, "CreatedDate": now} for key in values]
    for chunk in chunks(rows):
        connection.execute(test_key_table.insert(), list(chunk))


def forget(connection: sa.Connection, register: str, keys: Iterable[str]) -> None:
    for chunk in chunks(list(keys)):
        connection.execute(test_key_table.delete().where(_KEYS.Register == register, _KEYS.KeyValue.in_(chunk)))


def forget_person(connection: sa.Connection, register: str, cpr: str) -> None:
    connection.execute(test_key_table.delete().where(_KEYS.Register == register, _KEYS["CPR"] == cpr))


def copy(source: sa.Connection, target: sa.Connection, register: str) -> None:
    """Re-synchronising a register's tables carries its test keys along."""
    target.execute(test_key_table.delete().where(_KEYS.Register == register))
    rows = [dict(row._mapping) for row in source.execute(sa.select(test_key_table).where(_KEYS.Register == register))]
    for chunk in chunks(rows):
        target.execute(test_key_table.insert(), list(chunk))
