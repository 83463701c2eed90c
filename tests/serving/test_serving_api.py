"""The HTTP API of `pix2pix serve` on a real tiny export: TF Serving's predict (row, columnar,
both signatures), status and metadata, model info, the plain image POST, the page, health."""
from __future__ import annotations

import base64
import re
import threading
import uuid

import numpy as np
import pytest

from pix2pix.generate import GenerateOptions, generate, load_model
from pix2pix.serving.options import GENERATE_BATCH_SIZE, GENERATE_OVERLAP
from tests.data.conftest import save
from tests.serving.conftest import (INFO, b64, decode_png, image, png_bytes, post_json,
                                    request, wait_for, wrap_loader)


@pytest.fixture(scope="module")
def served(real_export, info_file):
    from pix2pix.serving import Server

    server = Server(real_export, port=0, model_info=info_file, echo=lambda line: None).start()
    yield server
    server.stop()


def _generate(real_export, pixels, tmp_path):
    """What `pix2pix generate` writes for ``pixels``: the server must agree with it."""
    src = save(tmp_path / "in" / f"{uuid.uuid4().hex}.png", pixels)
    generate(translator=load_model(model=real_export), inputs=[src], output_dir=tmp_path / "out",
             options=GenerateOptions())
    return decode_png((tmp_path / "out" / src.name).read_bytes())


def _close(a: np.ndarray, b: np.ndarray, tol: int = 2) -> bool:
    # Batches of different sizes may round a float differently in the convolutions.
    return a.shape == b.shape and int(np.abs(a.astype(int) - b.astype(int)).max()) <= tol


def test_predict_row_b64_answers_pngs_at_the_inputs_sizes(served, real_export, tmp_path):
    a, b = image(100, 150, seed=1), image(64, 64, seed=2)
    r = post_json(served.url + "v1/models/pix2pix:predict",
                  {"instances": [b64(png_bytes(a)), b64(png_bytes(b, "JPEG"))]})
    assert r.status == 200, r.body
    assert r.headers["content-type"] == "application/json"
    preds = r.json()["predictions"]
    assert len(preds) == 2 and all(set(p) == {"b64"} for p in preds)
    out_a = decode_png(base64.b64decode(preds[0]["b64"]))
    assert out_a.shape == (100, 150, 3)
    assert decode_png(base64.b64decode(preds[1]["b64"])).shape == (64, 64, 3)
    assert _close(out_a, _generate(real_export, a, tmp_path))
    # which model answered, in every predict response
    assert r.headers["x-model-commit"] == INFO["commit"]
    assert r.headers["x-model-version"] == "1" and r.headers["x-model-name"] == "pix2pix"


def test_predict_columnar_and_named_forms(served):
    png = png_bytes(image(80, 80, seed=3))
    url = served.url + "v1/models/pix2pix:predict"
    forms = [
        ({"inputs": [b64(png)]}, lambda j: j["outputs"][0]),
        ({"inputs": b64(png)}, lambda j: j["outputs"]),  # one value in, one value out
        ({"inputs": {"image": [b64(png)]}}, lambda j: j["outputs"][0]),
        ({"signature_name": "translate_png", "instances": [{"image": b64(png)}]},
         lambda j: j["predictions"][0]),
        ({"instances": [b64(png)]}, lambda j: j["predictions"][0]),
    ]
    outs = []
    for body, pick in forms:
        r = post_json(url, body)
        assert r.status == 200, (body.keys(), r.body)
        outs.append(decode_png(base64.b64decode(pick(r.json())["b64"])))
    assert all(o.shape == (80, 80, 3) for o in outs)
    assert all(_close(o, outs[0]) for o in outs)


def test_predict_uint8_signature_matches_the_model(served, real_export):
    x = image(128, 128, seed=4)
    expected = load_model(model=real_export)(x[None])[0]
    url = served.url + "v1/models/pix2pix:predict"
    row = post_json(url, {"signature_name": "serving_default", "instances": [x.tolist()]})
    assert row.status == 200, row.body
    assert _close(np.array(row.json()["predictions"][0]), expected)
    col = post_json(url, {"inputs": {"images": [x.tolist(), x.tolist()]}})
    assert col.status == 200, col.body
    out = np.array(col.json()["outputs"])
    assert out.shape == (2, 128, 128, 3) and _close(out[1], expected)


def test_model_status_and_metadata_as_tf_serving_writes_them(served):
    status = request(served.url + "v1/models/pix2pix")
    assert status.status == 200
    assert status.json() == {"model_version_status": [
        {"version": "1", "state": "AVAILABLE",
         "status": {"error_code": "OK", "error_message": ""}}]}
    assert request(served.url + "v1/models/pix2pix/versions/1").json() == status.json()
    missing = request(served.url + "v1/models/pix2pix/versions/7")
    assert (missing.status, missing.json()) == (
        404, {"error": "Could not find version 7 of model pix2pix"})

    meta = request(served.url + "v1/models/pix2pix/metadata")
    assert meta.status == 200
    body = meta.json()
    assert body["model_spec"] == {"name": "pix2pix", "signature_name": "", "version": "1"}
    sigs = body["metadata"]["signature_def"]["signature_def"]
    images = sigs["serving_default"]["inputs"]["images"]
    assert images["dtype"] == "DT_UINT8"
    assert [d["size"] for d in images["tensor_shape"]["dim"]] == ["-1", "128", "128", "3"]
    assert sigs["translate_png"]["inputs"]["image"]["dtype"] == "DT_STRING"
    assert sigs["translate_png"]["method_name"] == "tensorflow/serving/predict"
    assert request(served.url + "v1/models/pix2pix/versions/1/metadata").json() == body

    unknown = post_json(served.url + "v1/models/cats:predict", {"instances": []})
    assert (unknown.status, unknown.json()) == (
        404, {"error": "Servable not found for request: Latest(cats)"})
    assert request(served.url + "v1/models/cats").status == 404


def test_predict_on_a_version_path(served):
    body = {"instances": [b64(png_bytes(image(64, 64)))]}
    assert post_json(served.url + "v1/models/pix2pix/versions/1:predict", body).status == 200
    r = post_json(served.url + "v1/models/pix2pix/versions/5:predict", body)
    assert (r.status, r.json()) == (
        404, {"error": "Servable not found for request: Specific(pix2pix, 5)"})
    r = post_json(served.url + "V1/MODELS/pix2pix:PREDICT", body)  # case-insensitive, as TF Serving
    assert r.status == 200


def test_info_says_which_model_answers(served):
    info = request(served.url + "v1/models/pix2pix/info").json()
    assert info["commit"] == INFO["commit"] and info["repo"] == "model"
    assert info["metrics"] == INFO["metrics"] and info["provenance"] == INFO["provenance"]
    assert info["version"] == 1 and info["size"] == 128
    assert info["options"]["model"]["generator"] == "unet_128"  # from the export's options.json
    assert info["signatures"] == ["serving_default", "translate_png"]
    assert info["serving"]["max_batch_size"] == GENERATE_BATCH_SIZE


def test_info_without_model_info_says_unknown(start_server, fake_exports):
    server = start_server(fake_exports["identity"])
    info = request(server.url + "v1/models/pix2pix/info").json()
    assert (info["commit"], info["repo"], info["metrics"], info["provenance"]) == ("unknown",) * 4
    r = request(server.url + "predict", "POST", png_bytes(image(64, 64)))
    assert r.headers["x-model-commit"] == "unknown"


def test_model_commit_names_the_model_when_the_info_does_not(start_server, fake_exports,
                                                             info_file, tmp_path):
    # what a Pachyderm service gets as $model_COMMIT
    server = start_server(fake_exports["identity"], model_commit="c0ffee")
    r = request(server.url + "predict", "POST", png_bytes(image(64, 64)))
    assert r.headers["x-model-commit"] == "c0ffee"
    no_commit = tmp_path / "info.json"
    no_commit.write_text('{"repo": "model", "metrics": {"l1": 0.3}}')
    server = start_server(fake_exports["identity"], model_commit="c0ffee", model_info=no_commit)
    info = request(server.url + "v1/models/pix2pix/info").json()
    assert (info["commit"], info["metrics"]) == ("c0ffee", {"l1": 0.3})
    server = start_server(fake_exports["identity"], model_commit="c0ffee", model_info=info_file)
    assert request(server.url + "healthz").json()["commit"] == INFO["commit"]  # the file wins


def test_plain_post_of_image_bytes_answers_png(served):
    pixels = image(90, 120, seed=5)
    for path, data, ctype in [("predict", png_bytes(pixels), "image/png"),
                              ("", png_bytes(pixels, "JPEG"), "image/jpeg"),
                              ("predict", png_bytes(pixels, "BMP"), "application/octet-stream")]:
        r = request(served.url + path, "POST", data, {"Content-Type": ctype})
        assert r.status == 200, (path, r.body)
        assert r.headers["content-type"] == "image/png"
        assert decode_png(r.body).shape == (90, 120, 3)
        assert r.headers["x-model-commit"] == INFO["commit"]


def test_plain_post_accepts_a_multipart_form(served):
    boundary = "pix2pixboundary"
    body = (f"--{boundary}\r\n"
            'Content-Disposition: form-data; name="image"; filename="a.png"\r\n'
            "Content-Type: image/png\r\n\r\n").encode() + png_bytes(image(40, 50)) + \
        f"\r\n--{boundary}--\r\n".encode()
    r = request(served.url + "predict", "POST", body,
                {"Content-Type": f"multipart/form-data; boundary={boundary}"})
    assert r.status == 200, r.body
    assert decode_png(r.body).shape == (40, 50, 3)


def test_page_is_self_contained(served):
    r = request(served.url)
    assert r.status == 200 and r.headers["content-type"].startswith("text/html")
    page = r.body.decode()
    assert "<canvas" in page and 'type="file"' in page
    # nothing from another host: no absolute URLs, no protocol-relative ones
    assert not re.findall(r"(?:https?:)?//[a-z0-9.-]+\.[a-z]{2,}", page, re.IGNORECASE)
    assert not re.findall(r"""<(?:script|link|img)[^>]+(?:src|href)=["'][^"'#]""", page)


def test_healthz_and_status_while_loading(start_server, fake_exports):
    gate_open = threading.Event()

    def slow_loader(model_dir):
        from pix2pix.serving import load_export
        assert gate_open.wait(60)
        return load_export(model_dir)

    server = start_server(fake_exports["identity"], load=False, loader=slow_loader)
    loading = threading.Thread(target=server.reload)
    loading.start()
    wait_for(lambda: request(server.url + "v1/models/pix2pix").json()["model_version_status"],
             what="the LOADING status")
    health = request(server.url + "healthz")
    assert (health.status, health.json()) == (503, {"status": "loading"})
    status = request(server.url + "v1/models/pix2pix").json()["model_version_status"]
    assert status[0]["state"] == "LOADING"
    busy = request(server.url + "predict", "POST", png_bytes(image(64, 64)))
    assert busy.status == 503 and "loading" in busy.json()["error"]
    gate_open.set()
    loading.join(60)
    health = request(server.url + "healthz")
    assert health.status == 200 and health.json()["version"] == 1


def test_a_model_failure_answers_500_in_one_line_and_serving_goes_on(start_server, fake_exports):
    calls = []

    def flaky(translate, batch):
        calls.append(len(batch))
        if len(calls) == 1:
            raise RuntimeError("device lost\nsecond line")
        return translate(batch)

    server = start_server(fake_exports["identity"], loader=wrap_loader(flaky))
    r = request(server.url + "predict", "POST", png_bytes(image(64, 64)))
    assert (r.status, r.json()) == (500, {"error": "internal error: RuntimeError: device lost"})
    assert request(server.url + "predict", "POST", png_bytes(image(64, 64))).status == 200


def test_serve_defaults_follow_generate():
    assert (GENERATE_BATCH_SIZE, GENERATE_OVERLAP) == (GenerateOptions.batch_size,
                                                       GenerateOptions.overlap)

