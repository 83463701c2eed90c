"""The HTTP server: routes, admission, the model swap, start and stop.

::

    client --HTTP--> ThreadingHTTPServer thread --admit (<= max_queue, else 503)--> use(current)
        decode, check limits --> Batcher of that version --> encode --> response + X-Model-*

    reload(): load the export again (and the model info) beside the serving one, then swap
    ``current`` under a lock. A request holds the version it started with until it answers; the
    old version's batcher stops once its last request is done. No request is lost or mixed.

Standard library only (http.server): a handful of JSON routes and image bytes need no framework.
"""
from __future__ import annotations

import collections
import gc
import logging
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from pix2pix.errors import ModelError, Pix2PixError, UsageError
from pix2pix.serving import api
from pix2pix.serving.batching import Batcher
from pix2pix.serving.routes import Handler, HTTPServer
from pix2pix.serving.errors import NotFound, Unavailable
from pix2pix.serving.images import (check_pixels, decode, encode_png, open_image,
                                    translate_images)
from pix2pix.serving.model import (PNG_SIGNATURE, LoadedModel, Servable, check_export,
                                   load_export, read_model_info)
from pix2pix.serving.options import ServeOptions

log = logging.getLogger("pix2pix.serving")
_HISTORY = 10  # version statuses kept for GET /v1/models/NAME

# TF Serving's REST paths (http_rest_api_util.cc), case-insensitive as there.


@dataclass
class _Slot:
    """A loaded version, its batcher, and the requests still using it."""

    servable: Servable
    batcher: Batcher
    refs: int = 0
    retired: bool = False


class Stats:
    """Counters a script or test can read (GET /v1/models/NAME/info, "stats")."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests = self.ok = self.client_errors = self.server_errors = self.rejected = 0
        self.tiled = 0
        self.batch_sizes: collections.Counter[int] = collections.Counter()

    def batch(self, n: int) -> None:
        with self._lock:
            self.batch_sizes[n] += 1

    def answer(self, status: int) -> None:
        with self._lock:
            self.requests += 1
            if status < 400:
                self.ok += 1
            elif status == 503:
                self.rejected += 1
            elif status < 500:
                self.client_errors += 1
            else:
                self.server_errors += 1

    def add_tiled(self, n: int) -> None:
        with self._lock:
            self.tiled += n

    def as_dict(self) -> dict[str, Any]:
        with self._lock:
            return {"requests": self.requests, "ok": self.ok, "client_errors": self.client_errors,
                    "server_errors": self.server_errors, "rejected_503": self.rejected,
                    "tiled_images": self.tiled,
                    "batch_sizes": {str(k): v for k, v in sorted(self.batch_sizes.items())}}


class Server:
    """Serve the export in ``model_dir`` over HTTP (see docs/serving.md).

    Args:
        model_dir: a ``pix2pix export`` folder; :meth:`reload` reads it again (a symlink is
            resolved at each load, so pointing it elsewhere and reloading swaps models).
        host, port: where to listen; port 0 takes a free port (see :attr:`port`).
        model_info: optional JSON naming the model (commit, repo, provenance, metrics), read at
            each load.
        model_commit: the commit to name when the model info has none (in a Pachyderm
            pipeline, the ``model_COMMIT`` variable of an input named ``model``).
        options: batching and limits.
        info_source: called at each (re)load for more model info (e.g. looked up in Pachyderm);
            the model info file's keys win over its keys. It must not raise.
        loader: ``model_dir -> LoadedModel``; the default loads the export with TensorFlow.
        echo: where one-line events (loaded, reloaded, reload failed) go.
    """

    def __init__(self, model_dir: Path, *, host: str = "127.0.0.1", port: int = 8501,
                 model_info: Path | None = None, model_commit: str | None = None,
                 options: ServeOptions | None = None,
                 info_source: Callable[[], dict[str, Any]] | None = None,
                 loader: Callable[[Path], LoadedModel] = load_export,
                 echo: Callable[[str], None] = log.info):
        self.model_dir, self.model_info = Path(model_dir), model_info
        self.info_source = info_source
        self.model_commit = model_commit
        options = options or ServeOptions()
        self.host, self.options, self.stats = host, options, Stats()
        self._loader, self._echo = loader, echo
        self._requested_port = port
        self._lock = threading.Lock()
        self._reload_lock = threading.RLock()
        self._current: _Slot | None = None
        self._reload_pending = False
        self._next_version = 1
        self._history: list[dict[str, Any]] = []  # newest first
        self._admit = threading.BoundedSemaphore(options.max_queue)
        self._inflight = 0
        self._idle = threading.Condition(self._lock)
        self._stopping = False
        self._httpd: HTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._stopped_port = 0

    # -- lifecycle ------------------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._httpd is not None:
            return self._httpd.server_address[1]
        return self._stopped_port or self._requested_port

    @property
    def url(self) -> str:
        """Where a client on this machine reaches the server (a wildcard host reads as the
        loopback address)."""
        host = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}.get(self.host, self.host)
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{self.port}/"

    @property
    def version(self) -> int | None:
        """The version now answering requests (None while the first load runs)."""
        slot = self._current
        return slot.servable.version if slot else None

    @property
    def ready(self) -> bool:
        return self._current is not None and not self._stopping

    def start(self, *, load: bool = True) -> Server:
        """Listen (``/healthz`` answers 503 until a model is loaded), then load the model.

        Raises:
            UsageError: the address cannot be bound (port in use, bad host).
            ModelError: ``model_dir`` is not a loadable export (the server is stopped again).
        """
        check_export(self.model_dir)
        if self._current is None and self.model_info is not None:
            read_model_info(self.model_info)  # a bad info file fails before we listen
        try:
            self._httpd = HTTPServer((self.host, self._requested_port), Handler, self)
        except OSError as e:
            raise UsageError(f"cannot listen on {self.host}:{self._requested_port} "
                             f"({e.strerror or e}); stop what holds it or give another "
                             "--port") from None
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="http",
                                        kwargs={"poll_interval": 0.2}, daemon=True)
        self._thread.start()
        if load:
            try:
                self.reload()
            except BaseException:
                self.stop()
                raise
        return self

    def __enter__(self) -> Server:
        return self.start() if self._httpd is None else self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self, grace_s: float | None = None) -> dict[str, Any]:
        """Stop listening, let admitted requests finish (up to ``grace_s``, default the
        drain timeout), stop the model threads. Returns the final stats."""
        grace_s = self.options.drain_timeout_s if grace_s is None else grace_s
        with self._lock:
            self._stopping = True
        httpd, self._httpd = self._httpd, None
        if httpd is not None:
            self._stopped_port = httpd.server_address[1]
            httpd.shutdown()
            httpd.server_close()
        deadline = time.monotonic() + grace_s
        with self._idle:
            while self._inflight and time.monotonic() < deadline:
                self._idle.wait(max(0.0, min(0.5, deadline - time.monotonic())))
            slot, self._current = self._current, None
        if slot is not None:
            slot.batcher.close()
        return self.stats.as_dict()

    # -- loading and the swap -------------------------------------------------------------

    def reload(self) -> int:
        """Load ``model_dir`` and the model info again and switch to them once loaded; requests
        in flight finish on the version they started with. Blocks until done.

        Returns:
            The new version number.
        Raises:
            ModelError / UsageError: the export or the info file cannot be loaded; the serving
                version (if any) stays.
        """
        with self._reload_lock:
            with self._lock:
                if self._stopping:
                    raise UsageError(f"{self.options.model_name}: the server is stopping; "
                                     "not reloading")
                version, self._next_version = self._next_version, self._next_version + 1
                self._record(version, "LOADING")
            try:
                info = read_model_info(self.model_info)
                if self.info_source is not None:
                    info = {**self.info_source(), **info}
                if self.model_commit and not info.get("commit"):
                    info = {**info, "commit": self.model_commit}
                model = self._loader(self.model_dir)
                if not 0 <= self.options.overlap < model.size:
                    raise UsageError(f"--overlap {self.options.overlap} must be below the "
                                     f"model size {model.size}")
            except Exception as e:
                first = (str(e).strip().splitlines() or [type(e).__name__])[0]
                err = e if isinstance(e, Pix2PixError) else ModelError(
                    f"{self.model_dir}: cannot load ({first})")
                with self._lock:
                    self._record(version, "END", str(err))
                raise err from None
            servable = Servable(model=model, info=info, version=version)
            slot = _Slot(servable, Batcher(model.translate,
                                           max_batch=self.options.max_batch_size,
                                           timeout_s=self.options.batch_timeout_ms / 1000,
                                           on_batch=self.stats.batch, name=f"model-v{version}"))
            with self._lock:
                if self._stopping:  # stop() ran while this version loaded: never serve it
                    self._record(version, "END", "the server stopped before it served")
                    slot.batcher.close()
                    raise UsageError(f"{self.options.model_name}: the server stopped while "
                                     f"version {version} loaded")
                old, self._current = self._current, slot
                self._record(version, "AVAILABLE")
                close_old = False
                if old is not None:
                    old.retired = True
                    close_old = old.refs == 0
                    self._record(old.servable.version, "END" if close_old else "UNLOADING")
            if close_old:
                _retire(old)
            self._echo(f"serving {self.options.model_name} version {version} (commit "
                       f"{servable.commit}) from {model.model_dir}")
            return version

    def request_reload(self) -> None:
        """Reload in the background (for SIGHUP). Requests made while a reload runs fold into
        one more reload after it, which reads the newest files; a failure is echoed and the
        serving version stays."""
        with self._lock:
            if self._reload_pending:
                return
            self._reload_pending = True
        threading.Thread(target=self._reload_in_background, name="reload", daemon=True).start()

    def _reload_in_background(self) -> None:
        with self._reload_lock:
            with self._lock:
                self._reload_pending = False
            try:
                self.reload()
            except Pix2PixError as e:
                self._echo(f"reload failed: {e}; still serving version {self.version}")

    def _record(self, version: int, state: str, error: str = "") -> None:
        """Version state for the status API (caller holds the lock)."""
        self._history = [h for h in self._history if h["version"] != str(version)]
        self._history.insert(0, api.version_status(version, state, error))
        self._history.sort(key=lambda h: -int(h["version"]))
        del self._history[_HISTORY:]

    @contextmanager
    def _use(self) -> Iterator[tuple[Servable, Batcher]]:
        """The serving version, held until the block ends (so a swap cannot take it away)."""
        with self._lock:
            slot = self._current
            if slot is None or self._stopping:
                raise Unavailable(f"model {self.options.model_name} is "
                                  + ("stopping" if self._stopping else
                                     "loading; retry when /healthz answers 200"))
            slot.refs += 1
        try:
            yield slot.servable, slot.batcher
        finally:
            with self._lock:
                slot.refs -= 1
                done = slot.retired and slot.refs == 0
                if done:
                    self._record(slot.servable.version, "END")
            if done:
                _retire(slot)

    def admit(self) -> None:
        """Take one of the max_queue request slots, or raise Unavailable (503) at once: a
        full server never queues without bound. Pair with :meth:`release`."""
        if not self._admit.acquire(blocking=False):
            raise Unavailable(f"server busy: {self.options.max_queue} requests already in "
                              "flight (--max_queue); retry later")
        with self._lock:
            self._inflight += 1

    def release(self) -> None:
        with self._idle:
            self._inflight -= 1
            self._idle.notify_all()
        self._admit.release()

    # -- request handling (called by http.Handler) ---------------------------------------------

    def health(self) -> tuple[int, dict[str, Any]]:
        slot = self._current
        if slot is None or self._stopping:
            return 503, {"status": "stopping" if self._stopping else "loading"}
        return 200, {"status": "ok", "model": self.options.model_name,
                     "version": slot.servable.version, "commit": slot.servable.commit}

    def describe(self) -> dict[str, Any]:
        """GET /v1/models/NAME/info: which model answers, how it is served, and the stats."""
        slot = self._current
        if slot is None:
            raise Unavailable(f"model {self.options.model_name} is loading")
        o = self.options
        return {**slot.servable.describe(o.model_name),
                "serving": {"max_batch_size": o.max_batch_size,
                            "batch_timeout_ms": o.batch_timeout_ms, "max_queue": o.max_queue,
                            "max_body_bytes": o.max_body_bytes, "max_pixels": o.max_pixels,
                            "overlap": o.overlap},
                "stats": self.stats.as_dict()}

    def model_get(self, name: str, version: str | None, label: str | None,
                  sub: str | None) -> dict[str, Any]:
        """GET /v1/models/NAME[/versions/V][/metadata|/info]."""
        if name != self.options.model_name:
            raise NotFound(f"Could not find any versions of model {name}")
        if label is not None:
            raise NotFound(f"Unrecognized servable version label: {label}")
        if sub is None:
            with self._lock:
                history = list(self._history)
            if version is not None:
                history = [h for h in history if h["version"] == str(int(version))]
                if not history:
                    raise NotFound(f"Could not find version {int(version)} of model {name}")
            return {"model_version_status": history}
        slot = self._current
        if slot is None or (version is not None and int(version) != slot.servable.version):
            raise NotFound("Servable not found for request: "
                           + (f"Specific({name}, {int(version)})" if version is not None
                              else f"Latest({name})"))
        if sub.lower() == "info":
            return self.describe()
        return api.metadata(name, slot.servable.version, slot.servable.model.signature_defs)

    def predict_json(self, name: str, version: str | None, label: str | None,
                     body: bytes) -> tuple[dict[str, Any], dict[str, str]]:
        """POST /v1/models/NAME[/versions/V]:predict -> (response JSON, identity headers)."""
        self._check_model(name, version, label)
        with self._use() as (servable, batcher):
            if version is not None and int(version) != servable.version:
                raise NotFound(f"Servable not found for request: Specific({name}, {int(version)})")
            model = servable.model
            req = api.parse_predict(body, sigs=model.signature_defs, size=model.size)
            if req.signature == PNG_SIGNATURE:
                outputs: list[Any] = self._translate_encoded(list(zip(req.names, req.items)),
                                                             servable, batcher)
            else:
                outputs = list(batcher.run(np.stack(req.items)))
            return api.predict_response(req, outputs), servable.identity(self.options.model_name)

    def predict_image(self, data: bytes, what: str) -> tuple[bytes, dict[str, str]]:
        """POST /predict (or /) with image bytes -> (PNG bytes at the input's size, headers)."""
        with self._use() as (servable, batcher):
            (png,) = self._translate_encoded([(what, data)], servable, batcher)
            return png, servable.identity(self.options.model_name)

    def _translate_encoded(self, items: list[tuple[str, bytes]], servable: Servable,
                           batcher: Batcher) -> list[bytes]:
        """Encoded images (named for errors) -> PNG bytes, each at its own size. All headers
        are checked against the pixel limit before anything is decoded."""
        opened = [(name, open_image(data, name)) for name, data in items]
        check_pixels(opened, self.options.max_pixels)
        images = [decode(im, name) for name, im in opened]
        del opened
        outs, tiled = translate_images(images, batcher.run, size=servable.model.size,
                                       overlap=self.options.overlap,
                                       max_batch=self.options.max_batch_size)
        self.stats.add_tiled(tiled)
        return [encode_png(o) for o in outs]

    def _check_model(self, name: str, version: str | None, label: str | None) -> None:
        if name != self.options.model_name:
            raise NotFound(f"Servable not found for request: Latest({name})")
        if label is not None:
            raise NotFound(f"Unrecognized servable version label: {label}")


def _retire(slot: _Slot) -> None:
    """Stop a version no request uses any more, and free its model now: a loaded SavedModel
    holds reference cycles, so without a collection its weights could wait for the next one."""
    slot.batcher.close()
    slot.servable.model.translate = _retired
    gc.collect()


def _retired(images: np.ndarray) -> np.ndarray:
    raise RuntimeError("this model version was unloaded")
