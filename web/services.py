"""What the request handlers need, held on ``app.extensions["eyepic"]``."""

from __future__ import annotations

import dataclasses

from flask import current_app

from eyepic.settings import Settings
from indexer.base import Index
from services.access import AccessControl
from services.events import EventService
from services.search import AnalyzerLike, SearchService
from taste.events import EventStore


@dataclasses.dataclass
class Services:
    settings: Settings
    analyzer: AnalyzerLike
    index: Index  # replaced by its timed wrapper when metrics are installed
    events: EventStore  # shoppers' events (likes, dislikes...) the taste model learns from
    access: AccessControl  # who may write (API keys, session tokens) and how often

    @property
    def search(self) -> SearchService:
        """The search use cases over the current analyzer and (timed) index."""
        return SearchService(self.settings, self.analyzer, self.index)

    @property
    def users(self) -> EventService:
        """Recording and forgetting shoppers' events over the (timed) index and the events store."""
        return EventService(self.settings, self.index, self.events)


def services() -> Services:
    """The current app's services (inside a request or app context)."""
    return current_app.extensions["eyepic"]
