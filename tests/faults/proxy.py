"""A TCP proxy on 127.0.0.1 between the Snowflake connector and the emulator, for faults of the source's
network: `latency` delays every chunk it forwards (a slow source); `cut()` resets every open connection and
refuses new ones until `restore()` (the source lost)."""

from __future__ import annotations

import socket
import struct
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress

CHUNK = 16 * 1024


class Proxy:
    def __init__(self, upstream_port: int, *, latency: float = 0.0):
        self.upstream = ("127.0.0.1", upstream_port)
        self.latency = latency
        self.forwarded = 0  # bytes, both ways
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._cut = threading.Event()
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, name="fault proxy", daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return  # closed
            if self._cut.is_set():
                _reset(client)
                continue
            try:
                server = socket.create_connection(self.upstream, timeout=10)
            except OSError:
                _reset(client)
                continue
            with self._lock:
                self._open.update((client, server))
            for source, sink in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while chunk := source.recv(CHUNK):
                if self.latency:
                    time.sleep(self.latency)
                sink.sendall(chunk)
                self.forwarded += len(chunk)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                with suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        """Reset every open connection; refuse new ones until `restore()`."""
        self._cut.set()
        with self._lock:
            open_sockets, self._open = self._open, set()
        for sock in open_sockets:
            _reset(sock)

    def restore(self) -> None:
        self._cut.clear()

    def close(self) -> None:
        self.cut()
        self._listener.close()


def _reset(sock: socket.socket) -> None:
    """Close with a TCP reset (SO_LINGER 0), as a peer that vanished does."""
    with suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with suppress(OSError):
        sock.close()


@contextmanager
def proxy(upstream_port: int, *, latency: float = 0.0) -> Iterator[Proxy]:
    running = Proxy(upstream_port, latency=latency)
    try:
        yield running
    finally:
        running.close()
