"""The garment detector: data pipeline, mAP arithmetic, one-batch overfit,
export signature and agreement, Analyzer and API finding several garments.

One tiny YOLOv8 (64-channel xs-like backbone, 96 px) is overfitted once per
session on one batch of four real CCP photos (no augmentation) and exported
next to the tiny classifier of conftest. It is not meant to be good: it
shows that the real train -> export -> serve path turns a real street photo
into several garment boxes. Eager steps: tracing YOLOv8's train step costs
more on 2 cores than the few dozen steps it would speed up.
"""

from __future__ import annotations

import dataclasses
import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from training.data.detection import MAX_BOXES, PhotoBoxes, photos_from_samples
from training.evaluate_detector import box_iou, coco_map
from training.models.detector import DetectorConfig

CLASSES = ["onepiece", "outer", "top", "bottom", "shoes"]
TINY = dict(classes=CLASSES, input_size=96, stackwise_channels=[8, 16, 32, 64], stackwise_depth=[1, 1, 1, 1],
            batch_size=4, learning_rate=1e-2, warmup_epochs=0, epochs=1, score_threshold=0.2,
            max_detections=10, flip=False, crop_probability=0.0, color_jitter=0.0)
STEPS = 80  # measured: 2-3 of 4 garments per photo found at IoU >= 0.5 after 80 eager steps


@pytest.fixture(scope="session")
def ccp_photos(data_dir: Path) -> list[PhotoBoxes]:
    """Four real CCP photos with at least three detector boxes each (from their masks)."""
    from training.data import ccp
    from training.data.samples import Sample

    root = data_dir / "ccp"
    names = ccp.read_label_names(root)
    photos: list[PhotoBoxes] = []
    for mat in sorted((root / "annotations" / "pixel-level").glob("*.mat")):
        photo = root / "photos" / f"{mat.stem}.jpg"
        samples = [Sample(path=photo, source="ccp", split="train", type=r.type, group=r.group, box=r.box)
                   for r in ccp.photo_regions(photo, mat, names)]
        found = photos_from_samples(samples, CLASSES)
        if found and len([c for c in found[0].classes if c != CLASSES.index("shoes")]) >= 3:
            photos.append(found[0])
        if len(photos) == 4:
            break
    assert len(photos) == 4
    return photos


@pytest.fixture(scope="session")
def tiny_detector(ccp_photos):
    """(model, config, losses): a tiny detector overfitted on one batch of real photos."""
    import keras

    from training.data.detection import make_detection_dataset
    from training.models.detector import build_detector, compile_detector

    keras.utils.set_random_seed(0)
    config = DetectorConfig(**TINY)
    batch = make_detection_dataset(ccp_photos, config, training=False).cache().repeat()
    model = build_detector(config)
    compile_detector(model, config, steps_per_epoch=STEPS)
    model.run_eagerly = True
    # one step per "epoch", so each logged loss is one step's, not a running mean
    history = model.fit(batch, epochs=STEPS, steps_per_epoch=1, verbose=0)
    return model, config, [float(v) for v in history.history["loss"]]


@pytest.fixture(scope="session")
def detector_model_dir(tiny_detector, tiny_model_dir, ccp_photos, tmp_path_factory) -> Path:
    """A model dir holding conftest's tiny classifier and the tiny detector export."""
    from training.export import export_detector

    model_dir = tmp_path_factory.mktemp("det-models")
    shutil.copytree(tiny_model_dir / "classifier", model_dir / "classifier")
    model, config, losses = tiny_detector
    export_detector(model, config, model_dir, "detector", training={"losses": losses},
                    warmup_images=[Path(ccp_photos[0].path).read_bytes()])
    return model_dir


# ------------------------------------------------------------ data and metrics
def test_photos_group_samples_and_keep_only_detector_classes(ccp_photos) -> None:
    p = ccp_photos[0]
    assert len(p.boxes) == len(p.classes) >= 3
    assert all(0 <= c < len(CLASSES) for c in p.classes)
    assert len(set(p.classes)) == len(p.classes), "one box per group per person"
    assert all(0 <= v <= 1 for box in p.boxes for v in box)


def test_product_photos_are_train_photos_boxed_whole_and_always_the_same_ones(tmp_path) -> None:
    from training.data.detection import product_photos_from_samples
    from training.data.samples import Sample

    samples = [Sample(path=tmp_path / f"{split}-{i}.jpg", source="clothing-small", split=split, type=kind,
                      group=group, key=f"{split}-{i}")
               for i in range(30) for split in ("train", "validation")
               for kind, group in [("t-shirt", "top"), ("hat", "hat"), ("pants", "bottom")][i % 3:i % 3 + 1]]
    samples.append(Sample(path=tmp_path / "0001.jpg", source="ccp", split="train", type="jeans", group="bottom",
                          box=(0.2, 0.5, 0.6, 0.9), key="0001"))
    chosen = product_photos_from_samples(samples, CLASSES, 12)
    assert len(chosen) == 12
    assert all(p.split == "train" and p.boxes == ((0.0, 0.0, 1.0, 1.0),) for p in chosen)
    assert all(not p.path.name.startswith("validation") and p.path.name != "0001.jpg" for p in chosen)
    assert {CLASSES[p.classes[0]] for p in chosen} == {"top", "bottom"}  # no hats: not a detector class
    assert chosen == product_photos_from_samples(list(reversed(samples)), CLASSES, 12)
    assert len(product_photos_from_samples(samples, CLASSES, 1000)) == 20
    assert product_photos_from_samples(samples, CLASSES, 0) == []


def test_pipeline_boxes_land_on_the_letterboxed_pixels(ccp_photos) -> None:
    """Box pixels in the letterboxed square = normalised box x resized size + pad."""
    import tensorflow as tf

    from training.data.detection import from_letterbox, make_detection_dataset

    config = DetectorConfig(**TINY)
    images, labels = next(iter(make_detection_dataset(ccp_photos[:1], config, training=False)))
    assert images.shape == (1, 96, 96, 3) and labels["boxes"].shape == (1, MAX_BOXES, 4)
    n = len(ccp_photos[0].boxes)
    shape = tf.image.extract_jpeg_shape(Path(ccp_photos[0].path).read_bytes())
    back = from_letterbox(labels["boxes"][0, :n], shape[0], shape[1], 96).numpy()
    np.testing.assert_allclose(back, np.asarray(ccp_photos[0].boxes), atol=1e-5)
    assert (labels["classes"][0, n:].numpy() == -1).all()
    # a portrait photo is padded left and right: no box reaches into the pad
    assert labels["boxes"][0, :n, 0].numpy().min() >= 96 * (1 - shape[1] / shape[0]) / 2 - 1


def test_augmentation_keeps_boxes_inside_and_flips_them(ccp_photos) -> None:
    from training.data.detection import make_detection_dataset

    config = DetectorConfig(**{**TINY, "flip": True, "crop_probability": 1.0, "color_jitter": 0.3})
    for images, labels in make_detection_dataset(ccp_photos, config, training=True, seed=3).take(2):
        boxes, classes = labels["boxes"].numpy(), labels["classes"].numpy()
        valid = classes >= 0
        assert valid.any()
        assert (boxes[valid] >= 0).all() and (boxes[valid] <= 96 + 1e-3).all()
        assert (boxes[valid][:, 2] > boxes[valid][:, 0]).all() and (boxes[valid][:, 3] > boxes[valid][:, 1]).all()
        assert (boxes[~valid] == -1).all()
        assert float(images.numpy().max()) <= 255.0


def test_side_by_side_pairs_keep_every_box_on_its_garment(ccp_photos) -> None:
    """A pair holds both photos' boxes, moved into its own half, in the letterbox."""
    import tensorflow as tf

    from training.data.detection import _side_by_side, make_detection_dataset

    first, second = ccp_photos[0], ccp_photos[1]
    images = [tf.io.decode_jpeg(Path(p.path).read_bytes()) for p in (first, second)]
    padded = [np.full((MAX_BOXES, 4), -1, np.float32), np.full((MAX_BOXES, 4), -1, np.float32)]
    labels = [np.full((MAX_BOXES,), -1, np.float32), np.full((MAX_BOXES,), -1, np.float32)]
    for i, p in enumerate((first, second)):
        padded[i][:len(p.boxes)], labels[i][:len(p.boxes)] = p.boxes, p.classes
    image, boxes, classes = _side_by_side((images[0], padded[0], labels[0]), (images[1], padded[1], labels[1]), 96)
    image, boxes, classes = image.numpy(), boxes.numpy(), classes.numpy()
    assert image.shape[0] == 96 and boxes.shape == (2 * MAX_BOXES, 4)
    left_w = round(96 * images[0].shape[1] / images[0].shape[0])
    split = left_w / image.shape[1]
    n1, n2 = len(first.boxes), len(second.boxes)
    assert (classes[:n1] == np.asarray(first.classes)).all()
    assert (classes[MAX_BOXES:MAX_BOXES + n2] == np.asarray(second.classes)).all()
    assert (boxes[:n1, 2] <= split + 1e-3).all() and (boxes[MAX_BOXES:MAX_BOXES + n2, 0] >= split - 1e-3).all()
    np.testing.assert_allclose(boxes[:n1, 1::2], np.asarray(first.boxes)[:, 1::2], atol=1e-6)
    np.testing.assert_allclose(boxes[:n1, 0], np.asarray(first.boxes)[:, 0] * split, atol=1e-3)
    assert (boxes[classes < 0] == -1).all()

    config = DetectorConfig(**{**TINY, "mosaic_probability": 1.0})
    images, labels = next(iter(make_detection_dataset(ccp_photos, config, training=True, seed=1)))
    assert images.shape == (4, 96, 96, 3) and labels["boxes"].shape == (4, 2 * MAX_BOXES, 4)
    per_image = (labels["classes"].numpy() >= 0).sum(axis=1)
    assert (per_image >= 6).all()  # every photo here has >= 3 boxes, and each image is two photos


def test_coco_map_perfect_partial_and_empty() -> None:
    photos = [PhotoBoxes(Path("a"), "validation", ((0.1, 0.1, 0.5, 0.5), (0.5, 0.5, 0.9, 0.9)), (0, 1)),
              PhotoBoxes(Path("b"), "validation", ((0.2, 0.2, 0.6, 0.8),), (0,))]
    perfect = [{"boxes": np.asarray(p.boxes), "scores": np.ones(len(p.boxes)), "classes": np.asarray(p.classes)}
               for p in photos]
    r = coco_map(photos, perfect, ["a", "b", "c"])
    assert r["map50"] == pytest.approx(1.0) and r["map"] == pytest.approx(1.0)
    assert r["per_class"]["c"]["ap50"] is None  # no ground truth: left out of the mean
    # class a in photo b: a miss (wrong place) scored above the hit
    shifted = [dict(perfect[0]), {"boxes": np.asarray([[0.7, 0.7, 0.9, 0.9], [0.2, 0.2, 0.6, 0.8]]),
                                  "scores": np.asarray([0.9, 0.1]), "classes": np.asarray([0, 0])}]
    r = coco_map(photos, shifted, ["a", "b"])
    # sorted: TP (1.0), FP (0.9), TP (0.1): precision 1, 1/2, 2/3 at recall 1/2, 1/2, 1;
    # interpolated: 1 for the 51 recall points up to 0.5, 2/3 for the 50 above
    assert r["per_class"]["a"]["ap50"] == pytest.approx((51 + 50 * 2 / 3) / 101)
    assert r["per_class"]["b"]["ap50"] == pytest.approx(1.0)
    none = [{"boxes": np.zeros((0, 4)), "scores": np.zeros(0), "classes": np.zeros(0, int)} for _ in photos]
    assert coco_map(photos, none, ["a", "b"])["map50"] == 0.0
    assert box_iou(np.asarray([[0, 0, 1, 1]]), np.asarray([[0, 0, 0.5, 1]]))[0, 0] == pytest.approx(0.5)


# ------------------------------------------------------------ model
@pytest.mark.slow
def test_one_batch_overfit_loss_falls(tiny_detector) -> None:
    _, _, losses = tiny_detector
    assert np.isfinite(losses).all()
    # measured: ~150 at the first step (untrained class head), ~1.7 after 80 steps
    assert np.mean(losses[-5:]) < 2.5, losses
    assert np.mean(losses[-5:]) < 0.05 * np.mean(losses[:3]), losses


@pytest.mark.slow
def test_export_signature_and_metadata(detector_model_dir, ccp_photos) -> None:
    import tensorflow as tf

    version_dir = detector_model_dir / "detector" / "1"
    meta = json.loads((version_dir / "metadata.json").read_text())
    assert meta["kind"] == "detector" and meta["classes"]["group"] == CLASSES
    assert meta["outputs"] == ["boxes", "scores", "classes", "num_detections"]
    assert meta["max_detections"] == 10 and meta["score_threshold"] == pytest.approx(0.2)
    assert (version_dir / "assets.extra" / "tf_serving_warmup_requests").exists()
    loaded = tf.saved_model.load(str(version_dir))
    fn = loaded.signatures["serving_default"]
    assert fn.structured_input_signature[1]["images"].dtype == tf.string
    images = [Path(p.path).read_bytes() for p in ccp_photos[:2]]
    out = fn(images=tf.constant(images))
    assert out["boxes"].shape == (2, 10, 4) and out["scores"].shape == (2, 10)
    assert out["classes"].shape == (2, 10) and out["num_detections"].shape == (2,)
    assert out["classes"].dtype == tf.int32
    boxes = out["boxes"].numpy()
    assert (boxes >= 0).all() and (boxes <= 1).all()
    for i in range(2):
        n = int(out["num_detections"][i])
        assert (out["scores"][i, :n].numpy() >= 0.2).all() and (boxes[i, n:] == 0).all()


@pytest.mark.slow
def test_exported_and_in_memory_predictions_agree(tiny_detector, detector_model_dir, ccp_photos) -> None:
    """Same boxes (original frame), scores and classes from the SavedModel and the Keras model.

    Compared at the evaluation thresholds (``detect_all``: every photo has
    boxes, whatever the tiny model learnt) and at the serving ones
    (``serving_default``: the same detections, where there are any).
    """
    from training.evaluate_detector import predict_export
    from training.train_detector import predict_photos

    model, config, _ = tiny_detector
    version_dir = detector_model_dir / "detector" / "1"

    def agree(exported, in_memory, top=None):
        for e, m in zip(exported, in_memory, strict=True):
            assert len(e["scores"]) == len(m["scores"])
            np.testing.assert_allclose(e["scores"][:top], m["scores"][:top], atol=1e-4)
            np.testing.assert_allclose(e["boxes"][:top], m["boxes"][:top], atol=2e-3)
            np.testing.assert_array_equal(e["classes"][:top], m["classes"][:top])

    everything = predict_export(version_dir, ccp_photos, signature="detect_all")
    assert all(len(e["scores"]) > 0 for e in everything)
    agree(everything, predict_photos(model, ccp_photos, config), top=10)
    served = predict_export(version_dir, ccp_photos, signature="serving_default")
    agree(served, predict_photos(model, ccp_photos, config, score_threshold=config.score_threshold,
                                 max_detections=config.max_detections))
    assert all((e["scores"] >= config.score_threshold).all() for e in served)


@pytest.fixture(scope="session")
def best_photo(tiny_detector, ccp_photos) -> PhotoBoxes:
    """The training photo on which the in-memory tiny model finds most garments.

    A tiny model overfitted in seconds finds 2-3 of 4 per photo; the serving
    path under test (export -> ModelClient -> Analyzer -> API) must then find
    them too.
    """
    from training.train_detector import predict_photos

    model, config, _ = tiny_detector
    dets = predict_photos(model, ccp_photos, config, config.score_threshold, config.max_detections)
    counts = [_matched(list(d["boxes"]), p) for d, p in zip(dets, ccp_photos)]
    assert max(counts) >= 2, counts
    return ccp_photos[int(np.argmax(counts))]


def _matched(garment_boxes, photo: PhotoBoxes) -> int:
    """How many ground-truth garments some returned box covers with IoU >= 0.5."""
    if not garment_boxes:
        return 0
    iou = box_iou(np.asarray(photo.boxes), np.asarray(garment_boxes))
    return int((iou.max(axis=1) >= 0.5).sum())


@pytest.mark.slow
def test_analyzer_finds_several_garments_in_a_real_photo(detector_model_dir, best_photo) -> None:
    from serving.analyzer import Analyzer
    from serving.model_client import InProcessModelClient

    sent = []

    class Recording(InProcessModelClient):
        def predict(self, name, images):
            sent.extend(images if name == "detector" else [])
            return super().predict(name, images)

    analyzer = Analyzer(Recording(detector_model_dir), min_detection_score=0.2)
    photo = best_photo
    upload = Path(photo.path).read_bytes()
    result = analyzer.analyze(upload)
    assert sent == [upload]  # an upright JPEG goes to the detector as uploaded
    assert result.detector_used
    assert len(result.garments) >= 2
    assert all(g.detected and g.embedding.shape == (16,) for g in result.garments)
    assert _matched([g.box for g in result.garments], photo) >= 2


@pytest.mark.slow
def test_api_returns_several_garments_with_boxes(detector_model_dir, catalog_index_settings, best_photo) -> None:
    from web import create_app

    settings = dataclasses.replace(catalog_index_settings, model_dir=detector_model_dir, min_garment_score=0.2)
    app = create_app(settings)
    try:
        photo = best_photo
        resp = app.test_client().post(
            "/api/v1/search", data={"image": (io.BytesIO(Path(photo.path).read_bytes()), "street.jpg")},
            content_type="multipart/form-data",
        )
    finally:
        app.extensions["eyepic"].index.close()
    assert resp.status_code == 200, resp.get_data(as_text=True)
    garments = resp.get_json()["garments"]
    assert len(garments) >= 2
    # items may be empty: each garment's search is filtered by the group the tiny classifier
    # guessed, and the 40-photo catalog has no bags
    assert all(len(g["box"]) == 4 and isinstance(g["items"], list) for g in garments)
    assert resp.get_json()["detector_used"] is True
    assert _matched([g["box"] for g in garments], photo) >= 2


def test_letterbox_in_a_graph_matches_eager(data_dir: Path) -> None:
    import tensorflow as tf

    from eyepic.imaging import decode_and_resize

    data = (data_dir / "ccp" / "photos" / "0002.jpg").read_bytes()  # 550 x 830
    eager = decode_and_resize(tf.constant(data), 192)
    graph = tf.function(lambda b: decode_and_resize(b, 192))(tf.constant(data))
    np.testing.assert_allclose(graph.numpy(), eager.numpy(), atol=1e-3)


def test_letterbox_geometry_is_exact() -> None:
    """TF's resize_with_pad arithmetic in exact integers, whatever the photo's shape."""
    from training.data.detection import letterbox_geometry

    for h, w in ((830, 550), (825, 550), (550, 830), (100, 100), (1600, 901)):
        got = [float(v) for v in letterbox_geometry(h, w, 192)]
        m = max(h, w)
        want = [(192 * m - h * 192) // (2 * m), (192 * m - w * 192) // (2 * m), h * 192 // m, w * 192 // m]
        assert got == want
    assert [float(v) for v in letterbox_geometry(830, 550, 192)] == [0.0, 32.0, 192.0, 127.0]


def test_detector_release_round_trip(detector_model_dir, ccp_photos, tmp_path) -> None:
    """A detector export -> release (weights + config) -> install: the same detections."""
    from serving.model_client import InProcessModelClient
    from training import release

    root = tmp_path / "release"
    recipe = Path(__file__).resolve().parents[1] / "training" / "configs" / "detector-release.yaml"
    release.make_release(detector_model_dir / "detector" / "1", root, recipe)
    release.write_checksums(root)
    out, fresh = release.install_release(root, "detector", tmp_path / "models", "detector")
    assert fresh
    photos = [Path(p.path).read_bytes() for p in ccp_photos[:2]]
    original = InProcessModelClient(detector_model_dir).predict("detector", photos)
    installed = InProcessModelClient(tmp_path / "models").predict("detector", photos)
    np.testing.assert_array_equal(installed["num_detections"], original["num_detections"])
    np.testing.assert_allclose(installed["boxes"], original["boxes"], atol=1e-5)
    np.testing.assert_allclose(installed["scores"], original["scores"], atol=1e-5)
    meta = json.loads((out / "metadata.json").read_text())
    source = json.loads((detector_model_dir / "detector" / "1" / "metadata.json").read_text())
    for key in ("classes", "score_threshold", "iou_threshold", "max_detections", "input_size"):
        assert meta[key] == source[key]


@pytest.mark.slow
def test_keep_last_trains_every_epoch_and_keeps_the_final_weights(ccp_photos, tmp_path) -> None:
    """``keep: last``: no early stop, no checkpoint picked on validation, the final
    epoch's weights saved for a warm restart, and they are the returned model's."""
    from training.models.detector import build_detector
    from training.train_detector import train_detector

    photos = [*ccp_photos[:3], dataclasses.replace(ccp_photos[3], split="validation")]
    config = DetectorConfig(**{**TINY, "epochs": 2, "validate_every": 1, "keep": "last", "patience": 0})
    model, info = train_detector(photos, config, tmp_path, verbose=0)
    assert info["epochs_run"] == 2 and info["kept"] == "last epoch"
    assert not (tmp_path / "best.weights.h5").exists()
    restored = build_detector(config)
    restored.load_weights(tmp_path / "last.weights.h5")
    image = np.random.default_rng(0).uniform(0, 255, (1, 96, 96, 3)).astype("float32")
    for got, want in zip(restored(image, training=False).values(), model(image, training=False).values(),
                         strict=True):
        np.testing.assert_allclose(np.asarray(got), np.asarray(want), atol=1e-5)


def test_keep_must_be_best_or_last(tmp_path) -> None:
    from training.train_detector import train_detector

    with pytest.raises(ValueError, match="keep"):
        train_detector([], DetectorConfig(**{**TINY, "keep": "median"}), tmp_path)
