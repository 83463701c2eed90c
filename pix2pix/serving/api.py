"""TensorFlow Serving's REST JSON, parsed and written (tensorflow/serving g3doc/api_rest.md).

Predict request: ``{"signature_name"?: str, "instances": [...]}`` (row format) or
``{"signature_name"?: str, "inputs": ...}`` (columnar), never both. Two signatures:

=================  ==========================================  ================================
signature          one instance                                one prediction
=================  ==========================================  ================================
translate_png      ``{"b64": "<image bytes>"}`` or             ``{"b64": "<PNG bytes>"}``
                   ``{"image": {"b64": "..."}}``
serving_default    uint8 ``[S][S][3]`` nested list or          uint8 ``[S][S][3]`` nested list
                   ``{"images": [[...]]}``
=================  ==========================================  ================================

Without ``signature_name`` the values choose: b64 objects go to translate_png (the PNG-bytes
path), nested lists to serving_default. The response has ``predictions`` (row) or ``outputs``
(columnar); the single output tensor's name is left out, as TF Serving does.
"""
from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pix2pix.serving.errors import BadRequest
from pix2pix.serving.model import PNG_SIGNATURE, UINT8_SIGNATURE

_KEYS = ("signature_name", "instances", "inputs")


@dataclass
class Predict:
    """A parsed predict request: ``items`` are image bytes (PNG path) or uint8 [S, S, 3]."""

    signature: str
    columnar: bool
    scalar: bool  # columnar with one value, not a list: the output is one value too
    items: list[Any] = field(default_factory=list)
    names: list[str] = field(default_factory=list)  # where each item came from, for errors


def _input_name(sigs: dict[str, Any], signature: str, default: str) -> str:
    inputs = sigs.get(signature, {}).get("inputs", {})
    return next(iter(inputs)) if len(inputs) == 1 else default


def parse_predict(body: bytes, *, sigs: dict[str, Any], size: int) -> Predict:
    """Parse a predict body; BadRequest with one line naming the key at fault."""
    try:
        req = json.loads(body)
    except (ValueError, UnicodeDecodeError) as e:
        raise BadRequest(f"request body: not valid JSON ({e})") from None
    if not isinstance(req, dict):
        raise BadRequest('request body: a JSON object with "instances" or "inputs" expected, '
                         f"not {type(req).__name__}")
    unknown = sorted(set(req) - set(_KEYS))
    if unknown:
        raise BadRequest(f'request body: unknown key "{unknown[0]}"; a predict request has '
                         '"signature_name" and one of "instances" or "inputs"')
    if ("instances" in req) == ("inputs" in req):
        raise BadRequest('request body: give exactly one of "instances" (row format) or '
                         '"inputs" (columnar format)' if "instances" in req else
                         'request body: missing "instances" or "inputs" key')
    signature = req.get("signature_name")
    if signature is not None and not isinstance(signature, str):
        raise BadRequest("signature_name: a string expected")
    if signature and (signature.startswith("__") or signature not in sigs):
        known = ", ".join(s for s in sorted(sigs) if not s.startswith("__"))
        raise BadRequest(f'Serving signature name: "{signature}" not found in signature def '
                         f"(this model has: {known})")
    png_name = _input_name(sigs, PNG_SIGNATURE, "image")
    uint8_name = _input_name(sigs, UINT8_SIGNATURE, "images")

    columnar = "inputs" in req
    value = req["inputs" if columnar else "instances"]
    key = "inputs" if columnar else "instances"
    # Columnar: {"image": X} / {"images": X} name the input; X is one value or a list of them.
    if columnar and isinstance(value, dict) and len(value) == 1 and (
            png_name in value or uint8_name in value):
        key, value = f"inputs.{next(iter(value))}", next(iter(value.values()))
    if not signature:
        signature = PNG_SIGNATURE if _looks_b64(_first(value), png_name) else UINT8_SIGNATURE

    if signature == PNG_SIGNATURE:
        scalar = columnar and isinstance(value, dict)
        values = [value] if scalar else value
        if not isinstance(values, list) or not values:
            raise BadRequest(f"{key}: a non-empty list of {{\"b64\": ...}} images expected")
        names = [f"{key}[{i}]" for i in range(len(values))] if not scalar else [key]
        items = [_b64(v, n, png_name) for v, n in zip(values, names)]
        return Predict(signature, columnar, scalar, items, names)

    if columnar:
        arr = _uint8(value, key, ndim=4, size=size, name=uint8_name)
        return Predict(signature, True, False, list(arr), [f"{key}[{i}]" for i in range(len(arr))])
    if not isinstance(value, list) or not value:
        raise BadRequest(f"{key}: a non-empty list of uint8 [{size}, {size}, 3] images expected")
    names = [f"{key}[{i}]" for i in range(len(value))]
    items = [_uint8(v, n, ndim=3, size=size, name=uint8_name) for v, n in zip(value, names)]
    return Predict(signature, False, False, items, names)


def _first(value: Any) -> Any:
    return value[0] if isinstance(value, list) and value else value


def _looks_b64(value: Any, png_name: str) -> bool:
    return isinstance(value, dict) and ("b64" in value or png_name in value)


def _b64(value: Any, where: str, png_name: str) -> bytes:
    if isinstance(value, dict) and set(value) == {png_name}:
        value, where = value[png_name], f"{where}.{png_name}"
    if isinstance(value, str):
        raise BadRequest(f'{where}: image bytes must be base64 inside {{"b64": "..."}}, '
                         "not a plain string")
    if isinstance(value, dict) and "b64" not in value:
        raise BadRequest(f"{where}: unknown input {sorted(value)}; give "
                         f'{{"b64": "..."}} or {{"{png_name}": {{"b64": "..."}}}}')
    if not isinstance(value, dict) or set(value) != {"b64"}:
        got = sorted(value) if isinstance(value, dict) else type(value).__name__
        raise BadRequest(f'{where}: {{"b64": "<base64 image bytes>"}} expected, got {got}')
    if not isinstance(value["b64"], str):
        raise BadRequest(f"{where}.b64: a base64 string expected")
    try:
        return base64.b64decode(value["b64"], validate=True)
    except (binascii.Error, ValueError) as e:
        raise BadRequest(f"{where}.b64: not valid base64 ({e})") from None


def _uint8(value: Any, where: str, *, ndim: int, size: int, name: str) -> np.ndarray:
    if isinstance(value, dict):
        if set(value) != {name}:
            raise BadRequest(f'{where}: unknown input {sorted(value)}; the signature\'s input '
                             f'is "{name}"')
        value, where = value[name], f"{where}.{name}"
    want = ("N, " if ndim == 4 else "") + f"{size}, {size}, 3"
    try:
        arr = np.asarray(value)
    except ValueError:  # ragged nested lists
        raise BadRequest(f"{where}: a uint8 [{want}] array expected (ragged lists)") from None
    if arr.ndim != ndim or arr.shape[-3:] != (size, size, 3) or (ndim == 4 and not len(arr)):
        raise BadRequest(f"{where}: a uint8 [{want}] array expected, got shape "
                         f"{list(arr.shape)}")
    if arr.dtype.kind not in "iu" or arr.min() < 0 or arr.max() > 255:
        raise BadRequest(f"{where}: values must be integers 0..255 (uint8)")
    return arr.astype(np.uint8)


def predict_response(req: Predict, outputs: list[Any]) -> dict[str, Any]:
    """``outputs`` are PNG bytes (translate_png) or uint8 arrays, one per item."""
    if req.signature == PNG_SIGNATURE:
        values: list[Any] = [{"b64": base64.b64encode(o).decode("ascii")} for o in outputs]
    else:
        values = [np.asarray(o).tolist() for o in outputs]
    if not req.columnar:
        return {"predictions": values}
    return {"outputs": values[0] if req.scalar else values}


def version_status(version: int, state: str, error: str = "") -> dict[str, Any]:
    """One entry of GetModelStatusResponse.model_version_status, as TF Serving prints it."""
    return {"version": str(version), "state": state,
            "status": {"error_code": "UNKNOWN" if error else "OK", "error_message": error}}


def metadata(name: str, version: int, sigs: dict[str, Any]) -> dict[str, Any]:
    """GetModelMetadataResponse as TF Serving's REST API writes it."""
    return {"model_spec": {"name": name, "signature_name": "", "version": str(version)},
            "metadata": {"signature_def": {"signature_def": sigs}}}
