"""What the request handlers need, held on ``app.extensions["eyepic"]``."""

from __future__ import annotations

import dataclasses
import threading

from flask import current_app

from eyepic.settings import Settings
from indexer.base import Index
from outfits.model import CompatibilityModel
from services.access import AccessControl
from services.events import EventService
from services.outfits import OutfitService, Reranker, load_compatibility
from services.search import AnalyzerLike, SearchService
from taste.events import EventStore


@dataclasses.dataclass
class Services:
    settings: Settings
    analyzer: AnalyzerLike
    index: Index  # replaced by its timed wrapper when metrics are installed
    events: EventStore  # shoppers' events (likes, dislikes...) the taste model learns from
    access: AccessControl  # who may write (API keys, session tokens) and how often
    compatibility: CompatibilityModel | None = None  # complete-the-look's model; loaded on first use if None
    reranker: Reranker | None = None  # TODO(taste): the taste profile's re-ranker for user=<uid>
    _lock: threading.Lock = dataclasses.field(default_factory=threading.Lock, repr=False)

    @property
    def search(self) -> SearchService:
        """The search use cases over the current analyzer and (timed) index."""
        return SearchService(self.settings, self.analyzer, self.index)

    @property
    def outfits(self) -> OutfitService:
        """Complete-the-look over the same analyzer and index, with the compatibility model."""
        return OutfitService(self.settings, self.analyzer, self.index, self.compatibility_model, self.reranker)

    def compatibility_model(self) -> CompatibilityModel:
        """The compatibility model, read once from ``settings.outfits_model_path``; a missing or
        unreadable file is ModelUnavailable (503), as for a missing classifier."""
        with self._lock:
            if self.compatibility is None:
                self.compatibility = load_compatibility(self.settings)
            return self.compatibility

    @property
    def users(self) -> EventService:
        """Recording and forgetting shoppers' events over the (timed) index and the events store."""
        return EventService(self.settings, self.index, self.events)


def services() -> Services:
    """The current app's services (inside a request or app context)."""
    return current_app.extensions["eyepic"]

