"""Evaluation harness: retrieval metrics on known answers, behavioral-check mechanics, the report.

The tiny model is not good; these tests check that the numbers are computed
right and the transforms do what they claim, not that the model passes.
"""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from eyepic.colors import dominant_color, srgb_to_lab
from serving.model_client import InProcessModelClient, latest_version_dir
from training import behavioral, metrics, predictions
from training.data.samples import Sample
from training.evaluate_classifier import evaluate_classifier
from training.models import rebuild

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def _unit(*degrees: float) -> np.ndarray:
    rad = np.radians(degrees)
    return np.stack([np.cos(rad), np.sin(rad)], axis=1).astype("float32")


def test_retrieval_metrics_leave_one_out_on_known_neighbours():
    # a(0°,x) b(10°,x) c(90°,y) d(100°,x); c has no other y, so it is no query.
    emb, labels = _unit(0, 10, 90, 100), ["x", "x", "y", "x"]
    m = metrics.retrieval_metrics(emb, labels, ks=(1, 2))
    assert m == {"p@1": round(2 / 3, 4), "p@2": 0.5, "r@1": round(2 / 3, 4), "r@2": 1.0, "queries": 3,
                 "no_relevant": 1}
    # An unlabelled item right next to a is neither a query nor a neighbour.
    with_none = metrics.retrieval_metrics(_unit(0, 10, 90, 100, 1), labels + [None], ks=(1, 2))
    assert with_none == m


def test_retrieval_metrics_with_separate_queries_keeps_identical_gallery_items():
    gallery, labels = _unit(0, 90, 180), ["x", "y", "x"]
    m = metrics.retrieval_metrics(gallery, labels, ks=(1, 3), queries=_unit(0, 95, 300), query_labels=["x", "x", "z"])
    # q0 finds g0 (hit) first; q1 finds y, then x at 180° and 0°; z has no match, so no query.
    assert m == {"p@1": 0.5, "p@3": round((2 / 3 + 2 / 3) / 2, 4), "r@1": 0.5, "r@3": 1.0, "queries": 2,
                 "no_relevant": 1}
    assert metrics.retrieval_metrics(gallery, labels, queries=_unit(0), query_labels=["z"]) is None


def test_filtered_retrieval_counts_a_query_whose_relevant_items_were_filtered_away_as_a_miss():
    gallery, labels = _unit(0, 10, 180), ["x", "x", "y"]
    queries = _unit(5, 185)
    allowed = np.array([[True, True, False],    # q0 (x): sees both x
                        [False, False, True]])  # q1 (x): a wrong group, sees only y
    m = metrics.retrieval_metrics(gallery, labels, ks=(1, 2), queries=queries, query_labels=["x", "x"],
                             allowed=allowed)
    assert m == {"p@1": 0.5, "p@2": 0.5, "r@1": 0.5, "r@2": 0.5, "queries": 2, "no_relevant": 0}
    unfiltered = metrics.retrieval_metrics(gallery, labels, ks=(1, 2), queries=queries, query_labels=["x", "x"])
    assert unfiltered["p@2"] == 0.75  # q1's nearest is y at 180 deg, then x


def test_label_set_accuracy_chooses_among_the_data_sets_own_classes():
    classes = ["shirt", "blouse", "pants", "coat"]
    probs = np.array([[0.3, 0.6, 0.1, 0.0], [0.1, 0.1, 0.7, 0.1], [0.25, 0.5, 0.15, 0.1]])
    true = ["shirt", "pants", "pants"]  # blouse and coat are not in this data set
    # row 1: blouse is out of the set, so shirt (right); row 3: shirt beats pants (wrong)
    assert metrics.label_set_accuracy(probs, true, classes) == round(2 / 3, 4)


def test_retrieval_report_settings_and_color_relevance(tiny_samples):
    vectors = np.random.default_rng(0).normal(size=(len(tiny_samples), 8))
    report = metrics.retrieval_report(vectors, tiny_samples)
    assert set(report) == {"all", "product_to_product", "street_to_product"}
    served = metrics.retrieval_report(vectors, tiny_samples, predicted_groups=[s.group for s in tiny_samples])
    as_served = served["street_to_product_as_served"]["same_type"]
    assert as_served["queries"] == report["street_to_product"]["same_type"]["queries"]
    for k in metrics.KS:  # with the true groups the filter only removes irrelevant items
        assert as_served[f"p@{k}"] >= report["street_to_product"]["same_type"][f"p@{k}"]
    # Product photos carry no color label: type+color only among street crops.
    assert "same_type_color" in report["all"]
    assert "same_type_color" not in report["product_to_product"]
    assert "same_type_color" not in report["street_to_product"]
    product_types = {s.type for s in tiny_samples if s.source != "ccp"}
    assert report["street_to_product"]["same_type"]["queries"] == sum(
        s.source == "ccp" and s.type in product_types for s in tiny_samples)
    for m in (v for by_rel in report.values() for v in by_rel.values()):
        assert all(0.0 <= m[f"{kind}@{k}"] <= 1.0 for kind in "pr" for k in metrics.KS)
        assert m["p@1"] <= m["r@5"] <= m["r@10"]


def test_center_crop_is_the_central_fraction():
    pixels = np.arange(50 * 100 * 3, dtype=np.uint32).reshape(50, 100, 3).astype(np.uint8)
    crop = behavioral.center_crop(Image.fromarray(pixels), 0.8)
    assert crop.size == (80, 40)
    np.testing.assert_array_equal(np.asarray(crop), pixels[5:45, 10:90])


def test_recolor_names_the_masked_pixels_the_target_and_leaves_the_rest():
    rng = np.random.default_rng(0)
    rgb = np.clip(rng.normal([190, 35, 40], 12, (60, 60, 3)), 0, 255).astype(np.uint8)  # red cloth
    mask = np.zeros((60, 60), bool)
    mask[10:50, 15:45] = True  # red pixels outside the mask stand for skin/background: untouched
    out = behavioral.recolor(rgb, mask, "blue")
    assert out is not None
    assert dominant_color(rgb[mask]) == "red" and dominant_color(out[mask]) == "blue"
    np.testing.assert_array_equal(out[~mask], rgb[~mask])
    # A hue rotation: lightness and chroma of each pixel stay (up to 8-bit rounding / gamut).
    before, after = srgb_to_lab(rgb[mask]), srgb_to_lab(out[mask])
    assert np.abs(after[:, 0] - before[:, 0]).mean() < 3.0
    gray = np.full((4, 4, 3), 128, np.uint8)  # gray has no hue
    assert behavioral.recolor(gray, np.ones((4, 4), bool), "blue") is None


def _hue_garment(data_dir: Path) -> Sample:
    from training.data import ccp

    names = ccp.read_label_names(data_dir / "ccp")
    for mat in sorted((data_dir / "ccp" / "annotations" / "pixel-level").glob("*.mat"))[:80]:
        photo = data_dir / "ccp" / "photos" / f"{mat.stem}.jpg"
        for r in ccp.photo_regions(photo, mat, names):
            if r.color in behavioral.RECOLOR_TARGETS:
                return Sample(path=photo, source="ccp", split="validation", type=r.type, group=r.group,
                              color=r.color, box=r.box, key=f"{mat.stem}/{r.group}")
    pytest.fail("no CCP garment of a hue color among the first 80 photos")


def test_garment_mask_is_the_readers_mask(tiny_samples):
    street = [s for s in tiny_samples if s.source == "ccp"][:6]
    for s in street:
        mask = behavioral.garment_mask(s)
        rgb = np.asarray(Image.open(s.path).convert("RGB").resize(mask.shape[::-1]))
        assert dominant_color(rgb[mask]) == s.color
        ys, xs = np.nonzero(mask)
        h, w = mask.shape
        np.testing.assert_allclose((xs.min() / w, ys.min() / h, (xs.max() + 1) / w, (ys.max() + 1) / h), s.box)


def test_recolor_of_a_real_street_garment(data_dir):
    sample = _hue_garment(data_dir)
    original, changed, target = behavioral._recolor_one(sample)
    assert target in behavioral.RECOLOR_TARGETS[sample.color]
    a = np.asarray(Image.open(io.BytesIO(original)).convert("RGB"))
    b = np.asarray(Image.open(io.BytesIO(changed)).convert("RGB"))
    mask = behavioral.garment_mask(sample)
    h, w = mask.shape
    x0, y0 = int(np.floor(sample.box[0] * w)), int(np.floor(sample.box[1] * h))
    crop_mask = mask[y0 : y0 + a.shape[0], x0 : x0 + a.shape[1]]
    assert dominant_color(b[crop_mask]) == target != dominant_color(a[crop_mask])
    np.testing.assert_array_equal(a[~crop_mask], b[~crop_mask])


def test_type_consistency_of_the_identity_is_perfect(tiny_model_dir, tiny_samples):
    client = InProcessModelClient(tiny_model_dir)
    samples = tiny_samples[::15]
    m = behavioral._type_consistency(client, "classifier", samples, lambda image: image)
    assert m["rate"] == 1.0 and m["n"] == len(samples)
    assert m["accuracy_original"] == m["accuracy_transformed"]


def test_behavioral_checks_report_every_check(tiny_model_dir, tiny_samples):
    client = InProcessModelClient(tiny_model_dir)
    report = behavioral.behavioral_checks(client, "classifier", tiny_samples, limit=12)
    assert set(report) == {"flip_keeps_type", "recolor_moves_color", "center_crop_keeps_type"}
    assert report["flip_keeps_type"]["n"] == 12 and report["center_crop_keeps_type"]["n"] == 12
    hue = [s for s in tiny_samples if s.source == "ccp" and s.color in behavioral.RECOLOR_TARGETS]
    recolor = report["recolor_moves_color"]
    assert recolor["n"] + recolor["skipped"] == min(len(hue), 12)
    for m in report.values():
        assert "rate" not in m or 0.0 <= m["rate"] <= 1.0


def test_rebuilt_model_matches_the_export(tiny_model_dir, tiny_samples, tmp_path):
    version_dir = latest_version_dir(tiny_model_dir, "classifier")
    model = rebuild.rebuild_model(version_dir)
    samples = tiny_samples[:3] + tiny_samples[-3:]
    pooled, emb = predictions.pooled_features(model, samples)
    served = InProcessModelClient(tiny_model_dir).predict("classifier", [predictions.encode_sample(s) for s in samples])
    np.testing.assert_allclose(emb, served["embedding"], atol=1e-5)
    assert pooled.shape == (6, model.get_layer("pool").output.shape[-1])
    # A config that does not describe the saved variables is refused, not guessed at.
    other = tmp_path / "classifier" / "1"
    shutil.copytree(version_dir, other)
    meta = json.loads((other / "metadata.json").read_text())
    meta["model_config"]["width"] *= 2
    (other / "metadata.json").write_text(json.dumps(meta))
    assert rebuild.rebuild_model(other) is None


def test_evaluate_classifier_report_and_baseline_guard(tiny_model_dir, tiny_samples, tmp_path):
    from training.models.classifier import GarmentClassifier

    client = InProcessModelClient(tiny_model_dir)
    samples = [s for s in tiny_samples if s.split == "validation"]
    model = rebuild.rebuild_model(latest_version_dir(tiny_model_dir, "classifier"))
    report = evaluate_classifier(client, samples, tmp_path / "a", keras_model=model, behavioral=False)
    assert {"group", "type", "color"} <= set(report["heads"]) and report["notes"] == []
    assert set(report["retrieval_baseline"]) == set(report["retrieval"])
    md = (tmp_path / "a" / "evaluation.md").read_text()
    assert "## Retrieval baseline" in md and "| street_to_product | same_type |" in md
    assert (tmp_path / "a" / "confusion_type.png").stat().st_size > 0
    # A model that is not the export (fresh weights) must not pose as its baseline.
    stranger = GarmentClassifier.from_config(model.get_config())
    report = evaluate_classifier(client, samples, tmp_path / "b", keras_model=stranger, behavioral=False)
    assert "retrieval_baseline" not in report and "differs from the export" in report["notes"][0]


def test_cli_json_last_line(tiny_model_dir, data_dir, tmp_path, monkeypatch, capsys):
    from app.cli import main

    models = tmp_path / "models"
    shutil.copytree(tiny_model_dir, models)
    folder = tmp_path / "photos"
    for name in ("dress", "pants", "shoes"):
        (folder / name).mkdir(parents=True)
        for photo in sorted((data_dir / "clothing-small" / "validation" / name).glob("*.jpg"))[:3]:
            (folder / name / photo.name).symlink_to(photo)
    monkeypatch.setenv("EYEPIC_MODEL_DIR", str(models))
    monkeypatch.setenv("EYEPIC_VAR_DIR", str(tmp_path / "var"))
    assert main(["evaluate", "classifier", "--data", str(folder), "--json"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    out = json.loads(lines[-1])
    assert any(line.startswith("photos: group acc") for line in lines)  # named after the data, not "validation"
    assert {"group", "type", "retrieval", "retrieval_baseline", "behavioral"} <= set(out)
    assert "color" not in out  # folder photos have no color label: no fake number
    assert out["samples"] == 9 and 0.0 <= out["type"] <= 1.0
    assert set(out["retrieval"]) == {"all", "product_to_product"}
    assert (models / "classifier" / "1" / "evaluation" / "photos" / "evaluation.json").exists()
