"""A training run's folder: history, the trained model and its curves, for either trainer.

``eyepic export classifier --from-run`` reads what ``keep_run`` wrote;
``require_finished_run`` checks a folder before TensorFlow loads.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from training.errors import RunNotFinished
from training.recipe import HEADS

TRAINED_WEIGHTS = "trained.weights.h5"
TRAINED_CONFIG = "trained_model.json"


def keep_run(model, info: dict, report_dir: Path) -> None:
    """A finished run's folder: history.json, the model (``save_trained``) and the curves PNG;
    what ``load_trained`` and ``eyepic export classifier --from-run`` read, from either trainer."""
    (report_dir / "history.json").write_text(json.dumps(info, indent=2))
    save_trained(model, report_dir)
    plot_history(info["history"], report_dir / "training_curves.png")


def save_trained(model, report_dir: Path) -> None:
    """Keep the trained model in its run folder before anything can fail: an
    export or evaluation error must not cost an hour of training
    (``load_trained``; ``eyepic export classifier --from-run``)."""
    model.save_weights(report_dir / TRAINED_WEIGHTS)
    (report_dir / TRAINED_CONFIG).write_text(json.dumps(model.get_config(), indent=2))


def require_finished_run(report_dir: Path) -> Path:
    """``report_dir`` if it holds a finished run, else RunNotFinished (before TensorFlow loads)."""
    report_dir = Path(report_dir)
    missing = [n for n in (TRAINED_WEIGHTS, TRAINED_CONFIG, "history.json") if not (report_dir / n).is_file()]
    if missing:
        raise RunNotFinished(f"{report_dir}: not a finished training run (no {', '.join(missing)})")
    return report_dir


def load_trained(report_dir: Path) -> tuple[Any, dict]:
    """(model, info) of a finished run that ``train_classifier`` wrote to ``report_dir``."""
    report_dir = require_finished_run(report_dir)
    from training.models.classifier import GarmentClassifier  # TensorFlow: only once there is a model

    model = GarmentClassifier.from_config(json.loads((report_dir / TRAINED_CONFIG).read_text()))
    model.load_weights(report_dir / TRAINED_WEIGHTS)
    return model, json.loads((report_dir / "history.json").read_text())


def extend_history(merged: dict[str, list[float]], history: dict[str, list]) -> None:
    for key, values in history.items():
        merged.setdefault(key, []).extend(float(v) for v in values)


def plot_history(history: dict[str, list[float]], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 4, figsize=(16, 3.5))
    axes[0].plot(history.get("loss", []), label="train")
    axes[0].plot(history.get("val_loss", []), label="validation")
    axes[0].set_title("loss")
    for ax, head in zip(axes[1:], HEADS):
        ax.plot(history.get(f"{head}_accuracy", []), label="train")
        ax.plot(history.get(f"val_{head}_accuracy", []), label="validation")
        ax.set_title(f"{head.removesuffix('_probs')} accuracy")
        ax.set_ylim(0, 1)
    for ax in axes:
        ax.set_xlabel("epoch")
        ax.legend()
    fig.tight_layout()
    fig.savefig(out, dpi=90)
    plt.close(fig)
