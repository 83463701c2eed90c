"""Online serving of an exported model: ``pix2pix serve`` (docs/serving.md).

Layout, in the order a request flows::

    server.py    HTTP routes, admission (503 when full), the model swap, start/stop
    api.py       TensorFlow Serving's REST JSON: predict, status, metadata
    images.py    bytes -> RGB within the limits, resize or tile (generate --tile auto), PNG
    batching.py  one model thread; tiles of concurrent requests share a call
    model.py     an export loaded with TensorFlow alone, plus its model info (commit, metrics)
    page.py      the web page at /
    options.py   ServeOptions, the typed options
    errors.py    request errors, each with its HTTP status

Python API (what the engine calls)::

    from pix2pix.serving import Server, ServeOptions
    server = Server(Path("model"), port=8501, model_info=Path("info.json")).start()
    server.reload()        # load again, swap atomically, in-flight requests finish on the old
    server.stop()

Names are imported on first use, so the CLI can read :class:`ServeOptions` without numpy.
"""
from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {"Server": "server", "ServeOptions": "options", "LoadedModel": "model",
            "load_export": "model", "MODEL_INFO_ENV": "model"}
__all__ = ["LoadedModel", "MODEL_INFO_ENV", "ServeOptions", "Server", "load_export"]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"pix2pix.serving.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'pix2pix.serving' has no attribute {name!r}")
