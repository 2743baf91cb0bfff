"""Threaded HTTP/1.1 scaffolding for the loopback simulators.

This module owns ``LoopbackServer`` (start/stop in a background thread, loopback-only
binding, counting TCP connections so tests can tell keep-alive reuse from a new connection
per poll), ``QuietHandler`` (keep-alive, replies written in one go or dripped, connection
resets) and ``Headers`` (a case-insensitive view). ``ArmSimulator`` and
``emulators.identity`` both build on it; nothing here knows about ARM.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import socket
import socketserver
import struct
import threading
from collections.abc import Iterable, Iterator, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TypeVar, cast

__all__ = ["Headers", "LoopbackServer", "QuietHandler"]

_log = logging.getLogger(__name__)


class Headers(Mapping[str, str]):
    """Read-only, case-insensitive view of HTTP headers (repeated headers joined by ", ")."""

    def __init__(self, items: Iterable[tuple[str, str]] = ()) -> None:
        self._items: dict[str, tuple[str, str]] = {}
        for name, value in items:
            key = name.lower()
            if key in self._items:
                original, previous = self._items[key]
                self._items[key] = (original, f"{previous}, {value}")
            else:
                self._items[key] = (name, value)

    def __getitem__(self, name: str) -> str:
        return self._items[name.lower()][1]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._items

    def __iter__(self) -> Iterator[str]:
        return (original for original, _ in self._items.values())

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"Headers({dict(self.items())!r})"


class _Server(ThreadingHTTPServer):
    # Handler threads must not keep a test process alive, and a stuck keep-alive
    # connection must not make stop() block: LoopbackServer closes them itself.
    daemon_threads = True

    def __init__(
        self,
        address: tuple[str, int],
        handler: type[BaseHTTPRequestHandler],
        owner: LoopbackServer,
    ) -> None:
        self.owner = owner
        super().__init__(address, handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind resolves the host's FQDN (a reverse DNS lookup that can
        # stall for seconds in sandboxes); nothing here needs it.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = str(host)
        self.server_port = int(port)

    def process_request(self, request: Any, client_address: Any) -> None:
        # Called once per accepted TCP connection (not per HTTP request), which is
        # what lets tests tell keep-alive reuse from a new connection per poll.
        self.owner._connection_opened(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        self.owner._connection_closed(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients that time out or reset are part of the scenarios under test; the
        # default handler would print a traceback to stderr for each of them.
        _log.debug("error while serving %s", client_address, exc_info=True)


class QuietHandler(BaseHTTPRequestHandler):
    """Request handler base: HTTP/1.1 keep-alive, logging instead of stderr."""

    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes; with Nagle on, the second waits for the
    # client's delayed ACK (~40 ms per response on Linux), which would swamp test times.
    disable_nagle_algorithm = True
    server_version = "ops-status-simulator"
    sys_version = ""

    def version_string(self) -> str:
        return self.server_version

    def log_message(self, format: str, *args: Any) -> None:
        _log.debug("%s %s", self.address_string(), format % args)

    @property
    def owner(self) -> LoopbackServer:
        return cast(_Server, self.server).owner

    def read_body(self) -> bytes:
        # With keep-alive an unread body would be parsed as the next request.
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def send_reply(
        self,
        status: int,
        headers: Mapping[str, str],
        body: bytes,
        *,
        drip: float = 0.0,
        drip_chunk: int = 16,
    ) -> None:
        """Write one complete response; a client that has gone away is not an error here.

        With ``drip`` the headers go out at once and the body follows in ``drip_chunk``-byte
        pieces ``drip`` seconds apart: a peer that never trips a per-read timeout.
        """
        try:
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if drip > 0:
                self.wfile.flush()
                for start in range(0, len(body), max(1, drip_chunk)):
                    self.wait(drip)
                    self.wfile.write(body[start : start + max(1, drip_chunk)])
                    self.wfile.flush()
            else:
                self.wfile.write(body)
            self.wfile.flush()
        except OSError:
            _log.debug("client went away before the response was written", exc_info=True)
            self.close_connection = True

    def reset_connection(self) -> None:
        """Abort the TCP connection with a RST, without answering."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            # SO_LINGER 0 makes close() send RST: the client sees "connection reset by
            # peer" (or a remote disconnect), as when a gateway drops the connection.
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            # The socket only really closes once rfile (a makefile() reference) is closed.
            self.rfile.close()
            self.connection.close()

    def wait(self, seconds: float) -> None:
        # Interruptible, so stop() does not wait for a scripted delay to run out.
        if seconds > 0:
            self.owner._stopping.wait(seconds)


_ServerT = TypeVar("_ServerT", bound="LoopbackServer")


class LoopbackServer:
    """A threaded HTTP/1.1 server bound to a loopback address, started and stopped by tests."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        _require_loopback(host)
        self.host = host
        self.port = port
        self._lock = threading.RLock()
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._open: set[socket.socket] = set()
        self._connections_opened = 0

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        raise NotImplementedError

    # -- lifecycle ---------------------------------------------------------------------

    def start(self: _ServerT) -> _ServerT:
        """Bind and serve in a background thread. Returns self."""
        if self._server is not None:
            raise RuntimeError(f"{type(self).__name__} is already running")
        self._stopping.clear()
        server = _Server((self.host, self.port), self._handler_class(), self)
        self.port = server.server_address[1]
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            # stop() waits up to one poll interval for the accept loop to notice.
            kwargs={"poll_interval": 0.01},
            name=f"{type(self).__name__}:{self.port}",
            daemon=True,
        )
        self._thread.start()
        _log.info("%s listening on %s", type(self).__name__, self.base_url)
        return self

    def stop(self) -> None:
        """Stop accepting, drop open keep-alive connections and release the port."""
        server, thread = self._server, self._thread
        if server is None:
            return
        self._stopping.set()
        server.shutdown()
        # Without this a pooled keep-alive connection would still be served by its
        # handler thread after stop(), which hides "the peer went away" from tests.
        with self._lock:
            open_sockets = list(self._open)
            self._open.clear()
        for sock in open_sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        server.server_close()
        if thread is not None:
            thread.join(timeout=5)
        self._server = None
        self._thread = None

    def __enter__(self: _ServerT) -> _ServerT:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._server is not None

    @property
    def base_url(self) -> str:
        """``http://host:port`` of the running server."""
        if self._server is None:
            raise RuntimeError(f"{type(self).__name__} is not running: call start() first")
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    # -- connection accounting ---------------------------------------------------------

    @property
    def connections_opened(self) -> int:
        """TCP connections accepted since start (or the last ``clear()``)."""
        with self._lock:
            return self._connections_opened

    def _connection_opened(self, sock: socket.socket) -> None:
        with self._lock:
            self._connections_opened += 1
            self._open.add(sock)

    def _connection_closed(self, sock: socket.socket) -> None:
        with self._lock:
            self._open.discard(sock)

    def _reset_connection_count(self) -> None:
        with self._lock:
            self._connections_opened = 0


def _require_loopback(host: str) -> None:
    if host == "localhost":
        return
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        # These peers accept any client and hand out fake credentials: never expose them.
        raise ValueError(f"simulators bind to loopback addresses only, not {host!r}")
