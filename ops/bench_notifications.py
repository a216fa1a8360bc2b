#!/usr/bin/env python3
"""Benchmark of change notifications: what they add to an import, and how fast a client pulls.

    python ops/bench_notifications.py [--rows 1000000] [--subscriptions 10000] [--ids 1000] [--clients 100]
                                      [--max 1000] [--db sqlite | --db mysql+pymysql://root@127.0.0.1/]

Generates the synthetic autorisation dumps of ops/bench.py (N rows, then a next-day dump with 1 % changed, 0.1 %
removed and 0.1 % added) and imports both into two database pairs on the same server: one as the product does (every
production import writes its change events), one with the event writer switched off. Between the two imports
`--subscriptions` subscriptions with `--ids` CPR numbers each (drawn from the dump's people) are made on the first
pair: `--clients` clients, each with one pull point holding subscriptions/clients of them. Then it measures:

- events_s / delta_extra_pct  the time the next-day import spent on its events (reading the ids of the rows it
  closes, writing the events), against the rest of it: the import's extra time; and the same import's total with
  and without events (delta_s, delta_without_s: the machine's noise is larger than the difference, so the in-run
  figure is the one to read);
- initial_events_s            the same for the first import (every key is created: one event each);
- match_all_s                 the daemon's housekeeping matching every subscription to the new events;
- one_client_*                one client draining its pull point over HTTP (`max` per pull) right after the
  import, matching included (cold), and another client after the housekeeping matched (warm): notifications a
  second;
- all_clients_*               every client draining its pull point, one after another.

The ID lists are bulk-loaded (10 million entries through the API's PUT would take as long as the rest together;
the PUT's own speed is measured on a sample: put_list_s). On MariaDB it creates and drops its own databases.
Prints one JSON object.
"""

import argparse
import dataclasses
import json
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import sqlalchemy as sa

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "ops"))

from bench import database_pair, make_dumps, write  # noqa: E402

from importer.db import create_engine, is_mysql  # noqa: E402


def settings_for(preflight: str, production: str, state: Path) -> Any:
    from importer.config import load_settings

    return load_settings(None, {"STAMDATA_PREFLIGHT_URL": preflight, "STAMDATA_PRODUCTION_URL": production,
                                "STAMDATA_STATE_DIR": str(state), "STAMDATA_AUTORISATION_REDUCTION_GUARD": "1000000000",
                                "STAMDATA_LOG_LEVEL": "warning"})


class Timed:
    """The event writer (the read of the rows to close before the import closes them, and the writing of the events
    after), timed; or switched off altogether."""

    def __init__(self, enabled: bool) -> None:
        from importer.load import notifications

        self.real_read, self.real_write = notifications.closed_ids, notifications.record_import
        self.enabled = enabled
        self.seconds = 0.0
        self.events = 0

    def read(self, *args: Any) -> Any:
        if not self.enabled:
            return None  # the pipeline then writes no events either
        began = time.perf_counter()
        found = self.real_read(*args)
        self.seconds += time.perf_counter() - began
        return found

    def write(self, *args: Any) -> int:
        began = time.perf_counter()
        written: int = self.real_write(*args)
        self.seconds += time.perf_counter() - began
        self.events += written
        return written


def imported(settings: Any, dump: Path, writer: Timed) -> dict[str, Any]:
    from importer.load import notifications
    from importer.load.pipeline import Pipeline
    from registers.autorisation import REGISTER

    notifications.closed_ids, notifications.record_import = writer.read, writer.write  # type: ignore[assignment]
    pipeline = Pipeline(settings)
    try:
        pipeline.migrate()
        before = writer.seconds
        began = time.perf_counter()
        summary = pipeline.import_dataset(REGISTER, dump)
        seconds = time.perf_counter() - began
    finally:
        pipeline.close()
        notifications.closed_ids, notifications.record_import = writer.real_read, writer.real_write
    return {"seconds": seconds, "events_s": writer.seconds - before, "timings": summary.timings,
            "changed": summary.counts.inserted + summary.counts.updated + summary.counts.closed}


def people(engine: sa.Engine) -> np.ndarray:
    with engine.connect() as connection:
        return np.array(sorted({str(cpr) for (cpr,) in connection.exec_driver_sql(
            "SELECT DISTINCT CPR FROM Autorisation2")}))


def load_subscriptions(engine: sa.Engine, cprs: np.ndarray, count: int, size: int, clients: int,
                       workdir: Path) -> list[tuple[str, str]]:
    """`count` ID lists of `size` CPRs and their subscriptions, `clients` clients with one pull point each; returns
    (client, pull point) of each client. Bulk: the entries through LOAD DATA (MariaDB) or one executemany."""
    from importer.load import subscriptions
    from importer.load.notifications import idlist_table

    rng = np.random.default_rng(20261202)
    now = datetime(2026, 11, 21, 12, 0, 0)
    points: list[tuple[str, str]] = []
    with engine.begin() as connection:
        connection.execute(idlist_table.insert(), [
            {"Client": f"bench-{number % clients}", "Name": f"list-{number}", "Size": size, "CreatedDate": now,
             "ModifiedDate": now} for number in range(count)])
        lists = {str(name): int(number) for number, name in connection.execute(
            sa.select(idlist_table.c.Id, idlist_table.c.Name))}
    entries = workdir / "entries.tsv"
    with entries.open("w") as file:
        for number in range(count):
            chosen = np.sort(cprs[rng.choice(len(cprs), size=min(size, len(cprs)), replace=False)])
            file.write("".join(f"{lists[f'list-{number}']}\t{cpr}\n" for cpr in chosen))
    with engine.begin() as connection:
        if is_mysql(connection):
            # The (IdValue, IdList) index sorted once after the load instead of 10 million random inserts.
            connection.exec_driver_sql("ALTER TABLE stamdata_notification_idlist_entry "
                                       "DROP INDEX ix_stamdata_notification_idlist_entry_value")
            connection.exec_driver_sql(f"LOAD DATA LOCAL INFILE '{entries}' INTO TABLE "
                                       "stamdata_notification_idlist_entry (IdList, IdValue)")
            connection.exec_driver_sql("ALTER TABLE stamdata_notification_idlist_entry ADD INDEX "
                                       "ix_stamdata_notification_idlist_entry_value (IdValue, IdList)")
        else:
            raw: Any = connection.connection.cursor()
            with entries.open() as file:
                raw.executemany("INSERT INTO stamdata_notification_idlist_entry (IdList, IdValue) VALUES (?, ?)",
                                (line.rstrip("\n").split("\t") for line in file))
            raw.close()
        for client in range(clients):
            name = f"bench-{client}"
            point = subscriptions.create_pull_point(connection, name, now)
            points.append((name, point))
            for number in range(client, count, clients):
                subscriptions.subscribe(connection, name, point, f"list-{number}", "stamdata/autorisation", now)
    return points


@contextmanager
def served(settings: Any, names: list[str]) -> Iterator[tuple[str, dict[str, str]]]:
    """The app over real HTTP (uvicorn in a thread, as `run` and `serve` do) and a token per client."""
    from importer.clock import SystemClock
    from importer.http import clients
    from importer.http.app import WebServer, create_app, facade_services
    from importer.http.database import FacadeDatabase
    from importer.http.health import HealthChecker
    from importer.load.plugin import discover

    registers = discover()
    tokens = {}
    engine = create_engine(settings.production_url)
    with engine.begin() as connection:
        for name in names:
            token = clients.add(connection, name, ["notifications"], clients.known_scopes(registers), datetime.now())
            assert token is not None
            tokens[name] = token
    engine.dispose()
    facades = FacadeDatabase(settings.facade_database_url)
    services = facade_services(settings, facades, SystemClock())
    services = dataclasses.replace(services, rate_per_s=1e6, burst=1e6)  # the bench is not rate-limited
    health = HealthChecker(settings, registers, SystemClock())
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = WebServer(create_app(health, None, services, list(registers.values())), f"127.0.0.1:{port}")
    server.start()
    try:
        yield f"http://127.0.0.1:{port}", tokens
    finally:
        server.stop()
        services.close()
        facades.close()
        health.close()


def drain(base: str, token: str, point: str, maximum: int) -> tuple[int, float, int]:
    """Pull until nothing is left; (notifications, seconds, pulls)."""
    import httpx

    received, pulls = 0, 0
    began = time.perf_counter()
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=600) as client:
        while True:
            answer = client.post(f"/notifications/v1/pullpoints/{point}/pull",
                                 json={"messageId": uuid.uuid4().hex, "max": maximum})
            answer.raise_for_status()
            body = answer.json()
            pulls += 1
            received += len(body["notifications"])
            if not body["more"]:
                return received, time.perf_counter() - began, pulls


def put_list_seconds(base: str, token: str, cprs: np.ndarray, size: int, samples: int = 20) -> float:
    import httpx

    rng = np.random.default_rng(7)
    times = []
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=600) as client:
        for number in range(samples):
            ids = [str(cpr) for cpr in cprs[rng.choice(len(cprs), size=min(size, len(cprs)), replace=False)]]
            began = time.perf_counter()
            client.put(f"/notifications/v1/idlists/sample-{number}", json={"ids": ids}).raise_for_status()
            times.append(time.perf_counter() - began)
    return statistics.median(times)


def rate(count: int, seconds: float) -> float:
    return round(count / seconds, 1) if seconds > 0 else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--subscriptions", type=int, default=10_000)
    parser.add_argument("--ids", type=int, default=1_000)
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--max", type=int, default=1_000, help="notifications per pull")
    parser.add_argument("--db", default="sqlite", help="'sqlite' or a MariaDB/MySQL server URL")
    args = parser.parse_args()

    from importer.load import subscriptions
    from importer.logs import configure_logging

    configure_logging("warning", json=True)
    result: dict[str, Any] = {"db": "sqlite" if args.db == "sqlite" else sa.make_url(args.db).get_backend_name(),
                              "rows": args.rows, "subscriptions": args.subscriptions, "ids_per_list": args.ids,
                              "clients": args.clients, "max_per_pull": args.max}
    with tempfile.TemporaryDirectory(prefix="stamdata-bench-notifications-") as tmp:
        workdir = Path(tmp)
        dumps = make_dumps(args.rows)
        first = write(workdir / "20261121AutDK.csv", dumps.first)
        second = write(workdir / "20261122AutDK.csv", dumps.second)
        with database_pair(args.db, workdir, "events") as (pre_a, prod_a), \
                database_pair(args.db, workdir, "plain") as (pre_b, prod_b):
            with_events = settings_for(pre_a, prod_a, workdir / "state-a")
            without = settings_for(pre_b, prod_b, workdir / "state-b")
            writer, off = Timed(True), Timed(False)
            initial = imported(with_events, first, writer)
            initial_plain = imported(without, first, off)
            result.update(initial_s=round(initial["seconds"], 2), initial_without_s=round(initial_plain["seconds"], 2),
                          initial_events=writer.events, initial_events_s=round(initial["events_s"], 2))

            engine = create_engine(prod_a)
            began = time.perf_counter()
            points = load_subscriptions(engine, people(engine), args.subscriptions, args.ids, args.clients, workdir)
            result["setup_subscriptions_s"] = round(time.perf_counter() - began, 1)

            events_before = writer.events
            delta = imported(with_events, second, writer)
            delta_plain = imported(without, second, off)
            rest = delta["seconds"] - delta["events_s"]
            result.update(
                delta_changed_keys=delta["changed"], delta_events=writer.events - events_before,
                delta_s=round(delta["seconds"], 2), delta_without_s=round(delta_plain["seconds"], 2),
                events_s=round(delta["events_s"], 3),
                delta_extra_pct=round(100 * delta["events_s"] / rest, 2) if rest > 0 else None,
                delta_stages_s={key: round(value, 2) for key, value in delta["timings"].items()},
            )

            names = [name for name, _ in points]
            with served(with_events, names) as (base, tokens):
                cold_name, cold_point = points[0]
                count, seconds, pulls = drain(base, tokens[cold_name], cold_point, args.max)
                result.update(one_client_cold_notifications=count, one_client_cold_s=round(seconds, 3),
                              one_client_cold_pulls=pulls, one_client_cold_per_s=rate(count, seconds))

                began = time.perf_counter()
                matched = subscriptions.match_all(engine)
                result.update(match_all_s=round(time.perf_counter() - began, 2), match_all_notifications=matched)

                warm_name, warm_point = points[1]
                count, seconds, pulls = drain(base, tokens[warm_name], warm_point, args.max)
                result.update(one_client_warm_notifications=count, one_client_warm_s=round(seconds, 3),
                              one_client_warm_pulls=pulls, one_client_warm_per_s=rate(count, seconds))

                total, spent = 0, 0.0
                for name, point in points[2:]:
                    count, seconds, _ = drain(base, tokens[name], point, args.max)
                    total, spent = total + count, spent + seconds
                result.update(all_clients_notifications=total, all_clients_s=round(spent, 2),
                              all_clients_per_s=rate(total, spent))
                result["put_list_s"] = round(put_list_seconds(base, tokens[cold_name], people(engine), args.ids), 3)
            engine.dispose()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
