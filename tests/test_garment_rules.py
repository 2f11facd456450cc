"""Garments as the shopper sees them: group rules, duplicate suppression, the product-photo rule.

A fake ModelClient (no TensorFlow) is the seam: its detector returns the
boxes a test lays out, with their classes and scores; its classifier labels
the i-th crop of a call with the i-th entry of ``crop_labels``.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
from PIL import Image

from eyepic import taxonomy
from eyepic.colors import COLOR_NAMES
from eyepic.exports import ModelMetadata, ModelUnavailable
from eyepic.imaging import encode_png
from eyepic.schema import Garment
from eyepic.settings import Settings, SettingsError
from serving.analyzer import (
    GROUP_RULES,
    Analyzer,
    decide_labels,
    layout_features,
    single_garment_layout,
    suppress_duplicates,
    union_box,
)

GROUPS = list(taxonomy.GROUP_NAMES)
TYPES = list(taxonomy.TYPE_NAMES)
CLASSES = {"group": GROUPS, "type": TYPES, "color": list(COLOR_NAMES)}
DETECTOR_CLASSES = ["onepiece", "outer", "top", "bottom", "shoes"]


def _probs(names, weights):
    p = np.full(len(names), 1e-3)
    for name, w in weights.items():
        p[names.index(name)] = w
    return p / p.sum()


class FakeModels:
    """Detector: ``detections`` [(box, class name, score)]; classifier: crop i gets
    ``crop_labels[i % n]``, a (group weights, type weights) pair or a type name."""

    def __init__(self, detections=None, crop_labels=("t-shirt",), whole=None):
        self.detections = detections
        self.crop_labels = crop_labels
        self.whole = whole  # (photo bytes, label): the label of the whole photo, when sent whole
        self.calls: list[tuple[str, int]] = []

    def metadata(self, model_name):
        if model_name == "detector":
            if self.detections is None:
                raise ModelUnavailable("no detector (fake)")
            return ModelMetadata("detector", 1, {"classes": {"group": DETECTOR_CLASSES}, "input_size": 32})
        return ModelMetadata("classifier", 1, {"classes": CLASSES, "input_size": 32})

    def ready(self, model_name):
        return True

    def predict(self, model_name, images):
        self.metadata(model_name)
        self.calls.append((model_name, len(images)))
        if model_name == "detector":
            n = len(self.detections)
            return {
                "boxes": np.array([[d[0] for d in self.detections]], np.float32).reshape(1, n, 4),
                "classes": np.array([[DETECTOR_CLASSES.index(d[1]) for d in self.detections]]).reshape(1, n),
                "scores": np.array([[d[2] for d in self.detections]], np.float32).reshape(1, n),
                "num_detections": np.array([n]),
            }
        out = {"group_probs": [], "type_probs": [], "color_probs": [], "embedding": []}
        for i, image in enumerate(images):
            label = self.crop_labels[i % len(self.crop_labels)]
            if self.whole is not None and image == self.whole[0]:
                label = self.whole[1]
            if isinstance(label, str):
                groups, types = {taxonomy.group_of(label): 0.9}, {label: 0.9}
            else:
                groups, types = label
            out["group_probs"].append(_probs(GROUPS, groups))
            out["type_probs"].append(_probs(TYPES, types))
            out["color_probs"].append(_probs(list(COLOR_NAMES), {"black": 0.9}))
            seed = int.from_bytes(hashlib.sha256(image).digest()[:8], "little")
            v = np.random.default_rng(seed).normal(size=8)
            out["embedding"].append(v / np.linalg.norm(v))
        return {k: np.stack(v).astype(np.float32) for k, v in out.items()}


@pytest.fixture(scope="module")
def photo() -> bytes:
    """A portrait photo with some structure (crops differ, so their embeddings do)."""
    rng = np.random.default_rng(0)
    return encode_png(Image.fromarray(rng.integers(0, 255, (150, 100, 3), dtype=np.uint8)))


def analyze(photo, detections, crop_labels, whole_label=None, **options):
    """The garments of ``photo``; the whole-photo confidence rule only where a test turns it on."""
    models = FakeModels(detections, crop_labels, None if whole_label is None else (photo, whole_label))
    return Analyzer(models, **{"product_whole_confidence": None, **options}).analyze(photo).garments, models


# --- the rules on their own --------------------------------------------------------------------

def test_detector_rule_takes_the_detectors_group_and_the_likeliest_type_inside_it():
    group_probs = _probs(GROUPS, {"top": 0.8, "outer": 0.2})
    type_probs = _probs(TYPES, {"t-shirt": 0.6, "jacket": 0.25, "coat": 0.1})
    assert decide_labels(group_probs, GROUPS, type_probs, TYPES, "outer", 0.7, "classifier")[::2] == ("top", "t-shirt")
    group, score, type_name, _ = decide_labels(group_probs, GROUPS, type_probs, TYPES, "outer", 0.7, "detector")
    assert (group, type_name) == ("outer", "jacket") and score == pytest.approx(0.7)


def test_detector_rule_leaves_groups_the_detector_cannot_name_to_the_classifier():
    group_probs, type_probs = _probs(GROUPS, {"bag": 0.9}), _probs(TYPES, {"bag": 0.9})
    assert decide_labels(group_probs, GROUPS, type_probs, TYPES, "top", 0.6, "detector",
                         DETECTOR_CLASSES)[0] == "bag"


def test_joint_rule_weighs_both_models():
    # An unsure classifier (top vs outer) follows a sure detector ...
    unsure_g, unsure_t = _probs(GROUPS, {"top": 0.5, "outer": 0.45}), _probs(TYPES, {"t-shirt": 0.5, "jacket": 0.45})
    assert decide_labels(unsure_g, GROUPS, unsure_t, TYPES, "outer", 0.9, "joint")[0] == "outer"
    # ... a sure classifier outweighs an unsure detector.
    sure_g, sure_t = _probs(GROUPS, {"top": 0.97}), _probs(TYPES, {"t-shirt": 0.97})
    group, score, type_name, _ = decide_labels(sure_g, GROUPS, sure_t, TYPES, "outer", 0.3, "joint")
    assert (group, type_name) == ("top", "t-shirt") and 0.5 < score <= 1.0
    # No detector opinion (a user's box, a whole photo): the classifier's answer.
    assert decide_labels(unsure_g, GROUPS, unsure_t, TYPES, None, 1.0, "joint")[0] == "top"


@pytest.mark.parametrize("rule", GROUP_RULES)
def test_every_rule_answers_a_valid_group_and_type_pair(rule):
    rng = np.random.default_rng(1)
    for _ in range(100):
        detected = DETECTOR_CLASSES[int(rng.integers(len(DETECTOR_CLASSES)))]
        group, score, type_name, _ = decide_labels(
            rng.dirichlet(np.ones(len(GROUPS))), GROUPS, rng.dirichlet(np.ones(len(TYPES))), TYPES,
            detected, float(rng.uniform(0.25, 1.0)), rule, DETECTOR_CLASSES)
        assert taxonomy.group_of(type_name) == group and 0.0 <= score <= 1.0


def _garment(box, group, detection=0.9, group_score=0.9):
    return Garment(box=box, group=group, type=taxonomy.types_in_group(group)[0], color="black",
                   scores={"group": group_score, "detection": detection}, embedding=np.zeros(4, np.float32))


def test_duplicates_are_suppressed_within_a_group_only():
    dress_a = _garment((0.2, 0.1, 0.8, 0.9), "onepiece", detection=0.6)
    dress_b = _garment((0.22, 0.12, 0.8, 0.92), "onepiece", detection=0.9)
    coat = _garment((0.18, 0.1, 0.82, 0.8), "outer")
    kept = suppress_duplicates([dress_a, coat, dress_b], 0.5)
    assert kept == [coat, dress_b]  # the better dress stays; a coat over it is another garment
    assert suppress_duplicates([dress_a, dress_b], 0.99) == [dress_a, dress_b]


def test_layout_features_tell_one_garment_from_an_outfit():
    halves = [(0.1, 0.05, 0.9, 0.65), (0.1, 0.35, 0.9, 0.95)]
    outfit = [(0.3, 0.15, 0.7, 0.5), (0.32, 0.5, 0.68, 0.9), (0.33, 0.88, 0.67, 0.97)]
    nested = [(0.2, 0.1, 0.7, 0.6), (0.25, 0.15, 0.65, 0.55)]
    assert union_box(halves) == (0.1, 0.05, 0.9, 0.95)
    f = layout_features(halves)
    assert f["cover"] == pytest.approx(0.72) and f["overlap"] == pytest.approx(0.5)
    assert layout_features(outfit)["overlap"] == 0.0  # the jeans are worn below the shirt
    assert layout_features(nested)["dominance"] == pytest.approx(1.0)
    assert single_garment_layout(halves) and single_garment_layout(nested, dominance=0.9)
    assert not single_garment_layout(nested, dominance=1.05)  # above 1: only the union's cover counts
    assert not single_garment_layout(outfit)
    assert not single_garment_layout(outfit, cover=0.0, dominance=0.0, overlap=0.2)  # stacked: never one
    assert not single_garment_layout(halves[:1])  # one box is one garment already
    assert single_garment_layout(halves[:1], min_boxes=1) and not single_garment_layout(nested[1:], min_boxes=1)


# --- through the Analyzer ----------------------------------------------------------------------

SHIRT_AS_TOP = ((0.3, 0.15, 0.7, 0.5), "top", 0.8)
SHIRT_AS_OUTER = ((0.31, 0.16, 0.71, 0.52), "outer", 0.5)
JEANS = ((0.32, 0.5, 0.68, 0.9), "bottom", 0.7)  # below the shirt: a street photo


@pytest.mark.parametrize("rule", ["classifier", "joint"])
def test_one_shirt_found_as_two_detector_classes_is_one_garment(photo, rule):
    garments, _ = analyze(photo, [SHIRT_AS_TOP, SHIRT_AS_OUTER, JEANS], ["t-shirt", "t-shirt", "jeans"],
                          group_rule=rule)
    assert [(g.group, g.type) for g in garments] == [("top", "t-shirt"), ("bottom", "jeans")]
    assert garments[0].box == pytest.approx(SHIRT_AS_TOP[0]) and garments[0].detected


def test_the_detector_rule_keeps_two_classes_unless_any_overlap_that_large_is_one_garment(photo):
    detections, crops = [SHIRT_AS_TOP, SHIRT_AS_OUTER, JEANS], ["t-shirt", "t-shirt", "jeans"]
    garments, _ = analyze(photo, detections, crops, group_rule="detector")
    assert [g.group for g in garments] == ["top", "outer", "bottom"]
    garments, _ = analyze(photo, detections, crops, group_rule="detector", cross_group_iou=0.8)
    assert [g.group for g in garments] == ["top", "bottom"]


def test_without_suppression_the_duplicate_comes_back(photo):
    garments, _ = analyze(photo, [SHIRT_AS_TOP, SHIRT_AS_OUTER, JEANS], ["t-shirt", "t-shirt", "jeans"],
                          group_rule="classifier", duplicate_iou=None)
    assert [g.group for g in garments] == ["top", "top", "bottom"]


def test_detector_class_decides_the_group_under_the_detector_rule(photo):
    jacket_or_shirt = ({"top": 0.6, "outer": 0.4}, {"shirt": 0.55, "jacket": 0.4})
    detections = [((0.25, 0.12, 0.75, 0.55), "outer", 0.85), ((0.3, 0.6, 0.7, 0.95), "bottom", 0.8)]
    crops = [jacket_or_shirt, "jeans"]
    garments, _ = analyze(photo, detections, crops, group_rule="detector")
    assert [(g.group, g.type) for g in garments] == [("outer", "jacket"), ("bottom", "jeans")]
    garments, _ = analyze(photo, detections, crops, group_rule="classifier")
    assert [(g.group, g.type) for g in garments] == [("top", "shirt"), ("bottom", "jeans")]


@pytest.mark.parametrize(("product_box", "box"), [("union", (0.1, 0.05, 0.9, 0.95)), ("whole", (0, 0, 1, 1))])
def test_a_product_photo_is_one_garment_covering_all_of_it(photo, product_box, box):
    halves = [((0.1, 0.05, 0.9, 0.6), "top", 0.7), ((0.12, 0.35, 0.88, 0.95), "outer", 0.6)]
    for rule in GROUP_RULES:
        (garment,), models = analyze(photo, halves, ["t-shirt", "jacket"], group_rule=rule, product_box=product_box)
        assert garment.box == pytest.approx(box) and garment.detected
        assert garment.scores["detection"] == pytest.approx(0.7)
        assert models.calls == [("detector", 1), ("classifier", 1)]  # one crop


def test_one_detection_is_the_whole_photo_only_when_product_garments_are_whole_photos(photo):
    one = [((0.3, 0.3, 0.6, 0.6), "top", 0.8)]
    (garment,), _ = analyze(photo, one, ["t-shirt"], product_box="whole")
    assert garment.box == (0.0, 0.0, 1.0, 1.0) and garment.detected
    (garment,), _ = analyze(photo, one, ["t-shirt"], product_box="union")
    assert garment.box == pytest.approx(one[0][0])
    (garment,), _ = analyze(photo, one, ["t-shirt"], product_box="whole", product_cover=None)  # rule off
    assert garment.box == pytest.approx(one[0][0])


def test_boxes_all_of_one_class_are_one_garment_a_pair_of_shoes(photo):
    pair = [((0.1, 0.55, 0.35, 0.75), "shoes", 0.8), ((0.45, 0.5, 0.7, 0.72), "shoes", 0.6)]  # side by side, small
    (garment,), models = analyze(photo, pair, ["shoes", "shoes"])
    assert garment.box == (0.0, 0.0, 1.0, 1.0) and garment.scores["detection"] == pytest.approx(0.8)
    assert models.calls == [("detector", 1), ("classifier", 1)]  # one crop
    garments, _ = analyze(photo, pair, ["shoes", "shoes"], product_one_group=False)
    assert len(garments) == 2  # the layout alone: too little of the photo to be one garment
    stacked = [((0.3, 0.1, 0.7, 0.45), "top", 0.8), ((0.3, 0.5, 0.7, 0.9), "top", 0.7)]  # one class, one below
    (garment,), _ = analyze(photo, stacked, ["t-shirt", "t-shirt"])
    assert garment.box == (0.0, 0.0, 1.0, 1.0)


def test_a_street_outfit_stays_several_garments(photo):
    outfit = [((0.3, 0.15, 0.7, 0.5), "top", 0.8), ((0.32, 0.5, 0.68, 0.9), "bottom", 0.7)]
    for rule in GROUP_RULES:
        garments, _ = analyze(photo, outfit, ["t-shirt", "jeans"], group_rule=rule)
        assert [(g.group, g.type) for g in garments] == [("top", "t-shirt"), ("bottom", "jeans")]
    # the web API test's layout: top above bottom filling most of the photo
    tall = [((0.2, 0.05, 0.8, 0.5), "top", 0.9), ((0.25, 0.5, 0.75, 0.98), "bottom", 0.9)]
    garments, _ = analyze(photo, tall, ["t-shirt", "jeans"])
    assert [g.group for g in garments] == ["top", "bottom"]


def test_a_batch_is_one_classifier_call_and_user_boxes_skip_the_rules(photo):
    models = FakeModels([SHIRT_AS_TOP, SHIRT_AS_OUTER], ["t-shirt"])
    results = Analyzer(models, group_rule="joint").analyze_batch([photo, photo, photo],
                                                                 [None, (0.1, 0.1, 0.5, 0.5), None])
    assert [name for name, _ in models.calls].count("classifier") == 1
    assert [len(r.garments) for r in results] == [1, 1, 1]
    assert results[1].garments[0].box == (0.1, 0.1, 0.5, 0.5) and not results[1].garments[0].detected


def test_without_a_detector_the_whole_photo_stands_in(photo):
    (garment,), _ = analyze(photo, None, ["dress"])
    assert garment.box == (0.0, 0.0, 1.0, 1.0) and not garment.detected and garment.group == "onepiece"


def test_settings_choose_the_rules():
    settings = Settings.from_env({"EYEPIC_GROUP_RULE": "joint", "EYEPIC_DUPLICATE_IOU": "0",
                                  "EYEPIC_PRODUCT_COVER": "0.7", "EYEPIC_CROSS_GROUP_IOU": "0.9"})
    analyzer = Analyzer.from_settings(settings, models=FakeModels())
    assert (analyzer.group_rule, analyzer.duplicate_iou, analyzer.product_cover) == ("joint", None, 0.7)
    assert analyzer.cross_group_iou == 0.9 and Analyzer.from_settings(Settings(), FakeModels()).cross_group_iou is None
    assert Analyzer.from_settings(Settings(), models=FakeModels()).group_rule == Settings().group_rule
    with pytest.raises(SettingsError):
        Settings.from_env({"EYEPIC_GROUP_RULE": "vote"})
    with pytest.raises(ValueError):
        Analyzer(FakeModels(), group_rule="vote")


# --- the whole-photo confidence rule -------------------------------------------------------------

FLAT_LAY = [((0.1, 0.1, 0.55, 0.5), "top", 0.7), ((0.3, 0.5, 0.9, 0.95), "bottom", 0.4)]  # a fold as a "bottom"
SURE_SHIRT = ({"top": 5.0}, {"t-shirt": 5.0})  # weights before normalising: p(top) 0.999
UNSURE = ({"top": 0.5, "onepiece": 0.45}, {"t-shirt": 0.5, "dress": 0.45})


def test_two_garments_are_one_whole_product_when_the_classifier_is_sure_of_the_whole_photo(photo):
    (garment,), models = analyze(photo, FLAT_LAY, ["t-shirt", "jeans"], SURE_SHIRT, product_whole_confidence=0.99)
    assert garment.box == (0.0, 0.0, 1.0, 1.0) and garment.detected and garment.group == "top"
    assert garment.scores["detection"] == pytest.approx(0.7)
    assert models.calls == [("detector", 1), ("classifier", 2), ("classifier", 1)]  # the whole photo asked once
    garments, _ = analyze(photo, FLAT_LAY, ["t-shirt", "jeans"], UNSURE, product_whole_confidence=0.99)
    assert [g.group for g in garments] == ["top", "bottom"]  # a street photo of two garments stays two
    garments, models = analyze(photo, FLAT_LAY, ["t-shirt", "jeans"], SURE_SHIRT)  # rule off: never asked
    assert len(garments) == 2 and models.calls == [("detector", 1), ("classifier", 2)]


def test_the_whole_photo_is_asked_only_about_two_garment_photos_once_per_batch(photo):
    three = FLAT_LAY + [((0.1, 0.9, 0.3, 1.0), "shoes", 0.5)]
    garments, models = analyze(photo, three, ["t-shirt", "jeans", "shoes"], SURE_SHIRT, product_whole_confidence=0.99)
    assert len(garments) == 3 and models.calls == [("detector", 1), ("classifier", 3)]
    models = FakeModels(FLAT_LAY, ["t-shirt", "jeans"], (photo, SURE_SHIRT))
    results = Analyzer(models, product_whole_confidence=0.99).analyze_batch([photo, photo, photo],
                                                                          [None, (0.1, 0.1, 0.5, 0.5), None])
    assert [len(r.garments) for r in results] == [1, 1, 1]
    assert [n for name, n in models.calls if name == "classifier"] == [5, 2]  # user's box: never merged or asked


def test_the_whole_photo_confidence_setting_is_a_probability():
    assert Settings.from_env({"EYEPIC_PRODUCT_WHOLE_CONFIDENCE": "0.95"}).product_whole_confidence == 0.95
    assert Analyzer.from_settings(Settings.from_env({"EYEPIC_PRODUCT_WHOLE_CONFIDENCE": "0"}),
                                  FakeModels()).product_whole_confidence is None
    with pytest.raises(SettingsError, match="EYEPIC_PRODUCT_WHOLE_CONFIDENCE"):
        Settings.from_env({"EYEPIC_PRODUCT_WHOLE_CONFIDENCE": "1.5"})
