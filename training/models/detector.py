"""Garment detector builder: KerasCV YOLOv8 with a backbone built in code.

No preset can be downloaded on the offline machine, so the backbone is made
from its stack widths and depths (``stackwise_channels``/``stackwise_depth``);
``weights`` stays a parameter for users who are online (a KerasCV preset name
such as ``yolo_v8_s_backbone_coco``) or hold a local ``.weights.h5`` file.

Boxes are ``xyxy`` in input pixels throughout (KerasCV's format name), class
ids index ``DetectorConfig.classes``. Decoding and NMS are *not* the KerasCV
default (``NonMaxSuppression`` is class-agnostic: an open coat and the top
under it overlap and would suppress each other); ``decode_detections`` runs
per-class NMS and is shared by evaluation and the export, so both see the
same boxes.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from training.errors import config_from_yaml

BOX_FORMAT = "xyxy"


@dataclasses.dataclass
class DetectorConfig:
    """A detector recipe; every field can be set in training/configs/detector*.yaml."""

    classes: list[str] = dataclasses.field(
        default_factory=lambda: ["onepiece", "outer", "top", "bottom", "shoes"]
    )
    input_size: int = 256
    stackwise_channels: list[int] = dataclasses.field(default_factory=lambda: [16, 32, 64, 128])
    stackwise_depth: list[int] = dataclasses.field(default_factory=lambda: [1, 2, 2, 1])
    fpn_depth: int = 1
    weights: str | None = None  # preset name (online) or local .weights.h5 for the backbone
    init_weights: str | None = None  # a whole detector's .weights.h5 (same config) to fine-tune from
    epochs: int = 60
    max_minutes: float | None = None  # wall-clock budget; stops after the epoch that passes it
    batch_size: int = 8
    learning_rate: float = 2e-3
    weight_decay: float = 5e-4
    warmup_epochs: int = 2
    patience: int = 12
    box_loss_weight: float = 7.5
    classification_loss_weight: float = 0.5
    # augmentation (training only)
    flip: bool = True
    scale_min: float = 0.6  # random crop keeps this fraction of each side at least
    crop_probability: float = 0.7
    color_jitter: float = 0.25  # brightness/contrast/saturation strength, hue a fifth of it
    min_box_visible: float = 0.35  # a cropped box keeping less of its area is dropped
    mosaic_probability: float = 0.0  # share of training images that are two photos side by side
    # train product photos (clothing-small, clothing-extra) mixed in, each boxed whole as its
    # one garment, so that a flat-lay or hanging product is one box, not its folds
    product_photos: int = 0
    # decoding, shared by evaluation and export
    score_threshold: float = 0.25
    iou_threshold: float = 0.5
    max_detections: int = 10
    max_train_photos: int | None = None  # tests train on a handful
    validate_every: int = 1
    # "best": keep the epoch with the best validation mAP@0.5 (a model selected on the
    # photos it is then scored on); "last": keep the final epoch, validation only watched
    keep: str = "best"
    seed: int = 0

    @classmethod
    def from_yaml(cls, path: Path) -> DetectorConfig:
        return config_from_yaml(cls, path, "detector config")

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def build_detector(config: DetectorConfig):
    """A ``keras_cv.models.YOLOV8Detector`` for ``config`` (uncompiled)."""
    import keras_cv

    backbone = keras_cv.models.YOLOV8Backbone(
        stackwise_channels=list(config.stackwise_channels),
        stackwise_depth=list(config.stackwise_depth),
        include_rescaling=True,  # inputs are pixels in [0, 255], as decode_and_resize gives
        activation="swish",
        input_shape=(config.input_size, config.input_size, 3),
    )
    if config.weights:
        if Path(config.weights).exists():
            backbone.load_weights(config.weights)
        else:  # a KerasCV preset: needs the network
            preset = keras_cv.models.YOLOV8Backbone.from_preset(
                config.weights, input_shape=(config.input_size, config.input_size, 3)
            )
            backbone.set_weights(preset.get_weights())
    return keras_cv.models.YOLOV8Detector(
        num_classes=len(config.classes),
        bounding_box_format=BOX_FORMAT,
        backbone=backbone,
        fpn_depth=config.fpn_depth,
    )


def compile_detector(model, config: DetectorConfig, steps_per_epoch: int) -> None:
    """AdamW with linear warm-up then cosine decay, CIoU box loss, BCE class loss."""
    import keras

    total = max(1, config.epochs * steps_per_epoch)
    warmup = min(total // 2, config.warmup_epochs * steps_per_epoch)
    schedule = keras.optimizers.schedules.CosineDecay(
        config.learning_rate * 0.1, decay_steps=max(1, total - warmup), alpha=0.02,
        warmup_target=config.learning_rate, warmup_steps=warmup,
    )
    model.compile(
        optimizer=keras.optimizers.AdamW(schedule, weight_decay=config.weight_decay, global_clipnorm=10.0),
        classification_loss="binary_crossentropy",
        box_loss="ciou",
        box_loss_weight=config.box_loss_weight,
        classification_loss_weight=config.classification_loss_weight,
        jit_compile=False,  # XLA on CPU: 1.8x slower steps and a longer first trace, measured here
    )


def decode_detections(
    model,
    raw: dict,
    input_size: int,
    score_threshold: float,
    iou_threshold: float,
    max_detections: int,
) -> dict:
    """Raw YOLOv8 head outputs -> per-class NMS-filtered detections (TF graph ops).

    Returns ``boxes`` [B, max_detections, 4] (xyxy, input pixels), ``scores``,
    ``classes`` (int32, index into the config's classes), ``num_detections`` [B].
    """
    import tensorflow as tf
    from keras_cv.src.models.object_detection.yolo_v8.yolo_v8_detector import (
        decode_regression_to_boxes,
        dist2bbox,
        get_anchors,
    )

    anchors, strides = get_anchors(image_shape=(input_size, input_size, 3))
    distances = decode_regression_to_boxes(raw["boxes"])
    boxes = dist2bbox(distances, anchors) * tf.expand_dims(strides, -1)  # [B, A, 4] xyxy pixels
    scores = tf.cast(raw["classes"], tf.float32)  # sigmoid already applied by the head
    x0, y0, x1, y1 = tf.unstack(tf.cast(boxes, tf.float32), axis=-1)
    yxyx = tf.stack([y0, x0, y1, x1], axis=-1) / float(input_size)
    nms = tf.image.combined_non_max_suppression(
        yxyx[:, :, None, :], scores,
        max_output_size_per_class=max_detections, max_total_size=max_detections,
        iou_threshold=iou_threshold, score_threshold=score_threshold, clip_boxes=True,
    )
    ny0, nx0, ny1, nx1 = tf.unstack(nms.nmsed_boxes * float(input_size), axis=-1)
    return {
        "boxes": tf.stack([nx0, ny0, nx1, ny1], axis=-1),
        "scores": nms.nmsed_scores,
        "classes": tf.cast(nms.nmsed_classes, tf.int32),
        "num_detections": nms.valid_detections,
    }
