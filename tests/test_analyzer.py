"""Analyzer unit behaviour: consistent labels and batching, on the real tiny export."""

import numpy as np
import pytest

from eyepic import taxonomy
from eyepic.imaging import ImageError
from serving.analyzer import WHOLE_IMAGE, Analyzer, consistent_labels
from serving.model_client import InProcessModelClient

GROUPS = list(taxonomy.GROUP_NAMES)
TYPES = list(taxonomy.TYPE_NAMES)


def _probs(names, weights):
    p = np.full(len(names), 1e-3)
    for name, w in weights.items():
        p[names.index(name)] = w
    return p / p.sum()


def test_group_and_type_always_agree():
    # The group head says hat, the type head says shoes: the two never disagree in the answer.
    group, _, type_name, _ = consistent_labels(
        _probs(GROUPS, {"hat": 0.55, "shoes": 0.45}), GROUPS, _probs(TYPES, {"shoes": 0.9}), TYPES)
    assert (group, type_name) == ("shoes", "shoes")


def test_type_mass_of_a_group_adds_up():
    # No single bottom type wins, but together they outweigh the top.
    group, _, type_name, _ = consistent_labels(
        _probs(GROUPS, {"bottom": 0.5, "top": 0.5}), GROUPS,
        _probs(TYPES, {"t-shirt": 0.34, "jeans": 0.33, "pants": 0.33}), TYPES)
    assert group == "bottom" and type_name in {"jeans", "pants"}


def test_every_answer_is_a_valid_pair():
    rng = np.random.default_rng(0)
    for _ in range(200):
        group, _, type_name, _ = consistent_labels(rng.dirichlet(np.ones(len(GROUPS))), GROUPS,
                                                   rng.dirichlet(np.ones(len(TYPES))), TYPES)
        assert taxonomy.group_of(type_name) == group


def test_batch_equals_one_by_one(tiny_model_dir, data_dir):
    analyzer = Analyzer(InProcessModelClient(tiny_model_dir), detector=None)
    photos = [p.read_bytes() for p in sorted((data_dir / "clothing-small" / "validation" / "hat").glob("*.jpg"))[:3]]
    batch = analyzer.analyze_batch(photos)
    for data, result in zip(photos, batch):
        (single,) = analyzer.analyze(data).garments
        (batched,) = result.garments
        assert batched.box == WHOLE_IMAGE and not batched.detected
        assert (single.group, single.type, single.color) == (batched.group, batched.type, batched.color)
        np.testing.assert_allclose(single.embedding, batched.embedding, atol=1e-5)


def test_a_user_box_is_analyzed_alone(tiny_model_dir, data_dir):
    analyzer = Analyzer(InProcessModelClient(tiny_model_dir), detector=None)
    photo = (data_dir / "ccp" / "photos" / "0001.jpg").read_bytes()
    (garment,) = analyzer.analyze(photo, box=(0.3, 0.15, 0.7, 0.45)).garments
    assert garment.box == (0.3, 0.15, 0.7, 0.45)
    whole = analyzer.analyze(photo).garments[0]
    assert float(garment.embedding @ whole.embedding) < 0.9999


def test_bad_bytes_raise_image_error(tiny_model_dir):
    with pytest.raises(ImageError):
        Analyzer(InProcessModelClient(tiny_model_dir)).analyze(b"GIF89a-but-not-really")


def _export_with_fusion(tiny_model_dir, tmp_path, weight: float, **fusion):
    import json
    import shutil

    model_dir = tmp_path / "models"
    shutil.copytree(tiny_model_dir, model_dir)
    meta_path = model_dir / "classifier" / "1" / "metadata.json"
    meta = json.loads(meta_path.read_text())
    meta["color_fusion"] = {"pixel_weight": weight, "floor": 0.01, **fusion}
    meta_path.write_text(json.dumps(meta))
    return model_dir


def test_garment_crops_fuse_pixel_colors_and_whole_photos_do_not(tiny_model_dir, tmp_path):
    """With the calibrated weight in the metadata, a crop of pure red cloth is red
    whatever the (tiny, untrained) head says; a whole-photo fallback keeps the head's color."""
    from PIL import Image

    from eyepic.imaging import encode_png

    pixels = np.zeros((120, 120, 3), np.uint8)
    pixels[:, :] = (40, 90, 200)  # blue surroundings
    pixels[30:90, 30:90] = (200, 20, 30)  # red cloth in the middle
    photo = encode_png(Image.fromarray(pixels))
    plain = Analyzer(InProcessModelClient(tiny_model_dir), detector=None)
    fused = Analyzer(InProcessModelClient(_export_with_fusion(tiny_model_dir, tmp_path, 3.0)), detector=None)
    box = (0.25, 0.25, 0.75, 0.75)
    (garment,) = fused.analyze(photo, box=box).garments
    assert garment.color == "red" and garment.scores["color"] > 0.9
    (head_only,) = plain.analyze(photo, box=box).garments
    np.testing.assert_allclose(head_only.embedding, garment.embedding, atol=1e-6)  # only the color changes
    assert fused.analyze(photo).garments[0].color == plain.analyze(photo).garments[0].color


@pytest.mark.parametrize(("window", "color"), [(None, "blue"), (1.0, "blue"), (0.75, "red")])
def test_the_exports_box_window_decides_which_pixels_vote(tiny_model_dir, tmp_path, window, color):
    """Red cloth filling the middle of a box whose edges are blue: the whole box is
    mostly blue (an export without a window counts it all), its central 75 % mostly red.
    A pixel weight of 25 lets the pixels outvote any head: fuse_color caps the head's
    log-odds at log(1e6) ~ 13.8, and 25 * log(0.67 / 0.35) ~ 16 (10 sufficed only while
    the tiny head was unsure of the color)."""
    from PIL import Image

    from eyepic.imaging import encode_png

    pixels = np.zeros((200, 200, 3), np.uint8)
    pixels[:, :] = (40, 90, 200)
    pixels[45:155, 45:155] = (200, 20, 30)  # 110 px of red in a 180 px box
    extra = {} if window is None else {"window": window}
    analyzer = Analyzer(InProcessModelClient(_export_with_fusion(tiny_model_dir, tmp_path, 25.0, **extra)),
                        detector=None)
    (garment,) = analyzer.analyze(encode_png(Image.fromarray(pixels)), box=(0.05, 0.05, 0.95, 0.95)).garments
    assert garment.color == color


def test_calibration_picks_the_best_training_weight_and_is_stored(tiny_model_dir, tiny_samples, tmp_path):
    import json
    import shutil

    from eyepic import exports
    from training.calibrate import PIXEL_WEIGHTS, WINDOWS, calibrate_color_fusion, record_color_fusion

    model_dir = _export_with_fusion(tiny_model_dir, tmp_path, 0.0)
    fusion = calibrate_color_fusion(InProcessModelClient(model_dir), "classifier", tiny_samples, limit=40)
    accuracy = {(float(w), float(window)): a for window, row in fusion["accuracy"].items() for w, a in row.items()}
    assert set(accuracy) == {(w, window) for w in PIXEL_WEIGHTS for window in WINDOWS}
    assert fusion["calibrated_on"] == min(40, sum(
        s.split == "train" and bool(s.color) and s.source == "ccp" for s in tiny_samples))
    assert fusion["window"] in WINDOWS
    assert accuracy[fusion["pixel_weight"], fusion["window"]] == max(accuracy.values())
    # recorded while staged, as the publish pipeline does: a published version never changes
    staged = exports.stage(model_dir, "classifier")
    shutil.copytree(model_dir / "classifier" / "1", staged.path)
    record_color_fusion(staged.path, fusion)
    published = exports.publish(staged)
    stored = json.loads((published / "metadata.json").read_text())["color_fusion"]
    assert stored["pixel_weight"] == fusion["pixel_weight"]
    assert InProcessModelClient(model_dir).metadata("classifier").raw["color_fusion"] == stored


def test_a_model_trained_without_calibration_photos_is_calibrated_on_them(tiny_model_dir, tiny_samples,
                                                                          tmp_path):
    import json

    from training.calibrate import calibrate_color_fusion
    from training.data.samples import calibration_part

    model_dir = _export_with_fusion(tiny_model_dir, tmp_path, 0.0)
    meta_path = model_dir / "classifier" / "1" / "metadata.json"
    meta = json.loads(meta_path.read_text())
    meta["training"]["recipe"]["calibration_fraction"] = 0.5
    meta_path.write_text(json.dumps(meta))
    fusion = calibrate_color_fusion(InProcessModelClient(model_dir), "classifier", tiny_samples)
    held = [s for s in calibration_part(tiny_samples, 0.5)[1] if s.color]
    assert fusion["crops"] == "calibration" and fusion["calibrated_on"] == len(held) > 0


class _RecordingClient(InProcessModelClient):
    """The real in-process client, noting what each model was sent."""

    def __init__(self, model_dir):
        super().__init__(model_dir)
        self.sent: dict[str, list[bytes]] = {}

    def predict(self, name, images):
        self.sent.setdefault(name, []).extend(images)
        return super().predict(name, images)


def test_an_upright_photo_reaches_the_model_as_uploaded(tiny_model_dir, data_dir):
    """No PNG re-encode when the graph decodes the same picture from the upload;
    a rotated photo goes as the upright PNG load_image made of it."""
    import io

    from PIL import Image

    photo = (data_dir / "ccp" / "photos" / "0001.jpg").read_bytes()
    client = _RecordingClient(tiny_model_dir)
    analyzer = Analyzer(client, detector=None)
    analyzer.analyze(photo)
    assert client.sent["classifier"] == [photo]

    exif = Image.Exif()
    exif[0x0112] = 6
    rotated = io.BytesIO()
    Image.open(io.BytesIO(photo)).save(rotated, format="JPEG", exif=exif)
    analyzer.analyze(rotated.getvalue())
    sent = Image.open(io.BytesIO(client.sent["classifier"][-1]))
    assert sent.format == "PNG" and sent.size == Image.open(io.BytesIO(photo)).size[::-1]


def test_a_whole_photo_box_sends_each_photo_its_own_bytes(tiny_model_dir, data_dir):
    """A user box covering the whole photo is that photo as uploaded, also after
    other photos in the same batch."""
    photos = [(data_dir / "ccp" / "photos" / name).read_bytes() for name in ("0001.jpg", "0002.jpg")]
    client = _RecordingClient(tiny_model_dir)
    Analyzer(client, detector=None).analyze_batch(photos, [None, WHOLE_IMAGE])
    assert client.sent["classifier"] == photos
