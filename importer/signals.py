"""Stop requests that arrive while the program is still starting.

Loading the importer takes about a second (pandas, SQLAlchemy, the web stack). A SIGTERM in that second would
otherwise hit Python's default handling and end the process "killed by SIGTERM" (exit 143), where systemd
expects a clean stop to exit 0. So the entry point catches SIGTERM and SIGINT before it imports anything
heavy; `run` and `serve` then start already stopping (and exit 0), every other command gets the default
handling back, with a stop asked for meanwhile taking effect at once.
"""

import os
import signal
import threading
from types import FrameType

STOPS = (signal.SIGTERM, signal.SIGINT)
_requested = threading.Event()
_received: list[int] = []


def _remember(signum: int, _frame: FrameType | None) -> None:
    _received.append(signum)
    _requested.set()


def catch_early() -> None:
    for signum in STOPS:
        signal.signal(signum, _remember)


def stop_requested_early() -> bool:
    return _requested.is_set()


def restore_default_handling() -> None:
    """For commands that are not long-running services: SIGTERM ends them, SIGINT raises KeyboardInterrupt."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    if _received:
        os.kill(os.getpid(), _received[0])
