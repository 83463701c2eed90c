"""The server's options: one typed dataclass; each field's help is its ``pix2pix serve`` help."""
from __future__ import annotations

from dataclasses import dataclass, field

from pix2pix.errors import UsageError

# generate's defaults (GenerateOptions), repeated so that loading the CLI imports no numpy; a
# test keeps the two equal.
GENERATE_BATCH_SIZE = 4
GENERATE_OVERLAP = 32


def _f(default, help: str):
    return field(default=default, metadata={"help": help})


@dataclass(frozen=True)
class ServeOptions:
    """Batching, limits and overload behaviour (docs/serving.md)."""

    model_name: str = _f("pix2pix", "The model's name in the URLs: /v1/models/NAME:predict.")
    max_batch_size: int = _f(
        GENERATE_BATCH_SIZE,
        "Images or tiles per model call; concurrent requests share a call up to this many.")
    batch_timeout_ms: float = _f(
        5.0, "How long the model thread waits for a batch to fill before it runs a smaller one.")
    max_queue: int = _f(
        8, "Requests admitted at once (being decoded, queued or translated); one more answers "
           "503 at once instead of waiting.")
    max_body_mb: float = _f(32.0, "Largest request body in MiB; a larger one answers 413.")
    max_pixels: int = _f(
        4096 * 4096, "Most pixels decoded per request (all its images together); more "
                     "answers 413.")
    overlap: int = _f(GENERATE_OVERLAP,
                      "Tile overlap in pixels for images over twice the model size.")
    drain_timeout_s: float = _f(
        30.0, "On stop, how long requests in flight may take to finish.")

    def __post_init__(self) -> None:
        checks = {"max_batch_size": self.max_batch_size >= 1, "max_queue": self.max_queue >= 1,
                  "max_body_mb": self.max_body_mb > 0, "max_pixels": self.max_pixels >= 1,
                  "batch_timeout_ms": self.batch_timeout_ms >= 0,
                  "overlap": self.overlap >= 0, "drain_timeout_s": self.drain_timeout_s >= 0}
        bad = [name for name, ok in checks.items() if not ok]
        if bad:
            raise UsageError(f"--{bad[0]} {getattr(self, bad[0])}: must be "
                             + (">= 0" if bad[0] in ("batch_timeout_ms", "overlap",
                                                     "drain_timeout_s") else "positive"))
        if not self.model_name or any(c in self.model_name for c in "/: ?#%"):
            raise UsageError(f"--model_name {self.model_name!r}: a non-empty name without "
                             "'/', ':', '?', '#', '%' or spaces (it goes into URLs)")

    @property
    def max_body_bytes(self) -> int:
        return int(self.max_body_mb * 1024 * 1024)
