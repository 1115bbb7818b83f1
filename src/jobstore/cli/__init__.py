"""The ``jobstore`` command line; importing ``jobstore`` itself never imports click or rich."""

from .app import cli, main

__all__ = ["cli", "main"]
