"""The portable trainer (training.portable): bundle real photos, train on
whatever Keras backend runs the tests, and export the run like a CPU run."""

import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
import yaml

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

REPO = Path(__file__).resolve().parents[1]
TINY = dict(input_size=32, width=8, embedding_dim=16, batch_size=16, embedding_loss_weight=1.0)


@pytest.fixture(scope="module")
def tiny_bundle(tiny_samples, tmp_path_factory):
    from training.portable import bundle

    return bundle(tiny_samples, 32, tmp_path_factory.mktemp("bundle") / "bundle.npz")


def test_bundle_keeps_labels_splits_and_calibration_ranks(tiny_bundle, tiny_samples):
    from training.data.pipeline import label_arrays
    from training.data.samples import calibration_part
    from training.portable import load_bundle

    data = load_bundle(tiny_bundle)
    assert data["images"].shape == (len(tiny_samples), 32, 32, 3) and data["images"].dtype == np.uint8
    for head, labels in label_arrays(tiny_samples).items():
        if head != "embedding":
            np.testing.assert_array_equal(data[head], labels)
    assert list(data["split"]) == [s.split for s in tiny_samples]
    held = calibration_part(tiny_samples, 0.5)[1]
    assert int((data["calibration_rank"] < 0.5).sum()) == len(held) > 0


def test_portable_run_holds_out_calibration_photos_and_exports_like_a_cpu_run(tiny_bundle, tiny_samples,
                                                                              tmp_path):
    """The run folder is what ``eyepic export classifier --from-run`` reads; the
    reloaded model gives the trained model's outputs."""
    from training.data.samples import calibration_part
    from training.portable import train
    from training.recipe import ClassifierRecipe
    from training.runs import load_trained

    recipe = ClassifierRecipe(**TINY, epochs=2, calibration_fraction=0.5, min_crop_area=0.5)
    info = train(tiny_bundle, recipe, tmp_path, verbose=0, workers=2, steps_per_execution=2)
    held = calibration_part(tiny_samples, 0.5)[1]
    assert info["calibration_samples"] == len(held)
    assert info["train_samples"] == sum(s.split == "train" for s in tiny_samples) - len(held)
    assert info["trainer"]["epochs_run"] == 2 and np.isfinite(info["history"]["embedding_loss"]).all()
    model, kept = load_trained(tmp_path)
    assert kept["recipe"]["calibration_fraction"] == 0.5
    assert (tmp_path / "training_curves.png").stat().st_size > 0
    batch = np.random.default_rng(0).uniform(0, 255, (2, 32, 32, 3)).astype("float32")
    again, _ = load_trained(tmp_path)
    for head, value in model(batch, training=False).items():
        np.testing.assert_allclose(again(batch, training=False)[head], value, atol=1e-6)
    json.dumps(info)  # the history is plain JSON


def test_budget_shortens_the_cosine_schedule_and_the_step_uses_its_rate(tiny_bundle, tmp_path, monkeypatch):
    """With a clock where the first epoch takes 50 s (compilation) and each
    later one 10 s, a 100 s budget fits 6 epochs: the schedule is refitted to
    6 and reaches its end there; each epoch's rate is the cosine over 6."""
    from training import portable
    from training.recipe import ClassifierRecipe
    from training.train_classifier import COSINE_ALPHA

    ticks = iter([0.0, 50.0] + [50.0 + 10 * k for k in range(1, 40)])
    real = portable.budgeted_cosine
    monkeypatch.setattr(portable, "budgeted_cosine",
                        lambda rate, epochs, budget: real(rate, epochs, budget, clock=lambda: next(ticks)))
    recipe = ClassifierRecipe(**TINY, epochs=20, patience=100, max_train_samples=16)
    info = portable.train(tiny_bundle, recipe, tmp_path, max_seconds=100, verbose=0)
    trainer = info["trainer"]
    assert trainer["schedule_epochs"] == trainer["epochs_run"] == 6
    # Epochs 0 and 1 ran on the 20-epoch cosine; from epoch 2 on, the 6-epoch one.
    expected = [portable.cosine_rate(recipe.learning_rate, e, 20 if e < 2 else 6, COSINE_ALPHA) for e in range(6)]
    np.testing.assert_allclose(trainer["learning_rates"], expected, rtol=1e-5)


def test_per_epoch_cosine_matches_keras_cosine_decay_at_epoch_starts():
    import keras

    from training.portable import cosine_rate

    steps, epochs = 7, 12
    decay = keras.optimizers.schedules.CosineDecay(3e-3, decay_steps=steps * epochs, alpha=0.02)
    for epoch in (0, 1, 5, 11, 12):
        assert cosine_rate(3e-3, epoch, epochs, 0.02) == pytest.approx(float(decay(epoch * steps)), rel=1e-5)


@pytest.mark.parametrize("min_crop_area", [0.0, 0.5])
def test_numpy_augmentation_keeps_size_range_and_varies(min_crop_area):
    """A horizontal ramp: crops stay inside the image, keep its size, and the
    random-resized window spans at least the narrowest allowed crop."""
    from training.data.pipeline import ASPECT_RANGE
    from training.portable import augment_batch

    ramp = np.tile(np.linspace(0, 255, 64)[None, :, None], (64, 1, 3)).astype(np.uint8)
    views = augment_batch(np.stack([ramp] * 32), np.random.default_rng(0), min_crop_area)
    assert views.shape == (32, 64, 64, 3) and views.min() >= 0 and views.max() <= 255
    spans = np.abs(views[:, 32, -1, 0] - views[:, 32, 0, 0])
    assert spans.max() - spans.min() > 10  # views differ
    if min_crop_area:
        # contrast jitter scales a span by at most 1.15 either way
        assert spans.min() >= np.sqrt(min_crop_area * ASPECT_RANGE[0]) * 255 * 0.85 / 1.15 - 8


def test_runner_script_trains_each_spec_side_by_side_and_archives_its_run(tiny_bundle, tmp_path):
    """scripts/portable_runs.sh, as run on a GPU machine (here on this backend):
    one archive per NAME=CONFIG[:overrides], a usage error, a failed run."""
    script = str(REPO / "scripts" / "portable_runs.sh")
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(dict(TINY, epochs=1)))
    env = {**os.environ, "PYTHON": sys.executable, "KERAS_BACKEND": os.environ.get("KERAS_BACKEND", "tensorflow"),
           "OUT": str(tmp_path / "out"), "PYTHONPATH": str(REPO)}

    def run(*args):
        return subprocess.run(["bash", script, *args], cwd=tmp_path, env=env, capture_output=True, text=True,
                              timeout=900)

    done = run(str(tiny_bundle), "120", f"a={config}", f"b={config}:epochs=2,min_crop_area=0.5")
    assert done.returncode == 0, done.stderr
    for name, epochs in (("a", 1), ("b", 2)):
        with tarfile.open(tmp_path / "out" / f"{name}.tgz") as archive:
            assert {f"{name}/trained.weights.h5", f"{name}/trained_model.json"} <= set(archive.getnames())
            info = json.load(archive.extractfile(f"{name}/history.json"))
        assert info["trainer"]["epochs_run"] == epochs and info["trainer"]["max_seconds"] == 120
    assert info["recipe"]["min_crop_area"] == 0.5
    assert run(str(tiny_bundle)).returncode == 2
    failed = run(str(tiny_bundle), "60", f"c={tmp_path / 'missing.yaml'}")
    assert failed.returncode == 1 and "run c failed" in failed.stderr
