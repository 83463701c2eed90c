"""Fixtures for the serving tests: a tiny real export, tiny fake exports (identity, invert), a
server on a free port of 127.0.0.1, and a plain HTTP client."""
from __future__ import annotations

import base64
import http.client
import io
import json
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable
from urllib.parse import urlsplit

import numpy as np
import pytest
from PIL import Image

from tests.data.conftest import build_export, random_image
from tests.model.conftest import make_dataset, trained_run  # noqa: F401 (fixtures)

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

INFO = {"commit": "4f1c2ab7e9d04c3a8b6e5f7a9c0d1e2f", "repo": "model", "branch": "master",
        "provenance": {"training": "9a8b7c6d", "checkpoint": "1b2c3d4e"},
        "metrics": {"mean": {"l1": 0.2134, "psnr": 13.9, "ssim": 0.31}}}


@pytest.fixture(scope="session")
def real_export(trained_run, tmp_path_factory) -> Path:
    """A real `pix2pix export` of the model tests' tiny unet_128 (ngf 8, crop 128)."""
    from pix2pix.export import export

    run, _ = trained_run
    return export(checkpoint=run, output_dir=tmp_path_factory.mktemp("serve-real") / "export")


@pytest.fixture(scope="session")
def info_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("serve-info") / "model_info.json"
    path.write_text(json.dumps(INFO))
    return path


@pytest.fixture(scope="session")
def fake_exports(tmp_path_factory) -> dict[str, Path]:
    """Exports with serving_default only, size 64: identity and invert (255 - x), whose outputs
    tell at a glance which model made them."""
    root = tmp_path_factory.mktemp("serve-fake")
    return {op: build_export(root / op, size=64, op=op) for op in ("identity", "invert")}


@pytest.fixture
def start_server():
    """``start_server(model_dir, **kw) -> Server`` on a free port; every one is stopped after."""
    from pix2pix.serving import Server

    started: list[Any] = []

    def start(model_dir: Path, *, load: bool = True, **kw) -> Any:
        server = Server(model_dir, port=0, echo=lambda line: None, **kw)
        started.append(server)
        return server.start(load=load)

    yield start
    for server in started:
        server.stop(grace_s=5)


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def request(url: str, method: str = "GET", body: bytes | None = None,
            headers: dict[str, str] | None = None, timeout: float = 60) -> Reply:
    """One HTTP request on a fresh connection (http.client: it never raises on 4xx/5xx)."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    try:
        conn.request(method, parts.path + (f"?{parts.query}" if parts.query else ""), body=body,
                     headers=headers or {})
        r = conn.getresponse()
        return Reply(r.status, {k.lower(): v for k, v in r.getheaders()}, r.read())
    finally:
        conn.close()


def post_json(url: str, obj: Any) -> Reply:
    return request(url, "POST", json.dumps(obj).encode(), {"Content-Type": "application/json"})


def png_bytes(pixels: np.ndarray, fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.asarray(pixels, np.uint8)).save(buf, format=fmt)
    return buf.getvalue()


def b64(data: bytes) -> dict[str, str]:
    return {"b64": base64.b64encode(data).decode()}


def decode_png(data: bytes) -> np.ndarray:
    im = Image.open(io.BytesIO(data))
    assert im.format == "PNG"
    return np.asarray(im.convert("RGB"))


def image(h: int, w: int, seed: int = 0) -> np.ndarray:
    return random_image(h, w, seed=seed, smooth=True)


def wrap_loader(around: Callable[[Callable, np.ndarray], np.ndarray]):
    """A loader whose model runs through ``around(translate, batch)`` (to slow it or watch it)."""
    from pix2pix.serving import load_export

    def loader(model_dir: Path):
        model = load_export(model_dir)
        inner = model.translate
        model.translate = lambda batch: around(inner, batch)
        return model
    return loader


def wait_for(predicate: Callable[[], bool], timeout: float = 30, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


class Shapes:
    """A model wrapper that records the shape of every batch the model is given."""

    def __init__(self) -> None:
        self.seen: list[tuple[int, ...]] = []

    def __call__(self, translate: Callable, batch: np.ndarray) -> np.ndarray:
        self.seen.append(batch.shape)
        return translate(batch)


class Gate:
    """A model wrapper that blocks inside the model until released (deterministic overload)."""

    def __init__(self) -> None:
        self.entered, self.release = threading.Event(), threading.Event()

    def __call__(self, translate: Callable, batch: np.ndarray) -> np.ndarray:
        self.entered.set()
        assert self.release.wait(60), "gate never released"
        return translate(batch)
