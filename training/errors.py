"""The training stage's own errors: what a user named (a recipe, a run folder) is not usable.

They subclass the built-in error each replaces, so callers that caught
``ValueError`` still do; the CLI catches these (not every ``ValueError``) and
prints one line, so a programming error still shows its traceback.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, TypeVar

import yaml

T = TypeVar("T")


class TrainingInputError(ValueError):
    """A recipe, config key, backbone or ensemble the user asked for does not fit."""


class RunNotFinished(TrainingInputError, FileNotFoundError):
    """A report folder is not a finished training run (``--from-run``)."""


def read_config(path: Path | str) -> dict[str, Any]:
    """A recipe or config YAML as a mapping; a missing or malformed file is a TrainingInputError."""
    try:
        raw = yaml.safe_load(Path(path).read_text()) or {}
    except OSError as exc:
        raise TrainingInputError(f"{path}: {exc.strerror or exc}") from exc
    except yaml.YAMLError as exc:
        raise TrainingInputError(f"{path}: not valid YAML ({exc})") from exc
    if not isinstance(raw, dict):
        raise TrainingInputError(f"{path}: expected a mapping of recipe fields, got {type(raw).__name__}")
    return raw


def config_from_yaml(cls: type[T], path: Path | str, what: str) -> T:
    """A recipe dataclass from its YAML; unknown keys are named (a typo never silently keeps a default)."""
    raw = read_config(path)
    unknown = set(raw) - {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    if unknown:
        raise TrainingInputError(f"{path}: unknown {what} keys {sorted(unknown)}")
    return cls(**raw)
