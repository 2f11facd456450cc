"""Train the garment detector from a recipe (default training/configs/detector-256.yaml).

Photos of the train split only; after each epoch the validation photos are
decoded with the serving decoder (per-class NMS) and scored with COCO mAP,
and early stopping keeps the weights with the best validation mAP@0.5 (what
the product is judged by, not the loss), or, with ``keep: last``, training runs
every epoch and keeps the final one, so the reported numbers are not selected on
the photos they are measured on. A wall-clock budget
(``max_minutes``) ends training after the epoch that passes it, for a
shared 2-core machine. History, curves (PNG) and the best weights land in the
report folder.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from training.data.detection import PhotoBoxes
from training.data.samples import train_validation
from training.models.detector import DetectorConfig


def predict_photos(model, photos: Sequence[PhotoBoxes], config: DetectorConfig,
                   score_threshold: float = 0.001, max_detections: int = 100) -> list[dict]:
    """In-memory detections per photo: normalised boxes in the original frame.

    The same decode (per-class NMS) and letterbox inverse as the export.
    """
    import numpy as np
    import tensorflow as tf

    from training.data.detection import from_letterbox, make_detection_dataset
    from training.models.detector import decode_detections

    eval_config = dataclasses.replace(config, batch_size=16)
    sizes = []
    for p in photos:
        shape = tf.image.extract_jpeg_shape(Path(p.path).read_bytes()) if Path(p.path).suffix.lower() in (
            ".jpg", ".jpeg") else tf.shape(tf.io.decode_image(Path(p.path).read_bytes(), channels=3))
        sizes.append((int(shape[0]), int(shape[1])))

    @tf.function(reduce_retracing=True)
    def detect(images):
        raw = model(images, training=False)
        return decode_detections(model, raw, config.input_size, score_threshold, config.iou_threshold,
                                 max_detections)

    out: list[dict] = []
    ds = make_detection_dataset(photos, eval_config, training=False)
    for images, _ in ds:
        dets = detect(images)
        for i in range(int(images.shape[0])):
            h, w = sizes[len(out)]
            n = int(dets["num_detections"][i])
            boxes = from_letterbox(dets["boxes"][i, :n], h, w, config.input_size).numpy()
            out.append({"boxes": boxes.astype(np.float32), "scores": dets["scores"][i, :n].numpy(),
                        "classes": dets["classes"][i, :n].numpy().astype(int)})
    return out


def _map_callback(photos: Sequence[PhotoBoxes], config: DetectorConfig, every: int):
    import keras

    from training.evaluate_detector import coco_map

    class ValidationMAP(keras.callbacks.Callback):
        """Adds ``val_map50`` and ``val_map`` (COCO, serving decoder) to the epoch logs."""

        def __init__(self):
            super().__init__()
            self.last: dict[str, float] = {"val_map50": 0.0, "val_map": 0.0}

        def on_epoch_end(self, epoch, logs=None):
            if logs is None:
                return
            if epoch % every == every - 1:
                dets = predict_photos(self.model, photos, config)
                result = coco_map(photos, dets, config.classes)
                self.last = {"val_map50": result["map50"], "val_map": result["map"]}
            logs.update(self.last)
            print(f"epoch {epoch + 1}: val mAP@0.5 {self.last['val_map50']:.3f}  "
                  f"mAP@0.5:0.95 {self.last['val_map']:.3f}", flush=True)

    return ValidationMAP()


def _time_budget_callback(max_minutes: float | None):
    import keras

    class TimeBudget(keras.callbacks.Callback):
        """Stops after the epoch that passes ``max_minutes`` of wall time."""

        def on_train_begin(self, logs=None):
            self.started = time.time()

        def on_epoch_end(self, epoch, logs=None):
            if max_minutes and time.time() - self.started > max_minutes * 60:
                print(f"time budget of {max_minutes} min reached after epoch {epoch + 1}", flush=True)
                self.model.stop_training = True

    return TimeBudget()


def train_detector(
    photos: Sequence[PhotoBoxes],
    config: DetectorConfig,
    report_dir: Path,
    verbose: int | str = 2,
) -> tuple[Any, dict]:
    """Fit on the train split; returns (model, info).

    ``config.keep`` "best": early-stop on validation mAP@0.5 and keep its best epoch;
    "last": run every epoch and keep the final one (saved as ``last.weights.h5``, the
    start of a warm restart), validation only watched.
    """
    if config.keep not in ("best", "last"):
        raise ValueError(f"keep must be 'best' or 'last', got {config.keep!r}")
    import keras

    from training.data.detection import make_detection_dataset
    from training.models.detector import build_detector, compile_detector

    keras.utils.set_random_seed(config.seed)
    train, val = train_validation(photos, config.max_train_photos)
    steps = -(-len(train) // config.batch_size)
    train_ds = make_detection_dataset(train, config, training=True, seed=config.seed)
    model = build_detector(config)
    if config.init_weights:  # a second cycle (warm restart) from an earlier run's best weights
        model.load_weights(config.init_weights)
    compile_detector(model, config, steps)
    report_dir = Path(report_dir)
    report_dir.mkdir(parents=True, exist_ok=True)
    val_map = _map_callback(val, config, max(1, config.validate_every))
    select = config.keep == "best"
    callbacks = [
        val_map,
        *([keras.callbacks.EarlyStopping(monitor="val_map50", mode="max", patience=config.patience,
                                         restore_best_weights=True, start_from_epoch=3),
           keras.callbacks.ModelCheckpoint(str(report_dir / "best.weights.h5"), monitor="val_map50",
                                           mode="max", save_best_only=True, save_weights_only=True)]
          if select else []),
        _time_budget_callback(config.max_minutes),
        keras.callbacks.CSVLogger(str(report_dir / "history.csv")),
    ]
    started = time.time()
    history = model.fit(train_ds, epochs=config.epochs, callbacks=callbacks, verbose=verbose)
    hist = {k: [float(v) for v in vs] for k, vs in history.history.items()}
    best = max(range(len(hist.get("val_map50", [0]))), key=lambda i: hist.get("val_map50", [0])[i])
    if select and (report_dir / "best.weights.h5").exists() and max(hist.get("val_map50", [0.0])) > 0:
        model.load_weights(str(report_dir / "best.weights.h5"))  # also when the budget, not patience, stopped it
    if not select:
        model.save_weights(str(report_dir / "last.weights.h5"))
    info = {
        "history": hist,
        "best_epoch": best + 1,
        "kept": "best epoch" if select else "last epoch",
        "epochs_run": len(hist.get("loss", [])),
        "train_seconds": round(time.time() - started, 1),
        "train_photos": len(train),
        "validation_photos": len(val),
        "config": config.as_dict(),
    }
    (report_dir / "history.json").write_text(json.dumps(info, indent=2))
    plot_history(hist, report_dir / "training_curves.png")
    return model, info


def plot_history(history: dict[str, list[float]], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(14, 3.5))
    for key in ("loss", "box_loss", "class_loss"):
        if key in history:
            axes[0 if key == "loss" else 1].plot(history[key], label=key)
    axes[0].set_title("training loss")
    axes[1].set_title("loss parts")
    for key, label in (("val_map50", "mAP@0.5"), ("val_map", "mAP@0.5:0.95")):
        axes[2].plot(history.get(key, []), label=label)
    axes[2].set_title("validation mAP")
    axes[2].set_ylim(0, 1)
    for ax in axes:
        ax.set_xlabel("epoch")
        ax.legend()
    fig.tight_layout()
    fig.savefig(out, dpi=90)
    plt.close(fig)
