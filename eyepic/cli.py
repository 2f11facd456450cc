"""``eyepic``: one command, a subcommand per stage.

The CLI is the application's entry point, so it is the one module of the
core package that reaches up into the stage packages (lazily, per
subcommand, so ``eyepic --help`` stays fast). Known failures print one line
and exit 2; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from eyepic.settings import Settings, SettingsError

DEFAULT_CLASSIFIER_CONFIG = "training/configs/demo.yaml"


def _known_errors() -> tuple[type[BaseException], ...]:
    from eyepic.imaging import ImageError
    from indexer.base import IndexError_
    from indexer.catalog import CatalogError
    from serving.model_client import ModelUnavailable
    from training.data.clothing_small import DataMissing
    from training.release import ReleaseError

    return (SettingsError, ImageError, IndexError_, CatalogError, ModelUnavailable, DataMissing, ReleaseError,
            FileNotFoundError, ValueError)


def cmd_data_report(settings: Settings, args) -> int:
    from training.data.report import format_summary, plot_distributions, summarize
    from training.data.sources import load_samples

    samples = load_samples(settings.data_dir, settings.cache_dir)
    summary = summarize(samples)
    print(format_summary(summary))
    png = plot_distributions(samples, settings.reports_dir / "data_distribution.png")
    (settings.reports_dir / "data_summary.json").write_text(json.dumps(summary, indent=2))
    print(f"plot: {png}")
    return 0


def cmd_train(settings: Settings, args) -> int:
    if args.model == "detector":
        from training.detector_commands import train_detector_command

        return train_detector_command(settings, args)
    return train_classifier_command(settings, args)


def train_classifier_command(settings: Settings, args) -> int:
    import time

    from training.data.sources import load_samples
    from training.train import ClassifierRecipe, train_classifier

    recipe = ClassifierRecipe.from_yaml(args.config or DEFAULT_CLASSIFIER_CONFIG)
    if args.epochs:
        recipe.epochs = args.epochs
    samples = load_samples(settings.data_dir, settings.cache_dir)
    run_dir = settings.reports_dir / f"train-{time.strftime('%Y%m%d-%H%M%S')}"
    model, info = train_classifier(samples, recipe, run_dir)
    print(f"trained model kept in {run_dir} (eyepic export classifier --from-run {run_dir})")
    version_dir = _publish_classifier(settings, model, samples, info, _data_hash(settings), recipe.test_time_flip)
    print(f"exported {version_dir}")
    return 0


def _data_hash(settings: Settings) -> str:
    """The fingerprint of the data a model is trained on now (stored with its export)."""
    from training.data.sources import data_fingerprint, training_roots

    return data_fingerprint(*training_roots(settings.data_dir))


def _publish_classifier(settings: Settings, model, samples, training: dict, data_hash: str,
                        test_time_flip: bool) -> Path:
    """Export ``model`` as the next version, calibrate it on the train split and
    evaluate it on the validation split (report and metrics next to it)."""
    from serving.model_client import InProcessModelClient
    from training.evaluate import encode_sample, evaluate_classifier
    from training.export import export_classifier

    val = [s for s in samples if s.split == "validation"]
    version_dir = export_classifier(model, settings.model_dir, settings.classifier_name, training=training,
                                    data_hash=data_hash, warmup_images=[encode_sample(s) for s in val[:4]],
                                    test_time_flip=test_time_flip)
    _calibrate(settings, version_dir, samples)
    report = evaluate_classifier(InProcessModelClient(settings.model_dir), val,
                                 version_dir / "evaluation" / "validation", settings.classifier_name,
                                 keras_model=model)
    _record_metrics(version_dir, report)
    print(_head_line(report))
    return version_dir


def _calibrate(settings: Settings, version_dir: Path, samples) -> dict:
    """Pick the color fusion weight on held-out (else training) crops and store it with the export."""
    from serving.model_client import InProcessModelClient
    from training.calibrate import calibrate_color_fusion, record_color_fusion

    fusion = calibrate_color_fusion(InProcessModelClient(settings.model_dir), settings.classifier_name, samples)
    record_color_fusion(version_dir, fusion)
    accuracy = fusion["accuracy"]
    if accuracy:
        head = accuracy["1.0"]["0.0"]
        fused = accuracy[str(fusion["window"])][str(fusion["pixel_weight"])]
        print(f"color fusion: pixel weight {fusion['pixel_weight']}, box window {fusion['window']}, on "
              f"{fusion['calibrated_on']} {fusion['crops']} crops (their color accuracy {head:.3f} -> {fused:.3f})")
    return fusion


def cmd_export(settings: Settings, args) -> int:
    """``eyepic export classifier``: the latest export's weights as a new version with other
    serving options (mirror averaging), then calibrated and evaluated like a fresh export.
    ``--from-run DIR``: the model a training run kept in its report folder instead; several
    ``--from-run``: an ensemble of those runs' models (training.models.ensemble)."""
    from serving.model_client import latest_version_dir
    from training.data.sources import load_samples
    from training.evaluate import rebuild_model

    if args.from_run:
        from training.train import load_trained, require_finished_run

        runs = [require_finished_run(d) for d in args.from_run]  # all of them, before TensorFlow loads
        loaded = [load_trained(run) for run in runs]
        if len(loaded) == 1:
            model, training = loaded[0]
        else:  # several runs: one model averaging them
            from training.models.ensemble import ensemble_of, ensemble_training

            training = ensemble_training(runs, [info for _, info in loaded])
            model = ensemble_of([m for m, _ in loaded])
        source = ", ".join(str(run) for run in runs)
        data_hash = _data_hash(settings)
    else:
        source = latest_version_dir(settings.model_dir, settings.classifier_name)
        model = rebuild_model(source)
        if model is None:
            raise ValueError(f"{source}: the Keras model can't be rebuilt from this export")
        meta = json.loads((source / "metadata.json").read_text())
        training = {**meta.get("training", {}), "exported_from": meta.get("version")}
        data_hash = meta.get("data_hash", "")
    samples = load_samples(settings.data_dir, settings.cache_dir)
    version_dir = _publish_classifier(settings, model, samples, training, data_hash, args.test_time_flip)
    print(f"exported {version_dir} from {source}")
    return 0


def cmd_calibrate(settings: Settings, args) -> int:
    """``eyepic calibrate classifier``: (re)calibrate the latest export on its held-out (else training) crops."""
    from serving.model_client import latest_version_dir
    from training.data.sources import load_samples

    version_dir = latest_version_dir(settings.model_dir, settings.classifier_name)
    _calibrate(settings, version_dir, load_samples(settings.data_dir, settings.cache_dir))
    print(f"calibrated {version_dir}")
    return 0


def _record_metrics(version_dir: Path, report: dict) -> None:
    meta_path = version_dir / "metadata.json"
    meta = json.loads(meta_path.read_text())
    meta["metrics"] = {
        **{f"{h}_accuracy": m["accuracy"] for h, m in report["heads"].items()},
        **{f"{h}_macro_f1": m["macro_f1"] for h, m in report["heads"].items()},
        "retrieval": report["retrieval"],
    }
    meta_path.write_text(json.dumps(meta, indent=2, ensure_ascii=False))


def _head_line(report: dict, data: str = "validation") -> str:
    return f"{data}: " + ", ".join(f"{h} acc {m['accuracy']:.3f}" for h, m in report["heads"].items())


def cmd_evaluate(settings: Settings, args) -> int:
    if args.model == "detector":
        from training.detector_commands import evaluate_detector_command

        return evaluate_detector_command(settings, args)
    if args.model == "search":
        from training.evaluate_search import evaluate_search_command

        return evaluate_search_command(settings, args)
    from serving.model_client import InProcessModelClient, latest_version_dir
    from training.data.ccp import read_ccp
    from training.data.clothing_small import read_folder_per_class
    from training.data.sources import load_samples
    from training.evaluate import evaluate_classifier, rebuild_model

    version_dir = latest_version_dir(settings.model_dir, settings.classifier_name)  # fail fast
    # One report per data set, so evaluating another folder keeps the validation report.
    out_dir = version_dir / "evaluation" / (Path(args.data).resolve().name if args.data else "validation")
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
    if not samples:
        raise ValueError(f"no labelled images found in {args.data or 'the validation split'}")
    # The pooled-feature baseline needs the Keras model; the SavedModel only serves the heads.
    keras_model = rebuild_model(version_dir)
    report = evaluate_classifier(InProcessModelClient(settings.model_dir), samples, out_dir,
                                 settings.classifier_name, keras_model=keras_model)
    print(_head_line(report, out_dir.name))
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


def build_analyzer(settings: Settings):
    from serving.analyzer import Analyzer

    return Analyzer.from_settings(settings)


def cmd_index(settings: Settings, args) -> int:
    from indexer.catalog import read_catalog
    from indexer.factory import open_index
    from indexer.job import index_catalog

    entries = read_catalog(Path(args.path))
    index = open_index(settings)
    try:
        report = index_catalog(entries, build_analyzer(settings), index, batch_size=settings.batch_size)
        print(f"{report.total} catalog images: {report.indexed} indexed, "
              f"{report.skipped_existing} already indexed, {len(report.failed)} failed; "
              f"index holds {index.count()}")
        for failure in report.failed[:20]:
            print(f"  skipped {failure}", file=sys.stderr)
    finally:
        index.close()
    return 0


def cmd_serve(settings: Settings, args) -> int:
    workers = getattr(args, "workers", None) or settings.workers
    if workers:
        from serving.production import serve_gunicorn

        return serve_gunicorn(settings, workers)
    from web import create_app

    app = create_app(settings)
    print(f"Eyepic on http://{settings.host}:{settings.port}/", flush=True)
    app.run(host=settings.host, port=settings.port, threaded=True, use_reloader=False)
    return 0


def cmd_demo(settings: Settings, args) -> int:
    """Released models (or, with --train / without a release, a freshly trained demo
    classifier) -> the demo catalog indexed -> the page and API."""
    from serving.model_client import ModelUnavailable, latest_version_dir
    from training.data.download import ensure_data

    ensure_data(settings.data_dir)
    if not args.train:
        install_releases(settings)
    try:
        latest_version_dir(settings.model_dir, settings.classifier_name)
    except ModelUnavailable:
        why = "--train given" if args.train else f"no released classifier in {settings.release_dir}"
        print(f"{why}: training the demo model (a few minutes on 2 cores)", flush=True)
        train_classifier_command(settings, argparse.Namespace(config=args.config, epochs=None, init_weights=None))
    catalog = settings.catalog_dir or _demo_catalog(settings)
    _drop_stale_index(settings)
    cmd_index(settings, argparse.Namespace(path=str(catalog)))
    return cmd_serve(settings, args)


def _demo_catalog(settings: Settings) -> Path:
    from indexer.catalog import write_product_manifest

    sets = [(name, settings.data_dir / name) for name in ("clothing-small", "clothing-extra")
            if (settings.data_dir / name).is_dir()]
    return write_product_manifest(sets, settings.demo_catalog)


def _drop_stale_index(settings: Settings) -> None:
    """Empty the index when its items were embedded by another classifier than the one
    served now (a release installed over an older demo): mixed embeddings rank nonsense."""
    from indexer.factory import open_index

    current = build_analyzer(settings).model_version
    index = open_index(settings)
    try:
        ids = index.ids()
        sample = [index.get(i) for i in sorted(ids)[:5]]
        if any(item is not None and item.model_version != current for item in sample):
            print(f"the index was built with another classifier; re-indexing for {current}", flush=True)
            index.delete(ids)
    finally:
        index.close()


def install_releases(settings: Settings) -> list[Path]:
    """Export every released model in ``settings.release_dir`` into the model dir (verified,
    reused when already installed); returns the export folders."""
    from training.release import RELEASE_JSON, install_release

    done = []
    for kind, name in (("classifier", settings.classifier_name), ("detector", settings.detector_name)):
        if not (settings.release_dir / kind / RELEASE_JSON).is_file():
            continue
        out, fresh = install_release(settings.release_dir, kind, settings.model_dir, name,
                                     warmup_images=_warmup_photos(settings))
        print(f"{kind}: {'exported' if fresh else 'already installed'} {out} from {settings.release_dir / kind}",
              flush=True)
        done.append(out)
    return done


def _warmup_photos(settings: Settings) -> list[bytes]:
    """A few real photos for TF Serving's warm-up records (none where the data is absent)."""
    photos = sorted((settings.data_dir / "ccp" / "photos").glob("*.jpg"))[:2]
    photos += sorted((settings.data_dir / "clothing-small" / "validation").rglob("*.jpg"))[:2]
    return [p.read_bytes() for p in photos]


def cmd_release(settings: Settings, args) -> int:
    """``eyepic release verify|install|make``: the models tracked in ``settings.release_dir``."""
    from training import release

    root = settings.release_dir
    if args.action == "verify":
        kinds = [k for k in ("classifier", "detector") if (root / k / release.RELEASE_JSON).is_file()]
        if not kinds:
            raise release.ReleaseError(f"{root}: no released model")
        for kind in kinds:
            print(f"{release.verify_release(root, kind)}: ok")
        return 0
    if args.action == "install":
        if not install_releases(settings):
            raise release.ReleaseError(f"{root}: no released model")
        return 0
    return _make_release(settings, args)


def _make_release(settings: Settings, args) -> int:
    from serving.model_client import latest_version_dir
    from training import release

    if not args.kind or not args.recipe:
        raise release.ReleaseError("eyepic release make needs a kind (classifier|detector) and --recipe")
    name = settings.classifier_name if args.kind == "classifier" else settings.detector_name
    version_dir = Path(args.export) if args.export else latest_version_dir(settings.model_dir, name)
    root = settings.release_dir
    folder = release.make_release(version_dir, root, Path(args.recipe),
                                  run_dir=Path(args.run) if args.run else None)
    commands = {}
    for entry in args.command or []:
        data, _, command = entry.partition("=")
        commands[data] = command
    release.add_evaluations(folder, release.collect_evaluations(version_dir), commands)
    release.write_card(folder, Path(args.notes).read_text() if args.notes else "")
    release.write_checksums(root)
    print(f"released {version_dir} as {folder}; checksums in {root / release.CHECKSUMS}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="eyepic", description="Clothing visual search.")
    sub = parser.add_subparsers(dest="command", required=True)

    data = sub.add_parser("data", help="dataset tools").add_subparsers(dest="data_command", required=True)
    data.add_parser("report", help="counts and a PNG of class/color distributions").set_defaults(
        func=cmd_data_report)

    default_config = DEFAULT_CLASSIFIER_CONFIG
    train = sub.add_parser("train", help="train, evaluate and export a model")
    train.add_argument("model", choices=["classifier", "detector"])
    train.add_argument("--config", help=f"recipe YAML (classifier default: {default_config})")
    train.add_argument("--epochs", type=int, help="override the recipe's epochs")
    train.add_argument("--init-weights", help="detector: start from these .weights.h5 (a warm restart)")
    train.set_defaults(func=cmd_train)

    evaluate = sub.add_parser("evaluate", help="evaluate the latest export")
    evaluate.add_argument("model", choices=["classifier", "detector", "search"],
                          help="search: end to end through the Analyzer, per group rule")
    evaluate.add_argument("--data", help="folder-per-class or CCP-layout folder (default: validation split)")
    evaluate.add_argument("--json", action="store_true", help="print metrics as JSON on the last line")
    evaluate.set_defaults(func=cmd_evaluate)

    export = sub.add_parser("export", help="re-export the latest model as a new version with other serving options")
    export.add_argument("model", choices=["classifier"])
    export.add_argument("--from-run", metavar="DIR", action="append",
                        help="export the model a training run kept (var/reports/train-*/), not the latest "
                             "export; given several times, one ensemble averaging those runs' models")
    export.add_argument("--test-time-flip", action=argparse.BooleanOptionalAction, default=True,
                        help="average each image with its mirror inside the graph (default: on)")
    export.set_defaults(func=cmd_export)

    calibrate = sub.add_parser("calibrate", help="calibrate the latest export's serving choices on the train split")
    calibrate.add_argument("model", choices=["classifier"])
    calibrate.set_defaults(func=cmd_calibrate)

    index = sub.add_parser("index", help="index a catalog folder or JSONL manifest (resumable)")
    index.add_argument("path")
    index.set_defaults(func=cmd_index)

    serve = sub.add_parser("serve", help="serve the page and API")
    serve.add_argument("--workers", type=int, help="gunicorn worker processes (production; default "
                       "EYEPIC_WORKERS, 0 = Flask's threaded server)")
    serve.set_defaults(func=cmd_serve)

    demo = sub.add_parser("demo", help="data -> released models (or train) -> index -> serve")
    demo.add_argument("--config", default=default_config, help="recipe for --train")
    demo.add_argument("--train", action="store_true",
                      help="train the demo classifier instead of installing the released models "
                           "(when no classifier is exported yet)")
    demo.set_defaults(func=cmd_demo)

    rel = sub.add_parser("release", help="the released models in EYEPIC_RELEASE_DIR (default models/)")
    rel.add_argument("action", choices=["verify", "install", "make"])
    rel.add_argument("kind", nargs="?", choices=["classifier", "detector"], help="make: which model")
    rel.add_argument("--export", help="make: the export folder to release (default: the latest)")
    rel.add_argument("--recipe", help="make: the recipe YAML it was trained with")
    rel.add_argument("--run", help="make: its training run folder (training curves)")
    rel.add_argument("--notes", help="make: markdown added to the model card (latency, limits)")
    rel.add_argument("--command", action="append", metavar="DATA=COMMAND",
                     help="make: the command behind an evaluation report, for the card")
    rel.set_defaults(func=cmd_release)

    from serving.commands import add_commands as add_serving_commands
    from training.detector_commands import add_commands as add_detector_commands

    add_serving_commands(sub)
    add_detector_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = Settings.from_env()
        return args.func(settings, args)
    except KeyboardInterrupt:
        return 130
    except _known_errors() as exc:
        print(f"eyepic: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
