"""Serving-time choices calibrated per export, never on validation.

Validation stays for reporting, so the validation color accuracy that
``eyepic evaluate classifier`` reports is not tuned to the color fusion
weight below. The weight is picked on the CCP crops the model's recipe held
out of training (``calibration_fraction``); a model trained on every train
crop is calibrated on training crops, where a head that has memorised them
looks better than it is and gets too low a pixel weight.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from eyepic.colors import FUSION_FLOOR, fuse_color
from serving.model_client import ModelClient
from training.data.samples import FULL, Sample, calibration_part

PIXEL_WEIGHTS = (0.0, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0)


def calibrate_color_fusion(client: ModelClient, name: str, samples: Sequence[Sample], limit: int = 800,
                           seed: int = 0) -> dict:
    """The pixel weight of ``eyepic.colors.fuse_color`` that names held-out crops' colors best.

    Candidates: CCP garment crops with a mask color, from the calibration
    photos the model's recipe held out of training, else from the train
    split (``limit`` of them, a fixed random draw). Ties go to the smaller
    weight; with no candidates the weight is 0 (the head alone).
    """
    from training.evaluate import predict_samples, sample_color_shares

    meta = client.metadata(name)
    fraction = float(meta.raw.get("training", {}).get("recipe", {}).get("calibration_fraction", 0.0))
    pool = calibration_part(samples, fraction)[1] if fraction > 0 else samples
    source = "calibration" if fraction > 0 else "train"
    crops = [s for s in pool if s.split == "train" and s.color and s.box != FULL]
    if not crops:
        return {"pixel_weight": 0.0, "floor": FUSION_FLOOR, "calibrated_on": 0, "crops": source,
                "accuracy": {}}
    rng = np.random.default_rng(seed)
    picked = [crops[i] for i in sorted(rng.choice(len(crops), min(limit, len(crops)), replace=False))]
    names = meta.classes["color"]
    truth = np.array([names.index(s.color) for s in picked])
    probs = predict_samples(client, name, picked)["color_probs"]
    shares = np.stack([sample_color_shares(s) for s in picked])
    accuracy = {w: float((fuse_color(probs, shares, w, FUSION_FLOOR).argmax(1) == truth).mean()) for w in PIXEL_WEIGHTS}
    best = max(PIXEL_WEIGHTS, key=lambda w: (accuracy[w], -w))
    return {"pixel_weight": best, "floor": FUSION_FLOOR, "calibrated_on": len(picked), "crops": source,
            "accuracy": {str(w): round(a, 4) for w, a in accuracy.items()}}


def record_color_fusion(version_dir: Path, fusion: dict) -> None:
    """Store the calibration in the export's metadata.json, where every client reads it."""
    meta_path = Path(version_dir) / "metadata.json"
    meta = json.loads(meta_path.read_text())
    meta["color_fusion"] = fusion
    meta_path.write_text(json.dumps(meta, indent=2, ensure_ascii=False))
