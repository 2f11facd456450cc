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
    KERAS_BACKEND=jax python -m training.portable train --bundle bundle.npz \\
        --config training/configs/demo.yaml --out out/
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

    encoded = []
    for s in tqdm(samples, desc="bundling", unit="img"):
        pixels = crop_and_resize(tf.io.read_file(str(s.path)), tf.constant(s.box, tf.float32), size)
        buffer = io.BytesIO()
        Image.fromarray(np.round(pixels.numpy()).astype(np.uint8)).save(buffer, format="JPEG", quality=quality)
        encoded.append(buffer.getvalue())
    labels = label_arrays(samples)
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez(out, images=np.array(encoded, dtype=object), split=np.array([s.split for s in samples]),
             source=np.array([s.source for s in samples]), size=size, **labels)
    return out


def load_bundle(path: Path) -> dict[str, np.ndarray]:
    from PIL import Image

    raw = np.load(path, allow_pickle=True)
    images = np.stack([np.asarray(Image.open(io.BytesIO(b)).convert("RGB")) for b in raw["images"]])
    return {"images": images, **{k: raw[k] for k in raw.files if k != "images"}}


def augment_batch(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Flip, scale jitter (up to 15 %) with a random crop, brightness and contrast: as the TF pipeline."""
    n, size = len(images), images.shape[1]
    out = np.empty(images.shape, dtype=np.float32)
    for i in range(n):
        image = images[i][:, ::-1] if rng.random() < 0.5 else images[i]
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


def train(bundle_path: Path, recipe, out_dir: Path) -> dict:
    import keras

    from training.data.samples import pair_keys
    from training.train import build_model, compile_model, trained_outputs, training_view

    keras.utils.set_random_seed(recipe.seed)
    data = load_bundle(bundle_path)
    data["embedding"] = pair_keys(data["type_probs"], data["color_probs"])
    outputs = trained_outputs(recipe)
    train_idx = np.flatnonzero(data["split"] == "train")
    val_idx = np.flatnonzero(data["split"] == "validation")
    steps = -(-len(train_idx) // recipe.batch_size)
    model = build_model(recipe)
    heads = training_view(model, recipe)
    compile_model(heads, recipe, steps)
    rng = np.random.default_rng(recipe.seed)

    class Batches(keras.utils.PyDataset):
        def __len__(self):
            return steps

        def __getitem__(self, i):
            idx = order[i * recipe.batch_size : (i + 1) * recipe.batch_size]
            return augment_batch(data["images"][idx], rng), {h: data[h][idx] for h in outputs}

        def on_epoch_end(self):
            nonlocal order
            order = rng.permutation(train_idx)

    order = rng.permutation(train_idx)
    val = (data["images"][val_idx].astype(np.float32), {h: data[h][val_idx] for h in outputs})
    started = time.time()
    history = heads.fit(
        Batches(), validation_data=val, epochs=recipe.epochs, verbose=2,
        callbacks=[keras.callbacks.EarlyStopping(monitor="val_type_probs_accuracy", mode="max",
                                                 patience=recipe.patience, restore_best_weights=True)],
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_weights(out_dir / "classifier.weights.h5")
    info = {"history": {k: [float(v) for v in vs] for k, vs in history.history.items()},
            "train_seconds": round(time.time() - started, 1), "backend": keras.backend.backend(),
            "train_samples": len(train_idx), "validation_samples": len(val_idx),
            "recipe": dataclasses.asdict(recipe)}
    (out_dir / "history.json").write_text(json.dumps(info, indent=2))
    return info


def main() -> None:
    parser = argparse.ArgumentParser(description="bundle samples / train from a bundle on any backend")
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("bundle")
    b.add_argument("--out", type=Path, required=True)
    b.add_argument("--size", type=int, default=128)
    b.add_argument("--data-dir", type=Path, default=Path("../shared/data"))
    b.add_argument("--cache-dir", type=Path, default=Path("var/cache"))
    t = sub.add_parser("train")
    t.add_argument("--bundle", type=Path, required=True)
    t.add_argument("--config", type=Path, required=True)
    t.add_argument("--out", type=Path, required=True)
    t.add_argument("--set", action="append", default=[], help="override a recipe field: name=yaml-value")
    args = parser.parse_args()
    if args.command == "bundle":
        from training.data.sources import load_samples

        print(bundle(load_samples(args.data_dir, args.cache_dir), args.size, args.out))
        return
    import yaml

    from training.train import ClassifierRecipe

    recipe = ClassifierRecipe.from_yaml(args.config)
    for override in args.set:
        name, value = override.split("=", 1)
        setattr(recipe, name, yaml.safe_load(value))
    info = train(args.bundle, recipe, args.out)
    best = max(info["history"]["val_type_probs_accuracy"])
    print(json.dumps({"best_val_type_accuracy": best, "seconds": info["train_seconds"]}))


if __name__ == "__main__":
    main()
