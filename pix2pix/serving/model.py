"""What the server serves: an export loaded with TensorFlow alone, plus who made it.

A :class:`Servable` is one loaded version: the export's ``serving_default`` function (uint8
``[N, S, S, 3]`` in and out, called through :func:`pix2pix.generate.load_model`), the export's
``options.json``, its signature defs as TF Serving's metadata API prints them, and the optional
model-info JSON (commit, repo, provenance, metrics) that says which model commit this is.
"""
from __future__ import annotations

import datetime as dt
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from pix2pix.errors import ModelError, UsageError

MODEL_INFO_ENV = "PIX2PIX_MODEL_INFO"
UNKNOWN = "unknown"
PNG_SIGNATURE = "translate_png"  # pix2pix.export: encoded image bytes -> PNG bytes
UINT8_SIGNATURE = "serving_default"  # uint8 [N, S, S, 3] -> uint8 [N, S, S, 3]


@dataclass
class LoadedModel:
    """An export in memory: ``translate`` maps uint8 [N, S, S, 3] to uint8 [N, S, S, 3]."""

    translate: Callable[[np.ndarray], np.ndarray]
    size: int
    model_dir: Path
    options: dict[str, Any] = field(default_factory=dict)  # the export's options.json
    signature_defs: dict[str, Any] = field(default_factory=dict)  # TF Serving metadata JSON


def check_export(model_dir: Path) -> Path:
    """``model_dir`` resolved (a symlink is followed once, so a swap mid-load cannot mix two
    exports); ModelError when it is not an export folder."""
    model_dir = Path(model_dir)
    if not model_dir.exists():
        raise ModelError(f"{model_dir}: model folder not found; give a `pix2pix export` folder")
    if not model_dir.is_dir():
        raise ModelError(f"{model_dir}: not a folder; give a `pix2pix export` folder")
    resolved = model_dir.resolve()
    if not (resolved / "saved_model.pb").is_file():
        raise ModelError(f"{model_dir}: no saved_model.pb; is it a `pix2pix export` folder?")
    return resolved


def signature_defs(model_dir: Path) -> dict[str, Any]:
    """The SavedModel's signature defs in the JSON of TF Serving's GetModelMetadata
    (``preserving_proto_field_name``, defaults printed)."""
    from google.protobuf import json_format
    from tensorflow.core.protobuf import saved_model_pb2

    saved = saved_model_pb2.SavedModel()
    try:
        saved.ParseFromString((model_dir / "saved_model.pb").read_bytes())
    except Exception as e:  # protobuf's DecodeError, or a read error
        raise ModelError(f"{model_dir}/saved_model.pb: not a SavedModel ({e})") from None
    if not saved.meta_graphs:
        raise ModelError(f"{model_dir}/saved_model.pb: holds no meta graph")
    return {name: json_format.MessageToDict(sig, preserving_proto_field_name=True,
                                            including_default_value_fields=True)
            for name, sig in saved.meta_graphs[0].signature_def.items()}


def load_export(model_dir: Path) -> LoadedModel:
    """Load an export folder for serving (TensorFlow only, no training code)."""
    from pix2pix.export import SIGNATURES
    from pix2pix.generate import load_model

    model_dir = check_export(model_dir)
    translator = load_model(model=model_dir)
    # Serving computes in float32 (the translator above): the export's 16-bit signatures are
    # not offered, so a request naming one is refused rather than answered in float32.
    reduced = {name for p, (name, _) in SIGNATURES.items() if p != "float32"}
    sigs = {k: v for k, v in signature_defs(model_dir).items() if k not in reduced}
    options: dict[str, Any] = {}
    if (model_dir / "options.json").is_file():
        try:
            options = json.loads((model_dir / "options.json").read_text())
        except (OSError, ValueError) as e:
            raise ModelError(f"{model_dir}/options.json: unreadable ({e})") from None
    return LoadedModel(translate=translator, size=translator.size, model_dir=model_dir,
                       options=options if isinstance(options, dict) else {},
                       signature_defs=sigs)


def read_model_info(path: Path | None) -> dict[str, Any]:
    """The model-info JSON object (``{}`` without a file); UsageError naming the file when it
    is missing, unreadable or not an object."""
    if path is None:
        return {}
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise UsageError(f"{path}: model info file not found (--model_info / "
                         f"{MODEL_INFO_ENV})") from None
    except (OSError, ValueError) as e:
        raise UsageError(f"{path}: model info is not readable JSON ({e})") from None
    if not isinstance(data, dict):
        raise UsageError(f"{path}: model info must be a JSON object such as "
                         '{"commit": "...", "repo": "model", "metrics": {...}}')
    return data


def model_info_path(given: Path | None) -> Path | None:
    """``--model_info``, else env PIX2PIX_MODEL_INFO, else None."""
    if given is not None:
        return Path(given)
    env = os.environ.get(MODEL_INFO_ENV)
    return Path(env) if env else None


@dataclass
class Servable:
    """One loaded version; ``refs`` counts the requests using it (see the server's swap)."""

    model: LoadedModel
    info: dict[str, Any]
    version: int
    loaded_at: str = field(default_factory=lambda: dt.datetime.now(dt.timezone.utc)
                           .isoformat(timespec="seconds"))

    @property
    def commit(self) -> str:
        return str(self.info.get("commit") or UNKNOWN)

    def identity(self, name: str) -> dict[str, str]:
        """The headers every predict response carries, so a client knows which model answered."""
        return {"X-Model-Name": name, "X-Model-Version": str(self.version),
                "X-Model-Commit": _header_safe(self.commit)}

    def describe(self, name: str) -> dict[str, Any]:
        """Everything about this version that a page or script shows: identity, provenance,
        metrics, and the training options of the export."""
        info = self.info
        return {
            "name": name,
            "version": self.version,
            "commit": self.commit,
            "repo": str(info.get("repo") or UNKNOWN),
            "branch": str(info.get("branch") or UNKNOWN),
            "provenance": info.get("provenance", UNKNOWN),
            "metrics": info.get("metrics", UNKNOWN),
            "model_info": info,
            "options": self.model.options or UNKNOWN,
            "size": self.model.size,
            "model_dir": str(self.model.model_dir),
            "loaded_at": self.loaded_at,
            "signatures": sorted(s for s in self.model.signature_defs if not s.startswith("__")),
        }


def _header_safe(text: str) -> str:
    """HTTP header values are Latin-1 and one line."""
    return " ".join(text.split()).encode("latin-1", "replace").decode("latin-1")[:200]
