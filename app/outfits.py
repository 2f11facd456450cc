"""``eyepic train outfits``, ``eyepic evaluate outfits`` and ``eyepic release make outfits``.

* train: CCP garments described by the installed classifier (cached under
  ``var/cache/``) -> grid search on an inner split of the train photos ->
  the winner refit on all train photos -> ``var/outfits/outfits.npz``, then
  evaluated on the validation photos.
* evaluate: FITB, baselines and AUC of a model file (default: the one
  served, ``settings.outfits_model_path``) on CCP validation photos; JSON and
  markdown under ``var/reports/outfits/``; ``--json`` prints one JSON object
  with ``fitb`` as the last line of stdout.
* release make outfits: ``models/outfits/`` from the trained file, with its
  validation numbers in the card, and ``models/SHA256SUMS`` rewritten.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import TYPE_CHECKING

from app.errors import UsageError
from eyepic.settings import Settings

if TYPE_CHECKING:
    from training.data.outfits import WornGarments

EVALUATE_COMMAND = "eyepic evaluate outfits --json"


def trained_path(settings: Settings) -> Path:
    return settings.var_dir / "outfits" / "outfits.npz"


def worn_garments(settings: Settings) -> tuple[WornGarments, str]:
    """Every CCP garment described as the API describes a detected garment, by the classifier the
    model dir serves (cached): (garments, classifier version)."""
    from eyepic.readout import color_fusion_weight, color_fusion_window
    from serving.analyzer import Analyzer, Region
    from training.data.outfits import load_worn_garments

    analyzer = Analyzer.from_settings(settings).with_options(detector=None)
    meta = analyzer.models.metadata(analyzer.classifier).raw
    window = color_fusion_window(meta) if color_fusion_weight(meta) > 0 else None

    def describe(crops, shares, regions):  # the region's group stands in for the detector's class
        return analyzer.describe(crops, shares, [Region(box, 1.0, group) for box, group in regions])

    worn = load_worn_garments(settings.data_dir / "ccp", describe, analyzer.model_version, window, settings.cache_dir)
    return worn, analyzer.model_version


def train_outfits_command(settings: Settings, args: argparse.Namespace) -> int:
    from eyepic.compatibility import write_weights
    from outfits.model import CompatibilityModel
    from training.export import git_commit
    from training.train_outfits import DEFAULT_CONFIG, OutfitRecipe, select_and_train

    config = Path(args.config) if args.config else DEFAULT_CONFIG
    recipe = OutfitRecipe.from_yaml(config)
    started = time.perf_counter()
    worn, classifier = worn_garments(settings)
    train = worn.of_split("train")
    print(f"{len(train)} garments in {len(set(train.photo))} CCP train photos; grid search on an inner split")
    (header, pairs), best, trials = select_and_train(train, recipe, CompatibilityModel.from_arrays)
    header["info"] = {"version": 1, "data_fingerprint": worn.fingerprint, "classifier": classifier,
                  "commit": git_commit(), "recipe": str(config), "setting": best, "selection": trials,
                  "train_photos": int(len(set(train.photo))), "train_outfits": len(train.outfits()),
                  "train_seconds": round(time.perf_counter() - started, 1)}
    out = write_weights(trained_path(settings), header, pairs)
    print(f"chosen {best}; saved {out}")
    return evaluate_outfits_command(settings, argparse.Namespace(json=False, model_file=str(out)))


def evaluate_model(settings: Settings, model_path: Path) -> dict:
    from outfits.model import CompatibilityModel, ModelFileError
    from training.evaluate_outfits import evaluate, markdown_report

    try:
        model = CompatibilityModel.load(model_path)
    except (ModelFileError, FileNotFoundError) as exc:
        raise UsageError(str(exc)) from None
    worn, _ = worn_garments(settings)
    result = evaluate(model, worn.of_split("validation"))
    result["model"] = str(model_path)
    result["markdown"] = markdown_report(result, EVALUATE_COMMAND)
    return result


def evaluate_outfits_command(settings: Settings, args: argparse.Namespace) -> int:
    model_path = Path(args.model_file) if getattr(args, "model_file", None) else settings.outfits_model_path
    if not model_path.is_file():
        raise UsageError(f"{model_path}: no compatibility model (eyepic train outfits, or git checkout models/)")
    result = evaluate_model(settings, model_path)
    out = settings.reports_dir / "outfits"
    out.mkdir(parents=True, exist_ok=True)
    (out / "evaluation.json").write_text(json.dumps({k: v for k, v in result.items() if k != "markdown"},
                                                    indent=2))
    (out / "evaluation.md").write_text(result["markdown"])
    print(result["markdown"])
    print(f"reports: {out / 'evaluation.json'}, {out / 'evaluation.md'}")
    if args.json:
        print(json.dumps({k: v for k, v in result.items() if k != "markdown"}))
    return 0


def release_outfits_command(settings: Settings, args: argparse.Namespace) -> int:
    from training.outfits_release import make_outfits_release
    from training.train_outfits import DEFAULT_CONFIG

    model_path = Path(args.export) if args.export else trained_path(settings)
    if not model_path.is_file():
        raise UsageError(f"{model_path}: no trained compatibility model (run eyepic train outfits)")
    result = evaluate_model(settings, model_path)
    recipe = Path(args.recipe) if args.recipe else DEFAULT_CONFIG
    notes = Path(args.notes).read_text() if args.notes else ""
    folder = make_outfits_release(model_path, settings.release_dir, recipe, result, EVALUATE_COMMAND, notes)
    print(f"released {model_path} as {folder}; FITB {result['fitb']:.3f}")
    return 0
