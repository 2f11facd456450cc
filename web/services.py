"""What the request handlers need, held on ``app.extensions["eyepic"]``."""

from __future__ import annotations

import dataclasses
from typing import Protocol

from flask import current_app

from eyepic.schema import Box
from eyepic.settings import Settings
from indexer.base import Index
from serving.analyzer import Analysis


class AnalyzerLike(Protocol):
    """The part of ``serving.analyzer.Analyzer`` the web tier uses."""

    @property
    def model_version(self) -> str: ...

    def ready(self) -> bool: ...

    def analyze(self, data: bytes, box: Box | None = None) -> Analysis: ...


@dataclasses.dataclass
class Services:
    settings: Settings
    analyzer: AnalyzerLike
    index: Index


def services() -> Services:
    """The current app's services (inside a request or app context)."""
    return current_app.extensions["eyepic"]
