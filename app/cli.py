"""``eyepic``: one command, a subcommand per stage.

Each subcommand parses its arguments and calls the stage or pipeline that
does the work (``app.classifier`` and ``app.detector``, which hand models to
``app.publish``; ``app.indexing``; ``app.launch``); the stages load lazily, per subcommand, so ``eyepic
--help`` stays fast. The project's own errors (``KNOWN_ERRORS``: bad
settings, data, catalog, recipe or run, a model or index that is not there)
print one line and exit 2; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from app.classifier import (
    DEFAULT_CLASSIFIER_CONFIG,
    calibrate_classifier_command,
    evaluate_classifier_command,
    export_classifier_command,
    train_classifier_command,
)
from app.crawl import KNOWN_ERRORS as CRAWL_ERRORS
from app.crawl import add_crawl_parser
from app.errors import UsageError
from app.release import add_release_parser
from eyepic.exports import ExportError, ModelUnavailable, latest_version_dir
from eyepic.imaging import ImageError
from eyepic.settings import Settings, SettingsError
from indexer.base import IndexUnavailable
from indexer.catalog import CatalogError
from training.data.clothing_small import DataMissing
from training.errors import TrainingInputError
from training.release import ReleaseError

if TYPE_CHECKING:
    from serving.analyzer import Analyzer

# The failures a user can fix; they print one line. Anything else keeps its traceback.
KNOWN_ERRORS: tuple[type[BaseException], ...] = (
    SettingsError, ImageError, IndexUnavailable, CatalogError, ModelUnavailable, ExportError, DataMissing,
    TrainingInputError, UsageError, ReleaseError, *CRAWL_ERRORS,
)


def cmd_data_report(settings: Settings, args: argparse.Namespace) -> int:
    from training.data.report import format_summary, plot_distributions, summarize
    from training.data.sources import load_samples

    samples = load_samples(settings.data_dir, settings.cache_dir)
    summary = summarize(samples)
    print(format_summary(summary))
    png = plot_distributions(samples, settings.reports_dir / "data_distribution.png")
    (settings.reports_dir / "data_summary.json").write_text(json.dumps(summary, indent=2))
    print(f"plot: {png}")
    return 0


def cmd_train(settings: Settings, args: argparse.Namespace) -> int:
    if args.model == "detector":
        from app.detector import train_detector_command

        return train_detector_command(settings, args)
    if args.model == "outfits":
        from app.outfits import train_outfits_command

        return train_outfits_command(settings, args)
    return train_classifier_command(settings, args)


def cmd_evaluate(settings: Settings, args: argparse.Namespace) -> int:
    if args.model == "detector":
        from app.detector import evaluate_detector_command

        return evaluate_detector_command(settings, args)
    if args.model == "search":
        from app.evaluate_search import evaluate_search_command

        return evaluate_search_command(settings, args)
    if args.model == "recommender":
        from app.evaluate_recommender import evaluate_recommender_command

        return evaluate_recommender_command(settings, args)
    if args.model == "outfits":
        from app.outfits import evaluate_outfits_command

        return evaluate_outfits_command(settings, args)
    return evaluate_classifier_command(settings, args)


def build_analyzer(settings: Settings) -> Analyzer:
    from serving.analyzer import Analyzer

    return Analyzer.from_settings(settings)


def cmd_index(settings: Settings, args: argparse.Namespace) -> int:
    from app.indexing import index_catalog
    from indexer.catalog import read_catalog
    from indexer.factory import open_index

    entries = read_catalog(Path(args.path))
    index = open_index(settings)
    try:
        analyzer = build_analyzer(settings)
        with index.writer(analyzer.model_version, settings.index_lock_stale_s) as target:
            report = index_catalog(entries, analyzer, target, batch_size=settings.batch_size)
        print(f"{report.total} catalog images: {report.indexed} indexed, "
              f"{report.skipped_existing} already indexed, {len(report.failed)} failed; "
              f"index holds {index.count()}")
        if report.removed:
            print(f"{report.removed} vanished items removed from the index")
        for failure in report.failed[:20]:
            print(f"  skipped {failure}", file=sys.stderr)
    finally:
        index.close()
    return 0


# The demo serves like production: gunicorn, one worker per core of a small machine (EYEPIC_WORKERS changes it)
DEMO_WORKERS = 2


def cmd_serve(settings: Settings, args: argparse.Namespace, default_workers: int = 0,
              fresh_process: bool = False) -> int:
    """Gunicorn with ``--workers``/EYEPIC_WORKERS (else ``default_workers``), Flask's server without.

    ``fresh_process``: this process already ran TensorFlow (the demo indexed its
    catalog), which does not survive gunicorn's fork, so ``eyepic serve`` replaces it.
    """
    from app import launch

    workers = getattr(args, "workers", None) or settings.workers or default_workers
    if workers and fresh_process:
        return launch.exec_serve(workers)
    if workers:
        return launch.serve_gunicorn(settings, workers)
    return launch.serve_flask(settings)


def cmd_demo(settings: Settings, args) -> int:
    """Released models (or, with --train / without a release, a freshly trained demo
    classifier) -> the demo catalog indexed -> the page and API."""
    from app.demo import demo_catalog, drop_stale_index
    from app.release import install_releases
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
    catalog = demo_catalog(settings)
    drop_stale_index(settings, build_analyzer(settings).model_version)
    cmd_index(settings, argparse.Namespace(path=str(catalog)))
    return cmd_serve(settings, args, default_workers=DEMO_WORKERS, fresh_process=True)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="eyepic", description="Clothing visual search.")
    sub = parser.add_subparsers(dest="command", required=True)

    data = sub.add_parser("data", help="dataset tools").add_subparsers(dest="data_command", required=True)
    data.add_parser("report", help="counts and a PNG of class/color distributions").set_defaults(
        func=cmd_data_report)

    default_config = DEFAULT_CLASSIFIER_CONFIG
    train = sub.add_parser("train", help="train, evaluate and export a model")
    train.add_argument("model", choices=["classifier", "detector", "outfits"],
                       help="outfits: the complete-the-look compatibility model (CCP train outfits)")
    train.add_argument("--config", help=f"recipe YAML (classifier default: {default_config})")
    train.add_argument("--epochs", type=int, help="override the recipe's epochs")
    train.add_argument("--init-weights", help="detector: start from these .weights.h5 (a warm restart)")
    train.set_defaults(func=cmd_train)

    evaluate = sub.add_parser("evaluate", help="evaluate the latest export")
    evaluate.add_argument("model", choices=["classifier", "detector", "search", "outfits", "recommender"],
                          help="search: end to end through the Analyzer, per group rule; outfits: 4-way "
                               "fill-in-the-blank and AUC on CCP validation outfits; recommender: "
                               "simulated shoppers over the indexed catalog")
    evaluate.add_argument("--model", dest="model_file", metavar="NPZ",
                          help="outfits: this model file (default: the served one, EYEPIC_OUTFITS_MODEL)")
    evaluate.add_argument("--data", help="folder-per-class or CCP-layout folder (default: validation split)")
    evaluate.add_argument("--json", action="store_true", help="print metrics as JSON on the last line")
    evaluate.add_argument("--sources", help="classifier, validation split: only these data sets, comma-separated "
                          "(e.g. clothing-small,ccp); the report goes to evaluation/validation-<sources>")
    evaluate.add_argument("--shoppers", type=int, help="recommender: simulated shoppers per seed (default 40)")
    evaluate.add_argument("--seeds", help="recommender: report on these seeds, comma-separated (default 0,1,2; "
                          "the tuning seeds 100-102 are refused)")
    evaluate.add_argument("--tune", action="store_true",
                          help="recommender: grid-search the taste settings on the tuning seeds only")
    evaluate.set_defaults(func=cmd_evaluate)

    export = sub.add_parser("export", help="re-export the latest model as a new version with other serving options")
    export.add_argument("model", choices=["classifier"])
    export.add_argument("--from-run", metavar="DIR", action="append",
                        help="export the model a training run kept (var/reports/train-*/), not the latest "
                             "export; given several times, one ensemble averaging those runs' models")
    export.add_argument("--test-time-flip", action=argparse.BooleanOptionalAction, default=True,
                        help="average each image with its mirror inside the graph (default: on)")
    export.set_defaults(func=export_classifier_command)

    calibrate = sub.add_parser("calibrate", help="calibrate the latest export's serving choices on the train split")
    calibrate.add_argument("model", choices=["classifier"])
    calibrate.set_defaults(func=calibrate_classifier_command)

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
    add_release_parser(sub)
    add_crawl_parser(sub)

    grpc_api = sub.add_parser("serve-grpc", help="serve the gRPC API (eyepic.v1.Recommender) beside the web app")
    grpc_api.add_argument("--no-web", action="store_true", help="gRPC only; EYEPIC_PORT then serves /metrics")
    grpc_api.set_defaults(func=cmd_serve_grpc)
    return parser


def cmd_serve_grpc(settings: Settings, args: argparse.Namespace) -> int:
    from app.launch import serve_grpc

    return serve_grpc(settings, web=not args.no_web)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = Settings.from_env()
        return args.func(settings, args)
    except KeyboardInterrupt:
        return 130
    except KNOWN_ERRORS as exc:
        print(f"eyepic: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
