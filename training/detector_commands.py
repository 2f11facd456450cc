"""CLI subcommands for the garment detector (train, evaluate)."""

from __future__ import annotations


def add_commands(sub) -> None:
    """Register detector-only ``eyepic`` subcommands on ``sub`` (none yet)."""


def train_detector_command(settings, args) -> int:
    """``eyepic train detector``."""
    raise ValueError("the garment detector is not built yet (issue 3)")


def evaluate_detector_command(settings, args) -> int:
    """``eyepic evaluate detector``."""
    raise ValueError("the garment detector is not built yet (issue 3)")
