"""The export contract (eyepic.exports): one version rule, staged writes, an atomic publish."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from eyepic import exports


def fake_version(base: Path, version: int, **meta: object) -> Path:
    folder = base / str(version)
    folder.mkdir(parents=True)
    (folder / exports.SAVED_MODEL_FILE).write_bytes(b"")
    (folder / exports.METADATA_FILE).write_text(json.dumps({"name": base.name, "version": version, **meta}))
    return folder


def test_versions_are_integer_folders_with_a_saved_model(tmp_path):
    base = tmp_path / "classifier"
    fake_version(base, 2)
    fake_version(base, 10)
    (base / "3").mkdir()  # no SavedModel: not a version
    (base / ".tmp-11-123").mkdir()  # staged: not a version yet
    assert exports.list_versions(base) == [2, 10]
    assert exports.latest_version_dir(tmp_path, "classifier") == base / "10"
    assert exports.next_version(base) == 11
    with pytest.raises(exports.ModelUnavailable, match="no exported 'detector' model"):
        exports.latest_version_dir(tmp_path, "detector")


def test_staged_metadata_is_written_then_published_whole(tmp_path):
    fake_version(tmp_path / "classifier", 1, embedding_dim=8)
    staged = exports.stage(tmp_path, "classifier")
    assert staged.version == 2 and exports.is_staged(staged.path)
    staged.path.mkdir()
    (staged.path / exports.SAVED_MODEL_FILE).write_bytes(b"")
    exports.write_metadata(staged.path, {"name": "classifier", "version": 2, "embedding_dim": 16})
    exports.update_metadata(staged.path, color_fusion={"pixel_weight": 1.0})
    assert exports.read_metadata(staged.path).version == 2  # a staged folder's version is its file's
    assert exports.list_versions(tmp_path / "classifier") == [1]  # not served before it is published
    final = exports.publish(staged)
    meta = exports.read_metadata(final)
    assert (meta.name, meta.version, meta.raw["color_fusion"]) == ("classifier", 2, {"pixel_weight": 1.0})
    assert exports.embedding_dim(tmp_path, "classifier") == 16


def test_a_published_version_never_changes(tmp_path):
    published = fake_version(tmp_path / "classifier", 1)
    with pytest.raises(exports.ExportError, match="never changes"):
        exports.update_metadata(published, metrics={"type_accuracy": 1.0})
    assert "metrics" not in exports.load_metadata(published)


def test_a_failed_pipeline_leaves_no_version_behind(tmp_path):
    staged = exports.stage(tmp_path, "classifier")
    staged.path.mkdir()
    exports.write_metadata(staged.path, {"name": "classifier", "version": staged.version})
    with pytest.raises(RuntimeError, match="evaluation failed"), exports.publishing(staged):
        raise RuntimeError("evaluation failed")
    assert not staged.path.exists() and not staged.final.exists()
