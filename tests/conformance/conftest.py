"""The conformance folder's summary printer (see conformance_summary.py)."""
from conformance_summary import pytest_terminal_summary  # noqa: F401  (a hook, found by name)
