"""What ``eyepic demo`` prepares besides the models: its catalog and a consistent index."""

from __future__ import annotations

from pathlib import Path

from eyepic.settings import Settings


def demo_catalog(settings: Settings) -> Path:
    """The catalog the demo indexes: ``EYEPIC_CATALOG_DIR``, else a manifest of the
    train photos of clothing-small and clothing-extra (validation photos stay out)."""
    if settings.catalog_dir:
        return settings.catalog_dir
    from indexer.catalog import write_product_manifest

    sets = [(name, settings.data_dir / name) for name in ("clothing-small", "clothing-extra")
            if (settings.data_dir / name).is_dir()]
    return write_product_manifest(sets, settings.demo_catalog)


def drop_stale_index(settings: Settings, model_version: str) -> None:
    """Empty the index when its items were embedded by another classifier than
    ``model_version`` (a release installed over an older demo): mixed embeddings rank nonsense."""
    from indexer.factory import open_index

    index = open_index(settings)
    try:
        ids = index.ids()
        sample = [index.get(i) for i in sorted(ids)[:5]]
        if any(item is not None and item.model_version != model_version for item in sample):
            print(f"the index was built with another classifier; re-indexing for {model_version}", flush=True)
            index.delete(ids)
    finally:
        index.close()
