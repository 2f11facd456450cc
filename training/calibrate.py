"""Serving-time choices calibrated per export, never on validation.

Validation stays for reporting, so the validation color accuracy that
``eyepic evaluate classifier`` reports is not tuned to the color fusion
weight below. The weight is picked on the CCP crops the model's recipe held
out of training (``calibration_fraction``); a model trained on every train
crop is calibrated on training crops, where a head that has memorised them
looks better than it is and gets too low a pixel weight.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from eyepic import exports
from eyepic.colors import FUSION_FLOOR, fuse_color
from eyepic.exports import ModelClient
from training.data.samples import FULL, Sample, calibration_part
from training.predictions import predict_samples, sample_color_shares

# 4 and 6: a model calibrated on held-out crops (classifier/6) chose the old top, 3.0.
PIXEL_WEIGHTS = (0.0, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0)
# Central share of the box whose pixels are counted (eyepic.imaging.color_shares).
# 0.75 named mask colors best from pixels alone on 600 training crops (0.810
# against 0.760 for the whole box; docs/experiments/pixel_window.py); 1.0 is the old way.
WINDOWS = (1.0, 0.75)


def calibrate_color_fusion(client: ModelClient, name: str, samples: Sequence[Sample], limit: int = 800,
                           seed: int = 0) -> dict:
    """The pixel weight and box window of ``eyepic.colors.fuse_color`` that name held-out
    crops' colors best.

    Candidates: CCP garment crops with a mask color, from the calibration
    photos the model's recipe held out of training, else from the train
    split (``limit`` of them, a fixed random draw). Ties go to the smaller
    weight, then the larger window (so weight 0 keeps the whole box); with
    no candidates the weight is 0 (the head alone).
    """
    meta = client.metadata(name)
    fraction = float(meta.raw.get("training", {}).get("recipe", {}).get("calibration_fraction", 0.0))
    pool = calibration_part(samples, fraction)[1] if fraction > 0 else samples
    source = "calibration" if fraction > 0 else "train"
    crops = [s for s in pool if s.split == "train" and s.color and s.box != FULL]
    if not crops:
        return {"pixel_weight": 0.0, "window": 1.0, "floor": FUSION_FLOOR, "calibrated_on": 0,
                "crops": source, "accuracy": {}}
    rng = np.random.default_rng(seed)
    picked = [crops[i] for i in sorted(rng.choice(len(crops), min(limit, len(crops)), replace=False))]
    names = meta.classes["color"]
    truth = np.array([names.index(s.color) for s in picked])
    probs = predict_samples(client, name, picked)["color_probs"]
    accuracy = {}
    for window in WINDOWS:
        shares = np.stack([sample_color_shares(s, window) for s in picked])
        for w in PIXEL_WEIGHTS:
            fused = fuse_color(probs, shares, w, FUSION_FLOOR)
            accuracy[(w, window)] = float((fused.argmax(1) == truth).mean())
    best_weight, best_window = max(accuracy, key=lambda k: (accuracy[k], -k[0], k[1]))
    table: dict[str, dict[str, float]] = {}
    for (w, window), a in accuracy.items():
        table.setdefault(str(window), {})[str(w)] = round(a, 4)
    return {"pixel_weight": best_weight, "window": best_window, "floor": FUSION_FLOOR,
            "calibrated_on": len(picked), "crops": source, "accuracy": table}


def record_color_fusion(staged_dir: Path, fusion: dict) -> None:
    """Store the calibration in a staged export's metadata.json, where every client reads it
    once it is published (a published version never changes)."""
    exports.update_metadata(staged_dir, color_fusion=fusion)
