"""CLI subcommands for the garment detector (train, evaluate).

``eyepic train detector [--config YAML] [--epochs N]``: train on the CCP train
split, export ``models/detector/<version>/`` and evaluate the export on the
validation split (report next to the model).
``eyepic evaluate detector [--data DIR] [--json]``: score the latest export on
the validation split or on any CCP-layout folder.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

DEFAULT_DETECTOR_CONFIG = Path(__file__).resolve().parent / "configs" / "detector-256.yaml"


def add_commands(sub) -> None:
    """Register detector-only ``eyepic`` subcommands on ``sub`` (none: train/evaluate take ``detector``)."""


def _summary_line(report: dict) -> str:
    per = ", ".join(
        f"{name} {m['ap50']:.3f}" for name, m in report["per_class"].items() if m["ap50"] is not None
    )
    return (f"validation mAP@0.5 {report['map50']:.3f} (apparel {report['apparel_map50']:.3f}), "
            f"mAP@0.5:0.95 {report['map']:.3f} (apparel {report['apparel_map']:.3f}); AP@0.5: {per}")


def train_detector_command(settings, args) -> int:
    """``eyepic train detector``: train -> export -> evaluate the export."""
    from training.data.detection import load_detection_photos
    from training.data.sources import data_fingerprint
    from training.evaluate_detector import evaluate_export
    from training.export import export_detector
    from training.models.detector import DetectorConfig
    from training.train_detector import train_detector

    config = DetectorConfig.from_yaml(Path(args.config) if args.config else DEFAULT_DETECTOR_CONFIG)
    if args.epochs:
        config.epochs = args.epochs
    if getattr(args, "init_weights", None):
        config.init_weights = args.init_weights
    if config.init_weights and not Path(config.init_weights).is_file():
        raise FileNotFoundError(f"--init-weights: no such file {config.init_weights}")
    photos = load_detection_photos(settings.data_dir, settings.cache_dir, config.classes)
    run_dir = settings.reports_dir / f"detector-{time.strftime('%Y%m%d-%H%M%S')}"
    print(f"training the detector; report in {run_dir}", flush=True)
    model, info = train_detector(photos, config, run_dir)
    val = [p for p in photos if p.split == "validation"]
    warmup = [Path(p.path).read_bytes() for p in val[:4]]
    data_hash = data_fingerprint(settings.data_dir / "ccp")
    version_dir = export_detector(model, config, settings.model_dir, settings.detector_name,
                                  training=info, data_hash=data_hash, warmup_images=warmup)
    report = evaluate_export(version_dir, val, version_dir / "evaluation")
    record_metrics(version_dir, report)
    print(f"exported {version_dir}")
    print(_summary_line(report))
    return 0


def record_metrics(version_dir: Path, report: dict) -> None:
    """Copy the headline numbers into the export's metadata.json."""
    meta_path = Path(version_dir) / "metadata.json"
    meta = json.loads(meta_path.read_text())
    meta["metrics"] = {
        "map50": report["map50"], "map": report["map"],
        "apparel_map50": report["apparel_map50"], "apparel_map": report["apparel_map"],
        "ap50": {k: m["ap50"] for k, m in report["per_class"].items()},
        "ap": {k: m["ap"] for k, m in report["per_class"].items()},
        "validation_photos": report["photos"],
    }
    meta_path.write_text(json.dumps(meta, indent=2, ensure_ascii=False))


def evaluate_detector_command(settings, args) -> int:
    """``eyepic evaluate detector``: mAP, PR curves and a prediction grid for the latest export."""
    from serving.model_client import latest_version_dir
    from training.data.detection import load_detection_photos, read_detection_folder
    from training.evaluate_detector import evaluate_export

    version_dir = latest_version_dir(settings.model_dir, settings.detector_name)
    classes = json.loads((version_dir / "metadata.json").read_text())["classes"]["group"]
    if args.data:
        data = Path(args.data)
        photos = read_detection_folder(data, classes)
        out_dir = version_dir / "evaluation" / f"data-{data.resolve().name}"
    else:
        photos = [p for p in load_detection_photos(settings.data_dir, settings.cache_dir, classes)
                  if p.split == "validation"]
        out_dir = version_dir / "evaluation"
    if not photos:
        raise ValueError(f"no annotated photos found in {args.data or 'the validation split'}")
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
