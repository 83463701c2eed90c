"""The pix2pix model: networks, losses, the train step and checkpoint restore.

``restore_generator`` is the entry point other parts use (``pix2pix generate --checkpoint``).
"""
from pix2pix.model.trainer import restore_generator

__all__ = ["restore_generator"]
