"""Test doubles shared by the API tests (web, gRPC, and both compared).

The one seam is the model: ``FakeModels`` stands in for the ModelClient so
API tests run in seconds and can make the "detector" find several garments;
``BrokenIndex`` is an index whose backend is down (or buggy). Everything
else in those tests is real: the Analyzer, an on-disk EmbeddedIndex of real
catalog photos (``make_items``).
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from eyepic import taxonomy
from eyepic.colors import COLOR_NAMES
from eyepic.exports import ModelMetadata, ModelUnavailable
from eyepic.schema import Filters, Hit, Item

DIM = 16
DETECTOR_GROUPS = ["onepiece", "outer", "top", "bottom"]
CLASSES = {"group": list(taxonomy.GROUP_NAMES), "type": list(taxonomy.TYPE_NAMES), "color": list(COLOR_NAMES)}


def vector_of(data: bytes) -> np.ndarray:
    """A deterministic unit vector per distinct byte string."""
    seed = int.from_bytes(hashlib.sha256(data).digest()[:8], "little")
    v = np.random.default_rng(seed).normal(size=DIM).astype(np.float32)
    return v / np.linalg.norm(v)


class FakeModels:
    """ModelClient seam: deterministic outputs without TensorFlow.

    Crop ``i`` of a call is labelled ``groups[i % len(groups)]``; the
    "detector" returns ``detections`` (or is absent when that is None).
    """

    def __init__(
        self,
        groups: tuple[str, ...] = ("top",),
        detections: list[tuple[float, float, float, float]] | None = None,
        available: bool = True,
    ):
        self.groups = groups
        self.detections = detections
        self.available = available
        self.calls: list[tuple[str, int]] = []

    def metadata(self, model_name: str) -> ModelMetadata:
        self._check(model_name)
        classes = CLASSES if model_name == "classifier" else {"group": DETECTOR_GROUPS}
        return ModelMetadata(model_name, 3, {"classes": classes, "input_size": 32})

    def ready(self, model_name: str) -> bool:
        return self.available

    def predict(self, model_name: str, images: list[bytes]) -> dict[str, np.ndarray]:
        self._check(model_name)
        self.calls.append((model_name, len(images)))
        if model_name == "detector":
            n = len(self.detections or [])
            return {
                "boxes": np.array([self.detections], dtype=np.float32).reshape(1, n, 4),
                "scores": np.full((1, n), 0.9, dtype=np.float32),
                # the detector's class agrees with the classifier's group for the same crop
                "classes": np.array([[DETECTOR_GROUPS.index(self.groups[i % len(self.groups)])
                                      if self.groups[i % len(self.groups)] in DETECTOR_GROUPS else 0
                                      for i in range(n)]], dtype=np.int32).reshape(1, n),
                "num_detections": np.array([n]),
            }
        out: dict[str, list[np.ndarray]] = {
            "group_probs": [],
            "type_probs": [],
            "color_probs": [],
            "embedding": [],
        }
        for i, image in enumerate(images):
            group = self.groups[i % len(self.groups)]
            kind = taxonomy.types_in_group(group)[0]
            for head, name in (("group", group), ("type", kind), ("color", "black")):
                probs = np.full(len(CLASSES[head]), 0.01, dtype=np.float32)
                probs[CLASSES[head].index(name)] = 0.9
                out[f"{head}_probs"].append(probs)
            out["embedding"].append(vector_of(image))
        return {k: np.stack(v) for k, v in out.items()}

    def _check(self, model_name: str) -> None:
        if not self.available:
            raise ModelUnavailable(f"no exported {model_name!r} model (fake)")
        if model_name == "detector" and self.detections is None:
            raise ModelUnavailable("no detector exported (fake)")


def make_items(catalog_photos: dict[str, list[Path]]) -> list[Item]:
    """Real photos as catalog items; ids contain '/' like path-derived ids do."""
    items = []
    colors = ["black", "white", "blue"]
    for folder, paths in catalog_photos.items():
        kind = taxonomy.CLOTHING_SMALL_TYPES[folder]
        for j, path in enumerate(paths):
            items.append(
                Item(
                    id=f"cs/{folder}/{path.stem}",
                    embedding=vector_of(path.read_bytes()),
                    group=taxonomy.group_of(kind),
                    type=kind,
                    color=colors[j % len(colors)],
                    title=f"{kind} {j}",
                    image_path=str(path),
                )
            )
    return items


class BrokenIndex:
    """An index whose backend is down (or buggy)."""

    def __init__(self, error: Exception):
        self.error = error

    def search(self, vector: np.ndarray, k: int, filters: Filters | None = None, exclude_ids: object = (),
               collapse: bool = True) -> list[Hit]:
        raise self.error

    def count(self, filters: Filters | None = None) -> int:
        raise self.error

    def get(self, item_id: str) -> Item | None:
        raise self.error

    def facets(self) -> dict[str, dict[str, int]]:
        raise self.error


class BrokenEventStore:
    """An events store whose backend is down."""

    def __init__(self, error: Exception):
        self.error = error

    def _fail(self, *args: object) -> Any:
        raise self.error

    add = events = users = forget = _fail

    def close(self) -> None:
        return None


@contextlib.contextmanager
def healthy_and_broken_apps(settings, catalog_photos: dict[str, list[Path]]) -> Iterator[dict]:
    """{"ok": an app over a real embedded index of ``catalog_photos`` with FakeModels,
    "broken": the same app whose index and events store are down}: what the contract tests drive."""
    from indexer.base import IndexUnavailable
    from indexer.embedded import EmbeddedIndex
    from serving.analyzer import Analyzer
    from taste.events import EventStoreUnavailable
    from web import create_app

    from outfit_fakes import tiny_compatibility

    index = EmbeddedIndex(settings.index_dir / "test.sqlite")
    index.upsert(make_items(catalog_photos))
    analyzer = Analyzer(FakeModels())
    looks = tiny_compatibility()  # complete-the-look's model for FakeModels' 16-d embeddings
    try:
        yield {"ok": create_app(settings, analyzer=analyzer, index=index, compatibility=looks),
               "broken": create_app(settings, analyzer=analyzer, index=BrokenIndex(IndexUnavailable("index down")),
                                    events=BrokenEventStore(EventStoreUnavailable("events store down")),
                                    compatibility=looks)}
    finally:
        index.close()
