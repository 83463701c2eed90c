"""The TCP front of a service pipeline on the embedded engine: what a Kubernetes Service of type
NodePort is on a cluster (pachd maps ``service.externalPort`` to the pod's
``service.internalPort``), here ``127.0.0.1:externalPort`` forwarding to the code on
``127.0.0.1:internalPort``::

    client ──> 127.0.0.1:externalPort (Forwarder, in the supervisor) ──> 127.0.0.1:internalPort (the code)

The forwarder is what lets the supervisor replace the code without a client seeing a refused
connection: while it is *held* (the code restarting on a new input commit) it accepts new
connections and keeps them waiting; once released they are forwarded. A connection also waits,
up to ``hold_s``, while the code does not accept yet (starting, or restarting after a crash).
Bytes are copied both ways unchanged, so any TCP protocol works (HTTP, gRPC).
"""
from __future__ import annotations

import selectors
import socket
import threading
import time
from typing import Callable, Optional

CHUNK = 64 * 1024
CONNECT_RETRY_S = 0.05
MAX_CONNECTIONS = 256  # one thread each; more wait in the listen backlog


class Forwarder:
    """Forward ``host:listen_port`` to ``host:target_port``.

    Args:
        listen_port, target_port: the service's externalPort and internalPort.
        hold_s: how long a new connection may wait for the code (held, or not accepting yet)
            before it is closed.
        on_event: where one-line events go (a connection given up on).
    """

    def __init__(self, listen_port: int, target_port: int, *, host: str = "127.0.0.1",
                 hold_s: float = 120.0, on_event: Callable[[str], None] = lambda line: None):
        self.host, self.listen_port, self.target_port = host, listen_port, target_port
        self.hold_s, self._on_event = hold_s, on_event
        self._open = threading.Event()  # set: forward; clear: held
        self._open.set()
        self._closing = threading.Event()
        self._slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
        self._lock = threading.Lock()
        self._active = 0
        self._sock: Optional[socket.socket] = None
        self._thread: Optional[threading.Thread] = None

    @property
    def active(self) -> int:
        """Client connections open now (waiting or forwarded)."""
        with self._lock:
            return self._active

    def start(self) -> "Forwarder":
        """Listen (raises OSError when the port is taken) and accept in a background thread."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.host, self.listen_port))
            sock.listen(128)
        except OSError:
            sock.close()
            raise
        sock.settimeout(0.2)  # so close() is noticed
        self._sock = sock
        self._thread = threading.Thread(target=self._accept_loop, name="forward-accept",
                                        daemon=True)
        self._thread.start()
        return self

    def hold(self) -> None:
        """New connections wait (accepted, not forwarded) until :meth:`release`."""
        self._open.clear()

    def release(self) -> None:
        self._open.set()

    def close(self) -> None:
        """Stop accepting; connections in flight go on until either side closes them."""
        self._closing.set()
        self._open.set()
        if self._thread is not None:
            self._thread.join(timeout=2)
        if self._sock is not None:
            self._sock.close()

    # -- internals --------------------------------------------------------------------------
    def _accept_loop(self) -> None:
        assert self._sock is not None
        while not self._closing.is_set():
            if not self._slots.acquire(timeout=0.2):
                continue
            try:
                client, _ = self._sock.accept()
            except (socket.timeout, OSError):
                self._slots.release()
                continue
            with self._lock:
                self._active += 1
            threading.Thread(target=self._serve, args=(client,), name="forward",
                             daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        try:
            upstream = self._connect()
            if upstream is None:
                self._on_event(f"a connection waited {self.hold_s:g} s for the code on port "
                               f"{self.target_port} and was closed")
                return
            with upstream:
                _pump(client, upstream)
        finally:
            client.close()
            with self._lock:
                self._active -= 1
            self._slots.release()

    def _connect(self) -> Optional[socket.socket]:
        """A connection to the code once released and accepting, or None after ``hold_s``."""
        deadline = time.monotonic() + self.hold_s
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not self._open.wait(timeout=left):
                return None
            try:
                conn = socket.create_connection((self.host, self.target_port),
                                                timeout=max(0.1, min(5.0, left)))
                conn.settimeout(None)
                return conn
            except OSError:
                time.sleep(CONNECT_RETRY_S)


def _pump(a: socket.socket, b: socket.socket) -> None:
    """Copy bytes both ways until both directions are closed (a half-close is passed on)."""
    sel = selectors.DefaultSelector()
    peer = {a: b, b: a}
    for s in (a, b):
        sel.register(s, selectors.EVENT_READ)
    open_dirs = 2
    try:
        while open_dirs:
            for key, _ in sel.select(timeout=60):
                src = key.fileobj
                dst = peer[src]
                try:
                    data = src.recv(CHUNK)
                except OSError:
                    return  # reset: the other side sees its connection close
                if data:
                    try:
                        dst.sendall(data)
                    except OSError:
                        return
                    continue
                sel.unregister(src)
                open_dirs -= 1
                try:
                    dst.shutdown(socket.SHUT_WR)
                except OSError:
                    pass
    finally:
        sel.close()


def port_accepts(port: int, host: str = "127.0.0.1", timeout_s: float = 0.5) -> bool:
    """Whether something accepts TCP connections on ``host:port`` now."""
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False


def http_ready(port: int, path: str, host: str = "127.0.0.1", timeout_s: float = 2.0) -> bool:
    """Whether ``GET http://host:port/path`` answers 200 now (a readiness probe)."""
    import http.client
    conn = http.client.HTTPConnection(host, port, timeout=timeout_s)
    try:
        conn.request("GET", path)
        return conn.getresponse().status == 200
    except (OSError, http.client.HTTPException):
        return False
    finally:
        conn.close()
