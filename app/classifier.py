"""``eyepic train|export|calibrate|evaluate classifier`` (the detector's are in ``app.detector``).

Each parses what the user named, runs the stage and hands the model to the
publish pipeline (``app.publish``); the stages load lazily, per command.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from app.errors import UsageError
from app.publish import data_hash, head_line, publish_classifier, recalibrate_latest
from eyepic.exports import latest_version_dir, load_metadata
from eyepic.settings import Settings

DEFAULT_CLASSIFIER_CONFIG = "training/configs/demo.yaml"


def train_classifier_command(settings: Settings, args: argparse.Namespace) -> int:
    import time

    from training.data.sources import load_samples
    from training.export import git_commit
    from training.recipe import ClassifierRecipe
    from training.train_classifier import train_classifier

    recipe = ClassifierRecipe.from_yaml(args.config or DEFAULT_CLASSIFIER_CONFIG)
    if args.epochs:
        recipe.epochs = args.epochs
    samples = load_samples(settings.data_dir, settings.cache_dir)
    run_dir = settings.reports_dir / f"train-{time.strftime('%Y%m%d-%H%M%S')}"
    commit = git_commit()  # the code that trains, read before a long run (HEAD may move meanwhile)
    model, info = train_classifier(samples, recipe, run_dir)
    info["git_commit"] = commit
    print(f"trained model kept in {run_dir} (eyepic export classifier --from-run {run_dir})")
    version_dir = publish_classifier(settings, model, samples, info, data_hash(settings), recipe.test_time_flip)
    print(f"exported {version_dir}")
    return 0


def export_classifier_command(settings: Settings, args: argparse.Namespace) -> int:
    """``eyepic export classifier``: the latest export's weights as a new version with other
    serving options (mirror averaging), then calibrated and evaluated like a fresh export.
    ``--from-run DIR``: the model a training run kept in its report folder instead; several
    ``--from-run``: an ensemble of those runs' models (training.models.ensemble)."""
    from training.data.sources import load_samples

    if args.from_run:
        from training.runs import load_trained, require_finished_run

        runs = [require_finished_run(d) for d in args.from_run]  # all of them, before TensorFlow loads
        loaded = [load_trained(run) for run in runs]
        if len(loaded) == 1:
            model, training = loaded[0]
        else:  # several runs: one model averaging them
            from training.models.ensemble import ensemble_of, ensemble_training

            training = ensemble_training(runs, [info for _, info in loaded])
            model = ensemble_of([m for m, _ in loaded])
        source = ", ".join(str(run) for run in runs)
        fingerprint = data_hash(settings)
    else:
        from training.models.rebuild import rebuild_model

        source = latest_version_dir(settings.model_dir, settings.classifier_name)
        model = rebuild_model(source)
        if model is None:
            raise UsageError(f"{source}: the Keras model can't be rebuilt from this export")
        meta = load_metadata(source)
        training = {**meta.get("training", {}), "exported_from": meta.get("version")}
        fingerprint = meta.get("data_hash", "")
    samples = load_samples(settings.data_dir, settings.cache_dir)
    version_dir = publish_classifier(settings, model, samples, training, fingerprint, args.test_time_flip)
    print(f"exported {version_dir} from {source}")
    return 0


def calibrate_classifier_command(settings: Settings, args: argparse.Namespace) -> int:
    """``eyepic calibrate classifier``: recalibrate the latest export on its held-out (else training)
    crops, as the next version (a published version never changes)."""
    from training.data.sources import load_samples

    latest_version_dir(settings.model_dir, settings.classifier_name)  # fail fast, before the data loads
    version_dir, source = recalibrate_latest(settings, load_samples(settings.data_dir, settings.cache_dir))
    print(f"calibrated {version_dir} (from {source})")
    return 0


def evaluate_classifier_command(settings: Settings, args: argparse.Namespace) -> int:
    """``eyepic evaluate classifier``: every metric of the latest export on the validation split or ``--data``."""
    from serving.model_client import InProcessModelClient
    from training.data.ccp import read_ccp
    from training.data.clothing_small import read_folder_per_class
    from training.data.sources import load_samples
    from training.evaluate_classifier import evaluate_classifier
    from training.models.rebuild import rebuild_model

    version_dir = latest_version_dir(settings.model_dir, settings.classifier_name)  # fail fast
    sources = [s for s in (getattr(args, "sources", None) or "").split(",") if s]
    # One report per data set, so evaluating another folder keeps the validation report.
    name = Path(args.data).resolve().name if args.data else "-".join(["validation", *sources])
    out_dir = version_dir / "evaluation" / name
    if args.data:
        data = Path(args.data)
        if (data / "annotations").is_dir():
            samples = read_ccp(data, split_by_hash=False)
        elif (data / "validation").is_dir():
            samples = read_folder_per_class(data / "validation")
        else:
            samples = read_folder_per_class(data)
    else:
        samples = [s for s in load_samples(settings.data_dir, settings.cache_dir) if s.split == "validation"]
        if sources:  # e.g. the sources earlier models were validated on, for a like-for-like comparison
            unknown = set(sources) - {s.source for s in samples}
            if unknown:
                raise UsageError(f"--sources: no validation samples of {', '.join(sorted(unknown))}")
            samples = [s for s in samples if s.source in sources]
    if not samples:
        raise UsageError(f"no labelled images found in {args.data or 'the validation split'}")
    # The pooled-feature baseline needs the Keras model; the SavedModel only serves the heads.
    keras_model = rebuild_model(version_dir)
    report = evaluate_classifier(InProcessModelClient(settings.model_dir), samples, out_dir,
                                 settings.classifier_name, keras_model=keras_model)
    print(head_line(report, out_dir.name))
    for note in report["notes"]:
        print(f"note: {note}")
    print(f"report: {out_dir / 'evaluation.md'}")
    if args.json:
        print(json.dumps(_flat_report(report)))
    return 0


def _flat_report(report: dict) -> dict:
    """The ``--json`` object: each head's accuracy under the head's name, the rest nested."""
    flat: dict = {h: m["accuracy"] for h, m in report["heads"].items()}
    flat.update({f"{h}_macro_f1": m["macro_f1"] for h, m in report["heads"].items()})
    flat.update({f"{h}_in_label_set": m["accuracy_in_label_set"] for h, m in report["heads"].items()
                 if "accuracy_in_label_set" in m})
    flat["samples"] = report["samples"]
    for key in ("retrieval", "retrieval_baseline", "behavioral"):
        if key in report:
            flat[key] = report[key]
    return flat
