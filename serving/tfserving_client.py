"""``GrpcModelClient``: the ModelClient that talks to TensorFlow Serving over gRPC.

The web tier and the gRPC API call it instead of running the models; TF
Serving (or ``serving.devserver`` here) loads, batches and rolls out the
exports. Encoded image bytes go over the wire (a few hundred KB), never float
tensors, and decoding happens inside each export's graph, as in-process.

Where ``metadata.json`` comes from: the same export folder TF Serving reads
(``EYEPIC_MODEL_METADATA_DIR``, default ``EYEPIC_MODEL_DIR``), mounted
read-only into the web pods. TF Serving has no call that returns a file, and
the exporter writes ``metadata.json`` beside ``saved_model.pb`` in one atomic
rename, so version N's class lists always pair with version N's graph. Which
version that is comes from the server: ``GetModelMetadata`` for the version
label names the version it resolves to, and every ``PredictResponse`` says
which version answered; when a label moves (canary -> stable) the client
re-reads that version's metadata and re-checks its signature, so class names
never drift from the probabilities they label.

Failure mapping: UNAVAILABLE (retried with exponential backoff inside the
call's deadline), DEADLINE_EXCEEDED and RESOURCE_EXHAUSTED (the batching
queue is full) raise ``ModelUnavailable``, which the web tier answers with
503 + Retry-After and the gRPC API with UNAVAILABLE. NOT_FOUND (no such model
or version, or a label the model lacks) raises ``ModelNotFound``, a
``ModelUnavailable`` too, so a missing detector falls back to the whole photo
as in-process. A signature that does not match ``metadata.json`` raises
``SignatureMismatch``; other refusals raise ``ModelRequestError`` (a bug: the
Analyzer only sends images it has decoded and re-encoded itself).
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import grpc
import numpy as np

from eyepic.exports import (
    EXPECTED_OUTPUTS,
    INPUT_KEY,
    METADATA_FILE,
    SIGNATURE,
    ModelMetadata,
    ModelUnavailable,
    read_metadata,
)
from eyepic.settings import Settings

log = logging.getLogger(__name__)

RETRIED = frozenset({grpc.StatusCode.UNAVAILABLE})
UNAVAILABLE = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED,
                         grpc.StatusCode.RESOURCE_EXHAUSTED})
MAX_BACKOFF_S = 1.0
UNKNOWN_LABEL = "Unrecognized servable version label"


class ModelNotFound(ModelUnavailable):
    """The server has no such model, version or label."""


class SignatureMismatch(ModelUnavailable):
    """The served signature is not what ``metadata.json`` (and the Analyzer) expect."""


class ModelRequestError(RuntimeError):
    """The server refused the request itself (INVALID_ARGUMENT...): a client or export bug."""


def channel_options(max_message_bytes: int) -> list[tuple[str, int]]:
    """Message limits for batches of JPEGs, and a short reconnect backoff.

    gRPC's default reconnect backoff grows to 120 s, so after a model server
    restart a client could wait minutes before it tries again; capped at 2 s,
    requests succeed again within seconds of the server coming back.
    """
    return [
        ("grpc.max_send_message_length", max_message_bytes),
        ("grpc.max_receive_message_length", max_message_bytes),
        ("grpc.initial_reconnect_backoff_ms", 200),
        ("grpc.min_reconnect_backoff_ms", 200),
        ("grpc.max_reconnect_backoff_ms", 2000),
    ]


def signature_problems(signature_def: Any, meta: Mapping[str, Any]) -> list[str]:
    """What is wrong with a ``SignatureDef`` given an export's metadata.json (empty: fine).

    Checks the input key and its dtype (DT_STRING: encoded images), that the
    output names are exactly those metadata.json lists, and that they include
    what the Analyzer reads for this kind of model.
    """
    from tensorflow.core.framework import types_pb2

    problems = []
    input_key = meta.get("input_key", INPUT_KEY)
    inputs = dict(signature_def.inputs)
    if set(inputs) != {input_key}:
        problems.append(f"inputs are {sorted(inputs)}, metadata.json expects [{input_key!r}]")
    elif inputs[input_key].dtype != types_pb2.DT_STRING:
        problems.append(f"input {input_key!r} is {types_pb2.DataType.Name(inputs[input_key].dtype)}, "
                        "expected DT_STRING (encoded image bytes)")
    outputs = set(signature_def.outputs)
    listed = set(meta.get("outputs", []))
    if outputs != listed:
        problems.append(f"outputs are {sorted(outputs)}, metadata.json lists {sorted(listed)}")
    needed = EXPECTED_OUTPUTS.get(str(meta.get("kind", "")), frozenset())
    if needed - outputs:
        problems.append(f"the Analyzer needs outputs {sorted(needed - outputs)} of a {meta.get('kind')}")
    return problems


class GrpcModelClient:
    """ModelClient over TF Serving's PredictionService (``host:port``).

    Nothing connects at construction: the channel opens on first use, and
    the first use of each model checks its signature (``GetModelMetadata``)
    against metadata.json. ``check(name)`` runs that check eagerly, for a
    startup that should fail fast. Thread-safe; one channel for all calls.
    """

    def __init__(
        self,
        target: str,
        metadata_dir: Path | str,
        version_label: str = "stable",
        timeout_s: float = 10.0,
        retries: int = 2,
        backoff_s: float = 0.05,
        max_message_bytes: int = 64 * 1024 * 1024,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self.target = target
        self.metadata_dir = Path(metadata_dir)
        self.version_label = version_label
        self.timeout_s = timeout_s
        self.retries = retries
        self.backoff_s = backoff_s
        self.max_message_bytes = max_message_bytes
        self._sleep = sleep
        self._lock = threading.Lock()
        self._channel: grpc.Channel | None = None
        self._stubs: dict[str, Any] = {}
        self._meta: dict[str, ModelMetadata] = {}

    @classmethod
    def from_settings(cls, settings: Settings) -> GrpcModelClient:
        return cls(
            settings.model_server,
            settings.metadata_dir,
            version_label=settings.model_version_label,
            timeout_s=settings.model_timeout_s,
            retries=settings.model_retries,
            backoff_s=settings.model_retry_backoff_s,
            max_message_bytes=settings.model_max_message_bytes,
        )

    # --- ModelClient -------------------------------------------------------
    def predict(self, model_name: str, images: list[bytes]) -> dict[str, np.ndarray]:
        from tensorflow import make_ndarray
        from tensorflow_serving.apis import predict_pb2

        meta = self.metadata(model_name)
        request = predict_pb2.PredictRequest(model_spec=self._spec(model_name))
        request.inputs[meta.raw.get("input_key", "images")].CopyFrom(_string_tensor(images))
        response = self._call("prediction", "Predict", request)
        served = response.model_spec.version.value
        if served and served != meta.version:
            # the label moved between calls: these outputs belong to another version
            log.info("model %s: label %r now serves version %d (was %d)", model_name,
                     self.version_label, served, meta.version)
            self.check(model_name)
        return {key: make_ndarray(tensor) for key, tensor in response.outputs.items()}

    def metadata(self, model_name: str) -> ModelMetadata:
        meta = self._meta.get(model_name)
        return meta if meta is not None else self.check(model_name)

    def ready(self, model_name: str) -> bool:
        """A live check (one attempt): the server answers for this model and its signature fits."""
        try:
            self.check(model_name, retries=0)
        except ModelUnavailable:
            return False
        return True

    # --- extras ------------------------------------------------------------
    def check(self, model_name: str, retries: int | None = None) -> ModelMetadata:
        """Ask the server which version serves ``model_name`` and verify its signature.

        Raises SignatureMismatch with every difference listed, ModelNotFound
        when the server or the metadata folder lacks the model, and
        ModelUnavailable when the server does not answer.
        """
        from tensorflow_serving.apis import get_model_metadata_pb2

        request = get_model_metadata_pb2.GetModelMetadataRequest(
            model_spec=self._spec(model_name), metadata_field=["signature_def"]
        )
        response = self._call("prediction", "GetModelMetadata", request, retries=retries)
        version = response.model_spec.version.value
        signatures = get_model_metadata_pb2.SignatureDefMap()
        response.metadata["signature_def"].Unpack(signatures)
        version_dir = self.metadata_dir / model_name / str(version)
        if not (version_dir / METADATA_FILE).is_file():
            raise ModelNotFound(
                f"model server {self.target} serves {model_name} version {version}, but "
                f"{version_dir / 'metadata.json'} is missing: mount the export folder "
                "(EYEPIC_MODEL_METADATA_DIR) the server loads from")
        meta = read_metadata(version_dir)
        if SIGNATURE not in signatures.signature_def:
            raise SignatureMismatch(f"{model_name} version {version} on {self.target} has no "
                                    f"{SIGNATURE!r} signature ({sorted(signatures.signature_def)})")
        problems = signature_problems(signatures.signature_def[SIGNATURE], meta.raw)
        if problems:
            raise SignatureMismatch(f"{model_name} version {version} on {self.target} does not match "
                                    f"{version_dir / 'metadata.json'}: " + "; ".join(problems))
        self._meta[model_name] = meta
        return meta

    def close(self) -> None:
        with self._lock:
            if self._channel is not None:
                self._channel.close()
            self._channel = None
            self._stubs.clear()

    # --- plumbing ----------------------------------------------------------
    def _spec(self, model_name: str) -> Any:
        from tensorflow_serving.apis import model_pb2

        spec = model_pb2.ModelSpec(name=model_name, signature_name=SIGNATURE)
        if self.version_label:
            spec.version_label = self.version_label
        return spec

    def _stub(self, service: str) -> Any:
        with self._lock:
            if self._channel is None:
                self._channel = grpc.insecure_channel(self.target,
                                                      options=channel_options(self.max_message_bytes))
            if service not in self._stubs:
                from tensorflow_serving.apis import model_service_pb2_grpc, prediction_service_pb2_grpc

                factory = {"prediction": prediction_service_pb2_grpc.PredictionServiceStub,
                           "model": model_service_pb2_grpc.ModelServiceStub}[service]
                self._stubs[service] = factory(self._channel)
            return self._stubs[service]

    def _call(self, service: str, method: str, request: Any, retries: int | None = None) -> Any:
        """One RPC under one deadline; UNAVAILABLE is retried with jittered exponential backoff."""
        retries = self.retries if retries is None else retries
        rpc = getattr(self._stub(service), method)
        deadline = time.monotonic() + self.timeout_s
        for attempt in range(retries + 1):
            left = deadline - time.monotonic()
            try:
                return rpc(request, timeout=max(left, 0.001))
            except grpc.RpcError as exc:
                code = exc.code()  # type: ignore[attr-defined]
                detail = exc.details()  # type: ignore[attr-defined]
                jitter = random.uniform(0.5, 1.0)  # nosec B311 # retry jitter, not a secret
                backoff = min(self.backoff_s * 2**attempt, MAX_BACKOFF_S) * jitter
                if code in RETRIED and attempt < retries and time.monotonic() + backoff < deadline:
                    self._sleep(backoff)
                    continue
                raise _translate(code, detail, self.target, request.model_spec.name) from None
        raise AssertionError("unreachable")


def _translate(code: grpc.StatusCode, detail: str, target: str, model: str) -> Exception:
    where = f"model server {target} ({model})"
    if code in UNAVAILABLE:
        return ModelUnavailable(f"{where}: {code.name}: {detail}")
    if code == grpc.StatusCode.NOT_FOUND or (
        code == grpc.StatusCode.INVALID_ARGUMENT and detail.startswith(UNKNOWN_LABEL)
    ):
        # TF Serving answers a label that no loaded version of this model carries (or
        # a model it does not serve, asked by label) with INVALID_ARGUMENT
        return ModelNotFound(f"{where}: {detail}")
    return ModelRequestError(f"{where}: {code.name}: {detail}")


def _string_tensor(values: Iterable[bytes]) -> Any:
    """A DT_STRING TensorProto of shape [n], built without TensorFlow ops."""
    from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2, types_pb2

    values = list(values)
    return tensor_pb2.TensorProto(
        dtype=types_pb2.DT_STRING,
        tensor_shape=tensor_shape_pb2.TensorShapeProto(dim=[tensor_shape_pb2.TensorShapeProto.Dim(
            size=len(values))]),
        string_val=values,
    )
