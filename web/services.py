"""What the request handlers need, held on ``app.extensions["eyepic"]``."""

from __future__ import annotations

import dataclasses

from flask import current_app

from eyepic.settings import Settings
from indexer.base import Index
from services.recommend import RecommendService
from services.search import AnalyzerLike, SearchService
from taste.events import EventStore


@dataclasses.dataclass
class Services:
    settings: Settings
    analyzer: AnalyzerLike
    index: Index  # replaced by its timed wrapper when metrics are installed
    events: EventStore  # shoppers' events (likes, dislikes...) the taste model learns from
    _recommend: RecommendService | None = dataclasses.field(default=None, init=False, repr=False)

    @property
    def search(self) -> SearchService:
        """The search use cases over the current analyzer and (timed) index."""
        return SearchService(self.settings, self.analyzer, self.index)

    @property
    def recommend(self) -> RecommendService:
        """Recommendations and personalization; one per app, since it caches taste profiles."""
        if self._recommend is None:
            self._recommend = RecommendService(self.settings, self.index, self.events)
        return self._recommend


def services() -> Services:
    """The current app's services (inside a request or app context)."""
    return current_app.extensions["eyepic"]
