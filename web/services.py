"""What the request handlers need, held on ``app.extensions["eyepic"]``."""

from __future__ import annotations

import dataclasses

from flask import current_app

from eyepic.settings import Settings
from indexer.base import Index
from services.search import AnalyzerLike, SearchService
from taste.events import EventStore


@dataclasses.dataclass
class Services:
    settings: Settings
    analyzer: AnalyzerLike
    index: Index  # replaced by its timed wrapper when metrics are installed
    events: EventStore  # shoppers' events (likes, dislikes...) the taste model learns from

    @property
    def search(self) -> SearchService:
        """The search use cases over the current analyzer and (timed) index."""
        return SearchService(self.settings, self.analyzer, self.index)


def services() -> Services:
    """The current app's services (inside a request or app context)."""
    return current_app.extensions["eyepic"]
