"""The U-Net's transposed convolution with an inference form built from ordinary convolutions
(:class:`UpConv`); pix2pix.model.networks builds the U-Net with it."""
from __future__ import annotations

import tensorflow as tf
from keras import layers


class UpConv(layers.Conv2DTranspose):
    """The U-Net's 4x4 stride-2 "same" transposed convolution, with an inference form
    (``subpixel``) built from ordinary convolutions.

    Output pixel (2m + a, 2n + b) of the transposed convolution sums only 2x2 input pixels:
    rows m-1, m with kernel rows 3, 1 when a = 0; rows m, m+1 with kernel rows 2, 0 when a = 1
    (columns likewise). So each of the four output phases is a 2x2 convolution of the input
    (padded by one pixel on the side it reaches past), and depth_to_space interleaves them:
    the same sums, in oneDNN's forward convolution, which caches constant weights, instead of
    its backward-data kernel. The thresholds come from a per-layer timing made while writing
    this (batch 1 and 4, frozen weights, a 2-core Xeon with AMX; not part of bench/): the
    phases were faster up to 32x32 inputs, where the backward-data kernel is slow on small
    maps, and slower at 64x64, so larger inputs keep the plain op; an output of under 8
    channels (the RGB layer) ran best as ONE 3x3 convolution to 4 x channels (2.25x the
    multiply-adds, but 12 outputs per pixel vectorise where 3 do not). The export's overall
    rate is in docs/bench.md. Same variables as Conv2DTranspose; training always uses the
    plain op and its gradients.
    """

    _TAPS = ((3, 1), (2, 0))  # kernel rows (or columns) of phase 0's two taps, of phase 1's
    _PHASES_UP_TO = 32  # input side up to which the phase convolutions are faster
    _MERGED_BELOW = 8  # output channels under which one merged 3x3 convolution is faster

    def __init__(self, *args, subpixel: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        self.subpixel = subpixel

    def call(self, inputs, training=False):
        side = inputs.shape[1]
        if training or not self.subpixel or (side is None or side > self._PHASES_UP_TO
                                              and self.filters >= self._MERGED_BELOW):
            return super().call(inputs)
        kernel = tf.cast(self.kernel, inputs.dtype)  # (4, 4, out, in)
        if self.filters < self._MERGED_BELOW:
            y = tf.nn.conv2d(inputs, self._merged(kernel), 1, "SAME")
        else:
            phases = []
            for a in (0, 1):
                for b in (0, 1):
                    k = tf.stack([tf.stack([kernel[r, c] for c in self._TAPS[b]])
                                  for r in self._TAPS[a]])  # (2, 2, out, in)
                    phases.append(tf.nn.conv2d(inputs, tf.transpose(k, [0, 1, 3, 2]), 1,
                                               [[0, 0], [1 - a, a], [1 - b, b], [0, 0]]))
            y = tf.concat(phases, axis=-1)
        y = tf.nn.depth_to_space(y, 2)  # channel block 2a + b -> pixel (2m + a, 2n + b)
        if self.use_bias:
            y = tf.nn.bias_add(y, tf.cast(self.bias, y.dtype))
        return self.activation(y) if self.activation is not None else y

    def _merged(self, kernel):
        """The four phases as one 3x3 kernel (3, 3, in, 4 x out); unused taps are zero.

        Input row offset -1, 0, +1 is 3x3 row 0, 1, 2: phase 0 takes kernel rows 3, 1 at rows
        0, 1; phase 1 kernel rows 2, 0 at rows 1, 2."""
        zero = tf.zeros_like(kernel[0, 0])
        rows = ({0: 3, 1: 1}, {1: 2, 2: 0})
        blocks = []
        for a in (0, 1):
            for b in (0, 1):
                blocks.append(tf.stack([tf.stack([
                    kernel[rows[a][r], rows[b][c]] if r in rows[a] and c in rows[b] else zero
                    for c in range(3)]) for r in range(3)]))  # (3, 3, out, in)
        merged = tf.concat(blocks, axis=2)  # (3, 3, 4 x out, in), block 2a + b
        return tf.transpose(merged, [0, 1, 3, 2])

    def get_config(self):
        return {**super().get_config(), "subpixel": self.subpixel}
