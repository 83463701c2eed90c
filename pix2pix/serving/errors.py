"""Request errors of the server, each mapped by class to an HTTP status and to the status code
TF Serving would report (``grpc_status``, as for every pix2pix error; TF Serving's
``ToHTTPStatusCode`` table gives INVALID_ARGUMENT 400, NOT_FOUND 404, UNAVAILABLE 503, ...).
The message is one line and goes out as ``{"error": "<message>"}``, the body TF Serving writes
for every failed REST call.
"""
from __future__ import annotations

from pix2pix.errors import Pix2PixError


class ServingError(Pix2PixError):
    """A request the server refuses; ``http_status`` and ``grpc_status`` come from the class."""

    http_status = 500
    grpc_status = "INTERNAL"


class BadRequest(ServingError):
    """Malformed input: not JSON, wrong keys, not an image, empty, wrong shape."""

    http_status = 400
    grpc_status = "INVALID_ARGUMENT"


class NotFound(ServingError):
    """An unknown model name, version, label or path."""

    http_status = 404
    grpc_status = "NOT_FOUND"


class TooLarge(ServingError):
    """A body over --max_body_mb, or images over --max_pixels (RFC 9110: 413 Content Too Large)."""

    http_status = 413
    grpc_status = "INVALID_ARGUMENT"


class LengthRequired(ServingError):
    """A chunked POST: bodies are read by their Content-Length only."""

    http_status = 411
    grpc_status = "INVALID_ARGUMENT"


class Unavailable(ServingError):
    """No model loaded yet, the queue is full, or the server is stopping: retry later."""

    http_status = 503
    grpc_status = "UNAVAILABLE"
