"""The inbox on disk: one folder per register, datasets as entries, a LOCKED file when a register is stopped.

A LOCKED file holds the reason an import was refused; while it exists the daemon imports nothing more
for that register. `stamdata-importer unlock` removes it.
"""

import hashlib
import os
import re
import shutil
import stat
from pathlib import Path

LOCK_FILE = "LOCKED"
# Entries the inbox keeps for itself; never datasets.
RESERVED = frozenset({LOCK_FILE, "READY", "processed", "failed", ".processing", "set-aside"})


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


# --- The life of a dataset in the daemon: claim, then archive, fail or give back. -------------------------
#
# Every move is a rename within the register's folder tree, so it is atomic and a crash leaves the dataset in
# exactly one place. Input is never deleted before the production commit: it is only ever renamed.

PROCESSING = ".processing"
PROCESSED = "processed"
FAILED = "failed"
MARKER = "READY"
# A dataset file may be declared complete by a sidecar `<dataset>.READY` next to it.
SIDECAR_SUFFIXES = (".READY", ".ready")


def is_sidecar(entry: Path) -> bool:
    return entry.name.endswith(SIDECAR_SUFFIXES)


def pending(root: Path, register: str) -> list[Path]:
    """Datasets waiting in a register's inbox, in import order (sidecar markers are not datasets)."""
    directory = register_dir(root, register)
    if not directory.is_dir():
        return []
    return [entry for entry in datasets_in(directory) if not is_sidecar(entry)]


def claimed(root: Path, register: str) -> list[Path]:
    """Datasets in `.processing/`: under the register lock, these were left by an importer that died."""
    directory = register_dir(root, register) / PROCESSING
    if not directory.is_dir():
        return []
    return sorted((entry for entry in directory.iterdir() if not entry.name.startswith(".")), key=lambda e: e.name)


def prepare(root: Path, register: str) -> None:
    base = register_dir(root, register)
    base.mkdir(parents=True, exist_ok=True)  # suppliers drop here: its mode is the operator's to choose
    for directory in (base / PROCESSING, base / PROCESSED, base / FAILED):
        directory.mkdir(parents=True, exist_ok=True)
        directory.chmod(0o700)  # the importer's own: datasets with personal data


def sidecars(dataset: Path) -> list[Path]:
    """`<dataset>.READY`, or `<dataset stem>.READY` (e.g. `20261120AutDK.READY` for `20261120AutDK.csv`)."""
    names = {dataset.name + suffix for suffix in SIDECAR_SUFFIXES}
    if dataset.suffix:
        names |= {dataset.stem + suffix for suffix in SIDECAR_SUFFIXES}
    return [dataset.with_name(name) for name in sorted(names) if dataset.with_name(name).is_file()]


def claim(root: Path, register: str, dataset: Path) -> Path:
    """Take a dataset for import; its readiness marker has done its job and goes."""
    target = register_dir(root, register) / PROCESSING / dataset.name
    target.parent.mkdir(parents=True, exist_ok=True)
    dataset.rename(target)
    for marker in sidecars(dataset):
        marker.unlink(missing_ok=True)
    return target


def give_back(root: Path, register: str, dataset: Path) -> Path:
    """Return a claimed dataset to the inbox for a later retry (infrastructure error)."""
    target = register_dir(root, register) / dataset.name
    if target.exists():  # someone dropped the same name meanwhile; keep ours claimed, it is retried first
        return dataset
    dataset.rename(target)
    return target


def archive(root: Path, register: str, dataset: Path, year: int, files: dict[str, str]) -> Path:
    """Move an imported dataset to `processed/<yyyy>/`, with `<dataset>.sha256` listing its input files.

    The checksum file is written first: a crash between the two steps leaves the dataset claimed, and the
    restart finds it already in production and archives it again.
    """
    directory = register_dir(root, register) / PROCESSED / f"{year:04d}"
    directory.mkdir(parents=True, exist_ok=True)
    target = _free_name(directory / dataset.name)
    checksum = target.with_name(target.name + ".sha256")
    temporary = checksum.with_name("." + checksum.name + ".tmp")
    temporary.write_text(checksum_list(files), encoding="utf-8")
    temporary.replace(checksum)
    dataset.rename(target)
    make_private(target)
    return target


def fail(root: Path, register: str, dataset: Path, reason: str) -> Path:
    """Lock the register with the reason, then move the refused dataset to `failed/`.

    Lock first: a crash in between leaves a locked register with the dataset still claimed (refused again
    after unlock), never a bad dataset silently out of the way with later ones importing past it.
    """
    lock(root, register, reason)
    directory = register_dir(root, register) / FAILED
    directory.mkdir(parents=True, exist_ok=True)
    target = _free_name(directory / dataset.name)
    dataset.rename(target)
    make_private(target)
    return target


def make_private(path: Path) -> None:
    """Kept datasets hold CPR numbers and names: readable by the service user only, whatever mode the
    supplier's copy had."""
    entries = [path, *path.rglob("*")] if path.is_dir() and not path.is_symlink() else [path]
    for entry in entries:
        if not entry.is_symlink():
            entry.chmod(0o700 if entry.is_dir() else 0o600)


SET_ASIDE = "set-aside"


def irregular(entry: Path) -> str | None:
    """Why an inbox entry is no dataset the importer may read, or None: a symbolic link (it could lead out of
    the inbox, to a device, or change under the import), or a FIFO, socket or device (reading one blocks or never
    ends), the entry itself or anything inside a dataset directory. Judged without following any link."""
    for item in [entry, *(entry.rglob("*") if entry.is_dir() and not entry.is_symlink() else ())]:
        mode = item.lstat().st_mode
        if stat.S_ISLNK(mode):
            return "symlink"
        if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
            return "not-a-regular-file"
    return None


def set_aside(root: Path, register: str, entry: Path) -> Path:
    """Move an entry that is not a dataset out of the queue (never following it), for an operator to look at."""
    directory = register_dir(root, register) / SET_ASIDE
    directory.mkdir(parents=True, exist_ok=True)
    target = _free_name(directory / entry.name)
    entry.rename(target)
    return target


def prune_archive(root: Path, register: str, older_than: float) -> list[Path]:
    """Delete archived datasets whose checksum file is older than `older_than` (epoch seconds)."""
    removed: list[Path] = []
    base = register_dir(root, register) / PROCESSED
    if not base.is_dir():
        return removed
    for checksum in sorted(base.glob("*/*.sha256")):
        if checksum.stat().st_mtime >= older_than:
            continue
        dataset = checksum.with_name(checksum.name.removesuffix(".sha256"))
        if dataset.is_dir():
            shutil.rmtree(dataset)
        else:
            dataset.unlink(missing_ok=True)
        checksum.unlink()
        removed.append(dataset)
    return removed


def _free_name(path: Path) -> Path:
    """The path itself, or `<name>.1`, `<name>.2`, … when a dataset of that name was moved there before."""
    candidate, number = path, 0
    while candidate.exists():
        number += 1
        candidate = path.with_name(f"{path.name}.{number}")
    return candidate


# --- Reading datasets back: a folder of drops, or the archive as the daemon writes it. -------------------------

_YEAR = re.compile(r"^\d{4}$")
_COPY = re.compile(r"^(?P<name>.+)\.(?P<number>\d+)$")


def replayable(directory: Path) -> list[tuple[str, Path]]:
    """(dataset name, path) of every dataset in `directory`, in import order.

    `directory` may be a folder of drops, or an archive as the daemon writes it (`processed/` with `<yyyy>/`
    folders, `<dataset>.sha256` sidecars, and `<dataset>.1`, `.2`, … for a dataset delivered again under a
    name already archived): year folders are read through, sidecars skipped, and a numbered copy keeps the
    name it was delivered under, so it follows its original and is recognised as the same dataset.
    """
    entries: list[Path] = []
    for entry in datasets_in(directory):
        if entry.is_dir() and _YEAR.match(entry.name) and any(entry.glob("*.sha256")):
            entries.extend(datasets_in(entry))
        else:
            entries.append(entry)
    names = {entry.name for entry in entries}
    found: list[tuple[str, int, Path]] = []
    for entry in entries:
        if entry.name.endswith(".sha256") or is_sidecar(entry):
            continue
        copy = _COPY.match(entry.name)
        if copy is not None and copy["name"] in names:
            found.append((copy["name"], int(copy["number"]), entry))
        else:
            found.append((entry.name, 0, entry))
    return [(name, path) for name, _, path in sorted(found, key=lambda item: (item[0], item[1]))]


def under_name(path: Path, name: str, scratch: Path) -> Path:
    """`path` as a dataset named `name` (a link, or a copy across file systems) in the scratch directory."""
    target = scratch / "replay" / name
    if target.is_dir():
        shutil.rmtree(target)
    else:
        target.unlink(missing_ok=True)
    target.parent.mkdir(parents=True, exist_ok=True)
    if path.is_dir():
        shutil.copytree(path, target)
        return target
    try:
        os.link(path, target)
    except OSError:
        shutil.copy2(path, target)
    return target


def entry_files(path: Path) -> dict[str, str]:
    """sha256 of every file of an inbox entry (markers and hidden files aside), by path relative to the entry."""
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    result: dict[str, str] = {}
    for file in files:
        relative = file.name if file == path else file.relative_to(path).as_posix()
        if file.name == MARKER or any(part.startswith(".") for part in Path(relative).parts):
            continue
        digest = hashlib.sha256()
        with file.open("rb") as stream:
            for block in iter(lambda: stream.read(1 << 20), b""):
                digest.update(block)
        result[relative] = digest.hexdigest()
    return result


def checksum_list(files: dict[str, str]) -> str:
    """`entry_files` as `sha256sum` writes it (and `sha256sum -c` reads it): the archive's `.sha256` files."""
    return "".join(f"{digest}  {name}\n" for name, digest in sorted(files.items()))


def entry_digest(files: dict[str, str]) -> str:
    """One sha256 for a whole entry, from `entry_files`: the sha256 of its checksum list, so the same files
    with the same content give the same digest (and it can be recomputed from an archived `.sha256` file)."""
    return hashlib.sha256(checksum_list(files).encode()).hexdigest()
