"""Look-ups asked at the same time are read together (importer/http/batch.py): each must still get exactly its own
answer — another person's data in an answer would be a breach — and a failed read fails exactly the look-ups that
were in it."""

import asyncio
import threading
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from importer.http import batch
from importer.http.batch import Batcher
from importer.http.database import FacadeDatabase
from registers.autorisation import lookups
from tests.conftest import Databases
from tests.http.server import add_client, import_sample, serve_process
from tests.http.test_audit_group_commit import _rows

KNOWN = {"0101801234": ["0A1B2"], "0101010001": ["09YM8"], "1512901234": ["1G7H8"], "0202851234": []}


@pytest.fixture
def imported(databases: Databases, tmp_path: Path) -> Iterator[FacadeDatabase]:
    import_sample(databases, tmp_path / "drops")
    database = FacadeDatabase(databases.facade_url or databases.production_url)
    try:
        yield database
    finally:
        database.close()


def test_every_look_up_of_a_read_gets_its_own_answer(imported: FacadeDatabase) -> None:
    persons: Batcher[str, lookups.Person] = Batcher(lambda cprs: lookups.persons(imported, cprs), "test-persons")
    now = datetime.now().replace(microsecond=0)
    numbers: Batcher[lookups.NumberAt, object] = Batcher(lambda asked: lookups.authorisations_at(imported, asked),
                                                         "test-numbers")

    @settings(max_examples=30, deadline=None)
    @given(st.lists(st.sampled_from([*KNOWN, "9999999999"]), min_size=1, max_size=40),
           st.lists(st.tuples(st.sampled_from(["0A1B2", "0C3D4", "1G7H8", "ZZZZZ"]), st.sampled_from([0, -400])),
                    min_size=1, max_size=20))
    def each_its_own(cprs: list[str], asked: list[tuple[str, int]]) -> None:
        async def all_at_once() -> tuple[list[lookups.Person], list[object]]:
            people = asyncio.gather(*(persons.get(cpr) for cpr in cprs))
            found = asyncio.gather(*(numbers.get((number, now + timedelta(days=days))) for number, days in asked))
            return await people, await found

        people, found = asyncio.run(all_at_once())
        for cpr, person in zip(cprs, people, strict=True):
            assert person.cpr == cpr
            assert [item.number for item in person.authorisations] == KNOWN.get(cpr, [])
        for (number, days), row in zip(asked, found, strict=True):
            alone = lookups.authorisation_at(imported, number, now + timedelta(days=days))
            assert row == alone, "read together, read alone: the same answer"
            assert row is None or row.Autorisationsnummer == number

    each_its_own()


def test_a_failed_read_fails_its_look_ups_and_the_next_read_answers() -> None:
    failing = threading.Event()

    def read(keys: Sequence[int]) -> Mapping[int, int]:
        if failing.is_set():
            raise OSError("the database went away")
        return {key: key * 10 for key in keys}

    batcher: Batcher[int, int] = Batcher(read, "test-failing")

    async def ask(keys: list[int]) -> list[int | BaseException]:
        return await asyncio.gather(*(batcher.get(key) for key in keys), return_exceptions=True)

    failing.set()
    outcomes = asyncio.run(ask([1, 2, 3]))
    assert all(isinstance(outcome, OSError) for outcome in outcomes)
    failing.clear()
    assert asyncio.run(ask([1, 2, 2, 3])) == [10, 20, 20, 30]


def test_a_read_that_leaves_a_key_out_fails_that_look_up_only() -> None:
    batcher: Batcher[int, int] = Batcher(lambda keys: {key: key for key in keys if key != 2}, "test-partial")

    async def ask() -> list[int | BaseException]:
        return await asyncio.gather(*(batcher.get(key) for key in (1, 2, 3)), return_exceptions=True)

    first, second, third = asyncio.run(ask())
    assert (first, third) == (1, 3) and isinstance(second, KeyError)


def test_the_reading_thread_ends_when_idle_and_the_next_look_up_starts_another(
    monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(batch, "IDLE_S", 0.05)
    readers: list[str] = []

    def read(keys: Sequence[int]) -> Mapping[int, int]:
        readers.append(threading.current_thread().name)
        return {key: key for key in keys}

    batcher: Batcher[int, int] = Batcher(read, "test-idle")
    assert asyncio.run(batcher.get(1)) == 1
    first = batcher._reader
    assert first is not None
    first.join(5)
    assert not first.is_alive() and batcher._reader is None
    assert asyncio.run(batcher.get(2)) == 2
    assert readers == ["test-idle", "test-idle"] and batcher._reader is not first


def test_concurrent_requests_over_http_each_name_their_own_person_and_are_each_audited(
    databases: Databases, tmp_path: Path
) -> None:
    import_sample(databases, tmp_path / "drops")
    token = add_client(databases, "epj-batched", "lookup:autorisation")
    cprs = [cpr for cpr in KNOWN for _ in range(15)]
    with serve_process(databases, tmp_path, wait_s=60) as (base, _log):
        async def ask() -> list[httpx.Response]:
            async with httpx.AsyncClient(base_url=base, headers={"Authorization": f"Bearer {token}"},
                                         timeout=30) as client:
                return await asyncio.gather(*(client.get(f"/autorisation/v1/persons/{cpr}") for cpr in cprs))

        answers = asyncio.run(ask())
    for cpr, answer in zip(cprs, answers, strict=True):
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["person"]["value"] == cpr
        assert [item["identifier"]["value"] for item in body["authorisations"]] == KNOWN[cpr]
    assert sorted(cpr for _client, cpr, _endpoint in _rows(databases.production_url, "epj-batched")) == sorted(cprs)
