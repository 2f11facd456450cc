"""Detection data: per-photo garment boxes and the tf.data pipeline.

The CCP reader yields one sample per garment; a detector wants one record per
*photo* with all its boxes. ``photos_from_samples`` groups them by path.
Photos whose garments are all outside the detector's classes stay in as
negatives (their boxes are simply empty).

Geometry is the serving one: every image is letterboxed to a square by
``tf.image.resize_with_pad`` (what ``eyepic.imaging.decode_and_resize`` does
in every export), so the model trains on the same framing it is served with;
``letterbox_geometry`` gives the pad and scale so that boxes go into that
frame for training and come back out of it in the export.

Augmentation fits street photos: a random crop (scale and aspect jitter:
people are framed loosely or tightly, off-centre), a horizontal flip
(clothes are near-symmetric; a vertical one never happens in photos) and
color jitter (street light, white balance, phone processing). Boxes use
KerasCV's ``xyxy`` pixel format, padded with -1 rows to a fixed count so
batches stay dense.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from training.data.samples import Sample, stable_fraction

MAX_BOXES = 8  # CCP gives at most one box per group per photo (7 groups)


@dataclasses.dataclass(frozen=True)
class PhotoBoxes:
    """One photo and every garment box in it (normalised x0, y0, x1, y1)."""

    path: Path
    split: str
    boxes: tuple[tuple[float, float, float, float], ...]
    classes: tuple[int, ...]
    key: str = ""


def photos_from_samples(samples: Sequence[Sample], classes: Sequence[str]) -> list[PhotoBoxes]:
    """Group CCP garment samples by photo; keep boxes of ``classes`` only."""
    index = {name: i for i, name in enumerate(classes)}
    by_path: dict[Path, list[Sample]] = {}
    for s in samples:
        if s.source == "ccp":
            by_path.setdefault(Path(s.path), []).append(s)
    photos = []
    for path in sorted(by_path):
        items = [s for s in by_path[path] if s.group in index]
        photos.append(PhotoBoxes(
            path=path,
            split=by_path[path][0].split,
            boxes=tuple(tuple(float(v) for v in s.box) for s in items),
            classes=tuple(index[s.group] for s in items),
            key=path.stem,
        ))
    return photos


def product_photos_from_samples(samples: Sequence[Sample], classes: Sequence[str], count: int) -> list[PhotoBoxes]:
    """``count`` *train* product photos (not CCP) of ``classes``' groups, each one box over the
    whole photo (the garment fills it; the Analyzer answers a product photo whole), chosen by a
    stable hash of the file so that a recipe always trains on the same ones. Validation product
    photos are never chosen: they measure the end-to-end product metrics."""
    index = {name: i for i, name in enumerate(classes)}
    chosen = sorted((s for s in samples if s.source != "ccp" and s.split == "train" and s.group in index),
                    key=lambda s: stable_fraction(f"detector-products/{s.source}/{s.key or Path(s.path).name}"))
    return [PhotoBoxes(path=Path(s.path), split="train", boxes=((0.0, 0.0, 1.0, 1.0),), classes=(index[s.group],),
                       key=f"{s.source}/{Path(s.path).stem}") for s in chosen[:count]]


def load_detection_photos(data_dir: Path, cache_dir: Path, classes: Sequence[str],
                          product_photos: int = 0) -> list[PhotoBoxes]:
    """The cached CCP samples of ``training.data.sources`` as photos (both splits), and
    ``product_photos`` train product photos (``product_photos_from_samples``)."""
    from training.data.sources import load_samples

    samples = load_samples(data_dir, cache_dir)
    return photos_from_samples(samples, classes) + product_photos_from_samples(samples, classes, product_photos)


def read_detection_folder(root: Path, classes: Sequence[str]) -> list[PhotoBoxes]:
    """Every annotated photo of a CCP-layout folder, all marked "validation"."""
    from training.data.ccp import read_ccp

    return photos_from_samples(read_ccp(Path(root), split_by_hash=False), classes)


def letterbox_geometry(height, width, size: int):
    """(pad_y, pad_x, resized_h, resized_w) of ``tf.image.resize_with_pad`` to ``size``, as floats.

    TensorFlow's formula (floor of the scaled sides and of half the slack)
    in exact integer arithmetic: its own float32 version can come out a pixel
    short inside an optimised graph (830 px tall -> 191 rows, not 192), so
    the exact result is the one to map boxes with.
    """
    import tensorflow as tf

    h, w = tf.cast(height, tf.int64), tf.cast(width, tf.int64)
    m = tf.maximum(h, w)
    rh, rw = (h * size) // m, (w * size) // m
    pad_y, pad_x = (size * m - h * size) // (2 * m), (size * m - w * size) // (2 * m)
    return tuple(tf.cast(v, tf.float32) for v in (pad_y, pad_x, rh, rw))


def to_letterbox(boxes, height, width, size: int):
    """Normalised xyxy boxes of an H x W image -> xyxy pixels in its letterboxed square."""
    import tensorflow as tf

    pad_y, pad_x, rh, rw = letterbox_geometry(height, width, size)
    scale = tf.stack([rw, rh, rw, rh])
    offset = tf.stack([pad_x, pad_y, pad_x, pad_y])
    return boxes * scale + offset


def from_letterbox(boxes, height, width, size: int):
    """xyxy pixels in the letterboxed square -> normalised xyxy of the H x W original, clipped."""
    import tensorflow as tf

    pad_y, pad_x, rh, rw = letterbox_geometry(height, width, size)
    scale = tf.stack([rw, rh, rw, rh])
    offset = tf.stack([pad_x, pad_y, pad_x, pad_y])
    return tf.clip_by_value((boxes - offset) / scale, 0.0, 1.0)


def encoded_image_size(encoded):
    """(height, width) of encoded image bytes, read from the header where it can be.

    JPEG and PNG headers say it; other formats are decoded. Saves the export
    a second full decode next to ``decode_and_resize``.
    """
    import tensorflow as tf

    def png_size():
        ihdr = tf.io.decode_raw(tf.strings.substr(encoded, 16, 8), tf.uint8)
        ihdr = tf.cast(ihdr, tf.int32)
        width = ihdr[0] * 16777216 + ihdr[1] * 65536 + ihdr[2] * 256 + ihdr[3]
        height = ihdr[4] * 16777216 + ihdr[5] * 65536 + ihdr[6] * 256 + ihdr[7]
        return tf.stack([height, width])

    def decoded_size():
        return tf.shape(tf.io.decode_image(encoded, channels=3, expand_animations=False))[:2]

    is_png = tf.equal(tf.strings.substr(encoded, 0, 8), b"\x89PNG\r\n\x1a\n")
    return tf.cond(
        tf.io.is_jpeg(encoded),
        lambda: tf.image.extract_jpeg_shape(encoded)[:2],
        lambda: tf.cond(is_png, png_size, decoded_size),
    )


def _padded(photo: PhotoBoxes) -> tuple[np.ndarray, np.ndarray]:
    boxes = np.full((MAX_BOXES, 4), -1.0, np.float32)
    classes = np.full((MAX_BOXES,), -1.0, np.float32)
    n = min(len(photo.boxes), MAX_BOXES)
    if n:
        boxes[:n] = np.asarray(photo.boxes[:n], np.float32)
        classes[:n] = np.asarray(photo.classes[:n], np.float32)
    return boxes, classes


def _random_crop(image, boxes, classes, config, seed):
    """Crop a random window (scale and aspect jitter); drop boxes mostly cut away."""
    import tensorflow as tf

    h, w = tf.shape(image)[0], tf.shape(image)[1]
    s = tf.random.stateless_uniform([4], seed, 0.0, 1.0)
    scale_w = config.scale_min + (1.0 - config.scale_min) * s[0]
    scale_h = tf.clip_by_value(scale_w * (0.85 + 0.3 * s[1]), config.scale_min, 1.0)
    x0, y0 = (1.0 - scale_w) * s[2], (1.0 - scale_h) * s[3]
    px0 = tf.cast(x0 * tf.cast(w, tf.float32), tf.int32)
    py0 = tf.cast(y0 * tf.cast(h, tf.float32), tf.int32)
    pw = tf.maximum(1, tf.cast(scale_w * tf.cast(w, tf.float32), tf.int32))
    ph = tf.maximum(1, tf.cast(scale_h * tf.cast(h, tf.float32), tf.int32))
    image = tf.image.crop_to_bounding_box(image, py0, px0, ph, pw)
    # the window as the exact fraction the integer crop took
    fx0, fy0 = tf.cast(px0, tf.float32) / tf.cast(w, tf.float32), tf.cast(py0, tf.float32) / tf.cast(h, tf.float32)
    fw, fh = tf.cast(pw, tf.float32) / tf.cast(w, tf.float32), tf.cast(ph, tf.float32) / tf.cast(h, tf.float32)
    valid = classes >= 0
    moved = (boxes - tf.stack([fx0, fy0, fx0, fy0])) / tf.stack([fw, fh, fw, fh])
    clipped = tf.clip_by_value(moved, 0.0, 1.0)
    area = lambda b: tf.maximum(0.0, b[:, 2] - b[:, 0]) * tf.maximum(0.0, b[:, 3] - b[:, 1])  # noqa: E731
    visible = area(clipped) / tf.maximum(area(moved), 1e-9)
    keep = valid & (visible >= config.min_box_visible) & (area(clipped) > 1e-4)
    boxes = tf.where(keep[:, None], clipped, -1.0)
    classes = tf.where(keep, classes, -1.0)
    return image, boxes, classes


def _augment(image, boxes, classes, config, seed):
    import tensorflow as tf

    seeds = tf.random.experimental.stateless_split(seed, 8)
    if config.crop_probability > 0:
        do_crop = tf.random.stateless_uniform([], seeds[0]) < config.crop_probability
        image, boxes, classes = tf.cond(
            do_crop,
            lambda: _random_crop(image, boxes, classes, config, seeds[1]),
            lambda: (image, boxes, classes),
        )
    if config.flip:
        flip = tf.random.stateless_uniform([], seeds[2]) < 0.5
        image = tf.cond(flip, lambda: tf.reverse(image, axis=[1]), lambda: image)
        flipped = tf.stack([1.0 - boxes[:, 2], boxes[:, 1], 1.0 - boxes[:, 0], boxes[:, 3]], axis=1)
        boxes = tf.where(flip & (classes[:, None] >= 0), flipped, boxes)
    if config.color_jitter > 0:
        j = config.color_jitter
        x = tf.cast(image, tf.float32) / 255.0
        x = tf.image.stateless_random_brightness(x, 0.5 * j, seeds[3])
        x = tf.image.stateless_random_contrast(x, 1.0 - j, 1.0 + j, seeds[4])
        x = tf.image.stateless_random_saturation(x, 1.0 - j, 1.0 + j, seeds[5])
        x = tf.image.stateless_random_hue(x, min(0.5, j / 5), seeds[6])
        image = tf.clip_by_value(x, 0.0, 1.0) * 255.0
    return image, boxes, classes


def _side_by_side(first, second, size: int):
    """Two augmented photos scaled to one height and set side by side.

    CCP photos are portrait (2:3); letterboxed alone they leave a third of
    the square as padding. A pair fills it (4:3), so a step sees twice the
    garments at about 3/4 of their single-photo scale, next to another
    person rather than grey bars: the "mosaic" of YOLO training, in the form
    that fits full-body street photos. Boxes stay normalised to the pair.
    """
    import tensorflow as tf

    def scaled(image):
        h, w = tf.shape(image)[0], tf.shape(image)[1]
        new_w = tf.maximum(1, tf.cast(tf.round(tf.cast(w * size, tf.float32) / tf.cast(h, tf.float32)), tf.int32))
        return tf.image.resize(tf.cast(image, tf.float32), tf.stack([size, new_w]), antialias=True)

    a, b = scaled(first[0]), scaled(second[0])
    wa, wb = tf.cast(tf.shape(a)[1], tf.float32), tf.cast(tf.shape(b)[1], tf.float32)
    total = wa + wb

    def moved(boxes, classes, x_offset, width):
        shifted = tf.stack([(x_offset + boxes[:, 0] * width) / total, boxes[:, 1],
                            (x_offset + boxes[:, 2] * width) / total, boxes[:, 3]], axis=1)
        return tf.where(classes[:, None] >= 0, shifted, -1.0)

    image = tf.concat([a, b], axis=1)
    boxes = tf.concat([moved(first[1], first[2], 0.0, wa), moved(second[1], second[2], wa, wb)], axis=0)
    return image, boxes, tf.concat([first[2], second[2]], axis=0)


def make_detection_dataset(
    photos: Sequence[PhotoBoxes],
    config,
    training: bool,
    seed: int = 0,
    repeat: bool = False,
):
    """tf.data of (images [B,S,S,3] float 0-255, {"boxes" [B,M,4] xyxy px, "classes" [B,M]}).

    Encoded bytes are held in memory (800 JPEGs are ~100 MB) and decoded per
    step; training adds the augmentation above before letterboxing and, with
    ``config.mosaic_probability``, pairs photos side by side (M is then
    ``2 * MAX_BOXES``; evaluation keeps ``MAX_BOXES``).
    """
    import tensorflow as tf

    size = int(config.input_size)
    mosaic = float(getattr(config, "mosaic_probability", 0.0)) if training else 0.0
    encoded = [Path(p.path).read_bytes() for p in photos]
    padded = [_padded(p) for p in photos]
    tensors = (
        tf.constant(encoded, tf.string),
        np.stack([b for b, _ in padded]) if padded else np.zeros((0, MAX_BOXES, 4), np.float32),
        np.stack([c for _, c in padded]) if padded else np.zeros((0, MAX_BOXES), np.float32),
        np.arange(len(photos), dtype=np.int64),
    )
    ds = tf.data.Dataset.from_tensor_slices(tensors)
    if training:
        ds = ds.shuffle(len(photos), seed=seed, reshuffle_each_iteration=True)
    if repeat:
        ds = ds.repeat()

    def decoded(data, boxes, classes, index, salt):
        image = tf.io.decode_image(data, channels=3, expand_animations=False)
        if training:
            step_seed = tf.stack([tf.cast(seed, tf.int64) + salt, index])
            step_seed = tf.random.experimental.stateless_fold_in(step_seed, tf.random.uniform([], 0, 2**30, tf.int64))
            image, boxes, classes = _augment(image, boxes, classes, config, step_seed)
        return image, boxes, classes

    def letterboxed(image, boxes, classes):
        h, w = tf.shape(image)[0], tf.shape(image)[1]
        pixels = tf.image.resize_with_pad(tf.cast(image, tf.float32), size, size, antialias=True)
        pixels = tf.clip_by_value(pixels, 0.0, 255.0)
        valid = classes >= 0
        px = to_letterbox(boxes, h, w, size)
        px = tf.where(valid[:, None], px, -1.0)
        return pixels, {"boxes": px, "classes": classes}

    def load(data, boxes, classes, index):
        return letterboxed(*decoded(data, boxes, classes, index, 0))

    def load_pair(first, second):
        image, boxes, classes = decoded(*first, 0)

        def single():
            return (tf.cast(image, tf.float32), tf.concat([boxes, tf.fill([MAX_BOXES, 4], -1.0)], 0),
                    tf.concat([classes, tf.fill([MAX_BOXES], -1.0)], 0))

        def paired():
            return _side_by_side((image, boxes, classes), decoded(*second, 1), size)

        use_pair = tf.random.uniform([]) < mosaic
        return letterboxed(*tf.cond(use_pair, paired, single))

    if mosaic > 0:
        partners = tf.data.Dataset.from_tensor_slices(tensors).shuffle(
            max(1, len(photos)), seed=seed + 1, reshuffle_each_iteration=True).repeat()
        ds = tf.data.Dataset.zip((ds, partners)).map(load_pair, num_parallel_calls=tf.data.AUTOTUNE,
                                                     deterministic=False)
    else:
        ds = ds.map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=not training)
    return ds.batch(config.batch_size).prefetch(tf.data.AUTOTUNE)
