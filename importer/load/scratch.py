"""The importer's private scratch space: where bulk-load files (CPR numbers and names) are written.

Under `state_dir/tmp/`, mode 0700 whatever the umask, never the shared system temporary directory. Each
importer process works in a directory of its own, which it keeps an advisory lock on while it lives; a
process killed with -9 leaves its directory behind, and the next importer to start removes every directory
whose lock nobody holds. So a crash leaves personal data behind only until the next start, and two
importers sharing a state directory never remove each other's files.
"""

import contextlib
import fcntl
import os
import shutil
import tempfile
import time
from pathlib import Path

from importer.logs import get_logger

log = get_logger(__name__)

OWNER = ".owner"
JUST_CREATED_S = 60.0


class ScratchDir:
    def __init__(self, state_dir: Path) -> None:
        self.root = state_dir / "tmp"
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(self.root, 0o700)  # mkdir's mode is cut by the umask, and an existing directory keeps its own
        self.remove_abandoned()
        self.path = Path(tempfile.mkdtemp(prefix="run-", dir=self.root))  # 0700 by mkdtemp
        self._owner = os.open(self.path / OWNER, os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(self._owner, fcntl.LOCK_EX)

    def remove_abandoned(self) -> None:
        """Directories of importers that are gone (their lock is free): left by a kill -9 or a power cut."""
        for directory in self.root.iterdir():
            if not directory.is_dir():
                continue
            try:
                descriptor = os.open(directory / OWNER, os.O_RDWR)
            except FileNotFoundError:
                if time.time() - directory.stat().st_mtime < JUST_CREATED_S:
                    continue  # another importer between creating its directory and locking it
                descriptor = None  # died before it took its lock
            try:
                if descriptor is not None:
                    fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # a live importer's
            finally:
                if descriptor is not None:
                    os.close(descriptor)
            shutil.rmtree(directory, ignore_errors=True)
            log.info("removed the scratch files of an importer that stopped", directory=directory.name)

    def close(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)
        with contextlib.suppress(OSError):
            os.close(self._owner)
