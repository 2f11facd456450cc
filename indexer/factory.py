"""Build the configured Index backend from Settings (one setting switches it)."""

from __future__ import annotations

from eyepic.settings import Settings
from indexer.base import Index


def open_index(settings: Settings) -> Index:
    if settings.index == "embedded":
        from indexer.embedded import EmbeddedIndex

        return EmbeddedIndex(settings.index_dir / f"{settings.index_name}.sqlite")
    from indexer.elasticsearch import ElasticsearchIndex  # noqa: PLC0415

    return ElasticsearchIndex.from_settings(settings)
