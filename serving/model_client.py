"""ModelClient: the one way the Analyzer talks to models.

``predict(model_name, images)`` sends *encoded image bytes* and gets named
outputs back; decoding and preprocessing happen inside each export's
``serving_default`` graph. The in-process client below loads the SavedModel
itself; a TF Serving client speaks gRPC to the same exports. Both read the
export's ``metadata.json`` for class lists and sizes. The protocol, its
errors and the export folder rules are the export contract
(``eyepic.exports``); this module holds the in-process implementation and the
one place that picks a client.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np

from eyepic.exports import ModelClient, ModelMetadata, ModelUnavailable, latest_version_dir, read_metadata
from eyepic.settings import Settings

__all__ = ["InProcessModelClient", "ModelClient", "ModelMetadata", "ModelUnavailable", "latest_version_dir",
           "model_client_from_settings", "read_metadata"]


class InProcessModelClient:
    """Runs exports in this process: the one-machine default.

    Models load on first use (not at import or construction), once, under a
    lock; ``reload()`` drops them so a new export version is picked up.
    """

    def __init__(self, model_dir: Path | str, pinned: dict[str, Path] | None = None):
        """``pinned``: model name -> export folder to run instead of the latest version
        (a staged export being calibrated and evaluated before it is published)."""
        self.model_dir = Path(model_dir)
        self.pinned = {name: Path(path) for name, path in (pinned or {}).items()}
        self._lock = threading.Lock()
        self._loaded: dict[str, tuple[ModelMetadata, Any]] = {}

    def _load(self, name: str) -> tuple[ModelMetadata, Any]:
        with self._lock:
            if name not in self._loaded:
                # before the slow TF import
                version_dir = self.pinned.get(name) or latest_version_dir(self.model_dir, name)
                import tensorflow as tf

                meta = read_metadata(version_dir)
                signature = tf.saved_model.load(str(version_dir)).signatures["serving_default"]
                self._loaded[name] = (meta, signature)
            return self._loaded[name]

    def predict(self, model_name: str, images: list[bytes]) -> dict[str, np.ndarray]:
        import tensorflow as tf

        _, signature = self._load(model_name)
        outputs = signature(images=tf.constant(images, dtype=tf.string))
        return {k: v.numpy() for k, v in outputs.items()}

    def metadata(self, model_name: str) -> ModelMetadata:
        return self._load(model_name)[0]

    def ready(self, model_name: str) -> bool:
        try:
            self._load(model_name)
        except ModelUnavailable:
            return False
        return True

    def reload(self) -> None:
        with self._lock:
            self._loaded.clear()


def model_client_from_settings(settings: Settings) -> ModelClient:
    """The one place that picks the client: TF Serving over gRPC when
    ``EYEPIC_MODEL_SERVER`` is set, else the exports run in this process."""
    if settings.model_server:
        from serving.tfserving_client import GrpcModelClient

        return GrpcModelClient.from_settings(settings)
    return InProcessModelClient(settings.model_dir)
