"""The VGG19 perceptual loss (Johnson et al. 2016; pix2pixHD's VGGLoss): L1 between the
activations of a frozen ImageNet VGG19 on the generated and the target image.

The weights cannot be downloaded at run time here, so they come from a file the user has:
Keras' own ``vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5`` (what
``keras.applications.VGG19(weights="imagenet", include_top=False)`` fetches into
``~/.keras/models/``), or any ``.weights.h5`` saved from such a model. docs/model.md says where.
"""
from __future__ import annotations

from pathlib import Path

from pix2pix.errors import UsageError

WEIGHTS_FILE = "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5"
# pix2pixHD's VGGLoss: relu1_1, relu2_1, relu3_1, relu4_1, relu5_1, weighted 1/32 ... 1.
LAYERS = ("block1_conv1", "block2_conv1", "block3_conv1", "block4_conv1", "block5_conv1")
LAYER_WEIGHTS = (1 / 32, 1 / 16, 1 / 8, 1 / 4, 1.0)
# VGG19's ImageNet input: BGR on 0..255 less these channel means (Keras' "caffe" mode).
BGR_MEAN = (103.939, 116.779, 123.68)
_BLOCKS = ((64, 2), (128, 2), (256, 4), (512, 4), (512, 4))  # (filters, convs) per block


def vgg19(dtype: str = "float32"):
    """VGG19 without its classifier (a keras.Model), with Keras' layer names and order (so
    Keras' weight files load into it), in the given dtype policy."""
    import keras
    from keras import layers
    x = inputs = keras.Input((None, None, 3), name="vgg_input")
    for b, (filters, convs) in enumerate(_BLOCKS, 1):
        for c in range(1, convs + 1):
            x = layers.Conv2D(filters, 3, padding="same", activation="relu",
                              name=f"block{b}_conv{c}", dtype=dtype)(x)
        x = layers.MaxPooling2D(2, name=f"block{b}_pool", dtype=dtype)(x)
    return keras.Model(inputs, x, name="vgg19")


def weights_path(path: str | Path | None) -> Path:
    """``path`` as a Path, once it names an existing .h5 file.

    Raises:
        UsageError: no path, no such file, or not a .h5 file.
    """
    if not path:
        raise UsageError(f"--perceptual_loss vgg19 needs --vgg_weights FILE (Keras' "
                         f"{WEIGHTS_FILE}; see docs/model.md)")
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"--vgg_weights {path}: file not found (Keras' {WEIGHTS_FILE}; "
                         "docs/model.md says where to get it)")
    if path.suffix != ".h5":
        raise UsageError(f"--vgg_weights {path}: not a Keras .h5 weights file")
    return path


def load_vgg19(path: str | Path | None, dtype: str = "float32"):
    """:func:`vgg19` with the weights of ``path``, frozen.

    Raises:
        UsageError: no path, no such file, or a file that is not VGG19 weights.
    """
    path = weights_path(path)
    model = vgg19(dtype)
    try:
        model.load_weights(str(path))
    except Exception as e:  # noqa: BLE001  OSError, ValueError (layer count, shapes), KeyError
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise UsageError(f"--vgg_weights {path}: not VGG19 weights ({first[:200]})") from None
    model.trainable = False
    return model


class VGGLoss:
    """``loss(fake, target)``: sum over LAYERS of weight x mean |VGG(fake) - VGG(target)|,
    images in [-1, 1]; the target's side is constant."""

    def __init__(self, path: str | Path | None, *, dtype: str = "float32"):
        import keras
        vgg = load_vgg19(path, dtype)
        self.features = keras.Model(vgg.inputs, [vgg.get_layer(n).output for n in LAYERS],
                                    name="vgg19_features")

    @staticmethod
    def preprocess(images):
        """[-1, 1] RGB -> VGG's input: BGR on 0..255 less the ImageNet means."""
        import tensorflow as tf
        x = (images[..., ::-1] + 1.0) * 127.5
        return x - tf.constant(BGR_MEAN, x.dtype)

    def __call__(self, fake, target):
        import tensorflow as tf
        n = tf.shape(fake)[0]
        both = self.features(self.preprocess(tf.concat([fake, target], 0)), training=False)
        return tf.add_n([w * tf.reduce_mean(tf.abs(tf.cast(f[:n], tf.float32)
                                                   - tf.stop_gradient(tf.cast(f[n:], tf.float32))))
                         for w, f in zip(LAYER_WEIGHTS, both)])
