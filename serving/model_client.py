"""ModelClient: the one way the Analyzer talks to models.

``predict(model_name, images)`` sends *encoded image bytes* and gets named
outputs back; decoding and preprocessing happen inside each export's
``serving_default`` graph. The in-process client below loads the SavedModel
itself; a TF Serving client speaks gRPC to the same exports. Both read the
export's ``metadata.json`` for class lists and sizes.
"""

from __future__ import annotations

import dataclasses
import json
import threading
from pathlib import Path
from typing import Any, Protocol

import numpy as np


class ModelUnavailable(RuntimeError):
    """No model can answer (none exported, server down). Callers answer 503."""


@dataclasses.dataclass(frozen=True)
class ModelMetadata:
    """What an export says about itself (its ``metadata.json``)."""

    name: str
    version: int
    raw: dict[str, Any]

    @property
    def classes(self) -> dict[str, list[str]]:
        return self.raw.get("classes", {})

    @property
    def input_size(self) -> int:
        return int(self.raw["input_size"])

    @property
    def outputs(self) -> list[str]:
        return list(self.raw.get("outputs", []))

    @property
    def model_version(self) -> str:
        """A label for documents indexed with this model: name-version."""
        return f"{self.name}-{self.version}"


class ModelClient(Protocol):
    def predict(self, model_name: str, images: list[bytes]) -> dict[str, np.ndarray]: ...

    def metadata(self, model_name: str) -> ModelMetadata: ...

    def ready(self, model_name: str) -> bool: ...


def latest_version_dir(model_dir: Path, name: str) -> Path:
    """``model_dir/name/<highest int version>``; ModelUnavailable if there is none."""
    base = Path(model_dir) / name
    versions = sorted(
        (int(p.name) for p in base.glob("*") if p.is_dir() and p.name.isdigit() and (p / "saved_model.pb").exists()),
    )
    if not versions:
        raise ModelUnavailable(f"no exported {name!r} model under {base}; run `eyepic train` first")
    return base / str(versions[-1])


def read_metadata(version_dir: Path) -> ModelMetadata:
    raw = json.loads((version_dir / "metadata.json").read_text())
    return ModelMetadata(name=version_dir.parent.name, version=int(version_dir.name), raw=raw)


class InProcessModelClient:
    """Runs exports in this process: the one-machine default.

    Models load on first use (not at import or construction), once, under a
    lock; ``reload()`` drops them so a new export version is picked up.
    """

    def __init__(self, model_dir: Path | str):
        self.model_dir = Path(model_dir)
        self._lock = threading.Lock()
        self._loaded: dict[str, tuple[ModelMetadata, Any]] = {}

    def _load(self, name: str) -> tuple[ModelMetadata, Any]:
        with self._lock:
            if name not in self._loaded:
                version_dir = latest_version_dir(self.model_dir, name)  # before the slow TF import
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


def model_client_from_settings(settings) -> ModelClient:
    """The one place that picks the client: TF Serving over gRPC when
    ``EYEPIC_MODEL_SERVER`` is set, else the exports run in this process."""
    if settings.model_server:
        from serving.tfserving_client import GrpcModelClient

        return GrpcModelClient.from_settings(settings)
    return InProcessModelClient(settings.model_dir)
