"""The export contract: what a model folder holds, written and read in one place.

``model_dir/<name>/<int version>/`` holds a SavedModel whose
``serving_default`` takes encoded image bytes (``images``) and returns the
named outputs below, beside ``metadata.json`` (class lists, sizes, the
calibration and metrics). Training writes exports, serving (in-process or TF
Serving) reads them, the indexer reads their embedding size: all through this
module, so the folder layout, the version rule and the output names are
spelled once.

A version is *published* by one atomic rename of a staged folder
(``stage`` -> ``publish``). Everything about it (calibration, metrics) is
written while it is staged: a published version never changes, so a server
that loaded version N and a client reading N's metadata always agree.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import shutil
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Protocol

import numpy as np

METADATA_FILE = "metadata.json"
SAVED_MODEL_FILE = "saved_model.pb"
SIGNATURE = "serving_default"
INPUT_KEY = "images"
STAGING_PREFIX = ".tmp-"
WARMUP_FILE = Path("assets.extra") / "tf_serving_warmup_requests"  # TF Serving replays these at load

CLASSIFIER_HEADS = ("group_probs", "type_probs", "color_probs")  # softmax outputs, one per label set
CLASSIFIER_OUTPUTS = ("embedding", *CLASSIFIER_HEADS)
DETECTOR_OUTPUTS = ("boxes", "scores", "classes", "num_detections")
# what each kind of export (metadata.json "kind") must return for the Analyzer
EXPECTED_OUTPUTS: Mapping[str, frozenset[str]] = {
    "classifier": frozenset(CLASSIFIER_OUTPUTS),
    "detector": frozenset(DETECTOR_OUTPUTS),
}


class ExportError(RuntimeError):
    """An export folder is not what the contract says (missing, malformed, already published)."""


class ModelUnavailable(RuntimeError):
    """No model can answer (none exported, server down). Callers answer 503."""


@dataclasses.dataclass(frozen=True)
class ModelMetadata:
    """What an export says about itself (its ``metadata.json``)."""

    name: str
    version: int
    raw: dict[str, Any]

    @property
    def classes(self) -> dict[str, list[str]]:
        return self.raw.get("classes", {})

    @property
    def input_size(self) -> int:
        return int(self.raw["input_size"])

    @property
    def outputs(self) -> list[str]:
        return list(self.raw.get("outputs", []))

    @property
    def model_version(self) -> str:
        """A label for documents indexed with this model: name-version."""
        return f"{self.name}-{self.version}"


class ModelClient(Protocol):
    """The one way the Analyzer (and evaluation) talk to models: in-process or TF Serving."""

    def predict(self, model_name: str, images: list[bytes]) -> dict[str, np.ndarray]: ...

    def metadata(self, model_name: str) -> ModelMetadata: ...

    def ready(self, model_name: str) -> bool: ...


# -- versions ---------------------------------------------------------------
def list_versions(base: Path | str) -> list[int]:
    """The published versions under ``base`` (``model_dir/<name>``), oldest first.

    The one rule: an integer-named folder holding a SavedModel. TF Serving
    (and ``serving.devserver``) load the same folders.
    """
    base = Path(base)
    if not base.is_dir():
        return []
    return sorted(int(p.name) for p in base.iterdir()
                  if p.is_dir() and p.name.isdigit() and (p / SAVED_MODEL_FILE).is_file())


def latest_version_dir(model_dir: Path | str, name: str) -> Path:
    """``model_dir/name/<highest version>``; ModelUnavailable if there is none."""
    base = Path(model_dir) / name
    versions = list_versions(base)
    if not versions:
        raise ModelUnavailable(f"no exported {name!r} model under {base}; run `eyepic train` first")
    return base / str(versions[-1])


def next_version(base: Path | str) -> int:
    """The version number the next export of ``base`` gets."""
    return max(list_versions(base), default=0) + 1


# -- metadata.json ------------------------------------------------------------
def load_metadata(version_dir: Path | str) -> dict[str, Any]:
    """An export's ``metadata.json`` as a dict (ExportError if it has none)."""
    path = Path(version_dir) / METADATA_FILE
    try:
        return json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise ExportError(f"{path} is missing: not an export folder") from exc


def read_metadata(version_dir: Path | str) -> ModelMetadata:
    """``metadata.json`` with the name and version the folder (or, when staged, the file) says."""
    version_dir = Path(version_dir)
    raw = load_metadata(version_dir)
    if is_staged(version_dir):
        return ModelMetadata(name=str(raw.get("name", version_dir.parent.name)), version=int(raw["version"]), raw=raw)
    return ModelMetadata(name=version_dir.parent.name, version=int(version_dir.name), raw=raw)


def write_metadata(staged_dir: Path | str, metadata: Mapping[str, Any]) -> None:
    """Write a *staged* export's ``metadata.json``."""
    _require_staged(staged_dir)
    (Path(staged_dir) / METADATA_FILE).write_text(json.dumps(dict(metadata), indent=2, ensure_ascii=False))


def update_metadata(staged_dir: Path | str, **fields: Any) -> dict[str, Any]:
    """Set top-level ``fields`` of a staged export's ``metadata.json``; returns the new metadata.

    Refused for a published version (ExportError): what was published stays as published.
    """
    _require_staged(staged_dir)
    meta = {**load_metadata(staged_dir), **fields}
    write_metadata(staged_dir, meta)
    return meta


# -- staging and publishing -----------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Staged:
    """An export being written: ``path`` (hidden from servers) becomes ``final`` on ``publish``."""

    path: Path
    final: Path
    name: str
    version: int


def stage(model_dir: Path | str, name: str, version: int | None = None) -> Staged:
    """A fresh staging folder for the next version (or ``version``) of ``name``."""
    base = Path(model_dir) / name
    version = version or next_version(base)
    base.mkdir(parents=True, exist_ok=True)
    path = base / f"{STAGING_PREFIX}{version}-{time.time_ns()}"  # created by whoever writes the SavedModel
    return Staged(path=path, final=base / str(version), name=name, version=version)


def is_staged(folder: Path | str) -> bool:
    return Path(folder).name.startswith(STAGING_PREFIX)


def _require_staged(folder: Path | str) -> None:
    if not is_staged(folder):
        raise ExportError(f"{folder} is published; a published version never changes (export a new one)")


def publish(staged: Staged) -> Path:
    """Rename the staged folder into place: the one commit of an export.

    A server scanning the model folder never sees a half-written version, and
    metadata always travels with its model.
    """
    if not (staged.path / METADATA_FILE).is_file():
        raise ExportError(f"{staged.path}: no {METADATA_FILE}; nothing to publish")
    if staged.final.exists():
        shutil.rmtree(staged.final)
    staged.path.rename(staged.final)
    return staged.final


@contextlib.contextmanager
def publishing(staged: Staged) -> Iterator[Staged]:
    """Publish ``staged`` when the block completes; discard it when the block raises,
    so a failed calibration or evaluation never leaves a half-made version behind."""
    completed = False
    try:
        yield staged
        completed = True
    finally:
        if completed:
            publish(staged)
        else:
            discard(staged)


def discard(staged: Staged) -> None:
    """Drop a staged export that will not be published (a failed calibration or evaluation)."""
    shutil.rmtree(staged.path, ignore_errors=True)


def embedding_dim(model_dir: Path | str, name: str) -> int | None:
    """The embedding size of the latest ``name`` export, or None when there is none."""
    base = Path(model_dir) / name
    for version in reversed(list_versions(base)):
        try:
            dim = load_metadata(base / str(version)).get("embedding_dim")
        except (ExportError, ValueError):
            continue
        if dim:
            return int(dim)
    return None
