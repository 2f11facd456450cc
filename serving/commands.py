"""CLI subcommands of the serving tier (gRPC API, production web server)."""

from __future__ import annotations


def add_commands(sub) -> None:
    """Register this package's ``eyepic`` subcommands on ``sub``."""
