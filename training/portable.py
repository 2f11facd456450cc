"""Train the classifier on any Keras backend from a self-contained bundle.

Why: the GPU machine has JAX but no TensorFlow and no access to the
datasets. ``bundle`` runs here: it passes every sample through the same
in-graph crop/resize as training (``eyepic.imaging.crop_and_resize``) and
stores the model-size crops as JPEG bytes plus labels in one ``.npz``.
``train`` runs anywhere Keras does (``KERAS_BACKEND=jax``): a numpy input
pipeline with the same augmentation as ``training.data.pipeline``, the same
model builder and losses, and writes ``.weights.h5`` (backend-agnostic) and
a history JSON. ``training.export`` then exports those weights here.

    python -m training.portable bundle --out var/gpu/bundle.npz --size 128
    KERAS_BACKEND=jax python -m training.portable train --bundle var/gpu/bundle.npz \\
        --config training/configs/long-48-cal.yaml --out out/run --max-seconds 400
    eyepic export classifier --from-run out/run      # here: export, calibrate, evaluate

``train`` writes the run folder ``eyepic export classifier --from-run``
reads (``training.runs.save_trained``). The calibration photos a recipe
holds out are held out here too: the bundle stores each sample's
``calibration_rank``. ``--max-seconds`` fits the cosine schedule to a time
budget (a lent GPU machine is lent for minutes): after the second epoch the
trainer measures an epoch and shortens the schedule to the epochs that fit,
so the learning rate still decays to its end.
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import json
import time
from pathlib import Path

import numpy as np


def bundle(samples, size: int, out: Path, quality: int = 92) -> Path:
    import tensorflow as tf
    from PIL import Image
    from tqdm import tqdm

    from eyepic.imaging import crop_and_resize
    from training.data.pipeline import label_arrays
    from training.data.samples import calibration_rank

    encoded = []
    for s in tqdm(samples, desc="bundling", unit="img"):
        pixels = crop_and_resize(tf.io.read_file(str(s.path)), tf.constant(s.box, tf.float32), size)
        buffer = io.BytesIO()
        Image.fromarray(np.round(pixels.numpy()).astype(np.uint8)).save(buffer, format="JPEG", quality=quality)
        encoded.append(buffer.getvalue())
    labels = label_arrays(samples)
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez(out, images=np.array(encoded, dtype=object), split=np.array([s.split for s in samples]),
             source=np.array([s.source for s in samples]), size=size,
             calibration_rank=np.array([calibration_rank(s) for s in samples], dtype=np.float64), **labels)
    return out


def load_bundle(path: Path) -> dict[str, np.ndarray]:
    from PIL import Image

    raw = np.load(path, allow_pickle=True)
    images = np.stack([np.asarray(Image.open(io.BytesIO(b)).convert("RGB")) for b in raw["images"]])
    return {"images": images, **{k: raw[k] for k in raw.files if k != "images"}}


def augment_batch(images: np.ndarray, rng: np.random.Generator, min_crop_area: float = 0.0) -> np.ndarray:
    """Flip, a random crop, brightness and contrast: as ``training.data.pipeline.augment``.

    ``min_crop_area`` 0: scale jitter up to 15 % with a random crop; above 0:
    a random-resized crop (area fraction uniform in [min_crop_area, 1],
    aspect log-uniform in ``ASPECT_RANGE``). Resampling is nearest-neighbour.
    """
    from training.data.views import ASPECT_RANGE

    n, size = len(images), images.shape[1]
    out = np.empty(images.shape, dtype=np.float32)
    for i in range(n):
        image = images[i][:, ::-1] if rng.random() < 0.5 else images[i]
        if min_crop_area > 0:
            area = rng.uniform(min_crop_area, 1.0)
            aspect = np.exp(rng.uniform(np.log(ASPECT_RANGE[0]), np.log(ASPECT_RANGE[1])))
            width, height = min(1.0, np.sqrt(area * aspect)), min(1.0, np.sqrt(area / aspect))
            x0, y0 = rng.uniform() * (1.0 - width), rng.uniform() * (1.0 - height)
            centers = (np.arange(size) + 0.5) / size
            rows = np.minimum(((y0 + centers * height) * size).astype(int), size - 1)
            cols = np.minimum(((x0 + centers * width) * size).astype(int), size - 1)
            image = image[rows][:, cols]
        else:
            big = int(size * rng.uniform(1.0, 1.15))
            if big > size:
                idx = (np.arange(big) * size / big).astype(int)  # nearest-neighbour upscale
                image = image[idx][:, idx]
                y, x = rng.integers(0, big - size + 1, 2)
                image = image[y : y + size, x : x + size]
        out[i] = image
    out += rng.uniform(-20, 20, (n, 1, 1, 1))
    mean = out.mean(axis=(1, 2, 3), keepdims=True)
    out = (out - mean) * rng.uniform(0.85, 1.15, (n, 1, 1, 1)) + mean
    return np.clip(out, 0, 255)


def cosine_rate(base: float, epoch: int, total: int, alpha: float) -> float:
    """Keras's CosineDecay at ``epoch`` of ``total``, per epoch instead of per step."""
    progress = min(epoch / max(total, 1), 1.0)
    return base * (alpha + (1.0 - alpha) * 0.5 * (1.0 + np.cos(np.pi * progress)))


def budgeted_cosine(base_rate: float, epochs: int, max_seconds: float | None, clock=time.monotonic):
    """A callback: per-epoch cosine learning rate over ``epochs``, or over
    the epochs that fit in ``max_seconds`` when fewer do.

    The first epoch (JIT compilation) is not counted in the epoch time;
    from the second on, the schedule's end is moved to the last epoch that
    fits and training stops there. It only ever shortens.
    """
    import keras

    from training.train_classifier import COSINE_ALPHA

    class BudgetedCosine(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.total = epochs
            self.rates: list[float] = []

        def on_train_begin(self, logs=None):
            self.started = clock()
            self.first_done = None

        def on_epoch_begin(self, epoch, logs=None):
            self.model.optimizer.learning_rate = cosine_rate(base_rate, epoch, self.total, COSINE_ALPHA)

        def on_epoch_end(self, epoch, logs=None):
            # Read back after the epoch: on JAX the trainer writes its state back into the
            # variables here, so a rate its steps had not used would show up as a mismatch.
            self.rates.append(float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate)))
            now = clock()
            if max_seconds is not None:
                if self.first_done is None:
                    self.first_done = now
                else:
                    per_epoch = (now - self.first_done) / epoch
                    fit = int((max_seconds - (now - self.started)) // per_epoch)
                    self.total = max(epoch + 1, min(self.total, epoch + 1 + fit))
            if epoch + 1 >= self.total:
                self.model.stop_training = True

    return BudgetedCosine()


def train(bundle_path: Path, recipe, out_dir: Path, max_seconds: float | None = None,
          verbose: int | str = 2, workers: int = 1, steps_per_execution: int = 1) -> dict:
    """Fit on the bundle's train split (less the recipe's calibration photos),
    early-stop on its validation split; write the run folder to ``out_dir``.

    ``workers`` threads augment batches ahead of the step; ``steps_per_execution``
    steps run in one compiled call. Both only matter where the accelerator
    waits on the host (measured on an H200: 39 ms a step with neither).
    """
    import keras

    from training.data.samples import pair_keys
    from training.runs import keep_run
    from training.train_classifier import build_model, compile_model, trained_outputs, training_view

    keras.utils.set_random_seed(recipe.seed)
    data = load_bundle(bundle_path)
    if int(data["size"]) != recipe.input_size:
        raise ValueError(f"{bundle_path} holds {int(data['size'])} px crops; the recipe's input_size is "
                         f"{recipe.input_size}: bundle again with --size {recipe.input_size}")
    data["embedding"] = pair_keys(data["type_probs"], data["color_probs"])
    outputs = trained_outputs(recipe)
    held = data["calibration_rank"] < recipe.calibration_fraction  # ranks are >= 0: fraction 0 holds none
    train_idx = np.flatnonzero((data["split"] == "train") & ~held)[: recipe.max_train_samples or None]
    val_idx = np.flatnonzero(data["split"] == "validation")
    if not len(train_idx) or not len(val_idx):
        raise ValueError(f"{bundle_path}: need train and validation samples, got {len(train_idx)} and {len(val_idx)}")
    steps = -(-len(train_idx) // recipe.batch_size)
    model = build_model(recipe)
    heads = training_view(model, recipe)
    compile_model(heads, recipe, steps, per_step_cosine=False, steps_per_execution=steps_per_execution)
    schedule = budgeted_cosine(recipe.learning_rate, recipe.epochs, max_seconds)

    class Batches(keras.utils.PyDataset):
        """Augmented train batches; each batch draws from its own generator
        (seed, epoch, index), so worker threads never share one."""

        def __init__(self):
            super().__init__(workers=workers, use_multiprocessing=False, max_queue_size=4 * workers)
            self.epoch = 0
            self.order = np.random.default_rng([recipe.seed, 0]).permutation(train_idx)

        def __len__(self):
            return steps

        def __getitem__(self, i):
            idx = self.order[i * recipe.batch_size : (i + 1) * recipe.batch_size]
            rng = np.random.default_rng([recipe.seed, self.epoch, i])
            x = augment_batch(data["images"][idx], rng, recipe.min_crop_area)
            return x, {h: data[h][idx] for h in outputs}

        def on_epoch_end(self):
            self.epoch += 1
            self.order = np.random.default_rng([recipe.seed, self.epoch]).permutation(train_idx)

    val = (data["images"][val_idx].astype(np.float32), {h: data[h][val_idx] for h in outputs})
    started = time.time()
    history = heads.fit(
        Batches(), validation_data=val, epochs=recipe.epochs, verbose=verbose,
        callbacks=[schedule, keras.callbacks.EarlyStopping(
            monitor="val_type_probs_accuracy", mode="max", patience=recipe.patience, restore_best_weights=True)],
    )
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    merged = {k: [float(v) for v in vs] for k, vs in history.history.items()}
    info = {
        "history": merged,
        "stages": [],
        "train_seconds": round(time.time() - started, 1),
        "train_samples": len(train_idx),
        "validation_samples": len(val_idx),
        "calibration_samples": int(held.sum()),
        "recipe": dataclasses.asdict(recipe),
        "trainer": {
            "module": "training.portable",
            "backend": keras.backend.backend(),
            "devices": _device_names(),
            "bundle": Path(bundle_path).name,
            "epochs_run": len(merged.get("loss", [])),
            "schedule_epochs": schedule.total,
            "max_seconds": max_seconds,
            "workers": workers,
            "steps_per_execution": steps_per_execution,
            "learning_rates": schedule.rates,
        },
    }
    keep_run(model, info, out_dir)
    return info


def _device_names() -> list[str]:
    import keras

    if keras.backend.backend() != "jax":
        return []
    import jax

    return [d.device_kind for d in jax.devices()]


def main() -> None:
    parser = argparse.ArgumentParser(description="bundle samples / train from a bundle on any backend")
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("bundle")
    b.add_argument("--out", type=Path, required=True)
    b.add_argument("--size", type=int, default=128)
    b.add_argument("--quality", type=int, default=92, help="JPEG quality of the stored crops")
    t = sub.add_parser("train")
    t.add_argument("--bundle", type=Path, required=True)
    t.add_argument("--config", type=Path, required=True)
    t.add_argument("--out", type=Path, required=True)
    t.add_argument("--set", action="append", default=[], help="override a recipe field: name=yaml-value")
    t.add_argument("--max-seconds", type=float, default=None,
                   help="fit the cosine schedule into this many seconds of training")
    t.add_argument("--workers", type=int, default=1, help="threads that augment batches")
    t.add_argument("--steps-per-execution", type=int, default=1, help="train steps per compiled call")
    args = parser.parse_args()
    if args.command == "bundle":
        from eyepic.settings import Settings
        from training.data.sources import load_samples

        settings = Settings.from_env()
        print(bundle(load_samples(settings.data_dir, settings.cache_dir), args.size, args.out, args.quality))
        return
    import yaml

    from training.recipe import ClassifierRecipe

    recipe = ClassifierRecipe.from_yaml(args.config)
    for override in args.set:
        name, value = override.split("=", 1)
        setattr(recipe, name, yaml.safe_load(value))
    info = train(args.bundle, recipe, args.out, args.max_seconds, workers=args.workers,
                 steps_per_execution=args.steps_per_execution)
    best = max(info["history"]["val_type_probs_accuracy"])
    print(json.dumps({"best_val_type_accuracy": best, "seconds": info["train_seconds"],
                      "epochs": info["trainer"]["epochs_run"], "schedule_epochs": info["trainer"]["schedule_epochs"]}))


if __name__ == "__main__":
    main()
