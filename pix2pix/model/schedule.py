"""The plateau schedule: the one learning-rate policy with state, kept in tf.Variables so the
checkpoint saves it and a resumed run goes on from the same best value and patience count.

Semantics of PyTorch's ReduceLROnPlateau(mode="min", threshold_mode="rel", cooldown=0,
min_lr=0, eps=1e-8) with junyanz's factor, threshold and patience.
"""
from __future__ import annotations

import tensorflow as tf

# junyanz's lr_scheduler.ReduceLROnPlateau(optimizer, mode='min', factor=0.2, threshold=0.01,
# patience=5).
FACTOR = 0.2
THRESHOLD = 0.01
PATIENCE = 5
EPS = 1e-8  # PyTorch skips a reduction smaller than this


class Plateau(tf.Module):
    """``scale`` x the base rate; :meth:`observe` one validation L1 at a time."""

    def __init__(self, base: float):
        super().__init__(name="plateau")
        self.base = base
        self.scale = tf.Variable(1.0, dtype=tf.float64, trainable=False, name="scale")
        self.best = tf.Variable(float("inf"), dtype=tf.float64, trainable=False, name="best")
        self.num_bad = tf.Variable(0, dtype=tf.int64, trainable=False, name="num_bad")

    def rate(self) -> float:
        return self.base * float(self.scale.numpy())

    def observe(self, metric: float) -> bool:
        """Count ``metric``: better than best by THRESHOLD (relative) resets the count; more
        than PATIENCE in a row without that multiplies the rate by FACTOR. Returns whether it
        did."""
        if metric < float(self.best.numpy()) * (1.0 - THRESHOLD):
            self.best.assign(metric)
            self.num_bad.assign(0)
        else:
            self.num_bad.assign_add(1)
        if int(self.num_bad.numpy()) <= PATIENCE:
            return False
        self.num_bad.assign(0)
        old = self.rate()
        if old - old * FACTOR <= EPS:
            return False
        self.scale.assign(self.scale * FACTOR)
        return True
