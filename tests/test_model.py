"""Model tests: config round trip, save/load, export parity, overfitting, behaviour."""

import json

import numpy as np
import pytest
import tensorflow as tf

from eyepic import colors, taxonomy
from eyepic.imaging import decode_and_resize
from serving.model_client import InProcessModelClient, latest_version_dir
from training.models.classifier import GarmentClassifier
from training.predictions import encode_sample

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def _tiny(**kw):
    cfg = dict(num_groups=7, num_types=len(taxonomy.TYPE_NAMES), num_colors=10, input_size=32, width=8,
               embedding_dim=16)
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
    assert out["type_probs"].shape == (1, len(taxonomy.TYPE_NAMES))


def test_one_batch_overfits(tiny_samples):
    """The full loss and pipeline can drive a batch of real photos to near zero loss."""
    import keras

    from training.data.pipeline import make_dataset
    from training.recipe import ClassifierRecipe
    from training.train_classifier import build_model, compile_model, training_view

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


def test_flip_averaging_export_is_mirror_invariant_and_matches_the_model(tiny_trained, tmp_path, data_dir):
    import io

    from PIL import Image, ImageOps

    from training.export import export_classifier
    from training.models.classifier import average_with_mirror

    model = tiny_trained[0]
    version_dir = export_classifier(model, tmp_path, "classifier", test_time_flip=True)
    assert json.loads((version_dir / "metadata.json").read_text())["test_time_flip"] is True
    photo = Image.open(data_dir / "ccp" / "photos" / "0001.jpg").convert("RGB").crop((0, 0, 320, 320))
    encoded = []
    for image in (photo, ImageOps.mirror(photo)):  # square: the letterbox adds no (asymmetric) padding
        buffer = io.BytesIO()
        image.save(buffer, "PNG")
        encoded.append(buffer.getvalue())
    served = InProcessModelClient(tmp_path).predict("classifier", encoded)
    pixels = tf.stack([decode_and_resize(tf.constant(b), 32) for b in encoded[:1]])
    direct = average_with_mirror(model(pixels, training=False), model(tf.reverse(pixels, axis=[2]), training=False))
    for key in ("embedding", "group_probs", "type_probs", "color_probs"):
        np.testing.assert_allclose(served[key][0], served[key][1], atol=1e-5)  # a mirrored photo: same answer
        np.testing.assert_allclose(served[key][0], np.asarray(direct[key])[0], atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(served["embedding"], axis=1), 1.0, atol=1e-5)
    plain = model(pixels, training=False)["type_probs"].numpy()[0]
    assert not np.allclose(plain, served["type_probs"][0], atol=1e-6)  # the mirror pass did something


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
    from training.losses import supervised_contrastive_loss

    loss = supervised_contrastive_loss(0.1)
    keys = pair_keys([0, 0, 1, 1, 2], [3, 3, 5, -1, 4])  # sample 4 has no positive
    grouped = np.array([[1, 0], [1, 0], [0, 1], [0, 1], [-1, 0]], "float32")
    mixed = np.array([[1, 0], [0, 1], [1, 0], [0, 1], [-1, 0]], "float32")
    good, bad = np.asarray(loss(keys, grouped)), np.asarray(loss(keys, mixed))
    assert good[:4].sum() < bad[:4].sum()
    assert good[4] == 0 and bad[4] == 0  # no positive: no loss


def test_unknown_color_matches_any_color_of_its_type():
    from training.data.samples import pair_keys
    from training.losses import supervised_contrastive_loss

    loss = supervised_contrastive_loss(0.1)
    emb = np.array([[1, 0], [0.9, 0.1], [0, 1]], "float32")
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    with_unknown = np.asarray(loss(pair_keys([7, 7, 8], [2, -1, 2]), emb))
    other_color = np.asarray(loss(pair_keys([7, 7, 8], [2, 3, 2]), emb))
    assert with_unknown[0] > 0 and other_color[0] == 0


def test_recipe_with_embedding_loss_trains(tiny_samples, tmp_path):
    from training.recipe import ClassifierRecipe
    from training.train_classifier import train_classifier

    recipe = ClassifierRecipe(input_size=32, width=8, embedding_dim=16, epochs=1, batch_size=16,
                              embedding_loss_weight=1.0, max_train_samples=48)
    _, info = train_classifier(tiny_samples, recipe, tmp_path, verbose=0)
    assert np.isfinite(info["history"]["embedding_loss"][0])


def test_calibration_photos_are_not_trained_on(tiny_samples, tmp_path):
    from training.data.samples import calibration_part
    from training.recipe import ClassifierRecipe
    from training.train_classifier import train_classifier

    recipe = ClassifierRecipe(input_size=32, width=8, embedding_dim=16, epochs=1, batch_size=16,
                              calibration_fraction=0.5, min_crop_area=0.5)
    _, info = train_classifier(tiny_samples, recipe, tmp_path, verbose=0)
    held = calibration_part(tiny_samples, 0.5)[1]
    train = [s for s in tiny_samples if s.split == "train"]
    assert info["calibration_samples"] == len(held) > 0
    assert info["train_samples"] == len(train) - len(held)
    assert np.isfinite(info["history"]["loss"][0])


def test_random_resized_crop_keeps_size_and_a_large_enough_window():
    """A horizontal ramp: each crop spans at least the narrowest allowed window
    (area 0.5 at aspect 3:4) and never leaves the image; augment keeps the size."""
    import tensorflow as tf

    from training.data.pipeline import ASPECT_RANGE, augment, random_resized_crop

    ramp = np.tile(np.linspace(0, 255, 64, dtype="float32")[None, :, None], (64, 1, 3))
    narrowest = np.sqrt(0.5 * ASPECT_RANGE[0]) * 255
    spans = []
    for seed in range(20):
        tf.random.set_seed(seed)
        view = random_resized_crop(tf.constant(ramp), 64, 0.5).numpy()
        assert view.shape == (64, 64, 3) and view.min() >= 0 and view.max() <= 255
        spans.append(view[32, -1, 0] - view[32, 0, 0])
        assert augment(tf.constant(ramp), 64, min_crop_area=0.5).shape == (64, 64, 3)
    assert min(spans) >= narrowest - 8 and max(spans) <= 255
    assert max(spans) - min(spans) > 20  # the window really varies


def test_a_finished_run_keeps_its_model_for_a_later_export(tiny_samples, tmp_path):
    """train_classifier leaves the model in its report folder (an export or
    evaluation failure after an hour of training loses nothing)."""
    from training.recipe import ClassifierRecipe
    from training.runs import load_trained
    from training.train_classifier import train_classifier

    recipe = ClassifierRecipe(input_size=32, width=8, embedding_dim=16, epochs=1, batch_size=16,
                              max_train_samples=48)
    model, info = train_classifier(tiny_samples, recipe, tmp_path, verbose=0)
    kept, kept_info = load_trained(tmp_path)
    batch = np.random.default_rng(0).uniform(0, 255, (3, 32, 32, 3)).astype("float32")
    for head, value in model(batch, training=False).items():
        np.testing.assert_allclose(kept(batch, training=False)[head], value, atol=1e-6)
    assert kept_info["recipe"] == info["recipe"]
    with pytest.raises(FileNotFoundError, match="not a finished training run"):
        load_trained(tmp_path / "elsewhere")


def test_transfer_recipe_trains_heads_first_then_only_the_top_of_the_backbone(tiny_samples, tmp_path):
    """Stage 1 touches no backbone weight; stage 2 trains from ``unfreeze_from`` on, and
    BatchNorm statistics never move (inference mode, as for pretrained weights)."""
    import keras

    from training.recipe import ClassifierRecipe
    from training.train_classifier import train_classifier

    class Snapshots(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.at_fit_start: list[dict[str, list[np.ndarray]]] = []

        def on_train_begin(self, logs=None):
            self.at_fit_start.append({layer.name: [np.array(w) for w in layer.get_weights()]
                                      for layer in self.model.layers if layer.weights})

    recipe = ClassifierRecipe(input_size=32, width=8, embedding_dim=16, epochs=2, batch_size=16,
                              freeze_epochs=1, unfreeze_from="stage3", fine_tune_learning_rate=1e-2,
                              label_smoothing=0.1, max_train_samples=48)
    snaps = Snapshots()
    model, info = train_classifier(tiny_samples, recipe, tmp_path, verbose=0, callbacks=[snaps])
    start, after_stage1 = snaps.at_fit_start
    final = {layer.name: layer.get_weights() for layer in model.layers if layer.weights}

    def same(a, b):
        return all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))

    assert [s["epochs"] for s in info["stages"]] == [1, 1]
    assert info["stages"][0]["trainable_backbone_layers"] == []
    assert set(info["stages"][1]["trainable_backbone_layers"]) == {"stage3_down", "stage3_sep"}
    for name in ("stage0_down", "stage2_sep", "stage3_down_bn"):
        assert same(start[name], after_stage1[name]) and same(start[name], final[name]), name
    assert same(start["stage3_down"], after_stage1["stage3_down"])
    assert not same(after_stage1["stage3_down"], final["stage3_down"])
    assert not same(start["type_probs"], after_stage1["type_probs"])
    assert len(info["history"]["loss"]) == 2 and all(np.isfinite(info["history"]["loss"]))


def test_unfreeze_from_names_a_real_layer(tiny_samples):
    from training.freezing import set_backbone_trainable

    with pytest.raises(ValueError, match="no backbone layer"):
        set_backbone_trainable(_tiny(), "conv9_block1", frozen=False)
    resnet = _tiny(backbone="resnet50", weights=None)
    trainable = set_backbone_trainable(resnet, "conv5_block1", frozen=False)
    assert trainable and all(name.startswith("conv5_") for name in trainable)
    assert not any("_bn" in name for name in trainable)


def test_label_smoothing_loss_matches_its_definition():
    from training.losses import smoothed_sparse_crossentropy

    probs = np.array([[0.7, 0.2, 0.1]], "float32")
    got = float(np.asarray(smoothed_sparse_crossentropy(0.3)(np.array([0]), probs))[0])
    target = np.array([0.7 + 0.1, 0.1, 0.1])
    assert got == pytest.approx(-(target * np.log(probs[0])).sum(), rel=1e-5)
