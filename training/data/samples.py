"""The labelled sample every reader produces and every pipeline consumes."""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

from eyepic.schema import Box
from training.errors import TrainingInputError

FULL: Box = (0.0, 0.0, 1.0, 1.0)
IGNORE = -1  # label of a head the sample has no label for
PAIR_BASE = 100  # embedding labels pack (type, color) as type * PAIR_BASE + color + 1


def pair_keys(type_ids, color_ids):
    """(type, color) label pairs packed into one int per sample for the embedding loss;
    an unknown color (IGNORE) packs as 0 and matches any color."""
    import numpy as np

    return (np.asarray(type_ids) * PAIR_BASE + np.asarray(color_ids) + 1).astype(np.int32)


@dataclasses.dataclass(frozen=True)
class Sample:
    """One garment image: a photo, the garment's box in it, and its labels.

    ``color`` is None where the source has no trustworthy color label.
    """

    path: Path
    source: str  # "clothing-small" | "clothing-extra" | "ccp"
    split: str  # "train" | "validation"
    type: str
    group: str
    color: str | None = None
    box: Box = FULL
    key: str = ""  # stable id within its source (photo id, file stem)


def stable_fraction(key: str) -> float:
    """A number in [0, 1) fixed by ``key``: splits never change between runs."""
    digest = hashlib.sha1(key.encode(), usedforsecurity=False).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def train_validation(items, max_train: int | None = None) -> tuple[list, list]:
    """Split anything with a ``.split`` into (train, validation); both must be non-empty.

    ``max_train`` caps the train side (tests train on a handful); validation
    is never cut, so numbers stay comparable.
    """
    train = [x for x in items if x.split == "train"][: max_train or None]
    val = [x for x in items if x.split == "validation"]
    if not train or not val:
        raise TrainingInputError(f"need train and validation data, got {len(train)} and {len(val)}")
    return train, val


def calibration_part(samples, fraction: float) -> tuple[list, list]:
    """(the rest, the calibration crops): CCP train photos set aside, whole, for calibration.

    A fixed ``fraction`` of CCP train photos by their own hash (never
    validation, never product photos). A recipe that holds them out trains
    without them, so serving choices calibrated on them (``training.calibrate``)
    are not fitted to crops the model has memorised. ``fraction`` 0 holds out
    nothing.
    """
    def held(s) -> bool:
        return fraction > 0 and calibration_rank(s) < fraction

    return [s for s in samples if not held(s)], [s for s in samples if held(s)]


def calibration_rank(sample) -> float:
    """Where a sample falls in the calibration hold-out order: a CCP train
    photo's own hash in [0, 1), held out by any ``fraction`` above it; ``inf``
    for samples that are never held out. Stored in portable bundles so a
    trainer without the sample paths holds out the same photos."""
    if sample.source != "ccp" or sample.split != "train":
        return float("inf")
    return stable_fraction(f"calibration/{Path(sample.path).stem}")
