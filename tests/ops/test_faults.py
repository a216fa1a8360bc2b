"""The fault suite's CI subset: `ops/faults.py --quick --backend both` must find nothing wrong.

It runs the real daemon against SQLite and a private MariaDB the suite installs and starts itself (never the
shared server), kills it at every stage, cuts the database, fills disks and races two daemons with a replay.
Missing MariaDB binaries make this fail, not skip: the suite is part of what CI must prove.
"""

import json
import subprocess
import sys

from tests.conftest import REPO

FIGURES = ("trials", "inconsistent", "lost", "doubled", "locked_on_infrastructure", "stalled", "cpr_leaks")
MUST_BE_ZERO = ("inconsistent", "lost", "doubled", "locked_on_infrastructure", "stalled", "cpr_leaks",
                "status_unanswered", "status_green_while_down", "leftovers", "stop_hung", "other_failures")


def test_the_quick_fault_suite_finds_no_lost_doubled_or_inconsistent_import() -> None:
    completed = subprocess.run(
        [sys.executable, str(REPO / "ops" / "faults.py"), "--quick", "--backend", "both"],
        cwd=REPO, capture_output=True, text=True, timeout=600,
    )
    lines = [line for line in completed.stdout.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one JSON line on stdout, got {completed.stdout!r}\n{completed.stderr[-4000:]}"
    figures = json.loads(lines[0])
    for key in FIGURES:
        assert key in figures, key
    assert figures["trials"] > 0
    assert figures["backends"] == ["sqlite", "mariadb"]
    assert set(figures["scenarios"]) >= {"kill", "migration", "outage", "disk_full", "two_daemons"}
    problems = {key: figures[key] for key in MUST_BE_ZERO if figures.get(key)}
    assert not problems and not figures["failures"] and completed.returncode == 0, (
        f"fault suite (seed {figures['seed']}) exit {completed.returncode}: {problems}\n"
        + "\n".join(figures["failures"]) + "\n" + completed.stderr[-4000:]
    )
