"""Train the garment classifier/embedder from a recipe (YAML config).

One function, ``train_classifier``: samples -> fit with progress, early
stopping and a cosine schedule -> per-epoch history, plots and metrics in a
report folder -> export (training.export) as the next integer version.

With pretrained weights the recipe is the classic two-stage transfer:
``freeze_epochs`` with the backbone frozen (only the new heads learn, so
their random gradients cannot wreck the pretrained filters), then the
backbone's top layers from ``unfreeze_from`` on are unfrozen and trained at
the lower ``fine_tune_learning_rate``. BatchNormalization layers stay in
inference mode throughout that recipe: their ImageNet statistics are worth
more than estimates from 16-image batches. From scratch (``freeze_epochs``
0) everything trains from the first step.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from eyepic import colors, taxonomy
from training.data.samples import Sample, calibration_part, train_validation
from training.errors import RunNotFinished, TrainingInputError

HEADS = ("group_probs", "type_probs", "color_probs")


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
        raw = yaml.safe_load(Path(path).read_text()) or {}
        unknown = set(raw) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise TrainingInputError(f"{path}: unknown recipe keys {sorted(unknown)}")
        return cls(**raw)


def build_model(recipe: ClassifierRecipe):
    from training.models.classifier import GarmentClassifier

    return GarmentClassifier(
        num_groups=len(taxonomy.GROUP_NAMES),
        num_types=len(taxonomy.TYPE_NAMES),
        num_colors=len(colors.COLOR_NAMES),
        backbone=recipe.backbone,
        input_size=recipe.input_size,
        embedding_dim=recipe.embedding_dim,
        width=recipe.width,
        blocks=recipe.blocks,
        dropout=recipe.dropout,
        weights=recipe.weights,
    )


def _masked_accuracy_class():
    import keras

    from training.data.samples import IGNORE

    class MaskedAccuracy(keras.metrics.Mean):
        """Top-1 accuracy over the samples that have a label for this head."""

        def update_state(self, y_true, y_pred, sample_weight=None):
            y_true = keras.ops.reshape(keras.ops.cast(y_true, "int32"), (-1,))
            hit = keras.ops.cast(keras.ops.argmax(y_pred, axis=-1) == y_true, "float32")
            weight = keras.ops.cast(y_true != IGNORE, "float32")
            return super().update_state(hit, sample_weight=weight)

    return MaskedAccuracy


def smoothed_sparse_crossentropy(smoothing: float):
    """Cross-entropy of probabilities against integer labels smoothed by ``smoothing``.

    Keras 3's sparse loss has no label smoothing; this one-hot version is for
    heads whose every sample has a label (group, type).
    """
    from keras import ops

    def loss(y_true, y_pred):
        classes = ops.shape(y_pred)[-1]
        target = ops.one_hot(ops.reshape(ops.cast(y_true, "int32"), (-1,)), classes)
        target = target * (1.0 - smoothing) + smoothing / ops.cast(classes, y_pred.dtype)
        return -ops.sum(target * ops.log(ops.clip(y_pred, 1e-7, 1.0)), axis=-1)

    return loss


def backbone_layers(model) -> list:
    """The backbone's layers in order: a nested application model's, or the
    compact net's (everything between the input and the pooling layer)."""
    import keras

    nested = [layer for layer in model.layers if isinstance(layer, keras.Model)]
    if nested:
        return list(nested[0].layers)
    names = [layer.name for layer in model.layers]
    return [layer for layer in model.layers[1:names.index("pool")]
            if not isinstance(layer, keras.layers.InputLayer)]


def set_backbone_trainable(model, unfreeze_from: str | None, frozen: bool) -> list[str]:
    """Freeze the whole backbone (``frozen``) or unfreeze it from the first
    layer whose name starts with ``unfreeze_from``; BatchNormalization stays
    frozen (inference mode). Returns the names of the trainable backbone layers."""
    import keras

    layers = backbone_layers(model)
    for layer in [layer for layer in model.layers if isinstance(layer, keras.Model)]:
        layer.trainable = True  # a nested model's flag would override its layers'
    start = 0
    if unfreeze_from:
        starts = [i for i, layer in enumerate(layers) if layer.name.startswith(unfreeze_from)]
        if not starts:
            raise TrainingInputError(f"unfreeze_from={unfreeze_from!r}: no backbone layer has that name prefix")
        start = starts[0]
    trainable = []
    for i, layer in enumerate(layers):
        layer.trainable = (not frozen and i >= start
                           and not isinstance(layer, keras.layers.BatchNormalization))
        if layer.trainable and layer.weights:
            trainable.append(layer.name)
    return trainable


COSINE_ALPHA = 0.02  # the schedule ends at this share of the initial learning rate


def compile_model(model, recipe: ClassifierRecipe, steps_per_epoch: int, epochs: int | None = None,
                  learning_rate: float | None = None, per_step_cosine: bool = True,
                  steps_per_execution: int = 1) -> None:
    """Compile ``model`` (a training view) with a cosine schedule over ``epochs``
    (default the recipe's) from ``learning_rate`` (default the recipe's).

    ``per_step_cosine`` False leaves a plain learning-rate variable for a
    callback to drive (``training.portable``'s time-budgeted cosine).
    """
    import keras

    from training.data.samples import IGNORE

    MaskedAccuracy = _masked_accuracy_class()
    schedule = keras.optimizers.schedules.CosineDecay(
        learning_rate or recipe.learning_rate,
        decay_steps=max(1, (epochs or recipe.epochs) * steps_per_epoch), alpha=COSINE_ALPHA,
        warmup_target=None,
    ) if per_step_cosine else float(learning_rate or recipe.learning_rate)
    loss = {
        name: keras.losses.SparseCategoricalCrossentropy(ignore_class=IGNORE)
        for name in HEADS
    }
    if recipe.label_smoothing > 0:
        for name in ("group_probs", "type_probs"):
            loss[name] = smoothed_sparse_crossentropy(recipe.label_smoothing)
    weights = {"group_probs": recipe.group_loss_weight, "type_probs": 1.0,
               "color_probs": recipe.color_loss_weight}
    metrics = {name: [MaskedAccuracy(name="accuracy")] for name in HEADS}
    if recipe.embedding_loss_weight > 0:
        loss["embedding"] = supervised_contrastive_loss(recipe.temperature)
        weights["embedding"] = recipe.embedding_loss_weight
    model.compile(
        optimizer=keras.optimizers.AdamW(schedule, weight_decay=recipe.weight_decay),
        loss=loss,
        loss_weights=weights,
        metrics=metrics,
        steps_per_execution=steps_per_execution,
    )


def trained_outputs(recipe: ClassifierRecipe) -> tuple[str, ...]:
    """The model outputs a recipe puts a loss on."""
    return HEADS + (("embedding",) if recipe.embedding_loss_weight > 0 else ())


def training_view(model, recipe: ClassifierRecipe):
    """A Keras model over the outputs with losses; it shares every layer with
    ``model``, which keeps all outputs for export."""
    import keras

    return keras.Model(model.input, {k: model.output[k] for k in trained_outputs(recipe)}, name="training_view")


def supervised_contrastive_loss(temperature: float):
    """SupCon (Khosla et al., 2020) over in-batch (type, color) pairs.

    Positives of an anchor: other samples of its type whose colors agree (an
    unknown color agrees with any). Returns one loss per sample; anchors with
    no positive in the batch contribute 0. Pulls same type+color together in
    the embedding, which is what "more like this" ranks by.
    """
    from keras import ops

    from training.data.samples import PAIR_BASE

    def loss(y_true, y_pred):
        keys = ops.reshape(ops.cast(y_true, "int32"), (-1,))
        types, colors = keys // PAIR_BASE, keys % PAIR_BASE
        same_type = ops.equal(types[:, None], types[None, :])
        color_ok = ops.logical_or(ops.equal(colors[:, None], colors[None, :]),
                                  ops.logical_or(ops.equal(colors[:, None], 0), ops.equal(colors[None, :], 0)))
        n = ops.shape(keys)[0]
        not_self = ops.logical_not(ops.cast(ops.eye(n), "bool"))
        positive = ops.cast(ops.logical_and(ops.logical_and(same_type, color_ok), not_self), "float32")
        logits = ops.matmul(y_pred, ops.transpose(y_pred)) / temperature
        logits = logits - ops.max(logits, axis=1, keepdims=True)
        exp = ops.exp(logits) * ops.cast(not_self, "float32")
        log_prob = logits - ops.log(ops.sum(exp, axis=1, keepdims=True) + 1e-9)
        count = ops.sum(positive, axis=1)
        mean_log_prob = ops.sum(positive * log_prob, axis=1) / ops.maximum(count, 1.0)
        return -mean_log_prob * ops.cast(count > 0, "float32")

    return loss


def train_classifier(
    samples: Sequence[Sample],
    recipe: ClassifierRecipe,
    report_dir: Path,
    verbose: int | str = "auto",
    callbacks: Sequence[Any] = (),
) -> tuple[Any, dict]:
    """Fit on the train split, early-stop on validation; returns (model, history).

    ``callbacks`` are added to Keras's own (progress, logs) in every stage.
    """
    import keras

    from training.data.pipeline import make_dataset

    keras.utils.set_random_seed(recipe.seed)
    kept, held_out = calibration_part(samples, recipe.calibration_fraction)
    train, val = train_validation(kept, recipe.max_train_samples)
    outputs = trained_outputs(recipe)
    train_ds = make_dataset(train, recipe.input_size, recipe.batch_size, training=True, seed=recipe.seed,
                            outputs=outputs, min_crop_area=recipe.min_crop_area)
    val_ds = make_dataset(val, recipe.input_size, recipe.batch_size, training=False, outputs=outputs)
    steps = -(-len(train) // recipe.batch_size)
    model = build_model(recipe)
    heads = training_view(model, recipe)
    report_dir = Path(report_dir)
    report_dir.mkdir(parents=True, exist_ok=True)
    logs = [
        keras.callbacks.CSVLogger(str(report_dir / "history.csv"), append=True),
        keras.callbacks.TensorBoard(str(report_dir / "tensorboard"), write_graph=False),
        *callbacks,
    ]
    started = time.time()
    merged: dict[str, list[float]] = {}
    stages = []
    freeze = min(max(0, recipe.freeze_epochs), recipe.epochs)
    if freeze:  # stage 1: the new heads only
        stages.append({"epochs": freeze, "trainable_backbone_layers": set_backbone_trainable(
            model, recipe.unfreeze_from, frozen=True)})
        compile_model(heads, recipe, steps, epochs=freeze)
        history = heads.fit(train_ds, validation_data=val_ds, epochs=freeze, callbacks=logs, verbose=verbose)
        _extend(merged, history.history)
        trainable = set_backbone_trainable(model, recipe.unfreeze_from, frozen=False)
        stages.append({"epochs": recipe.epochs - freeze, "trainable_backbone_layers": trainable})
        compile_model(heads, recipe, steps, epochs=recipe.epochs - freeze,
                      learning_rate=recipe.fine_tune_learning_rate or recipe.learning_rate / 10)
    else:
        compile_model(heads, recipe, steps)
    if recipe.epochs > freeze:
        early = keras.callbacks.EarlyStopping(
            monitor="val_type_probs_accuracy", mode="max", patience=recipe.patience,
            restore_best_weights=True,
        )
        history = heads.fit(train_ds, validation_data=val_ds, epochs=recipe.epochs, initial_epoch=freeze,
                            callbacks=[early, *logs], verbose=verbose)
        _extend(merged, history.history)
    info = {
        "history": merged,
        "stages": stages,
        "train_seconds": round(time.time() - started, 1),
        "train_samples": len(train),
        "validation_samples": len(val),
        "calibration_samples": len(held_out),
        "recipe": dataclasses.asdict(recipe),
    }
    keep_run(model, info, report_dir)
    return model, info


TRAINED_WEIGHTS = "trained.weights.h5"
TRAINED_CONFIG = "trained_model.json"


def keep_run(model, info: dict, report_dir: Path) -> None:
    """A finished run's folder: history.json, the model (``save_trained``) and the curves PNG;
    what ``load_trained`` and ``eyepic export classifier --from-run`` read, from either trainer."""
    (report_dir / "history.json").write_text(json.dumps(info, indent=2))
    save_trained(model, report_dir)
    plot_history(info["history"], report_dir / "training_curves.png")


def save_trained(model, report_dir: Path) -> None:
    """Keep the trained model in its run folder before anything can fail: an
    export or evaluation error must not cost an hour of training
    (``load_trained``; ``eyepic export classifier --from-run``)."""
    model.save_weights(report_dir / TRAINED_WEIGHTS)
    (report_dir / TRAINED_CONFIG).write_text(json.dumps(model.get_config(), indent=2))


def require_finished_run(report_dir: Path) -> Path:
    """``report_dir`` if it holds a finished run, else RunNotFinished (before TensorFlow loads)."""
    report_dir = Path(report_dir)
    missing = [n for n in (TRAINED_WEIGHTS, TRAINED_CONFIG, "history.json") if not (report_dir / n).is_file()]
    if missing:
        raise RunNotFinished(f"{report_dir}: not a finished training run (no {', '.join(missing)})")
    return report_dir


def load_trained(report_dir: Path) -> tuple[Any, dict]:
    """(model, info) of a finished run that ``train_classifier`` wrote to ``report_dir``."""
    report_dir = require_finished_run(report_dir)
    from training.models.classifier import GarmentClassifier  # TensorFlow: only once there is a model

    model = GarmentClassifier.from_config(json.loads((report_dir / TRAINED_CONFIG).read_text()))
    model.load_weights(report_dir / TRAINED_WEIGHTS)
    return model, json.loads((report_dir / "history.json").read_text())


def _extend(merged: dict[str, list[float]], history: dict[str, list]) -> None:
    for key, values in history.items():
        merged.setdefault(key, []).extend(float(v) for v in values)


def plot_history(history: dict[str, list[float]], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 4, figsize=(16, 3.5))
    axes[0].plot(history.get("loss", []), label="train")
    axes[0].plot(history.get("val_loss", []), label="validation")
    axes[0].set_title("loss")
    for ax, head in zip(axes[1:], HEADS):
        ax.plot(history.get(f"{head}_accuracy", []), label="train")
        ax.plot(history.get(f"val_{head}_accuracy", []), label="validation")
        ax.set_title(f"{head.removesuffix('_probs')} accuracy")
        ax.set_ylim(0, 1)
    for ax in axes:
        ax.set_xlabel("epoch")
        ax.legend()
    fig.tight_layout()
    fig.savefig(out, dpi=90)
    plt.close(fig)
