"""TF Serving configs and exports: what production loads is what the client expects.

``saved_model_cli show`` (the tool operators run) is parsed for each export
and checked against metadata.json and the outputs the Analyzer reads; the
checked-in configs are parsed with TF Serving's own protos where the wheel
ships them.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from eyepic.exports import EXPECTED_OUTPUTS
from serving.devserver import read_config
from serving.tfserving_client import signature_problems

REPO = Path(__file__).resolve().parents[1]
SERVING = REPO / "serving"


def parse_saved_model_cli(text: str) -> tuple[dict[str, str], dict[str, str]]:
    """``saved_model_cli show --signature_def`` output -> (inputs, outputs): alias -> dtype."""
    found: dict[str, dict[str, str]] = {"inputs": {}, "outputs": {}}
    for kind, alias, dtype in re.findall(r"(inputs|outputs)\['([^']+)'\] tensor_info:\s*\n\s*dtype: (\w+)", text):
        found[kind][alias] = dtype
    return found["inputs"], found["outputs"]


def exports(model_dir: Path) -> list[Path]:
    return sorted(p.parent for p in model_dir.glob("*/*/saved_model.pb"))


@pytest.mark.slow
def test_saved_model_cli_signature_matches_what_the_client_expects(tiny_model_dir: Path):
    found = exports(tiny_model_dir)
    assert found, "no exports to check"
    for version_dir in found:
        cli = Path(sys.executable).parent / "saved_model_cli"
        out = subprocess.run([str(cli), "show", "--dir", str(version_dir), "--tag_set", "serve",
                              "--signature_def", "serving_default"], capture_output=True, text=True, check=True)
        inputs, outputs = parse_saved_model_cli(out.stdout)
        meta = json.loads((version_dir / "metadata.json").read_text())
        assert inputs == {meta["input_key"]: "DT_STRING"}, out.stdout
        assert set(outputs) == set(meta["outputs"]), out.stdout
        assert EXPECTED_OUTPUTS[meta["kind"]] <= set(outputs)
        assert "Method name is: tensorflow/serving/predict" in out.stdout

        # the same check the gRPC client runs on GetModelMetadata, on the SignatureDef itself
        from tensorflow.core.protobuf import saved_model_pb2

        saved = saved_model_pb2.SavedModel.FromString((version_dir / "saved_model.pb").read_bytes())
        assert signature_problems(saved.meta_graphs[0].signature_def["serving_default"], meta) == []
        broken = dict(meta, outputs=[*meta["outputs"], "extra"], input_key="pixels")
        assert len(signature_problems(saved.meta_graphs[0].signature_def["serving_default"], broken)) == 2

        # warm-up records TF Serving replays at load: real PredictionLogs of this model's input
        import tensorflow as tf
        from tensorflow_serving.apis import prediction_log_pb2

        records = list(tf.data.TFRecordDataset(str(version_dir / "assets.extra" / "tf_serving_warmup_requests"))
                       .as_numpy_iterator())
        assert records
        for raw in records:
            request = prediction_log_pb2.PredictionLog.FromString(raw).predict_log.request
            assert request.model_spec.name == version_dir.parent.name
            assert set(request.inputs) == {meta["input_key"]}


def test_models_config_has_labels_on_pinned_versions():
    config = read_config(SERVING / "models.config")
    models = {m.name: m for m in config.model_config_list.config}
    assert set(models) == {"classifier", "detector"}
    for name, model in models.items():
        assert model.base_path == f"/models/{name}"
        assert model.model_platform == "tensorflow"
        pinned = set(model.model_version_policy.specific.versions)
        assert {"stable", "canary"} <= set(model.version_labels)
        assert set(model.version_labels.values()) <= pinned, "a label may only point at a loaded version"

    rebased = read_config(SERVING / "models.config", models_root="var/models")
    assert [m.base_path for m in rebased.model_config_list.config] == ["var/models/classifier", "var/models/detector"]


def test_models_config_serves_each_released_model_at_its_release_version():
    """The images install the release at its own version number (``eyepic release install``),
    so a new release that the config does not pin would leave TF Serving without it."""
    config = read_config(SERVING / "models.config")
    for model in config.model_config_list.config:
        release = json.loads((SERVING.parent / "models" / model.name / "release.json").read_text())
        assert model.version_labels["stable"] == release["version"], model.name
        assert release["version"] in model.model_version_policy.specific.versions


def test_batching_config_numbers_are_consistent():
    text = (SERVING / "batching.config").read_text()
    body = "\n".join(line.split("#", 1)[0] for line in text.splitlines())
    values = dict(re.findall(r"^(\w+) \{ value: (\w+) \}", body, re.M))
    allowed = [int(v) for v in re.findall(r"^allowed_batch_sizes: (\d+)", body, re.M)]
    assert set(values) == {"max_batch_size", "batch_timeout_micros", "max_enqueued_batches", "num_batch_threads",
                           "enable_large_batch_splitting", "max_execution_batch_size"}
    assert allowed == sorted(allowed) and allowed[-1] == int(values["max_execution_batch_size"])
    assert int(values["max_batch_size"]) >= 32  # an indexer batch (EYEPIC_BATCH_SIZE) fits in one
    assert int(values["batch_timeout_micros"]) <= 5000  # a few ms at most on a ~100 ms search


def test_monitoring_config_enables_prometheus():
    text = (SERVING / "monitoring.config").read_text()
    assert re.search(r"prometheus_config \{\s*enable: true\s*path: \"/monitoring/prometheus/metrics\"\s*\}", text)


def test_write_config_can_serve_each_model_at_its_own_version(tmp_path):
    from devtools.harness import write_config

    path = write_config(tmp_path / "models.config", {"classifier": "/m/classifier", "detector": "/m/detector"},
                        labels=("stable",), versions={"classifier": 1, "detector": 3})
    models = {m.name: m for m in read_config(path).model_config_list.config}
    assert list(models["classifier"].model_version_policy.specific.versions) == [1]
    assert list(models["detector"].model_version_policy.specific.versions) == [3]
    assert models["detector"].version_labels["stable"] == 3 and models["classifier"].version_labels["stable"] == 1
