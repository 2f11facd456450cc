"""Export a trained model for serving: ``models/<name>/<int version>/`` (layout: ``eyepic.exports``).

The SavedModel's ``serving_default`` takes a batch of *encoded image bytes*
(``images``: tf.string [batch]) and runs ``eyepic.imaging.decode_and_resize``
inside the graph, then the model, and returns named outputs. Beside it:
``metadata.json`` (class lists, palette, input size, embedding dim, metrics,
training data hash, git commit) and TF Serving warm-up requests in
``assets.extra/tf_serving_warmup_requests`` built from real images.
"""

from __future__ import annotations

import subprocess  # nosec B404 # fixed argv lists below, never a shell
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from eyepic import colors, exports, taxonomy
from eyepic.exports import CLASSIFIER_OUTPUTS, DETECTOR_OUTPUTS, INPUT_KEY, SIGNATURE, WARMUP_FILE, Staged
from eyepic.exports import next_version as next_version  # the version rule lives in eyepic.exports


def git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"],  # nosec B603 B607 # git from PATH, fixed argv
                             capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return out.stdout.strip()


def _write(staged: Staged, metadata: dict, provenance: dict, warmup_images: Sequence[bytes]) -> Staged:
    """Write metadata.json (+ provenance) and warm-up requests into the staged folder.

    Publishing (``eyepic.exports.publish``, the atomic rename) is the caller's
    commit, after calibration and evaluation have written into the same folder.
    """
    metadata = {**metadata, **provenance, "git_commit": git_commit(),
                "exported_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    exports.write_metadata(staged.path, metadata)
    if warmup_images:
        write_warmup_requests(staged.path, staged.name, list(warmup_images))
    return staged


def export_classifier(model: Any, model_dir: Path, name: str = "classifier", **options: Any) -> Path:
    """``stage_classifier`` then publish at once: the next version of ``name``; returns its folder."""
    return exports.publish(stage_classifier(model, model_dir, name, **options))


def export_detector(model: Any, config: Any, model_dir: Path, name: str = "detector", **options: Any) -> Path:
    """``stage_detector`` then publish at once: the next version of ``name``; returns its folder."""
    return exports.publish(stage_detector(model, config, model_dir, name, **options))


def stage_classifier(
    model: Any,
    model_dir: Path,
    name: str = "classifier",
    metrics: dict | None = None,
    training: dict | None = None,
    data_hash: str = "",
    warmup_images: Sequence[bytes] = (),
    version: int | None = None,
    test_time_flip: bool = False,
    extra_metadata: dict | None = None,
) -> Staged:
    """Write the next version of ``name`` under ``model_dir`` into a staging folder.

    ``eyepic.exports.publish`` renames it into place, so a server scanning
    ``model_dir`` never sees a half-written version. With
    ``test_time_flip`` the graph also runs the mirrored image and averages
    (``average_with_mirror``); ``metadata.json`` says so. ``extra_metadata``
    (e.g. a released model's calibration) is written with it, before publishing.
    """
    import keras
    import tensorflow as tf

    from eyepic.imaging import decode_and_resize
    from training.models.classifier import average_with_mirror

    size = int(model.input_shape[1])
    staged = exports.stage(model_dir, name, version)
    tmp, version = staged.path, staged.version

    def serve(images):
        pixels = tf.map_fn(
            lambda b: decode_and_resize(b, size), images,
            fn_output_signature=tf.TensorSpec((size, size, 3), tf.float32),
        )
        outputs = model(pixels, training=False)
        if test_time_flip:
            outputs = average_with_mirror(outputs, model(tf.reverse(pixels, axis=[2]), training=False))
        return {key: tf.identity(outputs[key], name=key) for key in CLASSIFIER_OUTPUTS}

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(
        name=SIGNATURE, fn=serve,
        input_signature=[tf.TensorSpec([None], tf.string, name=INPUT_KEY)],
    )
    archive.write_out(str(tmp), verbose=False)
    metadata = {
        "name": name,
        "version": version,
        "kind": "classifier",
        "input_key": INPUT_KEY,
        "input_size": size,
        "outputs": list(CLASSIFIER_OUTPUTS),
        "test_time_flip": bool(test_time_flip),
        "embedding_dim": int(model.get_layer("embedding").output.shape[-1]),
        "classes": {
            "group": list(taxonomy.GROUP_NAMES),
            "type": list(taxonomy.TYPE_NAMES),
            "color": list(colors.COLOR_NAMES),
        },
        "taxonomy": taxonomy.as_dict(),
        "palette": colors.as_dict(),
        "model_config": model.get_config(),
        **(extra_metadata or {}),
    }
    provenance = {"metrics": metrics or {}, "training": training or {}, "data_hash": data_hash}
    return _write(staged, metadata, provenance, warmup_images)


def write_warmup_requests(export_dir: Path, model_name: str, images: list[bytes], batch: int = 4) -> Path:
    """``assets.extra/tf_serving_warmup_requests``: PredictionLogs TF Serving replays at load."""
    import tensorflow as tf
    from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_log_pb2

    out = Path(export_dir) / WARMUP_FILE
    out.parent.mkdir(parents=True, exist_ok=True)
    with tf.io.TFRecordWriter(str(out)) as writer:
        for n in sorted({1, min(batch, len(images))}):
            request = predict_pb2.PredictRequest(
                model_spec=model_pb2.ModelSpec(name=model_name, signature_name=SIGNATURE)
            )
            request.inputs[INPUT_KEY].CopyFrom(tf.make_tensor_proto(images[:n], dtype=tf.string))
            log = prediction_log_pb2.PredictionLog(
                predict_log=prediction_log_pb2.PredictLog(request=request)
            )
            writer.write(log.SerializeToString())
    return out


EVALUATION_SIGNATURE = "detect_all"


def stage_detector(
    model: Any,
    config: Any,
    model_dir: Path,
    name: str = "detector",
    metrics: dict | None = None,
    training: dict | None = None,
    data_hash: str = "",
    warmup_images: Sequence[bytes] = (),
    version: int | None = None,
    extra_metadata: dict | None = None,
) -> Staged:
    """Write the next version of the garment detector under ``model_dir`` into a staging folder.

    ``serving_default`` (input ``images``: tf.string [None]) decodes and
    letterboxes in the graph (``decode_and_resize``), runs the YOLOv8 model,
    decodes its boxes, applies per-class NMS and maps the boxes back to the
    *original* image: ``boxes`` [B, max_detections, 4] normalised x0, y0, x1,
    y1; ``scores`` [B, max]; ``classes`` [B, max] int32 indexing
    ``metadata.classes.group``; ``num_detections`` [B]. Rows past
    ``num_detections`` are zero. Its parameters come from ``config``:
    ``score_threshold`` (drop boxes below it), ``iou_threshold`` (per-class
    NMS) and ``max_detections`` (at most that many per photo), and are
    recorded in metadata.json. ``detect_all`` is the same graph with threshold
    0.001 and 100 detections, for evaluation (complete PR curves).
    """
    import keras
    import tensorflow as tf

    from eyepic.imaging import decode_and_resize
    from training.data.detection import encoded_image_size, from_letterbox
    from training.models.detector import decode_detections

    size = int(config.input_size)
    staged = exports.stage(model_dir, name, version)
    tmp, version = staged.path, staged.version

    def make_endpoint(score_threshold: float, max_detections: int):
        def detect(images):
            pixels = tf.map_fn(
                lambda b: decode_and_resize(b, size), images,
                fn_output_signature=tf.TensorSpec((size, size, 3), tf.float32),
            )
            shapes = tf.map_fn(encoded_image_size, images, fn_output_signature=tf.TensorSpec((2,), tf.int32))
            raw = model(pixels, training=False)
            dets = decode_detections(model, raw, size, score_threshold, config.iou_threshold, max_detections)
            boxes = tf.map_fn(
                lambda a: from_letterbox(a[0], a[1][0], a[1][1], size), (dets["boxes"], shapes),
                fn_output_signature=tf.TensorSpec((max_detections, 4), tf.float32),
            )
            valid = tf.sequence_mask(dets["num_detections"], max_detections)
            boxes = tf.where(valid[:, :, None], boxes, 0.0)
            return {
                "boxes": tf.identity(boxes, name="boxes"),
                "scores": tf.identity(dets["scores"], name="scores"),
                "classes": tf.identity(dets["classes"], name="classes"),
                "num_detections": tf.identity(dets["num_detections"], name="num_detections"),
            }

        return detect

    signature = [tf.TensorSpec([None], tf.string, name=INPUT_KEY)]
    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(name=SIGNATURE, input_signature=signature,
                         fn=make_endpoint(float(config.score_threshold), int(config.max_detections)))
    archive.add_endpoint(name=EVALUATION_SIGNATURE, input_signature=signature, fn=make_endpoint(0.001, 100))
    archive.write_out(str(tmp), verbose=False)
    metadata = {
        "name": name,
        "version": version,
        "kind": "detector",
        "input_key": INPUT_KEY,
        "input_size": size,
        "outputs": list(DETECTOR_OUTPUTS),
        "box_format": "normalised x0, y0, x1, y1 in the original image frame",
        "classes": {"group": list(config.classes)},
        "score_threshold": float(config.score_threshold),
        "iou_threshold": float(config.iou_threshold),
        "max_detections": int(config.max_detections),
        "signatures": {SIGNATURE: "served detections",
                       EVALUATION_SIGNATURE: "threshold 0.001, 100 detections: for evaluation"},
        "model_config": config.as_dict(),
        **(extra_metadata or {}),
    }
    provenance = {"metrics": metrics or {}, "training": training or {}, "data_hash": data_hash}
    return _write(staged, metadata, provenance, warmup_images)
