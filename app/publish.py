"""The publish pipeline: a trained model -> staged export -> calibrated -> evaluated -> published.

Calibration and the validation metrics are written into the *staged* export
(``eyepic.exports.stage``), which a client pinned to that folder runs; the
atomic rename that publishes it comes last, so a published version never
changes and a server never serves an uncalibrated one.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from eyepic import exports
from eyepic.exports import Staged
from eyepic.settings import Settings
from serving.model_client import InProcessModelClient
from training.data.samples import Sample

if TYPE_CHECKING:  # TensorFlow: loaded only by the commands that train
    import keras

    from training.data.detection import PhotoBoxes
    from training.models.detector import DetectorConfig


def data_hash(settings: Settings) -> str:
    """The fingerprint of the data a model is trained on now (stored with its export)."""
    from training.data.sources import data_fingerprint, training_roots

    return data_fingerprint(*training_roots(settings.data_dir))


def staged_client(settings: Settings, staged: Staged) -> InProcessModelClient:
    """An in-process client that runs the staged export under its model name."""
    return InProcessModelClient(settings.model_dir, pinned={staged.name: staged.path})


def publish_classifier(settings: Settings, model: keras.Model, samples: Sequence[Sample], training: dict,
                       data_hash: str, test_time_flip: bool) -> Path:
    """Stage ``model`` as the next version, calibrate it on the train split, evaluate it on
    the validation split (report and metrics inside it), then publish it."""
    from training.evaluate_classifier import evaluate_classifier
    from training.export import stage_classifier
    from training.predictions import encode_sample

    val = [s for s in samples if s.split == "validation"]
    staged = stage_classifier(model, settings.model_dir, settings.classifier_name, training=training,
                              data_hash=data_hash, warmup_images=[encode_sample(s) for s in val[:4]],
                              test_time_flip=test_time_flip)
    with exports.publishing(staged):
        calibrate(settings, staged, samples)
        report = evaluate_classifier(staged_client(settings, staged), val, staged.path / "evaluation" / "validation",
                                     settings.classifier_name, keras_model=model)
        record_classifier_metrics(staged, report)
        print(head_line(report))
    return staged.final


def recalibrate_latest(settings: Settings, samples: Sequence[Sample]) -> tuple[Path, Path]:
    """The latest classifier export, recalibrated, as the next version: (new, source) folders.

    A copy, not an edit: the version servers may have loaded keeps its calibration.
    """
    source = exports.latest_version_dir(settings.model_dir, settings.classifier_name)
    staged = exports.stage(settings.model_dir, settings.classifier_name)
    shutil.copytree(source, staged.path)
    with exports.publishing(staged):
        exports.update_metadata(staged.path, version=staged.version, recalibrated_from=int(source.name))
        calibrate(settings, staged, samples)
    return staged.final, source


def calibrate(settings: Settings, staged: Staged, samples: Sequence[Sample]) -> dict:
    """Pick the color fusion weight on held-out (else training) crops and store it in the staged export."""
    from training.calibrate import calibrate_color_fusion, record_color_fusion

    fusion = calibrate_color_fusion(staged_client(settings, staged), settings.classifier_name, samples)
    record_color_fusion(staged.path, fusion)
    accuracy = fusion["accuracy"]
    if accuracy:
        head = accuracy["1.0"]["0.0"]
        fused = accuracy[str(fusion["window"])][str(fusion["pixel_weight"])]
        print(f"color fusion: pixel weight {fusion['pixel_weight']}, box window {fusion['window']}, on "
              f"{fusion['calibrated_on']} {fusion['crops']} crops (their color accuracy {head:.3f} -> {fused:.3f})")
    return fusion


def record_classifier_metrics(staged: Staged, report: dict) -> None:
    """The headline validation numbers, in the staged export's metadata.json."""
    exports.update_metadata(staged.path, metrics={
        **{f"{h}_accuracy": m["accuracy"] for h, m in report["heads"].items()},
        **{f"{h}_macro_f1": m["macro_f1"] for h, m in report["heads"].items()},
        "retrieval": report["retrieval"],
    })


def head_line(report: dict, data: str = "validation") -> str:
    return f"{data}: " + ", ".join(f"{h} acc {m['accuracy']:.3f}" for h, m in report["heads"].items())


def publish_detector(settings: Settings, model: keras.Model, config: DetectorConfig, training: dict,
                     val: Sequence[PhotoBoxes]) -> tuple[Path, dict]:
    """Stage the detector, evaluate the staged export on ``val`` (report inside it), record its
    metrics, publish: (version folder, report)."""
    from training.data.sources import data_fingerprint
    from training.evaluate_detector import evaluate_export
    from training.export import stage_detector

    warmup = [Path(p.path).read_bytes() for p in val[:4]]
    staged = stage_detector(model, config, settings.model_dir, settings.detector_name, training=training,
                            data_hash=data_fingerprint(settings.data_dir / "ccp"), warmup_images=warmup)
    with exports.publishing(staged):
        report = evaluate_export(staged.path, val, staged.path / "evaluation")
        record_detector_metrics(staged, report)
    return staged.final, report


def record_detector_metrics(staged: Staged, report: dict) -> None:
    """The headline validation numbers, in the staged export's metadata.json."""
    exports.update_metadata(staged.path, metrics={
        "map50": report["map50"], "map": report["map"],
        "apparel_map50": report["apparel_map50"], "apparel_map": report["apparel_map"],
        "ap50": {k: m["ap50"] for k, m in report["per_class"].items()},
        "ap": {k: m["ap"] for k, m in report["per_class"].items()},
        "validation_photos": report["photos"],
    })
