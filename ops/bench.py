#!/usr/bin/env python3
"""Benchmark of the autorisation import against the physical bulk-load floor and a row-at-a-time reference.

    python ops/bench.py [--rows 1000000] [--db sqlite | --db mysql+pymysql://root@127.0.0.1/]

Generates a synthetic dump of N rows (Danish letters, shared CPR numbers, the special numbers) and a
next-day dump (1 % changed, 0.1 % removed, 0.1 % added), then measures on the same database server:

- initial_s  the full import of the first dump into empty (migrated) databases, preflight + production;
- delta_s    the import of the next-day dump;
- floor_s    loading the first file into an equivalent plain table (the file's five columns, same types,
             no indexes) in both databases with the fastest native path: LOAD DATA LOCAL INFILE on
             MariaDB/MySQL, one executemany in one transaction on SQLite;
- rowwise_s  one SELECT plus INSERT/UPDATE per record, as the original Java importer did, on a
             100,000-row sample into both databases, scaled to N;
- peak_rss_mb the larger peak resident memory of the two import processes.

Each import runs in a child process so that its memory is its own. Prints one JSON object and exits
non-zero if the delta wrote other than exactly the rows it requires (changed x2 + removed + added).
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import sqlalchemy as sa

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from importer.db import create_engine  # noqa: E402

ALPHABET = np.array(list("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"))
SPACE = 36**5
STRIDE = 20_000_003  # prime, so i -> i * STRIDE mod 36^5 is a bijection: unique, scattered numbers
SURNAMES = ["Jensen", "Nielsen", "Hansen", "Pedersen", "Andersen", "Christensen", "Larsen", "Sørensen",
            "Rasmussen", "Jørgensen", "Petersen", "Madsen", "Kristensen", "Olsen", "Thomsen", "Poulsen",
            "Ærø-Holm", "Østergaard", "Løkke Rasmussen", "Bæk", "Dahl-Åberg", "Frøslev"]
GIVEN = ["Anne", "Mette", "Kirsten", "Hanne", "Peter", "Jens", "Lars", "Søren", "Jørgen", "Ærtemis",
         "Øjvind", "Åse", "Anne Marie", "Niels Peter", "Karen Margrethe", "Bjørn"]
EDUCATION = ["7170", "5166", "5433", "5151", "5152", "5153", "5159", "5175", "5265", "5431", "4498"]
SPECIALS = [
    "09YM8;0101010001;;Indberettet af apotek, ej autorisationsnummer;0000",
    "09YM9;0101010001;;Indberettet af farmaceut/farmakonom, ej autorisationsnummer;0000",
    "09YMB;0101010001;;Medicin købt i andre EU/EØS-lande, registreret af Lægemiddelstyrelsen;0000",
]
SAMPLE = 100_000


# --- Synthetic dumps --------------------------------------------------------------------------------------

def numbers(indexes: np.ndarray) -> np.ndarray:
    values = (indexes.astype(np.int64) * STRIDE) % SPACE
    digits = [ALPHABET[(values // 36**power) % 36] for power in range(4, -1, -1)]
    return np.char.add(np.char.add(np.char.add(np.char.add(digits[0], digits[1]), digits[2]), digits[3]), digits[4])


@dataclass
class Dumps:
    first: list[str]
    second: list[str]
    changed: int
    removed: int
    added: int


def make_dumps(rows: int, seed: int = 20261122) -> Dumps:
    rng = np.random.default_rng(seed)
    count = rows - len(SPECIALS)
    keys = numbers(np.arange(count))
    pool = np.char.add(
        np.char.add(np.char.zfill(rng.integers(1, 29, count).astype(str), 2),
                    np.char.zfill(rng.integers(1, 13, count).astype(str), 2)),
        np.char.zfill(rng.integers(0, 1_000_000, count).astype(str), 6),
    )
    cprs = pool[rng.integers(0, int(count * 0.85), count)]  # shared CPRs: several authorisations a person
    surnames = np.array(SURNAMES)[rng.integers(0, len(SURNAMES), count)]
    given = np.array(GIVEN)[rng.integers(0, len(GIVEN), count)]
    codes = np.array(EDUCATION)[rng.integers(0, len(EDUCATION), count)]
    first = [";".join(fields) for fields in zip(keys, cprs, surnames, given, codes, strict=True)] + SPECIALS

    order = rng.permutation(count)
    changed = order[: count // 100]
    removed = order[count // 100 : count // 100 + count // 1000]
    added = count // 1000
    second_codes = codes.copy()
    second_codes[changed] = np.where(codes[changed] == "7170", "5166", "7170")
    keep = np.ones(count, dtype=bool)
    keep[removed] = False
    second = [";".join(fields) for fields in zip(keys[keep], cprs[keep], surnames[keep], given[keep],
                                                   second_codes[keep], strict=True)]
    new_keys = numbers(np.arange(count, count + added))
    second += [f"{key};{cpr};Nyholm;Ny Person;5166" for key, cpr in zip(new_keys, pool[:added], strict=True)]
    return Dumps(first, second + SPECIALS, changed=len(changed), removed=len(removed), added=added)


def write(path: Path, lines: list[str]) -> Path:
    path.write_bytes(("\n".join(lines) + "\n").encode("iso-8859-15"))
    return path


# --- Databases --------------------------------------------------------------------------------------------

@contextmanager
def database_pair(db: str, workdir: Path, tag: str) -> Iterator[tuple[str, str]]:
    if db == "sqlite":
        yield f"sqlite:///{workdir}/{tag}-preflight.sqlite", f"sqlite:///{workdir}/{tag}-production.sqlite"
        return
    server = sa.create_engine(db)
    stem = f"stamdata_bench_{tag}_{uuid.uuid4().hex[:8]}"
    names = [f"{stem}_pre", f"{stem}_prod"]
    with server.begin() as connection:
        for name in names:
            connection.exec_driver_sql(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin")
    try:
        base = db.rstrip("/")
        yield f"{base}/{names[0]}", f"{base}/{names[1]}"
    finally:
        with server.begin() as connection:
            for name in names:
                connection.exec_driver_sql(f"DROP DATABASE IF EXISTS `{name}`")
        server.dispose()


# --- Measurements -----------------------------------------------------------------------------------------

def child_import(preflight: str, production: str, dump: Path) -> dict[str, Any]:
    """Run one import in a fresh process; it reports its own duration and peak memory."""
    env = {**os.environ, "STAMDATA_PREFLIGHT_URL": preflight, "STAMDATA_PRODUCTION_URL": production,
           "STAMDATA_AUTORISATION_REDUCTION_GUARD": str(10**9), "STAMDATA_LOG_LEVEL": "warning"}
    completed = subprocess.run([sys.executable, __file__, "--child", str(dump)], env=env, capture_output=True,
                               text=True, check=False)
    if completed.returncode != 0:
        raise SystemExit(f"import of {dump.name} failed:\n{completed.stderr}")
    result: dict[str, Any] = json.loads(completed.stdout.strip().splitlines()[-1])
    return result


def peak_rss_mb() -> float:
    """This process's own peak resident memory. Not getrusage's ru_maxrss: Linux carries that across
    fork and exec, so a child would report the (large) benchmark parent's memory as its own."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # not Linux: best available


def run_child(dump: Path) -> None:
    from importer.config import load_settings
    from importer.load.pipeline import Pipeline
    from importer.logs import configure_logging
    from registers.autorisation import REGISTER

    settings = load_settings()
    configure_logging("warning", json=True)
    pipeline = Pipeline(settings)
    pipeline.migrate()
    began = time.perf_counter()
    summary = pipeline.import_dataset(REGISTER, dump)
    seconds = time.perf_counter() - began
    pipeline.close()
    counts = summary.counts
    print(json.dumps({
        "seconds": seconds,
        "rss_mb": peak_rss_mb(),
        "inserted": counts.inserted, "updated": counts.updated, "closed": counts.closed,
        "unchanged": counts.unchanged, "timings": summary.timings,
    }))


def floor(db: str, workdir: Path, dump: Path) -> float:
    """The native bulk path into a plain table with the file's five columns, in both databases."""
    ddl = ("CREATE TABLE bench_floor (Autorisationsnummer CHAR(5) NOT NULL, CPR CHAR(10) NOT NULL, "
           "Efternavn VARCHAR(100) NOT NULL, Fornavn VARCHAR(100) NOT NULL, UddannelsesKode VARCHAR(4) NOT NULL)")
    total = 0.0
    with database_pair(db, workdir, "floor") as urls:
        for url in urls:
            engine = create_engine(url)
            with engine.begin() as connection:
                connection.exec_driver_sql(ddl + (" ENGINE=InnoDB CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"
                                                  if db != "sqlite" else ""))
            if db == "sqlite":
                rows = [tuple(line.split(";")) for line in dump.read_text("iso-8859-15").splitlines()]
                began = time.perf_counter()
                raw = engine.raw_connection()
                cursor = raw.cursor()
                cursor.execute("BEGIN")
                cursor.executemany("INSERT INTO bench_floor VALUES (?, ?, ?, ?, ?)", rows)
                raw.commit()
                total += time.perf_counter() - began
                raw.close()
            else:
                began = time.perf_counter()
                with engine.begin() as connection:
                    connection.exec_driver_sql(
                        f"LOAD DATA LOCAL INFILE '{dump}' INTO TABLE bench_floor CHARACTER SET latin1 "
                        "FIELDS TERMINATED BY ';' ESCAPED BY '' LINES TERMINATED BY '\\n'"
                    )
                total += time.perf_counter() - began
                with engine.connect() as connection:
                    loaded = connection.exec_driver_sql("SELECT COUNT(*) FROM bench_floor").scalar()
                assert loaded == len(dump.read_bytes().splitlines()), f"floor loaded {loaded} rows"
            engine.dispose()
    return total


def rowwise(db: str, workdir: Path, lines: list[str], rows: int) -> float:
    """One SELECT and one INSERT or UPDATE per record, as the original importer did; scaled to N."""
    from importer.load import migrate
    from registers.autorisation.tables import autorisation2

    sample = [line.split(";") for line in lines[:SAMPLE]]
    open_end = "2999-12-31 00:00:00"
    stamp = "2026-11-22 00:00:00"
    total = 0.0
    with database_pair(db, workdir, "rowwise") as urls:
        for url in urls:
            engine = create_engine(url)
            migrate.upgrade(engine)
            table = autorisation2.name
            mark = "?" if db == "sqlite" else "%s"
            select = (f"SELECT AutorisationPID, CPR, Efternavn, Fornavn, UddannelsesKode FROM {table} "
                      f"WHERE Autorisationsnummer = {mark} AND ValidTo = {mark}")
            close = f"UPDATE {table} SET ValidTo = {mark}, ModifiedDate = {mark} WHERE AutorisationPID = {mark}"
            insert = (f"INSERT INTO {table} (Autorisationsnummer, CPR, Efternavn, Fornavn, UddannelsesKode, "
                      f"CreatedDate, ModifiedDate, ValidFrom, ValidTo) VALUES ({', '.join([mark] * 9)})")
            raw = engine.raw_connection()
            cursor = raw.cursor()
            began = time.perf_counter()
            if db == "sqlite":
                cursor.execute("BEGIN")
            for number, cpr, surname, given, code in sample:
                cursor.execute(select, (number, open_end))
                current = cursor.fetchone()
                if current is not None and tuple(current[1:]) == (cpr, surname, given, code):
                    continue
                if current is not None:
                    cursor.execute(close, (stamp, stamp, current[0]))
                cursor.execute(insert, (number, cpr, surname, given, code, stamp, stamp, stamp, open_end))
            raw.commit()
            total += time.perf_counter() - began
            raw.close()
            engine.dispose()
    return total * rows / len(sample)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--db", default="sqlite", help="'sqlite' or a MariaDB/MySQL server URL")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        run_child(args.child)
        return

    with tempfile.TemporaryDirectory(prefix="stamdata-bench-") as tmp:
        workdir = Path(tmp)
        dumps = make_dumps(args.rows)
        first = write(workdir / "20261121AutDK.csv", dumps.first)
        second = write(workdir / "20261122AutDK.csv", dumps.second)

        with database_pair(args.db, workdir, "import") as (preflight, production):
            initial = child_import(preflight, production, first)
            delta = child_import(preflight, production, second)
        floor_s = floor(args.db, workdir, first)
        rowwise_s = rowwise(args.db, workdir, dumps.first, args.rows)

    expected = 2 * dumps.changed + dumps.removed + dumps.added
    written = delta["inserted"] + 2 * delta["updated"] + delta["closed"]
    result = {
        "db": "sqlite" if args.db == "sqlite" else sa.make_url(args.db).get_backend_name(),
        "rows": args.rows,
        "initial_s": round(initial["seconds"], 2),
        "delta_s": round(delta["seconds"], 2),
        "floor_s": round(floor_s, 2),
        "rowwise_s": round(rowwise_s, 2),
        "peak_rss_mb": round(max(initial["rss_mb"], delta["rss_mb"]), 1),
        "rows_written_delta": written,
        "changed_rows": dumps.changed + dumps.removed + dumps.added,
        "expected_rows_written_delta": expected,
        "initial_vs_floor": round(initial["seconds"] / floor_s, 2),
        "delta_vs_floor": round(delta["seconds"] / floor_s, 2),
        "speedup_vs_rowwise": round(rowwise_s / initial["seconds"], 1),
        "initial_stages_s": {k: round(v, 2) for k, v in initial["timings"].items()},
        "delta_stages_s": {k: round(v, 2) for k, v in delta["timings"].items()},
    }
    print(json.dumps(result))
    if written != expected or delta["updated"] != dumps.changed or delta["closed"] != dumps.removed:
        raise SystemExit(f"the delta wrote {written} rows, it requires {expected}")


if __name__ == "__main__":
    main()
