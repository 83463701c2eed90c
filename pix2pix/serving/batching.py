"""A small batching queue in front of the model: tiles from concurrent requests share one call.

::

    request threads --run(tiles)--> deque of (tile, future) --one thread--> model(stack of <= B)
                                                                   |
    each request waits on its own futures <------ results ---------+

The model thread takes what is queued, waiting at most ``timeout_s`` for a batch to fill (the
role of TF Serving's ``batch_timeout_micros``); a lone request therefore pays at most that much
latency. The queue holds only tiles of admitted requests (the server admits a bounded number),
so it is bounded too.
"""
from __future__ import annotations

import collections
import threading
import time
from concurrent.futures import Future
from typing import Callable

import numpy as np


class Batcher:
    """Runs ``translate`` (uint8 [N, S, S, 3] -> same) on batches of at most ``max_batch``."""

    def __init__(self, translate: Callable[[np.ndarray], np.ndarray], *, max_batch: int,
                 timeout_s: float, on_batch: Callable[[int], None] | None = None,
                 name: str = "batcher"):
        self._translate, self.max_batch, self.timeout_s = translate, max_batch, timeout_s
        self._on_batch = on_batch
        self._queue: collections.deque[tuple[np.ndarray, Future]] = collections.deque()
        self._cv = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    def run(self, tiles: np.ndarray) -> np.ndarray:
        """Translate ``tiles`` [n, S, S, 3], batched with whatever else is queued; blocks."""
        futures = [Future() for _ in range(len(tiles))]
        with self._cv:
            if self._closed:
                raise RuntimeError("batcher closed")
            self._queue.extend(zip(tiles, futures))
            self._cv.notify()
        return np.stack([f.result() for f in futures])

    def close(self) -> None:
        """Finish what is queued, then stop the model thread."""
        with self._cv:
            self._closed = True
            self._cv.notify()
        if threading.current_thread() is not self._thread:
            self._thread.join()
            self._translate = _closed  # drop the model, so its memory can go


    def _take(self) -> list[tuple[np.ndarray, Future]] | None:
        with self._cv:
            while not self._queue and not self._closed:
                self._cv.wait()
            if not self._queue:
                return None  # closed and drained
            deadline = time.monotonic() + self.timeout_s
            while len(self._queue) < self.max_batch and not self._closed:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cv.wait(left)
            return [self._queue.popleft() for _ in range(min(self.max_batch, len(self._queue)))]

    def _loop(self) -> None:
        while (batch := self._take()) is not None:
            try:
                out = np.asarray(self._translate(np.stack([t for t, _ in batch])))
                if out.shape[0] != len(batch):
                    raise RuntimeError(f"model returned {out.shape[0]} images for {len(batch)}")
            except BaseException as e:  # handed to every waiting request, never lost
                for _, f in batch:
                    f.set_exception(e)
                continue
            if self._on_batch is not None:
                self._on_batch(len(batch))
            for (_, f), y in zip(batch, out):
                f.set_result(y)


def _closed(images: np.ndarray) -> np.ndarray:
    raise RuntimeError("batcher closed")
