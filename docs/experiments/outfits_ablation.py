"""Compare compatibility-model variants with the released setting on the inner split of the CCP train photos.

    .venv/bin/python docs/experiments/outfits_ablation.py [--only NAME ...]

Needs the described CCP garments cached by ``eyepic train outfits`` (or
``eyepic evaluate outfits``) under ``var/cache/`` (``--garments``: that
file; default: the newest there). Every variant is fit on
the same 80 % of the *train* photos and asked the same 4-way questions on
the other 20 % (``training.train_outfits.inner_split``; three distractor
draws, as the recipe's selection), never on validation photos. Each row
prints the inner FITB and its paired gain over the released setting with
the gain's standard error (``training.evaluate_outfits.paired_gain``): with
some 130 inner photos, a gain under about two standard errors is noise. That
error covers the choice of questions only; the released setting refit with
other training seeds shows how much the fit itself moves.
Scoring variants that the weights file can hold (per-part prior weights)
scale its arrays; the others (outfit aggregation, an added cosine term)
wrap the served model's scorer. The results are in ``outfits-ablation.md``.
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

import numpy as np

from eyepic.settings import Settings
from outfits.model import CompatibilityModel
from training.data.outfits import WornGarments
from training.evaluate_outfits import Scorer, fitb_credits, fitb_questions, model_scorer, paired_gain
from training.train_outfits import DEFAULT_CONFIG, OutfitRecipe, inner_split, train_weights

RELEASED = {"rank": 32, "l2": 0.0003, "attribute_scale": 0.0, "shared": False, "w_bilinear": 1.0, "w_prior": 2.0}


@dataclasses.dataclass(frozen=True)
class Variant:
    name: str
    setting: dict = dataclasses.field(default_factory=dict)  # over RELEASED
    recipe: dict = dataclasses.field(default_factory=dict)  # over the recipe file (steps, smoothing...)
    color_weight: float = 1.0  # the colour table's share of w_prior (the type table keeps 1)
    type_weight: float = 1.0
    scorer: str = "mean"  # "mean" (served), "max" over the rest garments, "cosine+ALPHA"


VARIANTS = [
    Variant("released: rank 32, L2 3e-4, prior 2"),
    Variant("released, training seed 8", recipe={"seed": 8}),  # the noise floor of training itself
    Variant("released, training seed 9", recipe={"seed": 9}),
    Variant("projection alone (prior 0)", {"w_prior": 0.0}),
    Variant("prior 1", {"w_prior": 1.0}),
    Variant("colour prior only", color_weight=1.0, type_weight=0.0),
    Variant("type prior only", color_weight=0.0, type_weight=1.0),
    Variant("colour prior x0.5", color_weight=0.5),
    Variant("prior smoothing 5", recipe={"prior_smoothing": 5.0}),
    Variant("prior smoothing 5, prior 1", {"w_prior": 1.0}, {"prior_smoothing": 5.0}),
    Variant("rank 8", {"rank": 8}),
    Variant("rank 16", {"rank": 16}),
    Variant("L2 1e-4", {"l2": 0.0001}),
    Variant("L2 0", {"l2": 0.0}),
    Variant("L2 3e-3", {"l2": 0.003}),
    Variant("L2 1e-2", {"l2": 0.01}),
    Variant("max over the rest (not mean)", scorer="max"),
    Variant("+ 1.0 x cosine of embeddings", scorer="cosine+1.0"),
    Variant("- 1.0 x cosine of embeddings", scorer="cosine-1.0"),
]


def variant_scorer(variant: Variant, model: CompatibilityModel, select: WornGarments) -> Scorer:
    served = model_scorer(model, select)
    if variant.scorer == "mean":
        return served
    if variant.scorer == "max":
        def best(rest: np.ndarray, candidates: np.ndarray) -> np.ndarray:
            scores = [served(np.asarray([r]), candidates) for r in rest
                      if model.has_pair(str(select.group[r]), str(select.group[candidates[0]]))]
            return np.max(scores, axis=0) if scores else np.zeros(len(candidates), np.float32)
        return best
    alpha = float(variant.scorer.removeprefix("cosine"))
    e = select.embedding

    def with_cosine(rest: np.ndarray, candidates: np.ndarray) -> np.ndarray:
        return served(rest, candidates) + alpha * (e[candidates] @ e[rest].T).mean(axis=1)
    return with_cosine


def build(variant: Variant, fit: WornGarments, base: OutfitRecipe, trained: dict) -> CompatibilityModel:
    """The variant's model; ``trained`` keeps each fit by what it depends on (the prior weight and the
    scaling of the tables are applied after training, so variants of one fit share it)."""
    recipe = dataclasses.replace(base, **variant.recipe)
    setting = {**RELEASED, **variant.setting}
    key = repr(({k: v for k, v in setting.items() if k != "w_prior"}, sorted(variant.recipe.items())))
    if key not in trained:
        trained[key] = train_weights(fit, setting, recipe)
    header, pairs = trained[key]
    scaled = {pair: {**arrays, "color_pmi": arrays["color_pmi"] * variant.color_weight,
                     "type_pmi": arrays["type_pmi"] * variant.type_weight} for pair, arrays in pairs.items()}
    return CompatibilityModel.from_arrays({**header, "w_prior": float(setting["w_prior"])}, scaled)


def cached_garments(settings: Settings, path: str | None) -> WornGarments:
    """The CCP garments as described for the released model, from the training cache (no TensorFlow)."""
    if path:
        return WornGarments.load(Path(path))
    cached = sorted(settings.cache_dir.glob("outfits-*.npz"), key=lambda p: p.stat().st_mtime)
    if not cached:
        raise SystemExit(f"no outfits-*.npz under {settings.cache_dir}: run `eyepic evaluate outfits` once")
    return WornGarments.load(cached[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", nargs="*", help="names (substrings) of the variants to run besides the released")
    parser.add_argument("--garments", help="a cached outfits-*.npz (default: the newest under var/cache/)")
    args = parser.parse_args(argv)
    recipe = OutfitRecipe.from_yaml(DEFAULT_CONFIG)
    worn = cached_garments(Settings.from_env(), args.garments)
    fit, select = inner_split(worn.of_split("train"), recipe.inner_fraction)
    variants = [v for i, v in enumerate(VARIANTS) if i == 0 or not args.only or any(o in v.name for o in args.only)]
    reference: np.ndarray | None = None
    questions: list | None = None
    trained: dict = {}
    print(f"inner split: fit {len(set(fit.photo))} photos, select {len(set(select.photo))} photos")
    print("| variant | inner FITB | gain over released | s.e. |\n|---|---|---|---|")
    for variant in variants:
        started = time.perf_counter()
        model = build(variant, fit, recipe, trained)
        questions = questions or [q for seed in recipe.selection_seeds for q in fitb_questions(select, model, seed)]
        credits = fitb_credits(questions, variant_scorer(variant, model, select))
        reference = print_row(variant.name, credits, reference, len(recipe.selection_seeds), started)
    return 0


def print_row(name: str, credits: np.ndarray, reference: np.ndarray | None, draws: int, started: float) -> np.ndarray:
    """One markdown row: inner FITB and its paired gain over ``reference`` (the first row's credits,
    returned for the next rows)."""
    reference = credits if reference is None else reference
    gain, se = paired_gain(credits, reference, draws)
    print(f"| {name} | {credits.mean():.3f} | {gain:+.3f} | {se:.3f} |"
          f"  <!-- {time.perf_counter() - started:.0f} s -->", flush=True)
    return reference

if __name__ == "__main__":
    raise SystemExit(main())
