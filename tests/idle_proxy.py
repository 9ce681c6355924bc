"""A loopback TCP proxy with a load balancer's idle timeout, for the long-stream tests.

Like an ALB (`idle_timeout.timeout_seconds`): it closes both sides of a connection when no byte
has passed in either direction for the idle timeout, however long the connection has lived.
"""

from __future__ import annotations

import selectors
import socket
import threading
import time


class IdleTimeoutProxy:
    """127.0.0.1:<ephemeral> -> upstream; `cut` counts the connections it closed for idleness."""

    def __init__(self, upstream: tuple[str, int], idle_timeout: float):
        self.upstream, self.idle_timeout, self.cut = upstream, idle_timeout, 0
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.05)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._listener.getsockname()[1]}"

    def start(self) -> IdleTimeoutProxy:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._listener.close()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            threading.Thread(target=self._pipe, args=(client,), daemon=True).start()

    def _pipe(self, client: socket.socket) -> None:
        server = socket.create_connection(self.upstream)
        peer = {client: server, server: client}
        sel = selectors.DefaultSelector()
        for s in peer:
            sel.register(s, selectors.EVENT_READ)
        last = time.monotonic()
        try:
            while not self._stop.is_set():
                ready = sel.select(timeout=0.02)
                for key, _ in ready:
                    data = key.fileobj.recv(65536)  # type: ignore[union-attr]
                    if not data:
                        return
                    peer[key.fileobj].sendall(data)  # type: ignore[index]
                    last = time.monotonic()
                if time.monotonic() - last > self.idle_timeout:
                    self.cut += 1
                    return
        finally:
            sel.close()
            for s in peer:
                s.close()
