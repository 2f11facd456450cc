"""Train the garment classifier/embedder from a recipe (YAML config).

One function, ``train_classifier``: samples -> fit with progress, early
stopping and a cosine schedule -> per-epoch history, plots and metrics in a
report folder -> export (training.export) as the next integer version.
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
from training.data.samples import Sample, train_validation

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
    max_train_samples: int | None = None  # tests train on a handful
    seed: int = 0

    @classmethod
    def from_yaml(cls, path: Path) -> ClassifierRecipe:
        raw = yaml.safe_load(Path(path).read_text()) or {}
        unknown = set(raw) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ValueError(f"{path}: unknown recipe keys {sorted(unknown)}")
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


def compile_model(model, recipe: ClassifierRecipe, steps_per_epoch: int) -> None:
    import keras

    from training.data.samples import IGNORE

    MaskedAccuracy = _masked_accuracy_class()
    schedule = keras.optimizers.schedules.CosineDecay(
        recipe.learning_rate, decay_steps=max(1, recipe.epochs * steps_per_epoch), alpha=0.02,
        warmup_target=None,
    )
    loss = {
        name: keras.losses.SparseCategoricalCrossentropy(ignore_class=IGNORE)
        for name in HEADS
    }
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
) -> tuple[Any, dict]:
    """Fit on the train split, early-stop on validation; returns (model, history)."""
    import keras

    from training.data.pipeline import make_dataset

    keras.utils.set_random_seed(recipe.seed)
    train, val = train_validation(samples, recipe.max_train_samples)
    outputs = trained_outputs(recipe)
    train_ds = make_dataset(train, recipe.input_size, recipe.batch_size, training=True, seed=recipe.seed,
                            outputs=outputs)
    val_ds = make_dataset(val, recipe.input_size, recipe.batch_size, training=False, outputs=outputs)
    steps = -(-len(train) // recipe.batch_size)
    model = build_model(recipe)
    heads = training_view(model, recipe)
    compile_model(heads, recipe, steps)
    report_dir = Path(report_dir)
    report_dir.mkdir(parents=True, exist_ok=True)
    callbacks = [
        keras.callbacks.EarlyStopping(
            monitor="val_type_probs_accuracy", mode="max", patience=recipe.patience,
            restore_best_weights=True,
        ),
        keras.callbacks.CSVLogger(str(report_dir / "history.csv")),
        keras.callbacks.TensorBoard(str(report_dir / "tensorboard"), write_graph=False),
    ]
    started = time.time()
    history = heads.fit(train_ds, validation_data=val_ds, epochs=recipe.epochs, callbacks=callbacks,
                        verbose=verbose)
    info = {
        "history": {k: [float(v) for v in vs] for k, vs in history.history.items()},
        "train_seconds": round(time.time() - started, 1),
        "train_samples": len(train),
        "validation_samples": len(val),
        "recipe": dataclasses.asdict(recipe),
    }
    (report_dir / "history.json").write_text(json.dumps(info, indent=2))
    plot_history(info["history"], report_dir / "training_curves.png")
    return model, info


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
