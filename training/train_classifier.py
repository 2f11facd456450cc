"""Train the garment classifier/embedder from a recipe (YAML config).

One function, ``train_classifier``: samples -> fit with progress, early
stopping and a cosine schedule -> per-epoch history, plots and metrics in a
report folder (``training.runs``). Recipe, losses and layer freezing live in
``training.recipe``, ``training.losses`` and ``training.freezing``; exporting
is the publish pipeline's (``app.publish``).

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
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from eyepic import colors, taxonomy
from training.data.samples import Sample, calibration_part, train_validation
from training.freezing import set_backbone_trainable
from training.losses import masked_accuracy_class, smoothed_sparse_crossentropy, supervised_contrastive_loss
from training.recipe import HEADS, ClassifierRecipe
from training.runs import extend_history, keep_run


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

    MaskedAccuracy = masked_accuracy_class()
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
        extend_history(merged, history.history)
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
        extend_history(merged, history.history)
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
