"""Model tests: config round trip, save/load, export parity, overfitting, behaviour."""

import json

import numpy as np
import pytest
import tensorflow as tf

from eyepic import colors, taxonomy
from eyepic.imaging import decode_and_resize
from serving.model_client import InProcessModelClient, latest_version_dir
from training.evaluate import encode_sample
from training.models.classifier import GarmentClassifier

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def _tiny(**kw):
    cfg = dict(num_groups=7, num_types=22, num_colors=10, input_size=32, width=8, embedding_dim=16)
    cfg.update(kw)
    return GarmentClassifier(**cfg)


def test_get_config_round_trips():
    model = _tiny()
    clone = GarmentClassifier.from_config(model.get_config())
    assert clone.get_config() == model.get_config()


def test_save_load_gives_the_same_outputs(tmp_path):
    import keras

    model = _tiny()
    x = np.random.default_rng(0).uniform(0, 255, (2, 32, 32, 3)).astype("float32")
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    a, b = model(x, training=False), loaded(x, training=False)
    for key in ("embedding", "type_probs"):
        np.testing.assert_allclose(a[key], b[key], atol=1e-6)


def test_embedding_is_unit_length():
    out = _tiny()(np.random.default_rng(0).uniform(0, 255, (3, 32, 32, 3)).astype("float32"))
    np.testing.assert_allclose(np.linalg.norm(out["embedding"], axis=1), 1.0, atol=1e-5)


@pytest.mark.parametrize("backbone", ["mobilenetv3small", "resnet50"])
def test_named_backbones_build_without_downloads(backbone):
    model = _tiny(backbone=backbone, weights=None)
    out = model(np.zeros((1, 32, 32, 3), "float32"))
    assert out["type_probs"].shape == (1, 22)


def test_one_batch_overfits(tiny_samples):
    """The full loss and pipeline can drive a batch of real photos to near zero loss."""
    import keras

    from training.data.pipeline import make_dataset
    from training.train import ClassifierRecipe, build_model, compile_model, training_view

    keras.utils.set_random_seed(0)
    batch = [s for s in tiny_samples if s.split == "train"][:16]
    ds = make_dataset(batch, 32, 16, training=False).take(1).cache()
    recipe = ClassifierRecipe(input_size=32, width=16, embedding_dim=32, dropout=0.0, epochs=60,
                              learning_rate=1e-2, weight_decay=0.0)
    model = build_model(recipe)
    heads = training_view(model, recipe)
    compile_model(heads, recipe, steps_per_epoch=1)
    history = heads.fit(ds.repeat(), steps_per_epoch=1, epochs=60, verbose=0).history
    # Training-mode numbers: BatchNorm's moving statistics lag behind a
    # 60-step run, which is not what this test is about.
    assert history["loss"][-1] < 0.35 < history["loss"][0]
    assert history["type_probs_accuracy"][-1] == 1.0


def test_export_matches_the_in_memory_model(tiny_trained, tiny_model_dir, tiny_samples):
    model = tiny_trained[0]
    images = [encode_sample(s) for s in tiny_samples[:3] + tiny_samples[-3:]]  # product + street crops
    served = InProcessModelClient(tiny_model_dir).predict("classifier", images)
    pixels = tf.stack([decode_and_resize(tf.constant(b), 32) for b in images])
    direct = model(pixels, training=False)
    for key in ("embedding", "group_probs", "type_probs", "color_probs"):
        np.testing.assert_allclose(served[key], direct[key].numpy(), atol=1e-5)


def test_export_layout_and_metadata(tiny_model_dir):
    version_dir = latest_version_dir(tiny_model_dir, "classifier")
    assert version_dir.name == "1"
    assert (version_dir / "assets.extra" / "tf_serving_warmup_requests").stat().st_size > 0
    meta = json.loads((version_dir / "metadata.json").read_text())
    assert meta["classes"]["type"] == list(taxonomy.TYPE_NAMES)
    assert meta["classes"]["color"] == list(colors.COLOR_NAMES)
    assert meta["input_size"] == 32 and meta["embedding_dim"] == 16
    assert meta["training"]["train_samples"] > 0 and meta["git_commit"]
    signature = tf.saved_model.load(str(version_dir)).signatures["serving_default"]
    (spec,) = signature.structured_input_signature[1].values()
    assert spec.dtype == tf.string and spec.shape.as_list() == [None]
    assert set(signature.structured_outputs) == {"embedding", "group_probs", "type_probs", "color_probs"}


def test_horizontal_flip_keeps_the_prediction_close(tiny_model_dir, tiny_samples):
    """Behavioural: a mirrored garment is the same garment (embeddings stay close)."""
    import io

    from PIL import Image, ImageOps

    client = InProcessModelClient(tiny_model_dir)
    sample = tiny_samples[0]
    image = Image.open(sample.path).convert("RGB")
    flipped = io.BytesIO()
    ImageOps.mirror(image).save(flipped, format="PNG")
    out = client.predict("classifier", [sample.path.read_bytes(), flipped.getvalue()])
    assert float(out["embedding"][0] @ out["embedding"][1]) > 0.8


def test_supervised_contrastive_loss_prefers_grouped_pairs():
    from training.data.samples import pair_keys
    from training.train import supervised_contrastive_loss

    loss = supervised_contrastive_loss(0.1)
    keys = pair_keys([0, 0, 1, 1, 2], [3, 3, 5, -1, 4])  # sample 4 has no positive
    grouped = np.array([[1, 0], [1, 0], [0, 1], [0, 1], [-1, 0]], "float32")
    mixed = np.array([[1, 0], [0, 1], [1, 0], [0, 1], [-1, 0]], "float32")
    good, bad = np.asarray(loss(keys, grouped)), np.asarray(loss(keys, mixed))
    assert good[:4].sum() < bad[:4].sum()
    assert good[4] == 0 and bad[4] == 0  # no positive: no loss


def test_unknown_color_matches_any_color_of_its_type():
    from training.data.samples import pair_keys
    from training.train import supervised_contrastive_loss

    loss = supervised_contrastive_loss(0.1)
    emb = np.array([[1, 0], [0.9, 0.1], [0, 1]], "float32")
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    with_unknown = np.asarray(loss(pair_keys([7, 7, 8], [2, -1, 2]), emb))
    other_color = np.asarray(loss(pair_keys([7, 7, 8], [2, 3, 2]), emb))
    assert with_unknown[0] > 0 and other_color[0] == 0


def test_recipe_with_embedding_loss_trains(tiny_samples, tmp_path):
    from training.train import ClassifierRecipe, train_classifier

    recipe = ClassifierRecipe(input_size=32, width=8, embedding_dim=16, epochs=1, batch_size=16,
                              embedding_loss_weight=1.0, max_train_samples=48)
    _, info = train_classifier(tiny_samples, recipe, tmp_path, verbose=0)
    assert np.isfinite(info["history"]["embedding_loss"][0])
