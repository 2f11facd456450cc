"""``eyepic evaluate search``: end to end through the Analyzer, per group rule.

Fake models (no TensorFlow) check that the numbers move the way the rules
should move them; the tiny real export checks that the command runs without
a detector on real photos and reports detector-less numbers.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from app.evaluate_search import EVAL_GROUPS, CachingModelClient, evaluate_search, has_duplicate
from eyepic import taxonomy
from eyepic.colors import COLOR_NAMES
from eyepic.exports import ModelMetadata, ModelUnavailable
from eyepic.imaging import encode_png
from eyepic.schema import Garment
from serving.analyzer import Analyzer
from training.data.detection import PhotoBoxes
from training.data.samples import Sample

GROUPS = list(taxonomy.GROUP_NAMES)
TYPES = list(taxonomy.TYPE_NAMES)
CLASSES = {"group": GROUPS, "type": TYPES, "color": list(COLOR_NAMES)}


class PhotoFakes:
    """The detector answers each photo (by its bytes) with the boxes given for it; the
    classifier calls every crop ``crop_type`` (right for tops, wrong for the rest)."""

    def __init__(self, detections: dict[bytes, list[tuple]], crop_type: str = "t-shirt", detector: bool = True):
        self.detections = {hashlib.sha1(k).digest(): v for k, v in detections.items()}
        self.crop_type = crop_type
        self.detector = detector
        self.sent: list[tuple[str, int]] = []

    def metadata(self, name):
        if name == "detector":
            if not self.detector:
                raise ModelUnavailable("no detector (fake)")
            return ModelMetadata("detector", 2, {"classes": {"group": list(EVAL_GROUPS)}, "input_size": 32})
        return ModelMetadata("classifier", 5, {"classes": CLASSES, "input_size": 32})

    def ready(self, name):
        return True

    def predict(self, name, images):
        self.metadata(name)
        self.sent.append((name, len(images)))
        if name == "detector":
            (image,) = images
            found = self.detections.get(hashlib.sha1(image).digest(), [])
            n = len(found)
            return {"boxes": np.array([[b for b, _, _ in found]], np.float32).reshape(1, n, 4),
                    "classes": np.array([[EVAL_GROUPS.index(c) for _, c, _ in found]]).reshape(1, n),
                    "scores": np.array([[s for _, _, s in found]], np.float32).reshape(1, n),
                    "num_detections": np.array([n])}
        rows = len(images)
        group_probs = np.full((rows, len(GROUPS)), 0.01, np.float32)
        group_probs[:, GROUPS.index(taxonomy.group_of(self.crop_type))] = 0.9
        type_probs = np.full((rows, len(TYPES)), 0.01, np.float32)
        type_probs[:, TYPES.index(self.crop_type)] = 0.9
        color_probs = np.full((rows, len(COLOR_NAMES)), 0.1, np.float32)
        embedding = np.stack([np.frombuffer(hashlib.sha256(b).digest()[:8], np.uint8).astype(np.float32) + 1
                              for b in images])
        return {"group_probs": group_probs, "type_probs": type_probs, "color_probs": color_probs,
                "embedding": embedding / np.linalg.norm(embedding, axis=1, keepdims=True)}


def _photo(path: Path, seed: int, size=(100, 150)) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
    data = encode_png(Image.fromarray(pixels))
    path.write_bytes(data)
    return data


TOP, BOTTOM = (0.3, 0.15, 0.7, 0.5), (0.32, 0.52, 0.68, 0.9)


@pytest.fixture
def fake_world(tmp_path):
    """Four street photos (a top above a bottom, the top also found as "outer") and four
    product photos (a t-shirt found as two overlapping halves), with the fake models."""
    street, products, detections = [], [], {}
    for i in range(4):
        path = tmp_path / f"street-{i}.png"
        data = _photo(path, i)
        street.append(PhotoBoxes(path=path, split="validation", boxes=(TOP, BOTTOM),
                                 classes=(EVAL_GROUPS.index("top"), EVAL_GROUPS.index("bottom"))))
        detections[data] = [(TOP, "top", 0.9), (BOTTOM, "bottom", 0.8), ((0.31, 0.16, 0.7, 0.52), "outer", 0.4)]
    for i in range(4):
        path = tmp_path / f"product-{i}.png"
        data = _photo(path, 10 + i, size=(120, 120))
        products.append(Sample(path=path, source="clothing-small", split="validation",
                               type="t-shirt" if i % 2 else "shorts", group="top" if i % 2 else "bottom"))
        detections[data] = [((0.1, 0.05, 0.9, 0.75), "top", 0.7), ((0.1, 0.3, 0.9, 0.95), "top", 0.5)]
    return street, products, detections


def test_the_caching_client_asks_each_image_once(fake_world):
    _, products, detections = fake_world
    fakes = PhotoFakes(detections)
    cached = CachingModelClient(fakes)
    images = [p.path.read_bytes() for p in products]
    first = cached.predict("classifier", images[:3])
    again = cached.predict("classifier", [images[2], images[3], images[0], images[3]])
    assert fakes.sent == [("classifier", 3), ("classifier", 1)]
    np.testing.assert_array_equal(again["embedding"][0], first["embedding"][2])
    np.testing.assert_array_equal(again["embedding"][1], again["embedding"][3])


def test_each_rule_is_scored_as_the_api_answers(fake_world, tmp_path):
    street, products, detections = fake_world
    report = evaluate_search(PhotoFakes(detections), street, products, tmp_path / "out",
                             Analyzer(PhotoFakes(detections), group_rule="detector"), latency=False)
    rows = report["variants"]
    assert set(rows) == {"before", "classifier", "detector", "joint", "detector, product garment = union",
                         "detector, without the one-group product rule",
                         "detector, without the whole-photo confidence rule", "whole photo"}
    assert report["default"] == "detector" and report["detector"] == "detector-2"
    # The detector found both garments right; the classifier calls every crop a t-shirt.
    assert report["detector_alone"]["ap50"]["top"] == 1.0
    assert rows["detector"]["ap50"]["top"] == rows["detector"]["ap50"]["bottom"] == 1.0
    assert rows["classifier"]["ap50"]["bottom"] == 0.0 and rows["classifier"]["ap50"]["top"] == 1.0
    # Before the rules the shirt's "outer" box came back as a second top; now it doesn't.
    assert rows["before"]["duplicate_share"] == 1.0 and rows["classifier"]["duplicate_share"] == 0.0
    assert rows["before"]["garments_per_photo"] == 3 and rows["classifier"]["garments_per_photo"] == 2
    # Product photos: two halves before, one garment covering both now.
    assert rows["before"]["product_one_share"] == 0.0
    assert rows["detector"]["product_one_share"] == rows["whole photo"]["product_one_share"] == 1.0
    assert set(rows["whole photo"]) >= {"apparel_map50", "product_type_p@10"}
    assert report["targets"]["duplicates<=3%"] and report["targets"]["one_garment>=95%"]
    saved = json.loads((tmp_path / "out" / "evaluation.json").read_text())
    assert saved["variants"]["detector"]["ap50"] == rows["detector"]["ap50"]
    assert "| **detector** |" in (tmp_path / "out" / "evaluation.md").read_text()


def test_duplicates_are_same_group_overlaps():
    def g(box, group):
        return Garment(box=box, group=group, type="x", color="black", scores={}, embedding=np.zeros(2))

    assert has_duplicate([g(TOP, "top"), g((0.31, 0.16, 0.7, 0.52), "top")])
    assert not has_duplicate([g(TOP, "top"), g((0.31, 0.16, 0.7, 0.52), "outer"), g(BOTTOM, "top")])


def _ccp_subset(data_dir: Path, root: Path, ids: list[str]) -> Path:
    (root / "photos").mkdir(parents=True)
    (root / "annotations" / "pixel-level").mkdir(parents=True)
    (root / "label_list.mat").symlink_to(data_dir / "ccp" / "label_list.mat")
    for i in ids:
        (root / "photos" / f"{i}.jpg").symlink_to(data_dir / "ccp" / "photos" / f"{i}.jpg")
        (root / "annotations" / "pixel-level" / f"{i}.mat").symlink_to(
            data_dir / "ccp" / "annotations" / "pixel-level" / f"{i}.mat")
    return root


def test_evaluate_search_runs_on_real_photos_without_a_detector(tiny_model_dir, data_dir, tmp_path,
                                                                monkeypatch, capsys):
    """The tiny export has no detector: the command still answers, with whole-photo numbers."""
    from app.cli import main

    ccp = _ccp_subset(data_dir, tmp_path / "ccp-few", ["0001", "0002", "0003"])
    small = tmp_path / "data" / "clothing-small" / "validation"
    for name in ("dress", "shorts"):
        (small / name).mkdir(parents=True)
        for photo in sorted((data_dir / "clothing-small" / "validation" / name).glob("*.jpg"))[:3]:
            (small / name / photo.name).symlink_to(photo)
    monkeypatch.setenv("EYEPIC_MODEL_DIR", str(tiny_model_dir))
    monkeypatch.setenv("EYEPIC_DATA_DIR", str(tmp_path / "data"))  # no clothing-extra here: skipped
    monkeypatch.setenv("EYEPIC_VAR_DIR", str(tmp_path / "var"))
    assert main(["evaluate", "search", "--data", str(ccp), "--json"]) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["detector"] is None and report["default"] == "whole photo"
    assert report["street_photos"] == 3 and report["product_photos"] == 6
    row = report["variants"]["whole photo"]
    assert row["garments_per_photo"] == 1 and row["product_one_share"] == 1.0
    assert 0.0 <= row["apparel_map50"] <= 1.0 and 0.0 <= row["product_type_p@10"] <= 1.0
    assert report["latency"]["photos"] == 3
    out = tmp_path / "var" / "reports" / "search" / "classifier-1_no-detector_data-ccp-few"
    assert (out / "evaluation.json").is_file() and "whole photo" in (out / "evaluation.md").read_text()
