"""tf.data pipelines from Samples, using the one in-graph preprocessing.

Every sample goes through ``eyepic.imaging.crop_and_resize`` (the same
decode/resize serving's graph runs), is cached in memory at model size, and
only then augmented (training only): horizontal flip, a random crop
(light: small shifts and zoom; or random-resized: a random area and aspect
of the crop, the usual from-scratch regulariser), brightness/contrast. No
hue jitter: the color head's labels are hues.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import tensorflow as tf

from eyepic import colors, taxonomy
from eyepic.imaging import crop_and_resize
from training.data.samples import IGNORE, Sample, pair_keys
from training.data.views import ASPECT_RANGE


def label_arrays(samples: Sequence[Sample]) -> dict[str, np.ndarray]:
    group_ids = {n: i for i, n in enumerate(taxonomy.GROUP_NAMES)}
    type_ids = {n: i for i, n in enumerate(taxonomy.TYPE_NAMES)}
    color_ids = {n: i for i, n in enumerate(colors.COLOR_NAMES)}
    labels = {
        "group_probs": np.array([group_ids[s.group] for s in samples], dtype=np.int32),
        "type_probs": np.array([type_ids[s.type] for s in samples], dtype=np.int32),
        "color_probs": np.array([color_ids.get(s.color or "", IGNORE) for s in samples], dtype=np.int32),
    }
    labels["embedding"] = pair_keys(labels["type_probs"], labels["color_probs"])
    return labels


def augment(image: tf.Tensor, size: int, min_crop_area: float = 0.0) -> tf.Tensor:
    """One training view of a (size, size, 3) crop.

    ``min_crop_area`` 0 is the light zoom (a square window of at least 76 %
    of the area); above 0 a random-resized crop: area fraction uniform in
    [min_crop_area, 1], aspect log-uniform in ``ASPECT_RANGE``, resized back.
    """
    image = tf.image.random_flip_left_right(image)
    if min_crop_area > 0:
        image = random_resized_crop(image, size, min_crop_area)
    else:
        scale = tf.random.uniform([], 1.0, 1.15)
        big = tf.cast(tf.cast(size, tf.float32) * scale, tf.int32)
        image = tf.image.resize(image, [big, big])
        image = tf.image.random_crop(image, [size, size, 3])
    image = tf.image.random_brightness(image, 20.0)
    image = tf.image.random_contrast(image, 0.85, 1.15)
    return tf.clip_by_value(image, 0.0, 255.0)


def random_resized_crop(image: tf.Tensor, size: int, min_area: float) -> tf.Tensor:
    area = tf.random.uniform([], min_area, 1.0)
    aspect = tf.exp(tf.random.uniform([], np.log(ASPECT_RANGE[0]), np.log(ASPECT_RANGE[1])))
    width = tf.minimum(1.0, tf.sqrt(area * aspect))
    height = tf.minimum(1.0, tf.sqrt(area / aspect))
    x0 = tf.random.uniform([]) * (1.0 - width)
    y0 = tf.random.uniform([]) * (1.0 - height)
    box = tf.stack([y0, x0, y0 + height, x0 + width])[None]
    return tf.image.crop_and_resize(tf.cast(image, tf.float32)[None], box, [0], [size, size])[0]


def make_dataset(
    samples: Sequence[Sample],
    input_size: int,
    batch_size: int,
    training: bool,
    seed: int = 0,
    outputs: Sequence[str] = ("group_probs", "type_probs", "color_probs"),
    min_crop_area: float = 0.0,
) -> tf.data.Dataset:
    """(image, labels) batches; ``outputs`` names the labels to yield (those with a loss)."""
    paths = [str(s.path) for s in samples]
    boxes = np.array([s.box for s in samples], dtype=np.float32)
    labels = {k: v for k, v in label_arrays(samples).items() if k in outputs}
    ds = tf.data.Dataset.from_tensor_slices((paths, boxes, labels))

    def load(path, box, label):
        return crop_and_resize(tf.io.read_file(path), box, input_size), label

    ds = ds.map(load, num_parallel_calls=tf.data.AUTOTUNE).cache()
    if training:
        ds = ds.shuffle(len(samples), seed=seed, reshuffle_each_iteration=True)
        ds = ds.map(lambda x, y: (augment(x, input_size, min_crop_area), y), num_parallel_calls=tf.data.AUTOTUNE)
    return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)
