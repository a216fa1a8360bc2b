"""The inbox on disk: one folder per register, datasets as entries, a LOCKED file when a register is stopped.

A LOCKED file holds the reason an import was refused; while it exists the daemon imports nothing more
for that register. `stamdata-importer unlock` removes it.
"""

from pathlib import Path

LOCK_FILE = "LOCKED"
# Entries the inbox keeps for itself; never datasets.
RESERVED = frozenset({LOCK_FILE, "READY", "processed", "failed"})


def register_dir(root: Path, register: str) -> Path:
    return root / register


def datasets_in(directory: Path) -> list[Path]:
    """Candidate datasets in name order: every entry except hidden ones and the inbox's own."""
    return sorted(
        (entry for entry in directory.iterdir() if not entry.name.startswith(".") and entry.name not in RESERVED),
        key=lambda entry: entry.name,
    )


def lock_reason(root: Path, register: str) -> str | None:
    lock = register_dir(root, register) / LOCK_FILE
    try:
        return lock.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None


def lock(root: Path, register: str, reason: str) -> None:
    directory = register_dir(root, register)
    directory.mkdir(parents=True, exist_ok=True)
    temporary = directory / f".{LOCK_FILE}.tmp"
    temporary.write_text(reason.rstrip("\n") + "\n", encoding="utf-8")
    temporary.replace(directory / LOCK_FILE)


def unlock(root: Path, register: str) -> str | None:
    """Remove the lock; returns the reason it held, or None if the register was not locked."""
    reason = lock_reason(root, register)
    (register_dir(root, register) / LOCK_FILE).unlink(missing_ok=True)
    return reason
