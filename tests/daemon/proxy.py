"""A TCP proxy of the test's own between the daemon and MariaDB, so a test can cut the database off, freeze
it, and restore it without touching the shared server.

`cut_when(pattern)` and `freeze_when(pattern)` act the moment a client sends bytes containing `pattern` (say
`LOAD DATA`, the bulk load): the fault lands at a chosen stage of an import, not wherever a timer hits.
A frozen proxy keeps every connection open and forwards nothing, which is what a client sees of a server
stopped with SIGSTOP or of a half-open TCP connection.
"""

import contextlib
import socket
import threading


class TcpProxy:
    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.listener.getsockname()[1])
        self._open = True
        self._closed = False
        self._lock = threading.Lock()
        self._flowing = threading.Event()
        self._flowing.set()
        self._sockets: set[socket.socket] = set()
        self._trigger: tuple[bytes, str, int] | None = None
        self.triggered = threading.Event()
        self.cut_connections = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if not self._open:
                client.close()  # the database is "down": the handshake fails at once
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self._lock:
                self._sockets.update((client, upstream))
            threading.Thread(target=self._pump, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, False), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, from_client: bool) -> None:
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                if from_client:
                    self._check_trigger(data)
                self._flowing.wait()  # a frozen server: bytes sent to it go nowhere until it resumes
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                self._drop(sock)

    def _check_trigger(self, data: bytes) -> None:
        with self._lock:
            trigger = self._trigger
            if trigger is None or trigger[0] not in data:
                return
            pattern, action, occurrence = trigger
            if occurrence > 1:
                self._trigger = (pattern, action, occurrence - 1)
                return
            self._trigger = None
        if action == "freeze":
            self.freeze()
        else:
            self.cut()
        self.triggered.set()

    def _drop(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.discard(sock)
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        sock.close()

    def cut_when(self, pattern: bytes, occurrence: int = 1) -> None:
        """Cut everything the moment a client sends `pattern` for the `occurrence`-th time."""
        self._trigger = (pattern, "cut", occurrence)

    def freeze_when(self, pattern: bytes, occurrence: int = 1) -> None:
        """Freeze the moment a client sends `pattern` (which is held back with everything else)."""
        self._trigger = (pattern, "freeze", occurrence)

    def cut(self) -> None:
        """Refuse new connections and break every open one, as a crashed or unplugged server would."""
        self._open = False
        with self._lock:
            sockets = list(self._sockets)
        self.cut_connections += len(sockets)
        for sock in sockets:
            self._drop(sock)

    def freeze(self) -> None:
        """Forward nothing more, in either direction, on old or new connections; close nothing."""
        self._flowing.clear()

    def restore(self) -> None:
        self._open = True
        self._flowing.set()

    def close(self) -> None:
        self._closed = True
        self._flowing.set()
        self.cut()
        self.listener.close()
