"""Released models: made from an export, verified by checksum, installed as the same model.

Fast tests use conftest's tiny export; the slow test re-measures the real
release in ``models/`` against the numbers its model card states.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from app.cli import main
from serving.model_client import InProcessModelClient
from training import release
from training.release import ReleaseError

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tiny_release(tiny_model_dir, tmp_path_factory) -> Path:
    """A release root holding the tiny classifier export, as `eyepic release make` writes it."""
    root = tmp_path_factory.mktemp("release")
    version_dir = tiny_model_dir / "classifier" / "1"
    folder = release.make_release(version_dir, root, REPO / "training" / "configs" / "demo.yaml")
    release.add_evaluations(folder, {"validation": {"samples": 1, "accuracy": {"type": 0.5}}},
                            {"validation": "eyepic evaluate classifier"})
    release.write_card(folder, "## Limits\n\nA tiny test model.")
    release.write_checksums(root)
    return root


def _copy(root: Path, tmp_path: Path) -> Path:
    out = tmp_path / "models"
    shutil.copytree(root, out)
    return out


def test_installed_release_serves_the_same_model(tiny_release, tiny_model_dir, data_dir, tmp_path):
    model_dir = tmp_path / "var-models"
    out, fresh = release.install_release(tiny_release, "classifier", model_dir, "classifier")
    assert fresh and out == model_dir / "classifier" / "1"
    photos = [p.read_bytes() for p in sorted((data_dir / "clothing-small" / "validation" / "pants").glob("*.jpg"))[:3]]
    original = InProcessModelClient(tiny_model_dir).predict("classifier", photos)
    installed = InProcessModelClient(model_dir).predict("classifier", photos)
    for key in ("embedding", "type_probs", "color_probs", "group_probs"):
        np.testing.assert_allclose(installed[key], original[key], atol=1e-5)
    meta = json.loads((out / "metadata.json").read_text())
    source = json.loads((tiny_model_dir / "classifier" / "1" / "metadata.json").read_text())
    assert meta["release"]["weights_sha256"] == release.sha256(tiny_release / "classifier" / release.WEIGHTS)
    assert meta["classes"] == source["classes"] and meta["test_time_flip"] == source["test_time_flip"]
    # A second install reuses the export: nothing is re-exported.
    again, fresh = release.install_release(tiny_release, "classifier", model_dir, "classifier")
    assert (again, fresh) == (out, False)


def test_release_files_and_card(tiny_release):
    folder = tiny_release / "classifier"
    assert {p.name for p in folder.iterdir()} >= {release.WEIGHTS, release.RELEASE_JSON, release.RECIPE,
                                                   release.CARD}
    listed = release.read_checksums(tiny_release)
    assert set(listed) == {p.relative_to(tiny_release).as_posix() for p in release.release_files(tiny_release)}
    card = (folder / release.CARD).read_text()
    assert "eyepic evaluate classifier" in card and "type 0.500" in card and "A tiny test model." in card


def test_truncated_weights_fail_naming_the_file(tiny_release, tmp_path):
    root = _copy(tiny_release, tmp_path)
    weights = root / "classifier" / release.WEIGHTS
    weights.write_bytes(weights.read_bytes()[:1000])
    with pytest.raises(ReleaseError, match=str(weights)):
        release.install_release(root, "classifier", tmp_path / "m", "classifier")
    assert not (tmp_path / "m").exists()


def test_swapped_weights_fail_even_with_fresh_checksums(tiny_release, tiny_model_dir, tmp_path):
    """Weights of another architecture, checksummed anew: the load names the file."""
    from training.models.classifier import GarmentClassifier

    root = _copy(tiny_release, tmp_path)
    config = json.loads((root / "classifier" / release.RELEASE_JSON).read_text())["model_config"]
    other = GarmentClassifier.from_config({**config, "width": config["width"] * 2})
    weights = root / "classifier" / release.WEIGHTS
    other.save_weights(weights)
    release.write_checksums(root)
    with pytest.raises(ReleaseError, match=str(weights)):
        release.install_release(root, "classifier", tmp_path / "m", "classifier")


def test_missing_checksums_or_unlisted_files_are_refused(tiny_release, tmp_path):
    root = _copy(tiny_release, tmp_path)
    (root / "classifier" / "extra.bin").write_bytes(b"x")
    with pytest.raises(ReleaseError, match="extra.bin: not listed"):
        release.verify_release(root, "classifier")
    (root / release.CHECKSUMS).unlink()
    with pytest.raises(ReleaseError, match="SHA256SUMS: missing"):
        release.verify_release(root, "classifier")


def test_cli_reports_a_corrupt_release_in_one_line(tiny_release, tmp_path, monkeypatch, capsys):
    root = _copy(tiny_release, tmp_path)
    weights = root / "classifier" / release.WEIGHTS
    weights.write_bytes(b"\0" + weights.read_bytes()[1:])
    monkeypatch.setenv("EYEPIC_RELEASE_DIR", str(root))
    monkeypatch.setenv("EYEPIC_MODEL_DIR", str(tmp_path / "m"))
    assert main(["release", "install"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(weights) in err and "checksum mismatch" in err
    assert main(["release", "verify"]) == 2


def test_demo_catalog_holds_train_photos_of_both_product_sets(data_dir, tmp_path):
    from indexer.catalog import read_catalog, write_product_manifest

    sets = [(n, data_dir / n) for n in ("clothing-small", "clothing-extra") if (data_dir / n).is_dir()]
    entries = read_catalog(write_product_manifest(sets, tmp_path / "demo.jsonl"))
    train = sum(1 for _, root in sets for p in (root / "train").rglob("*.jpg"))
    assert len(entries) == train > 3000
    assert not any("/validation/" in str(e.image_path) for e in entries)
    assert all(e.type for e in entries) and len({e.id for e in entries}) == len(entries)
    if (data_dir / "clothing-extra").is_dir():
        assert {"polo", "sleeveless", "bodysuit", "blazer"} <= {e.type for e in entries}


# --- the real release ---------------------------------------------------------------------------


def _released(kind: str) -> Path:
    folder = REPO / "models" / kind
    if not (folder / release.RELEASE_JSON).is_file():
        pytest.fail(f"no {kind} release in {folder}")
    return folder


def test_the_repository_release_verifies():
    for kind in ("classifier", "detector"):
        release.verify_release(REPO / "models", kind)
    size = sum(p.stat().st_size for p in release.release_files(REPO / "models"))
    assert size < 40e6, f"the release is {size / 1e6:.1f} MB"


@pytest.mark.slow
def test_released_classifier_reproduces_its_card(data_dir, tmp_path):
    """Install the released classifier and re-measure the card's clothing-small numbers (±0.01)."""
    from training.data.clothing_small import read_folder_per_class
    from training.evaluate_classifier import evaluate_classifier

    stated = json.loads((_released("classifier") / release.RELEASE_JSON).read_text())["evaluations"]
    out, _ = release.install_release(REPO / "models", "classifier", tmp_path / "models", "classifier")
    samples = read_folder_per_class(data_dir / "clothing-small" / "validation")
    report = evaluate_classifier(InProcessModelClient(tmp_path / "models"), samples, tmp_path / "eval",
                                 behavioral=False)
    for head in ("group", "type"):
        assert report["heads"][head]["accuracy"] == pytest.approx(
            stated["clothing-small"]["accuracy"][head], abs=0.01)


@pytest.mark.slow
def test_released_detector_reproduces_its_card(data_dir, tmp_path):
    """Install the released detector and re-measure the card's validation mAP (±0.01)."""
    from training.data.detection import load_detection_photos
    from training.evaluate_detector import evaluate_export

    stated = json.loads((_released("detector") / release.RELEASE_JSON).read_text())
    out, _ = release.install_release(REPO / "models", "detector", tmp_path / "models", "detector")
    photos = [p for p in load_detection_photos(data_dir, tmp_path / "cache", stated["classes"]["group"])
              if p.split == "validation"]
    report = evaluate_export(out, photos, tmp_path / "eval")
    assert report["map50"] == pytest.approx(stated["evaluations"]["validation"]["map50"], abs=0.01)
    assert report["apparel_map50"] == pytest.approx(stated["evaluations"]["validation"]["apparel_map50"], abs=0.01)
