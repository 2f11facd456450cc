"""Prediction I/O for evaluation and calibration: samples -> the bytes serving gets -> outputs.

Crops go through the same path as the Analyzer's (PIL crop -> PNG -> the
export's in-graph decode/resize), so what is measured is what users get.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

import numpy as np
from PIL import Image
from tqdm import tqdm

from eyepic.exports import ModelClient
from eyepic.imaging import color_shares, crop_encoded
from training.data.samples import FULL, Sample
from training.metrics import l2_normalise


def encode_sample(sample: Sample) -> bytes:
    if sample.box == FULL:
        return sample.path.read_bytes()
    with Image.open(sample.path) as image:
        return crop_encoded(image.convert("RGB"), sample.box)


def sample_color_shares(sample: Sample, window: float = 1.0) -> np.ndarray:
    """Pixel color shares of a sample's garment box (what the Analyzer fuses with the head)."""
    with Image.open(sample.path) as image:
        return color_shares(image.convert("RGB"), sample.box, window)  # the pixels encode_sample crops


def encoded_color_shares(data: bytes, window: float = 1.0) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as image:
        return color_shares(image.convert("RGB"), window=window)


def predict_encoded(client: ModelClient, name: str, images: Sequence[bytes], batch: int = 32,
                    desc: str = "evaluating") -> dict[str, np.ndarray]:
    outs: dict[str, list[np.ndarray]] = {}
    for start in tqdm(range(0, len(images), batch), desc=desc, unit="batch"):
        for key, value in client.predict(name, list(images[start : start + batch])).items():
            outs.setdefault(key, []).append(value)
    return {k: np.concatenate(v) for k, v in outs.items()}


def predict_samples(client: ModelClient, name: str, samples: Sequence[Sample], batch: int = 32) -> dict:
    outs: dict[str, list[np.ndarray]] = {}
    for start in tqdm(range(0, len(samples), batch), desc="evaluating", unit="batch"):
        chunk = [encode_sample(s) for s in samples[start : start + batch]]
        for key, value in client.predict(name, chunk).items():
            outs.setdefault(key, []).append(value)
    return {k: np.concatenate(v) for k, v in outs.items()}


def pooled_features(model: Any, samples: Sequence[Sample], batch: int = 32,
                    test_time_flip: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(pooled backbone features, embedding) of ``samples`` from a GarmentClassifier or GarmentEnsemble.

    Same bytes and in-graph decode as serving (and the same mirror averaging
    where the export does it); the embedding comes along so callers can
    check the model agrees with the export it stands in for.
    """
    import keras
    import tensorflow as tf

    from eyepic.imaging import decode_and_resize

    size = int(model.input_shape[1])
    probe = keras.Model(model.input, [model.pooled_output, model.output["embedding"]])
    pooled, emb = [], []
    for start in tqdm(range(0, len(samples), batch), desc="pooled features", unit="batch"):
        pixels = tf.stack([decode_and_resize(tf.constant(encode_sample(s)), size)
                           for s in samples[start : start + batch]])
        p, e = probe(pixels, training=False)
        if test_time_flip:
            p_mirror, e_mirror = probe(tf.reverse(pixels, axis=[2]), training=False)
            p, e = (p + p_mirror) / 2.0, l2_normalise(np.asarray(e) + np.asarray(e_mirror))
        pooled.append(np.asarray(p))
        emb.append(np.asarray(e))
    return np.concatenate(pooled), np.concatenate(emb)


def sample_image(sample: Sample) -> Image.Image:
    """The sample's garment as an RGB image (the box, cropped as ``encode_sample`` does)."""
    with Image.open(sample.path) as image:
        image = image.convert("RGB")
        if sample.box == FULL:
            return image
        return Image.open(io.BytesIO(crop_encoded(image, sample.box))).convert("RGB")
