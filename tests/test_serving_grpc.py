"""The TF Serving path over a real socket: dev server, gRPC model client, parity.

A real ``python -m serving.devserver`` process serves the tiny classifier
trained and exported by conftest (versions 1 and 2 of it, labels stable and
canary) on a free 127.0.0.1 port; the client and raw stubs talk to it with
the real ``tensorflow_serving.apis`` protos. No mocked stubs.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import grpc
import numpy as np
import pytest

from devtools.harness import DevServerProcess, free_port, write_config
from serving.model_client import InProcessModelClient, read_metadata
from serving.tfserving_client import GrpcModelClient, ModelNotFound, ModelRequestError, SignatureMismatch

pytestmark = pytest.mark.slow  # starts a TensorFlow process and loads models (~15 s)


@pytest.fixture(scope="module")
def two_versions(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model dir with classifier versions 1 and 2 (the same weights, version 2 labelled as such)."""
    root = tmp_path_factory.mktemp("served-models")
    shutil.copytree(tiny_model_dir / "classifier" / "1", root / "classifier" / "1")
    shutil.copytree(tiny_model_dir / "classifier" / "1", root / "classifier" / "2")
    meta_path = root / "classifier" / "2" / "metadata.json"
    meta = json.loads(meta_path.read_text())
    meta["version"] = 2
    meta_path.write_text(json.dumps(meta))
    return root


@pytest.fixture(scope="module")
def devserver(two_versions: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevServerProcess]:
    folder = tmp_path_factory.mktemp("devserver")
    config = write_config(folder / "models.config", {"classifier": two_versions / "classifier"},
                          labels={"stable": 1, "canary": 2}, versions=(1, 2))
    with DevServerProcess(config, free_port(), log_path=folder / "devserver.log") as server:
        yield server


@pytest.fixture(scope="module")
def channel(devserver: DevServerProcess) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(devserver.target) as ch:
        yield ch


@pytest.fixture(scope="module")
def photos(data_dir: Path) -> list[bytes]:
    """Six real photos: product shots and a CCP street photo."""
    shots = sorted((data_dir / "clothing-small" / "validation").glob("*/*.jpg"))[::40][:5]
    street = sorted((data_dir / "ccp" / "photos").glob("*.jpg"))[:1]
    return [p.read_bytes() for p in shots + street]


def client(devserver: DevServerProcess, metadata_dir: Path, label: str = "stable") -> GrpcModelClient:
    return GrpcModelClient(devserver.target, metadata_dir, version_label=label, timeout_s=30.0)


# ---------------------------------------------------------------- parity
def test_keras_inprocess_and_grpc_give_the_same_outputs(tiny_trained, tiny_model_dir, two_versions, devserver,
                                                        photos):
    import tensorflow as tf

    from eyepic.imaging import decode_and_resize

    model = tiny_trained[0]
    size = int(model.input_shape[1])
    pixels = tf.stack([decode_and_resize(tf.constant(b), size) for b in photos])
    keras_out = {k: np.asarray(v) for k, v in model(pixels, training=False).items()}
    in_process = InProcessModelClient(tiny_model_dir).predict("classifier", photos)
    over_grpc = client(devserver, two_versions).predict("classifier", photos)

    assert set(over_grpc) == set(in_process) == {"embedding", "group_probs", "type_probs", "color_probs"}
    for key in over_grpc:
        assert over_grpc[key].shape == in_process[key].shape == (len(photos), *keras_out[key].shape[1:])
        assert np.max(np.abs(over_grpc[key] - in_process[key])) <= 1e-5, key
        assert np.max(np.abs(over_grpc[key] - keras_out[key])) <= 1e-5, key


def test_analyzer_over_grpc_matches_in_process(tiny_model_dir, two_versions, devserver, photos):
    """No detector is served: NOT_FOUND falls back to the whole photo, as in-process."""
    from serving.analyzer import Analyzer

    remote = Analyzer(client(devserver, two_versions)).analyze_batch(photos[:3])
    local = Analyzer(InProcessModelClient(tiny_model_dir)).analyze_batch(photos[:3])
    for r, loc in zip(remote, local):
        assert [(g.group, g.type, g.color, g.box) for g in r.garments] == [
            (g.group, g.type, g.color, g.box) for g in loc.garments]
        assert np.allclose(r.garments[0].embedding, loc.garments[0].embedding, atol=1e-5)
        assert not r.detector_used


# ---------------------------------------------------------------- versions and labels
def test_labels_resolve_to_versions_and_metadata_follows(devserver, two_versions, photos):
    stable = client(devserver, two_versions, "stable")
    canary = client(devserver, two_versions, "canary")
    latest = client(devserver, two_versions, "")
    assert stable.metadata("classifier").version == 1
    assert canary.metadata("classifier").version == 2
    assert latest.metadata("classifier").version == 2
    assert stable.ready("classifier") and canary.ready("classifier")
    assert stable.metadata("classifier").raw == read_metadata(two_versions / "classifier" / "1").raw


def test_label_move_is_picked_up_without_a_restart(devserver, two_versions, photos, channel, tmp_path):
    """Reload the config with stable -> 2: the client's next answer comes from version 2's metadata."""
    from tensorflow_serving.apis import model_management_pb2, model_service_pb2_grpc

    from serving.devserver import read_config

    stable = client(devserver, two_versions, "stable")
    assert stable.metadata("classifier").version == 1
    moved = write_config(tmp_path / "moved.config", {"classifier": two_versions / "classifier"},
                         labels={"stable": 2, "canary": 2}, versions=(1, 2))
    back = write_config(tmp_path / "back.config", {"classifier": two_versions / "classifier"},
                        labels={"stable": 1, "canary": 2}, versions=(1, 2))
    stub = model_service_pb2_grpc.ModelServiceStub(channel)
    stub.HandleReloadConfigRequest(model_management_pb2.ReloadConfigRequest(config=read_config(moved)))
    try:
        stable.predict("classifier", photos[:1])
        assert stable.metadata("classifier").version == 2
    finally:
        stub.HandleReloadConfigRequest(model_management_pb2.ReloadConfigRequest(config=read_config(back)))


# ---------------------------------------------------------------- signature check
def test_signature_mismatch_is_a_clear_error(devserver, two_versions, tmp_path):
    wrong = tmp_path / "meta"
    shutil.copytree(two_versions / "classifier" / "1", wrong / "classifier" / "1")
    meta_path = wrong / "classifier" / "1" / "metadata.json"
    meta = json.loads(meta_path.read_text())
    meta["outputs"] = ["embedding", "group_probs", "type_probs", "colour_probs"]
    meta["input_key"] = "image_bytes"
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(SignatureMismatch) as err:
        client(devserver, wrong).metadata("classifier")
    message = str(err.value)
    assert "inputs are ['images']" in message and "'image_bytes'" in message
    assert "colour_probs" in message and "color_probs" in message
    assert not client(devserver, wrong).ready("classifier")


def test_missing_metadata_names_the_folder_to_mount(devserver, tmp_path):
    with pytest.raises(ModelNotFound, match="metadata.json is missing"):
        client(devserver, tmp_path).metadata("classifier")


def test_client_errors(devserver, two_versions):
    with pytest.raises(ModelNotFound, match="Unrecognized servable version label: nope"):
        client(devserver, two_versions, "nope").predict("classifier", [b"x"])
    with pytest.raises(ModelNotFound):
        client(devserver, two_versions, "").predict("detector", [b"x"])
    with pytest.raises(ModelRequestError, match="INVALID_ARGUMENT"):
        client(devserver, two_versions).predict("classifier", [b"not an image"])


# ---------------------------------------------------------------- TF Serving's status codes
def _predict(channel: grpc.Channel, **spec) -> grpc.RpcError:
    from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_service_pb2_grpc

    inputs = spec.pop("inputs", None)
    request = predict_pb2.PredictRequest(model_spec=model_pb2.ModelSpec(**spec))
    for key, tensor in (inputs or {}).items():
        request.inputs[key].CopyFrom(tensor)
    with pytest.raises(grpc.RpcError) as err:
        prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(request, timeout=30)
    return err.value


def test_devserver_status_codes(channel, photos):
    import tensorflow as tf

    good = {"images": tf.make_tensor_proto(photos[:1], dtype=tf.string)}
    err = _predict(channel, name="nope", inputs=good)
    assert err.code() == grpc.StatusCode.NOT_FOUND and "Servable not found for request: Latest(nope)" in err.details()
    spec_v9 = {"name": "classifier"}
    from google.protobuf import wrappers_pb2

    err = _predict(channel, version=wrappers_pb2.Int64Value(value=9), inputs=good, **spec_v9)
    assert err.code() == grpc.StatusCode.NOT_FOUND and "Specific(classifier, 9)" in err.details()
    err = _predict(channel, name="classifier", version_label="nope", inputs=good)
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    err = _predict(channel, name="classifier", signature_name="nope", inputs=good)
    assert err.code() == grpc.StatusCode.FAILED_PRECONDITION
    err = _predict(channel, name="classifier", inputs={"pixels": good["images"]})
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and "input tensor alias not found" in err.details()
    err = _predict(channel, name="classifier", inputs={"images": tf.make_tensor_proto([1.0], dtype=tf.float32)})
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and "to be string" in err.details()
    err = _predict(channel, name="classifier", inputs={"images": tf.make_tensor_proto([b"garbage"])})
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_model_status_and_metadata_rpcs(channel):
    from tensorflow_serving.apis import (
        get_model_metadata_pb2,
        get_model_status_pb2,
        model_pb2,
        model_service_pb2_grpc,
        prediction_service_pb2_grpc,
    )

    status = model_service_pb2_grpc.ModelServiceStub(channel)
    answer = status.GetModelStatus(get_model_status_pb2.GetModelStatusRequest(
        model_spec=model_pb2.ModelSpec(name="classifier")))
    assert [(s.version, s.state) for s in answer.model_version_status] == [
        (1, get_model_status_pb2.ModelVersionStatus.AVAILABLE), (2, get_model_status_pb2.ModelVersionStatus.AVAILABLE)]
    with pytest.raises(grpc.RpcError) as err:
        status.GetModelStatus(get_model_status_pb2.GetModelStatusRequest(model_spec=model_pb2.ModelSpec(name="x")))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND

    prediction = prediction_service_pb2_grpc.PredictionServiceStub(channel)
    with pytest.raises(grpc.RpcError) as err:
        prediction.GetModelMetadata(get_model_metadata_pb2.GetModelMetadataRequest(
            model_spec=model_pb2.ModelSpec(name="classifier"), metadata_field=["graph"]))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    answer = prediction.GetModelMetadata(get_model_metadata_pb2.GetModelMetadataRequest(
        model_spec=model_pb2.ModelSpec(name="classifier", version_label="stable"), metadata_field=["signature_def"]))
    assert answer.model_spec.version.value == 1
