"""The training stage's own errors: what a user named (a recipe, a run folder) is not usable.

They subclass the built-in error each replaces, so callers that caught
``ValueError`` still do; the CLI catches these (not every ``ValueError``) and
prints one line, so a programming error still shows its traceback.
"""

from __future__ import annotations


class TrainingInputError(ValueError):
    """A recipe, config key, backbone or ensemble the user asked for does not fit."""


class RunNotFinished(TrainingInputError, FileNotFoundError):
    """A report folder is not a finished training run (``--from-run``)."""
