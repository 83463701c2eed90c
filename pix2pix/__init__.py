"""pix2pix image-to-image translation (Isola et al., arXiv 1611.07004) on TensorFlow 2,
packaged as a Pachyderm data-versioned pipeline with an embedded single-machine engine."""

__version__ = "0.1.0"
