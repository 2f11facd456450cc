"""A small TF Serving stand-in for development and CI: PredictionService over real gRPC.

    python -m serving.devserver --model_config_file serving/models.config \\
        --models_root var/models --port 8500

Production runs the ``tensorflow/serving`` image with the same
``serving/models.config`` (and batching and monitoring configs). Its binary
cannot be installed on the development machines (no apt package, no wheel,
no Docker engine), so this server exists for one reason: the gRPC client
path (``serving.tfserving_client.GrpcModelClient``) is tested over a real
socket, with the real ``tensorflow_serving.apis`` protos and stubs.

What it mirrors from TF Serving, so the client meets the same behaviour:

* ``model_config_list`` text protos: ``base_path`` with integer version
  folders, ``model_version_policy`` (latest N, default 1; all; specific) and
  ``version_labels``; a label may only point at a loaded version (TF
  Serving's default), else the server refuses to start.
* ``PredictionService.Predict`` / ``GetModelMetadata`` (``signature_def``)
  and ``ModelService.GetModelStatus`` / ``HandleReloadConfigRequest``.
* Version resolution: explicit version, else version label, else the latest
  loaded version; the response's ``model_spec`` names the version served.
* Status codes and messages: NOT_FOUND for an unknown model or version
  ("Servable not found for request: ..."), INVALID_ARGUMENT for an unknown
  label, wrong input keys or dtypes, bad output filters and ops that reject
  their input (an undecodable image), FAILED_PRECONDITION for an unknown
  signature, INVALID_ARGUMENT for unsupported metadata fields.
* ``assets.extra/tf_serving_warmup_requests`` are replayed at load; a
  failing warm-up fails the load.

One module on purpose (about 400 lines): it mirrors one server's behaviour,
and its parts (config, registry, services) only make sense together; the
harness that runs it as a child process is ``devtools.harness``.

What it does not do: request batching (``batching.config`` is TF Serving's),
the REST API and Prometheus endpoint, file-system polling for new versions
(send ``HandleReloadConfigRequest`` or restart), and waiting for a model
whose base path has no versions yet (it logs a warning and serves the rest;
TF Serving would wait for it).
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
import threading
from collections.abc import Sequence
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_management_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)
from tensorflow_serving.config import model_server_config_pb2

from eyepic.exports import SIGNATURE, WARMUP_FILE, list_versions

log = logging.getLogger("serving.devserver")

DEFAULT_SIGNATURE = SIGNATURE
PRODUCTION_ROOT = "/models"  # where the tensorflow/serving image mounts the exports
MAX_MESSAGE_BYTES = 64 * 1024 * 1024


class ServingError(Exception):
    """A request TF Serving would refuse, with its gRPC status code."""

    def __init__(self, code: grpc.StatusCode, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


class ConfigError(ValueError):
    """The model config cannot be served (bad text proto, label on a missing version)."""


@dataclasses.dataclass
class Servable:
    """One loaded version of one model."""

    name: str
    version: int
    path: Path
    signature_defs: dict[str, Any]  # name -> SignatureDef proto, as saved_model.pb has them
    functions: dict[str, Any]  # name -> concrete function
    keepalive: Any  # the loaded SavedModel object the functions belong to


@dataclasses.dataclass
class Model:
    name: str
    versions: dict[int, Servable]
    labels: dict[str, int]


def read_config(path: Path | str, models_root: str | None = None) -> Any:
    """Parse a ``model_config_list`` text proto; ``models_root`` replaces a leading ``/models``.

    That substitution is what ``docker run -v DIR:/models`` does for the
    tensorflow/serving image, so one config file serves both.
    """
    from google.protobuf import text_format

    config = model_server_config_pb2.ModelServerConfig()
    try:
        text_format.Parse(Path(path).read_text(), config)
    except text_format.ParseError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    return _rebase(config, models_root) if models_root else config


def chosen_versions(policy: Any, available: Sequence[int]) -> list[int]:
    """The versions a ``ServableVersionPolicy`` keeps loaded, as TF Serving chooses them."""
    available = sorted(available)
    kind = policy.WhichOneof("policy_choice")
    if kind == "all":
        return available
    if kind == "specific":
        return [v for v in available if v in set(policy.specific.versions)]
    n = policy.latest.num_versions if kind == "latest" and policy.latest.num_versions else 1
    return available[-n:]


def load_servable(name: str, version: int, path: Path) -> Servable:
    import tensorflow as tf
    from tensorflow.core.protobuf import saved_model_pb2

    saved = saved_model_pb2.SavedModel.FromString((path / "saved_model.pb").read_bytes())
    signature_defs = dict(saved.meta_graphs[0].signature_def)
    loaded = tf.saved_model.load(str(path))
    servable = Servable(name, version, path, signature_defs, dict(loaded.signatures), loaded)
    warm_up(servable)
    return servable


def warm_up(servable: Servable) -> int:
    """Replay the export's warm-up PredictionLogs; a failure fails the load, as in TF Serving."""
    import tensorflow as tf
    from tensorflow_serving.apis import prediction_log_pb2

    records = servable.path / WARMUP_FILE
    if not records.is_file():
        return 0
    count = 0
    for raw in tf.data.TFRecordDataset(str(records)).as_numpy_iterator():
        entry = prediction_log_pb2.PredictionLog.FromString(raw)
        if entry.WhichOneof("log_type") != "predict_log":
            raise ConfigError(f"{records}: only predict_log warm-up records are supported")
        try:
            run_predict(servable, entry.predict_log.request)
        except ServingError as exc:
            raise ConfigError(f"{records}: warm-up request {count} failed: {exc.message}") from None
        count += 1
    return count


def load_models(config: Any) -> dict[str, Model]:
    """Load every configured model's chosen versions; check that labels point at loaded ones."""
    models: dict[str, Model] = {}
    for entry in config.model_config_list.config:
        if entry.model_platform and entry.model_platform != "tensorflow":
            raise ConfigError(f"model {entry.name}: platform {entry.model_platform!r} is not supported")
        base = Path(entry.base_path)
        available = list_versions(base)
        versions = chosen_versions(entry.model_version_policy, available)
        if not versions:
            log.warning("model %s: no versions under %s match its policy; not served", entry.name, base)
            continue
        loaded = {v: load_servable(entry.name, v, base / str(v)) for v in versions}
        labels = dict(entry.version_labels)
        for label, version in labels.items():
            if version not in loaded:
                raise ConfigError(
                    f"Request to assign label {label!r} to version {version} of model {entry.name}, "
                    "which is not currently available for inference")
        models[entry.name] = Model(entry.name, loaded, labels)
        log.info("model %s: versions %s, labels %s", entry.name, sorted(loaded), labels)
    return models


class Registry:
    """The models being served; swapped whole on a config reload."""

    def __init__(self, models: dict[str, Model]):
        self._models = models
        self._lock = threading.Lock()

    def replace(self, models: dict[str, Model]) -> None:
        with self._lock:
            self._models = models

    def model(self, name: str) -> Model | None:
        with self._lock:
            return self._models.get(name)

    def resolve(self, spec: Any) -> Servable:
        """TF Serving's choice: explicit version, else label, else latest."""
        model = self.model(spec.name)
        choice = spec.WhichOneof("version_choice")
        if choice == "version":
            request = f"Specific({spec.name}, {spec.version.value})"
        else:
            request = f"Latest({spec.name})"
        if not spec.name:
            raise ServingError(grpc.StatusCode.INVALID_ARGUMENT, "Missing ModelSpec")
        if choice == "version_label":
            # TF Serving resolves the label first: an unknown model with a label is
            # INVALID_ARGUMENT "Unrecognized servable version label", not NOT_FOUND
            version = model.labels.get(spec.version_label) if model else None
            if model is None or version is None:
                raise ServingError(grpc.StatusCode.INVALID_ARGUMENT,
                                   f"Unrecognized servable version label: {spec.version_label}")
            return model.versions[version]
        if model is None:
            raise ServingError(grpc.StatusCode.NOT_FOUND, f"Servable not found for request: {request}")
        if choice == "version":
            servable = model.versions.get(spec.version.value)
            if servable is None:
                raise ServingError(grpc.StatusCode.NOT_FOUND, f"Servable not found for request: {request}")
            return servable
        return model.versions[max(model.versions)]


def _names(keys: Any) -> str:
    return ",".join(sorted(keys))


def run_predict(servable: Servable, request: Any) -> Any:
    """Validate a PredictRequest against the signature, run it, build the response."""
    import tensorflow as tf

    name = request.model_spec.signature_name or DEFAULT_SIGNATURE
    signature = servable.signature_defs.get(name)
    if signature is None or name not in servable.functions:
        raise ServingError(grpc.StatusCode.FAILED_PRECONDITION, f'Serving signature key "{name}" not found.')
    sent, wanted = set(request.inputs), set(signature.inputs)
    if len(sent) != len(wanted):
        raise ServingError(
            grpc.StatusCode.INVALID_ARGUMENT,
            f"input size does not match signature: {len(sent)}!={len(wanted)} len({{{_names(sent)}}}) "
            f"!= len({{{_names(wanted)}}}). Sent extra: {{{_names(sent - wanted)}}}. "
            f"Missing but required: {{{_names(wanted - sent)}}}.")
    inputs = {}
    for alias, proto in request.inputs.items():
        if alias not in signature.inputs:
            raise ServingError(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"input tensor alias not found in signature: {alias}. "
                f"Inputs expected to be in the set {{{_names(wanted)}}}.")
        expected = signature.inputs[alias].dtype
        if proto.dtype != expected:
            raise ServingError(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"Expects arg[{alias}] to be {tf.dtypes.as_dtype(expected).name} but "
                f"{tf.dtypes.as_dtype(proto.dtype).name if proto.dtype else 'invalid'} is provided")
        try:
            inputs[alias] = tf.constant(tf.make_ndarray(proto), dtype=tf.dtypes.as_dtype(expected))
        except (TypeError, ValueError) as exc:
            raise ServingError(grpc.StatusCode.INVALID_ARGUMENT, f"tensor parsing error: {alias}: {exc}") from None
    outputs_wanted = list(request.output_filter) or list(signature.outputs)
    for alias in outputs_wanted:
        if alias not in signature.outputs:
            raise ServingError(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"output tensor alias not found in signature: {alias} "
                f"Outputs expected to be in the set {{{_names(signature.outputs)}}}.")
    try:
        result = servable.functions[name](**inputs)
    except tf.errors.OpError as exc:
        raise ServingError(_grpc_code(exc.error_code), exc.message) from None
    response = predict_pb2.PredictResponse()
    response.model_spec.name = servable.name
    response.model_spec.version.value = servable.version
    response.model_spec.signature_name = name
    for alias in outputs_wanted:
        response.outputs[alias].CopyFrom(tf.make_tensor_proto(result[alias].numpy()))
    return response


def _grpc_code(tf_code: int) -> grpc.StatusCode:
    """TensorFlow's error codes use gRPC's numbers."""
    for code in grpc.StatusCode:
        if code.value[0] == tf_code:
            return code
    return grpc.StatusCode.UNKNOWN


class PredictionService(prediction_service_pb2_grpc.PredictionServiceServicer):
    def __init__(self, registry: Registry):
        self.registry = registry

    def Predict(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802 (gRPC names)
        try:
            return run_predict(self.registry.resolve(request.model_spec), request)
        except ServingError as exc:
            context.abort(exc.code, exc.message)

    def GetModelMetadata(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        try:
            if not request.metadata_field:
                raise ServingError(grpc.StatusCode.INVALID_ARGUMENT,
                                   "GetModelMetadataRequest must specify at least one metadata_field")
            for field in request.metadata_field:
                if field != "signature_def":
                    raise ServingError(grpc.StatusCode.INVALID_ARGUMENT,
                                       f"Metadata field {field} is not supported")
            servable = self.registry.resolve(request.model_spec)
        except ServingError as exc:
            context.abort(exc.code, exc.message)
        response = get_model_metadata_pb2.GetModelMetadataResponse()
        response.model_spec.name = servable.name
        response.model_spec.version.value = servable.version
        signatures = get_model_metadata_pb2.SignatureDefMap()
        for key, value in servable.signature_defs.items():
            signatures.signature_def[key].CopyFrom(value)
        response.metadata["signature_def"].Pack(signatures)
        return response


class ModelService(model_service_pb2_grpc.ModelServiceServicer):
    def __init__(self, registry: Registry, models_root: str | None):
        self.registry = registry
        self.models_root = models_root

    def GetModelStatus(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        spec = request.model_spec
        model = self.registry.model(spec.name)
        if model is None:
            context.abort(grpc.StatusCode.NOT_FOUND, f"Could not find any versions of model {spec.name}")
        choice = spec.WhichOneof("version_choice")
        if choice == "version":
            versions = [spec.version.value]
        elif choice == "version_label":
            try:
                versions = [self.registry.resolve(spec).version]
            except ServingError as exc:
                context.abort(exc.code, exc.message)
        else:
            versions = sorted(model.versions)
        if any(v not in model.versions for v in versions):
            context.abort(grpc.StatusCode.NOT_FOUND,
                          f"Could not find version {versions[0]} of model {spec.name}")
        response = get_model_status_pb2.GetModelStatusResponse()
        for version in versions:
            status = response.model_version_status.add()
            status.version = version
            status.state = get_model_status_pb2.ModelVersionStatus.AVAILABLE
        return response

    def HandleReloadConfigRequest(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        """Load a new model_config_list (labels moved, versions added) without a restart."""
        config = model_server_config_pb2.ModelServerConfig()
        config.CopyFrom(request.config)
        if self.models_root:
            config = _rebase(config, self.models_root)
        try:
            self.registry.replace(load_models(config))
        except (ConfigError, OSError) as exc:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        return model_management_pb2.ReloadConfigResponse()


def _rebase(config: Any, models_root: str) -> Any:
    for model in config.model_config_list.config:
        if model.base_path == PRODUCTION_ROOT or model.base_path.startswith(PRODUCTION_ROOT + "/"):
            model.base_path = str(Path(models_root)) + model.base_path[len(PRODUCTION_ROOT):]
    return config


def build_server(registry: Registry, address: str, workers: int = 4,
                 models_root: str | None = None) -> tuple[grpc.Server, int]:
    """A (not yet started) server bound to ``address``; returns it and the port."""
    options = [("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
               ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES)]
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=workers), options=options)
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(PredictionService(registry), server)
    model_service_pb2_grpc.add_ModelServiceServicer_to_server(ModelService(registry, models_root), server)
    port = server.add_insecure_port(address)
    if port == 0:
        raise OSError(f"cannot bind {address}")
    return server, port


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m serving.devserver", description=__doc__.split("\n")[0])
    parser.add_argument("--model_config_file", required=True, help="model_config_list text proto")
    parser.add_argument("--models_root", help="folder that stands in for /models in base paths")
    parser.add_argument("--port", type=int, default=8500, help="gRPC port (0: any free port)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--workers", type=int, default=4, help="request threads")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        config = read_config(args.model_config_file, args.models_root)
        registry = Registry(load_models(config))
        server, port = build_server(registry, f"{args.host}:{args.port}", args.workers, args.models_root)
    except (ConfigError, OSError) as exc:
        print(f"devserver: {exc}", file=sys.stderr)
        return 2
    server.start()
    # tests and scripts wait for this line
    print(f"devserver listening on {args.host}:{port}", flush=True)
    try:
        server.wait_for_termination()
    except KeyboardInterrupt:
        server.stop(grace=1.0).wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
