"""Model swap without a lost request: reload() and the SIGHUP path (request_reload), while
several threads keep requesting; a failed reload keeps the serving model."""
from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import numpy as np
import pytest

from pix2pix.errors import ModelError, UsageError
from pix2pix.serving import load_export
from tests.serving.conftest import (Gate, decode_png, image, png_bytes, request, wait_for,
                                    wrap_loader)


def _point(link: Path, target: Path) -> None:
    """Repoint ``link`` atomically (a new symlink renamed over the old), as an engine would."""
    tmp = link.with_name(link.name + ".new")
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(target)
    os.replace(tmp, link)


def _info(path: Path, commit: str) -> Path:
    tmp = path.with_name(path.name + ".new")
    tmp.write_text(json.dumps({"commit": commit, "repo": "model"}))
    os.replace(tmp, path)
    return path


def test_swaps_under_load_lose_no_request(start_server, fake_exports, tmp_path):
    link, info = tmp_path / "model", tmp_path / "info.json"
    _point(link, fake_exports["identity"])
    server = start_server(link, model_info=_info(info, "old"))
    x = image(64, 64, seed=11)
    body = png_bytes(x)
    # what each commit's model makes of x: identity, invert, identity again
    expect = {"old": x, "new": 255 - x, "third": x}
    stop = threading.Event()
    log: dict[int, list[tuple[int, str, str, bool]]] = {i: [] for i in range(4)}

    def client(i: int) -> None:
        while not stop.is_set():
            try:
                r = request(server.url + "predict", "POST", body, {"Content-Type": "image/png"})
            except OSError as e:  # a refused or reset connection is a lost request too
                log[i].append((0, "", str(e), False))
                continue
            commit = r.headers.get("x-model-commit", "")
            ok = r.status == 200 and commit in expect and np.array_equal(
                decode_png(r.body), expect[commit])
            log[i].append((r.status, commit, r.headers.get("x-model-version", ""), ok))

    def answered() -> int:
        return sum(len(v) for v in log.values())

    threads = [threading.Thread(target=client, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    try:
        wait_for(lambda: answered() >= 40, what="traffic on the first model")
        _point(link, fake_exports["invert"])
        _info(info, "new")
        assert server.reload() == 2  # the Python API: returns once the new model serves
        n = answered()
        wait_for(lambda: answered() >= n + 40, what="traffic on the second model")
        _point(link, fake_exports["identity"])
        _info(info, "third")
        server.request_reload()  # what SIGHUP calls: in the background
        wait_for(lambda: server.version == 3, what="the second swap")
        n = answered()
        wait_for(lambda: answered() >= n + 40, what="traffic on the third model")
    finally:
        stop.set()
        for t in threads:
            t.join(60)

    failures = [e for v in log.values() for e in v if not e[3]]
    assert not failures, f"{len(failures)} of {answered()} requests failed: {failures[:3]}"
    for entries in log.values():
        versions = [int(v) for _, _, v, _ in entries]
        assert versions == sorted(versions), "a client was answered by an older model again"
    # each version answered, under its own commit (pixels checked against it above)
    assert {(c, v) for e in log.values() for _, c, v, _ in e} == {
        ("old", "1"), ("new", "2"), ("third", "3")}
    statuses = request(server.url + "v1/models/pix2pix").json()["model_version_status"]
    assert [(s["version"], s["state"]) for s in statuses] == [("3", "AVAILABLE"), ("2", "END"),
                                                             ("1", "END")]


def test_a_failed_reload_keeps_the_serving_model(start_server, fake_exports, tmp_path):
    link, info = tmp_path / "model", tmp_path / "info.json"
    _point(link, fake_exports["invert"])
    server = start_server(link, model_info=_info(info, "good"))
    x = image(64, 64, seed=12)

    empty = tmp_path / "empty"
    empty.mkdir()
    _point(link, empty)
    with pytest.raises(ModelError, match="no saved_model.pb"):
        server.reload()
    _point(link, fake_exports["identity"])
    info.write_text("{broken")
    with pytest.raises(UsageError, match="info.json: model info is not readable JSON"):
        server.reload()

    r = request(server.url + "predict", "POST", png_bytes(x))
    assert r.status == 200 and r.headers["x-model-commit"] == "good"
    assert np.array_equal(decode_png(r.body), 255 - x)  # still the invert model
    statuses = request(server.url + "v1/models/pix2pix").json()["model_version_status"]
    assert [(s["version"], s["state"]) for s in statuses] == [("3", "END"), ("2", "END"),
                                                             ("1", "AVAILABLE")]
    assert "no saved_model.pb" in statuses[1]["status"]["error_message"]
    assert statuses[1]["status"]["error_code"] == "UNKNOWN"
    assert request(server.url + "healthz").json()["version"] == 1

    _info(info, "fixed")
    assert server.reload() == 4  # once the files are right, the next reload swaps
    r = request(server.url + "predict", "POST", png_bytes(x))
    assert r.headers["x-model-commit"] == "fixed" and np.array_equal(decode_png(r.body), x)


def test_a_request_keeps_the_model_it_started_with(start_server, fake_exports, tmp_path):
    """A swap while a request is inside the old model: it finishes there, and the old model's
    thread stops only after it."""
    gate = Gate()
    link = tmp_path / "model"
    _point(link, fake_exports["identity"])
    loaders = iter([wrap_loader(gate), load_export])  # only the first model is gated
    server = start_server(link, loader=lambda model_dir: next(loaders)(model_dir))
    x = image(64, 64, seed=13)
    slow: list = []
    t = threading.Thread(target=lambda: slow.append(request(server.url + "predict", "POST",
                                                            png_bytes(x))))
    t.start()
    assert gate.entered.wait(30)
    _point(link, fake_exports["invert"])
    assert server.reload() == 2
    fast = request(server.url + "predict", "POST", png_bytes(x))
    assert fast.headers["x-model-version"] == "2" and np.array_equal(decode_png(fast.body), 255 - x)
    statuses = request(server.url + "v1/models/pix2pix").json()["model_version_status"]
    assert [(s["version"], s["state"]) for s in statuses] == [("2", "AVAILABLE"),
                                                             ("1", "UNLOADING")]
    gate.release.set()
    t.join(30)
    assert slow[0].status == 200 and slow[0].headers["x-model-version"] == "1"
    assert np.array_equal(decode_png(slow[0].body), x)
    statuses = request(server.url + "v1/models/pix2pix").json()["model_version_status"]
    assert statuses[1] == {"version": "1", "state": "END",
                           "status": {"error_code": "OK", "error_message": ""}}


def test_no_reload_after_stop(start_server, fake_exports):
    server = start_server(fake_exports["identity"])
    server.stop()
    with pytest.raises(UsageError, match="the server is stopping; not reloading"):
        server.reload()
    assert server.version is None
