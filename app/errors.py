"""The application layer's own error: what a command was asked to work on does not fit."""

from __future__ import annotations


class UsageError(RuntimeError):
    """What a subcommand was asked to work on does not exist or does not fit (one line, exit 2)."""
