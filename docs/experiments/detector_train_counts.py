"""Boxes per CCP *train* photo above each score threshold, for two detector runs' final weights.

    .venv/bin/python docs/experiments/detector_train_counts.py RUN_A RUN_B [--config RECIPE]

RUN_A, RUN_B: training run folders (var/reports/detector-*/) holding
``last.weights.h5``. Shows whether a recipe shifted the scale of the scores
on the photos it trained on (same boxes per photo at the served 0.25), and
the share of train product photos the detector answers with one box.
Nothing is written; no validation photo is used.
"""

from __future__ import annotations

import argparse

import numpy as np

from eyepic.settings import Settings
from training.data.detection import load_detection_photos
from training.models.detector import DetectorConfig, build_detector
from training.train_detector import predict_photos

THRESHOLDS = (0.10, 0.125, 0.15, 0.175, 0.20, 0.225, 0.25)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("runs", nargs=2)
    parser.add_argument("--config", default="training/configs/detector-release-products.yaml")
    parser.add_argument("--products", type=int, default=2000, help="train product photos to count on")
    args = parser.parse_args(argv)
    settings = Settings.from_env()
    config = DetectorConfig.from_yaml(args.config)
    photos = load_detection_photos(settings.data_dir, settings.cache_dir, config.classes, args.products)
    street = [p for p in photos if p.split == "train" and not p.key.startswith("clothing")]
    products = [p for p in photos if p.key.startswith("clothing")]
    print(f"{len(street)} CCP train photos, {len(products)} train product photos")
    print("| run | threshold | boxes per street photo | product photos with one box |\n|---|---|---|---|")
    for run in args.runs:
        model = build_detector(config)
        model.load_weights(f"{run}/last.weights.h5")
        found = {name: predict_photos(model, group, config, 0.05, config.max_detections)
                 for name, group in (("street", street), ("products", products))}
        for t in THRESHOLDS:
            boxes = np.mean([(d["scores"] >= t).sum() for d in found["street"]])
            one = np.mean([(d["scores"] >= t).sum() == 1 for d in found["products"]])
            print(f"| {run} | {t} | {boxes:.3f} | {one:.3f} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
