"""Bad input (400/413, one line naming the problem), overload (503, bounded), batching of
concurrent requests, and large images tiled in bounded memory."""
from __future__ import annotations

import base64
import threading
import tracemalloc

import numpy as np
import pytest

from pix2pix.serving import ServeOptions
from tests.serving.conftest import (Gate, Shapes, b64, decode_png, image, png_bytes, post_json,
                                    request,
                                    wrap_loader)

PREDICT = "v1/models/pix2pix:predict"
PNG = png_bytes(image(64, 64))


@pytest.fixture(scope="module")
def identity(fake_exports):
    from pix2pix.serving import Server

    server = Server(fake_exports["identity"], port=0, echo=lambda line: None,
                    options=ServeOptions(max_body_mb=0.5, max_pixels=300 * 300)).start()
    yield server
    server.stop()


def _json_body(obj) -> bytes:
    import json
    return json.dumps(obj).encode()


BAD = [
    # (path, body, content type, status, the words that name the problem)
    (PREDICT, b"{not json", "application/json", 400, "request body: not valid JSON"),
    (PREDICT, b"[1, 2]", "application/json", 400, '"instances" or "inputs" expected'),
    (PREDICT, b"{}", "application/json", 400, 'missing "instances" or "inputs"'),
    (PREDICT, _json_body({"instances": [], "inputs": []}), "application/json", 400,
     'exactly one of "instances"'),
    (PREDICT, _json_body({"instance": [b64(PNG)]}), "application/json", 400,
     'unknown key "instance"'),
    (PREDICT, _json_body({"signature_name": "classify", "instances": [b64(PNG)]}),
     "application/json", 400, 'Serving signature name: "classify" not found'),
    (PREDICT, _json_body({"instances": [{"b64": "%%%"}]}), "application/json", 400,
     "instances[0].b64: not valid base64"),
    (PREDICT, _json_body({"instances": [{"b64": base64.b64encode(b"hello").decode()}]}),
     "application/json", 400, "instances[0]: not an image"),
    (PREDICT, _json_body({"instances": [{"b64": ""}]}), "application/json", 400,
     "instances[0]: empty"),
    (PREDICT, _json_body({"instances": [b64(PNG), {"picture": b64(PNG)}]}), "application/json",
     400, "instances[1]: unknown input ['picture']"),
    (PREDICT, _json_body({"instances": [[[1, 2, 3]]]}), "application/json", 400,
     "instances[0]: a uint8 [64, 64, 3] array expected, got shape [1, 3]"),
    (PREDICT, _json_body({"instances": [np.full((64, 64, 3), 300).tolist()]}),
     "application/json", 400, "instances[0]: values must be integers 0..255"),
    (PREDICT, _json_body({"instances": []}), "application/json", 400,
     "instances: a non-empty list"),
    ("v1/models/pix2pix:classify", b"{}", "application/json", 400, "classify: not served"),
    ("predict", b"", "image/png", 400, "request body: empty"),
    ("predict", b"GIF89a-but-truncated", "image/gif", 400, "request body:"),
    ("predict", b"plain text", "text/plain", 400, "request body: not an image"),
    ("predict", b"{}", "application/json", 400, "POST /predict takes image bytes"),
    ("predict", b"x" * (600 * 1024), "image/png", 413,
     "request body: 614,400 bytes, over the server's limit of 524,288 (--max_body_mb)"),
    ("predict", png_bytes(np.zeros((400, 400, 3), np.uint8)), "image/png", 413,
     "image of 400x400 = 160,000 pixels, over the server's limit of 90,000"),
    ("nowhere", b"x", "image/png", 404, "/nowhere: nothing to POST here"),
]


@pytest.mark.parametrize("path,body,ctype,status,words", BAD,
                         ids=[f"{i}-{b[4]}" for i, b in enumerate(BAD)])
def test_bad_input_answers_one_line_naming_the_problem(identity, path, body, ctype, status,
                                                       words):
    r = request(identity.url + path, "POST", body, {"Content-Type": ctype})
    assert r.status == status, r.body
    err = r.json()
    assert list(err) == ["error"]  # TF Serving's error body
    assert words in err["error"]
    assert "\n" not in err["error"]
    assert "Traceback" not in err["error"]


def test_too_many_pixels_over_several_instances(identity):
    # each image is under the limit; together they are not
    r = post_json(identity.url + PREDICT,
                  {"instances": [b64(png_bytes(image(200, 200, seed=i))) for i in range(3)]})
    assert r.status == 413
    assert r.json()["error"] == ("request: 3 images = 120,000 pixels, over the server's limit "
                                 "of 90,000 per request (--max_pixels)")


def test_get_errors(identity):
    r = request(identity.url + "v1/models/pix2pix:predict")
    assert (r.status, r.json()) == (
        400, {"error": "Malformed request: GET /v1/models/pix2pix:predict"})
    r = request(identity.url + "v1/models/pix2pix/labels/stable")
    assert (r.status, r.json()) == (404, {"error": "Unrecognized servable version label: stable"})
    assert request(identity.url + "favicon.ico").status == 404


def test_the_server_still_serves_after_bad_requests(identity):
    for path, body, ctype, *_ in BAD:
        request(identity.url + path, "POST", body, {"Content-Type": ctype})
    r = request(identity.url + "predict", "POST", PNG)
    assert r.status == 200 and np.array_equal(decode_png(r.body), decode_png(PNG))


def test_overload_answers_503_at_once_and_never_queues_without_bound(start_server,
                                                                     fake_exports):
    gate = Gate()
    server = start_server(fake_exports["identity"], loader=wrap_loader(gate),
                          options=ServeOptions(max_queue=1))
    first: list = []
    t = threading.Thread(target=lambda: first.append(request(server.url + "predict", "POST",
                                                             PNG)))
    t.start()
    assert gate.entered.wait(30)  # the first request is inside the model
    busy = [request(server.url + "predict", "POST", PNG, timeout=10) for _ in range(3)]
    busy.append(post_json(server.url + PREDICT, {"instances": [b64(PNG)]}))
    assert [r.status for r in busy] == [503] * 4
    assert busy[0].json() == {"error": "server busy: 1 requests already in flight "
                                       "(--max_queue); retry later"}
    assert busy[0].headers["retry-after"] == "1"
    # status and health are not queued behind predictions
    assert request(server.url + "healthz", timeout=10).status == 200
    gate.release.set()
    t.join(30)
    assert first[0].status == 200
    assert request(server.url + "predict", "POST", PNG).status == 200  # capacity came back
    stats = request(server.url + "v1/models/pix2pix/info").json()["stats"]
    assert (stats["ok"], stats["rejected_503"]) == (2, 4)


def test_concurrent_requests_share_model_calls(start_server, fake_exports):
    shapes = Shapes()
    server = start_server(fake_exports["invert"], loader=wrap_loader(shapes),
                          options=ServeOptions(max_batch_size=4, batch_timeout_ms=300,
                                               max_queue=16))
    inputs = [image(64, 64, seed=i) for i in range(8)]
    replies: list = [None] * 8
    barrier = threading.Barrier(8)

    def one(i: int) -> None:
        barrier.wait()
        replies[i] = request(server.url + "predict", "POST", png_bytes(inputs[i]))

    threads = [threading.Thread(target=one, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert all(r.status == 200 for r in replies)
    # every answer is its own image translated, whatever batch it rode in
    for x, r in zip(inputs, replies):
        assert np.array_equal(decode_png(r.body), 255 - x)
    sizes = [s[0] for s in shapes.seen]
    assert sum(sizes) == 8 and max(sizes) <= 4
    assert max(sizes) > 1, f"no two requests shared a model call: {sizes}"
    assert all(s[1:] == (64, 64, 3) for s in shapes.seen)
    stats = request(server.url + "v1/models/pix2pix/info").json()["stats"]
    assert stats["batch_sizes"] == {str(k): sizes.count(k) for k in sorted(set(sizes))}


def test_a_large_image_is_tiled_in_bounded_memory(start_server, fake_exports):
    shapes = Shapes()
    server = start_server(fake_exports["identity"], loader=wrap_loader(shapes),
                          options=ServeOptions(max_batch_size=8))
    big = image(1500, 2000, seed=7)  # 9 MB of pixels; tiles of 64 with overlap 32: ~2800 tiles
    body = png_bytes(big)
    tracemalloc.start()
    try:
        r = request(server.url + "predict", "POST", body, {"Content-Type": "image/png"})
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert r.status == 200, r.body
    out = decode_png(r.body)
    assert out.shape == big.shape
    assert np.array_equal(out, big)  # identity tiles blend back exactly
    assert len(shapes.seen) > 300
    assert all(s[0] <= 8 and s[1:] == (64, 64, 3) for s in shapes.seen)
    # The request holds the input, the output and one band of tile rows (plus the encoded
    # bodies): ~3x the pixels here. Float sums over the whole image would be 5.3x on their own,
    # the tiles as float32 ~16x.
    assert peak < 4 * big.nbytes + 2 * len(body), f"peak {peak / 2**20:.0f} MiB"
    assert request(server.url + "v1/models/pix2pix/info").json()["stats"]["tiled_images"] == 1
