"""``eyepic train detector`` and ``eyepic evaluate detector`` (the classifier's live in ``app.cli``).

``eyepic train detector [--config YAML] [--epochs N]``: train on the CCP train
split, export ``models/detector/<version>/`` and evaluate the export on the
validation split (report next to the model).
``eyepic evaluate detector [--data DIR] [--json]``: score the latest export on
the validation split or on any CCP-layout folder.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from app.publish import publish_detector
from eyepic.exports import latest_version_dir, load_metadata
from eyepic.settings import Settings
from training.errors import TrainingInputError

DEFAULT_DETECTOR_CONFIG = Path(__file__).resolve().parents[1] / "training" / "configs" / "detector-256.yaml"


class NoPhotos(TrainingInputError):
    """No annotated photos where the user pointed ``--data``."""


def _summary_line(report: dict) -> str:
    per = ", ".join(
        f"{name} {m['ap50']:.3f}" for name, m in report["per_class"].items() if m["ap50"] is not None
    )
    return (f"validation mAP@0.5 {report['map50']:.3f} (apparel {report['apparel_map50']:.3f}), "
            f"mAP@0.5:0.95 {report['map']:.3f} (apparel {report['apparel_map']:.3f}); AP@0.5: {per}")


def train_detector_command(settings: Settings, args: argparse.Namespace) -> int:
    """``eyepic train detector``: train -> stage the export -> evaluate it -> publish."""
    from training.data.detection import load_detection_photos
    from training.export import git_commit
    from training.models.detector import DetectorConfig
    from training.train_detector import train_detector

    config = DetectorConfig.from_yaml(Path(args.config) if args.config else DEFAULT_DETECTOR_CONFIG)
    if args.epochs:
        config.epochs = args.epochs
    if getattr(args, "init_weights", None):
        config.init_weights = args.init_weights
    if config.init_weights and not Path(config.init_weights).is_file():
        raise TrainingInputError(f"--init-weights: no such file {config.init_weights}")
    photos = load_detection_photos(settings.data_dir, settings.cache_dir, config.classes, config.product_photos)
    run_dir = settings.reports_dir / f"detector-{time.strftime('%Y%m%d-%H%M%S')}"
    print(f"training the detector; report in {run_dir}", flush=True)
    commit = git_commit()  # the code that trains, read before a long run (HEAD may move meanwhile)
    model, info = train_detector(photos, config, run_dir)
    info["git_commit"] = commit
    val = [p for p in photos if p.split == "validation"]
    version_dir, report = publish_detector(settings, model, config, info, val)
    print(f"exported {version_dir}")
    print(_summary_line(report))
    return 0


def evaluate_detector_command(settings: Settings, args: argparse.Namespace) -> int:
    """``eyepic evaluate detector``: mAP, PR curves and a prediction grid for the latest export."""
    from training.data.detection import load_detection_photos, read_detection_folder
    from training.evaluate_detector import evaluate_export

    version_dir = latest_version_dir(settings.model_dir, settings.detector_name)
    classes = load_metadata(version_dir)["classes"]["group"]
    if args.data:
        data = Path(args.data)
        photos = read_detection_folder(data, classes)
        out_dir = version_dir / "evaluation" / f"data-{data.resolve().name}"
    else:
        photos = [p for p in load_detection_photos(settings.data_dir, settings.cache_dir, classes)
                  if p.split == "validation"]
        out_dir = version_dir / "evaluation"
    if not photos:
        raise NoPhotos(f"no annotated photos found in {args.data or 'the validation split'}")
    report = evaluate_export(version_dir, photos, out_dir)
    print(_summary_line(report))
    print(f"report: {out_dir / 'evaluation.md'}")
    if args.json:
        flat = {
            "model": report["model"], "photos": report["photos"],
            "map50": report["map50"], "map": report["map"],
            "apparel_map50": report["apparel_map50"], "apparel_map": report["apparel_map"],
            "per_class": {k: {"ap50": m["ap50"], "ap": m["ap"], "n_gt": m["n_gt"]}
                          for k, m in report["per_class"].items()},
        }
        print(json.dumps(flat))
    return 0
