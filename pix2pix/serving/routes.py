"""HTTP on top of :class:`~pix2pix.serving.server.Server`: the routes (TF Serving's REST paths,
``/predict``, ``/healthz``, ``/``), request bodies within the limits, and every error as
``{"error": "one line"}`` with its status."""
from __future__ import annotations

import email.parser
import email.policy
import json
import logging
import re
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any, Callable, Iterator
from urllib.parse import unquote, urlsplit

from pix2pix.serving import page
from pix2pix.serving.errors import (BadRequest, LengthRequired, NotFound, ServingError,
                                    TooLarge, Unavailable)

if TYPE_CHECKING:
    from pix2pix.serving.server import Server

log = logging.getLogger("pix2pix.serving")
_VERSION = r"(?:/versions/(?P<version>\d+)|/labels/(?P<label>[^/:]+))?"
_STATUS_RE = re.compile(r"/v1/models/(?P<name>[^/:]+)" + _VERSION + r"(?:/(?P<sub>metadata|info))?",
                        re.IGNORECASE)
_PREDICT_RE = re.compile(r"/v1/models/(?P<name>[^/:]+)" + _VERSION
                         + r":(?P<method>predict|classify|regress)", re.IGNORECASE)
_DISCARD = 64 << 20  # bytes of a too-large body read (and dropped) before answering 413


class HTTPServer(ThreadingHTTPServer):
    daemon_threads = True  # a stuck client never keeps the process alive
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], handler: type, app: Server):
        self.app = app
        super().__init__(address, handler)


class Handler(BaseHTTPRequestHandler):
    """Routes to :class:`Server`; every error is ``{"error": "..."}`` with its status."""

    server: HTTPServer
    protocol_version = "HTTP/1.1"  # keep-alive, as TF Serving clients expect
    timeout = 60  # an idle or stalled connection is closed after a minute
    server_version = "pix2pix-serve"

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s %s", self.address_string(), format % args)

    # -- plumbing -------------------------------------------------------------------------

    def _send(self, status: int, body: bytes, content_type: str,
              headers: dict[str, str] | None = None) -> None:
        if self._counted:  # predict requests only, counted before the client can read them
            self.server.app.stats.answer(status)
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, obj: Any, headers: dict[str, str] | None = None) -> None:
        self._send(status, (json.dumps(obj, indent=1) + "\n").encode(), "application/json",
                   headers)

    def _error(self, e: ServingError) -> None:
        headers = {"Retry-After": "1"} if isinstance(e, Unavailable) else None
        self._json(e.http_status, {"error": str(e)}, headers)

    @contextmanager
    def _admitted_body(self) -> Iterator[bytes]:
        """Admit the request, then read its body: at most max_queue bodies are in memory at
        once. A refused body is read and dropped first, so the client can read the 503."""
        n = self._length()
        app = self.server.app
        try:
            app.admit()
        except Unavailable:
            self._discard(n)
            raise
        try:
            data = self.rfile.read(n)
            if len(data) < n:
                self.close_connection = True
                raise BadRequest(f"request body: {len(data)} of {n} bytes arrived")
            yield data
        finally:
            app.release()

    def _length(self) -> int:
        """The body's length, refused (413) before reading when it is over the limit."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            self.close_connection = True
            raise LengthRequired("request body: chunked uploads are not read; send "
                                 "Content-Length (curl --data-binary @file does)")
        # RFC 9112 section 6.3: a request with neither Content-Length nor chunking has no body.
        length = self.headers.get("Content-Length", "0")
        try:
            n = int(length)
            if n < 0:
                raise ValueError
        except ValueError:
            self.close_connection = True
            raise BadRequest(f"Content-Length: {length!r} is not a byte count") from None
        limit = self.server.app.options.max_body_bytes
        if n > limit:
            self._discard(n)
            raise TooLarge(f"request body: {n:,} bytes, over the server's limit of {limit:,} "
                           "(--max_body_mb)")
        return n

    def _discard(self, n: int) -> None:
        """Read and drop (up to _DISCARD bytes of) a refused body, so that a client still
        sending gets to read the answer instead of a reset; then close the connection."""
        self.close_connection = True
        left = min(n, _DISCARD)
        while left > 0 and (chunk := self.rfile.read(min(left, 1 << 16))):
            left -= len(chunk)

    def _dispatch(self, fn: Callable[[], None]) -> None:
        self._counted = False
        try:
            fn()
        except ServingError as e:
            self._error(e)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except Exception as e:  # a bug or a model failure: one line to the client, logged here
            log.exception("request %s %s failed", self.command, self.path)
            err = ServingError(f"internal error: {type(e).__name__}: "
                               f"{(str(e).strip().splitlines() or [''])[0]}")
            self._error(err)

    # -- routes ---------------------------------------------------------------------------

    def do_GET(self) -> None:  # http.server's naming
        self._dispatch(self._get)

    do_HEAD = do_GET

    def do_POST(self) -> None:
        self._dispatch(self._post)

    def _get(self) -> None:
        app = self.server.app
        path = urlsplit(self.path).path
        if path in ("/", "/index.html"):
            self._send(200, page.render(app.options.model_name).encode(),
                       "text/html; charset=utf-8")
        elif path == "/healthz":
            self._json(*app.health())
        elif m := _STATUS_RE.fullmatch(path):
            self._json(200, app.model_get(unquote(m["name"]), m["version"], m["label"],
                                          m["sub"]))
        elif path.lower().startswith("/v1/"):
            raise BadRequest(f"Malformed request: GET {path}")
        else:
            raise NotFound(f"{path}: no such page; see / , /healthz, "
                           f"/v1/models/{app.options.model_name}")

    def _post(self) -> None:
        app = self.server.app
        path = urlsplit(self.path).path
        if m := _PREDICT_RE.fullmatch(path):
            self._counted = True
            if m["method"].lower() != "predict":
                raise BadRequest(f"{m['method']}: not served; pix2pix models answer :predict")
            with self._admitted_body() as body:  # the slot is free again before the answer
                obj, headers = app.predict_json(unquote(m["name"]), m["version"], m["label"],
                                                body)  # is written: a slow reader holds none
            self._json(200, obj, headers)
        elif path in ("/predict", "/"):
            ctype = self.headers.get("Content-Type", "").lower()
            if ctype.startswith("application/json"):
                raise BadRequest(f"POST {path} takes image bytes; send JSON to "
                                 f"/v1/models/{app.options.model_name}:predict")
            self._counted = True
            with self._admitted_body() as body:
                data, what = _form_file(body, self.headers["Content-Type"]) if ctype.startswith(
                    "multipart/form-data") else (body, "request body")
                png, headers = app.predict_image(data, what)
            self._send(200, png, "image/png", headers)
        elif path.lower().startswith("/v1/"):
            raise BadRequest(f"Malformed request: POST {path}")
        else:
            raise NotFound(f"{path}: nothing to POST here; POST image bytes to /predict or JSON "
                           f"to /v1/models/{app.options.model_name}:predict")


def _form_file(body: bytes, content_type: str) -> tuple[bytes, str]:
    """The first file of a multipart/form-data body (an HTML form, ``curl -F image=@x.png``)."""
    msg = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + body)
    if not msg.is_multipart():
        raise BadRequest("multipart/form-data body: no parts (is the boundary right?)")
    for part in msg.iter_parts():
        if part.get_filename() is not None or part.get_param("name", header="content-disposition"):
            name = part.get_param("name", header="content-disposition") or "file"
            return part.get_payload(decode=True) or b"", f"form field {name!r}"
    raise BadRequest("multipart/form-data body: no file part; send the image as a file field")
