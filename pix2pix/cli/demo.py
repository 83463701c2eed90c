"""CLI commands (placeholder until the module's owner fills it in)."""
from pix2pix.cli import cli  # noqa: F401
