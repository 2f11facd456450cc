"""Rebuild the Keras model behind a classifier export (for the pooled-feature baseline)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from eyepic.exports import load_metadata


def rebuild_model(version_dir: Path) -> Any | None:
    """The Keras model behind a classifier export, or None where it can't be rebuilt.

    The export tracks the model's variables in the model's own order and
    names (``keras.export.ExportArchive``), so the model is rebuilt from
    ``metadata.json``'s ``model_config`` and the saved values assigned one to
    one; any name or shape mismatch means "can't", never a guess. Callers
    still compare its embedding to the served one (see evaluate_classifier).
    """
    import tensorflow as tf

    from training.models.ensemble import model_from_config

    meta = load_metadata(version_dir)
    config = meta.get("model_config")
    if not config or meta.get("kind", "classifier") != "classifier":
        return None
    model = model_from_config(config)
    saved = tf.saved_model.load(str(version_dir)).variables
    if len(saved) != len(model.variables):
        return None
    for var, value in zip(model.variables, saved):
        name = value.name.removesuffix(":0")
        # Dropout's RNG state is numbered per process (seed_generator_1...) and unused in inference.
        same = name == var.path or ("seed_generator" in name and "seed_generator" in var.path)
        if not same or tuple(value.shape) != tuple(var.shape):
            return None
    for var, value in zip(model.variables, saved):
        var.assign(value.numpy())
    return model
