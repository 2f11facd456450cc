"""Build the configured events store from Settings (``events_store``, or the one ``index`` implies)."""

from __future__ import annotations

from eyepic.settings import Settings
from taste.events import EventStore, MemoryEventStore


def open_event_store(settings: Settings) -> EventStore:
    backend = settings.events_backend
    if backend == "sqlite":
        from taste.event_sqlite import SQLiteEventStore

        return SQLiteEventStore(settings.events_path)
    if backend == "elasticsearch":
        from taste.event_elasticsearch import ElasticsearchEventStore

        return ElasticsearchEventStore.from_settings(settings)
    return MemoryEventStore()
