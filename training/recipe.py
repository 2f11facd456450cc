"""The classifier's training recipe: every field can be set in ``training/configs/*.yaml``."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from eyepic.exports import CLASSIFIER_HEADS
from training.errors import config_from_yaml

HEADS = CLASSIFIER_HEADS  # the classification outputs, each with a loss

@dataclasses.dataclass
class ClassifierRecipe:
    """A training recipe; every field can be set in training/configs/*.yaml."""

    backbone: str = "compact"
    weights: str | None = None
    input_size: int = 128
    embedding_dim: int = 128
    width: int = 32
    blocks: int = 1
    dropout: float = 0.2
    epochs: int = 20
    batch_size: int = 32
    learning_rate: float = 3e-3
    weight_decay: float = 1e-4
    patience: int = 5
    color_loss_weight: float = 0.5
    group_loss_weight: float = 0.5
    # Supervised contrastive loss on the embedding over (type, color) pairs; 0 = off.
    embedding_loss_weight: float = 0.0
    temperature: float = 0.1
    label_smoothing: float = 0.0  # on the group and type heads (color labels are hue bins, kept hard)
    # Training views: 0 = light zoom; > 0 = random-resized crops of at least this area fraction.
    min_crop_area: float = 0.0
    # CCP train photos held out of training for calibrating serving choices
    # (training.calibrate); 0 = none held out, calibration then uses training crops.
    calibration_fraction: float = 0.0
    # Two-stage transfer (pretrained weights): heads only for freeze_epochs, then
    # the backbone from the layer named unfreeze_from (a prefix; None = all of it).
    test_time_flip: bool = False  # the export averages each image with its mirror
    freeze_epochs: int = 0
    unfreeze_from: str | None = None
    fine_tune_learning_rate: float | None = None
    max_train_samples: int | None = None  # tests train on a handful
    seed: int = 0

    @classmethod
    def from_yaml(cls, path: Path) -> ClassifierRecipe:
        return config_from_yaml(cls, path, "recipe")
