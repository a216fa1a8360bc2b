"""File-system events as a wake-up hint for the register workers, never as the record of what arrived.

inotify (watchdog's native observer) wakes a worker within milliseconds; on network filesystems, where
inotify sees nothing, `watch_mode = "polling"` uses watchdog's PollingObserver; `off` relies on the rescan.
Whatever is lost here only costs latency: the periodic rescan finds every dataset.
"""

from collections.abc import Callable
from pathlib import Path
from typing import Any

from watchdog.events import EVENT_TYPE_CLOSED_NO_WRITE, EVENT_TYPE_OPENED, FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer
from watchdog.observers.polling import PollingObserver

from importer.errors import UsageError

WakeUp = Callable[[str], None]  # register name
MovedIn = Callable[[str, str], None]  # register name, dataset name

MODES = ("native", "polling", "off")


# With full inotify events, opening and closing a file unwritten are events too. The worker reads its inbox (a
# LOCKED file, a marker) on every pass, so waking it on those would make it spin.
_READS = frozenset({EVENT_TYPE_OPENED, EVENT_TYPE_CLOSED_NO_WRITE})


class _Handler(FileSystemEventHandler):
    def __init__(self, root: Path, wake: WakeUp, moved_in: MovedIn) -> None:
        self.root = root.resolve()
        self.wake = wake
        self.moved_in = moved_in

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.event_type in _READS:
            return  # reading changes nothing, and the worker reads its own inbox: waking it would wake it again
        for raw in (event.src_path, getattr(event, "dest_path", "")):
            if not raw:
                continue
            parts = _relative_parts(self.root, raw)
            if parts:
                self.wake(parts[0])
        if event.event_type == "moved" and event.dest_path:
            parts = _relative_parts(self.root, event.dest_path)
            if len(parts) == 2 and not parts[1].startswith("."):  # renamed straight into inbox/<register>/
                self.moved_in(parts[0], parts[1])


def _relative_parts(root: Path, raw: str | bytes) -> tuple[str, ...]:
    path = Path(raw.decode() if isinstance(raw, bytes) else raw)
    try:
        return path.resolve().relative_to(root).parts
    except ValueError:
        return ()


def _native_observer() -> Any:
    """On Linux, inotify with full events: a rename from outside the inbox (a writer's staging directory on the
    same filesystem) then arrives as a move, not as a creation, and counts as atomic."""
    try:
        from watchdog.observers.inotify import InotifyObserver

        return InotifyObserver(generate_full_events=True)
    except (ImportError, OSError, TypeError):  # not Linux, or an older watchdog
        return Observer()


class InboxWatcher:
    def __init__(self, root: Path, mode: str, wake: WakeUp, moved_in: MovedIn) -> None:
        if mode not in MODES:
            raise UsageError(f"watch_mode must be one of {', '.join(MODES)}, not {mode!r}")
        self.observer: Any = None
        if mode == "off":
            return
        self.observer = PollingObserver(timeout=1) if mode == "polling" else _native_observer()
        self.observer.schedule(_Handler(root, wake, moved_in), str(root), recursive=True)

    def start(self) -> None:
        if self.observer is not None:
            self.observer.start()

    def stop(self) -> None:
        if self.observer is not None and self.observer.is_alive():
            self.observer.stop()
            self.observer.join(5)
