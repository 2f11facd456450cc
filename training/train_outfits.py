"""Train the compatibility model (``outfits.model.CompatibilityModel``) on CCP train outfits.

Per pair of groups (``outfits.model.model_pairs``), from every train photo
wearing both:

* the **projection** ``A, B``: in-batch contrastive (InfoNCE both ways,
  full batch, Adam, L2): each garment should score its own outfit's partner
  above the partners worn in the other photos, which is exactly the
  fill-in-the-blank decision (distractors of the same group from other
  photos);
* the **prior**: smoothed log-odds of each colour pair and type pair against
  chance (``prior_tables``).

The recipe's grid (rank, L2, attribute weight, prior weight, prior alone) is
searched on an inner split of the *train* photos (``inner_fraction``, stable
hash); the winner is refit on all train photos. Numpy only: a few seconds
on a CPU. The result is a header and arrays in the weights-file contract
(``eyepic.compatibility``); scoring them during the search is the served
model's own code, passed in as ``build`` by ``app.outfits`` (this stage may
not import the ``outfits`` stage).
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable
from pathlib import Path

import numpy as np

from eyepic import compatibility as contract
from eyepic import taxonomy
from eyepic.colors import COLOR_NAMES
from training.data.outfits import WornGarments
from training.data.samples import stable_fraction
from training.errors import TrainingInputError, config_from_yaml
from training.evaluate_outfits import PairModel, fitb_accuracy, fitb_questions, model_scorer

Weights = tuple[dict, dict[tuple[str, str], dict[str, np.ndarray]]]  # (header, arrays per pair)
Build = Callable[[dict, dict[tuple[str, str], dict[str, np.ndarray]]], PairModel]

DEFAULT_CONFIG = Path("training/configs/outfits.yaml")


@dataclasses.dataclass
class OutfitRecipe:
    seed: int = 7
    inner_fraction: float = 0.2
    steps: int = 300
    learning_rate: float = 0.02
    prior_smoothing: float = 2.0
    grid: dict = dataclasses.field(default_factory=lambda: {
        "rank": [16], "l2": [0.01], "attribute_scale": [0.5], "w_prior": [0.5], "prior_only": True})

    @classmethod
    def from_yaml(cls, path: Path) -> OutfitRecipe:
        recipe = config_from_yaml(cls, path, "outfit recipe")
        unknown = set(recipe.grid) - {"rank", "l2", "attribute_scale", "w_prior", "prior_only"}
        if unknown:
            raise TrainingInputError(f"{path}: unknown grid keys {sorted(unknown)}")
        return recipe

    def settings(self) -> list[dict]:
        """Every combination of the grid (prior alone last, when asked)."""
        g = self.grid
        out = [{"rank": int(r), "l2": float(l2), "attribute_scale": float(s), "w_bilinear": 1.0, "w_prior": float(w)}
               for r, l2, s, w in itertools.product(g["rank"], g["l2"], g["attribute_scale"], g["w_prior"])]
        if g.get("prior_only"):
            out.append({"rank": int(g["rank"][0]), "l2": float(g["l2"][0]), "attribute_scale": 0.0,
                        "w_bilinear": 0.0, "w_prior": 1.0})
        return out


def pair_rows(worn: WornGarments, a: str, b: str) -> tuple[np.ndarray, np.ndarray]:
    """Rows (a garment, b garment) of every outfit wearing both groups."""
    rows_a, rows_b = [], []
    for outfit in worn.outfits():
        ga = [r for r in outfit if worn.group[r] == a]
        gb = [r for r in outfit if worn.group[r] == b]
        if ga and gb:
            rows_a.append(ga[0])
            rows_b.append(gb[0])
    return np.asarray(rows_a, int), np.asarray(rows_b, int)


def prior_tables(worn: WornGarments, rows_a: np.ndarray, rows_b: np.ndarray, names: tuple[str, ...],
                 field: str, smoothing: float) -> np.ndarray:
    """log((n_ij + s) / (expected_ij + s)) over worn pairs: above 0, worn together more than chance."""
    values = getattr(worn, field)
    counts = np.zeros((len(names), len(names)), np.float64)
    for ra, rb in zip(rows_a, rows_b):
        va, vb = str(values[ra]), str(values[rb])
        if va in names and vb in names:
            counts[names.index(va), names.index(vb)] += 1
    n = counts.sum()
    expected = np.outer(counts.sum(1), counts.sum(0)) / max(n, 1.0)
    return np.log((counts + smoothing) / (expected + smoothing)).astype(np.float32)


def fit_projection(xa: np.ndarray, xb: np.ndarray, rank: int, l2: float, steps: int, learning_rate: float,
                   seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A, B minimising the symmetric in-batch InfoNCE of (xa_i A).(xb_j B) with positives i == j."""
    rng = np.random.default_rng(seed)
    d = xa.shape[1]
    xa, xb = np.asarray(xa, np.float32), np.asarray(xb, np.float32)
    params = [rng.normal(0, 1 / np.sqrt(d), (d, rank)).astype(np.float32),
              rng.normal(0, 1 / np.sqrt(d), (d, rank)).astype(np.float32)]
    moments = [[np.zeros_like(p), np.zeros_like(p)] for p in params]
    n = len(xa)
    eye = np.eye(n, dtype=np.float32)
    for step in range(1, steps + 1):
        a, b = params
        x, y = xa @ a, xb @ b
        logits = x @ y.T
        rows = np.exp(logits - logits.max(1, keepdims=True))
        rows /= rows.sum(1, keepdims=True)
        cols = np.exp(logits - logits.max(0, keepdims=True))
        cols /= cols.sum(0, keepdims=True)
        g = ((rows - eye) + (cols - eye)) / (2 * n)
        grads = [xa.T @ (g @ y) + 2 * l2 * a, xb.T @ (g.T @ x) + 2 * l2 * b]
        for p, grad, m in zip(params, grads, moments):
            m[0] = 0.9 * m[0] + 0.1 * grad
            m[1] = 0.999 * m[1] + 0.001 * grad**2
            p -= learning_rate * (m[0] / (1 - 0.9**step)) / (np.sqrt(m[1] / (1 - 0.999**step)) + 1e-8)
    return params[0].astype(np.float32), params[1].astype(np.float32)


def train_weights(worn: WornGarments, setting: dict, recipe: OutfitRecipe) -> Weights:
    """Header and arrays of one model fit on ``worn`` (train garments) with one grid ``setting``."""
    if not len(worn):
        raise TrainingInputError("no worn garments to train the compatibility model on")
    types, colors = taxonomy.TYPE_NAMES, COLOR_NAMES
    rank = int(setting["rank"])
    features = contract.features(worn.embedding, list(worn.type), list(worn.color), types, colors,
                                 setting["attribute_scale"])
    pairs: dict[tuple[str, str], dict[str, np.ndarray]] = {}
    outfits: dict[str, int] = {}
    for a, b in contract.model_pairs():
        rows_a, rows_b = pair_rows(worn, a, b)
        if len(rows_a) < 2:
            continue
        pa = pb = np.zeros((features.shape[1], rank), np.float32)
        if setting["w_bilinear"]:
            pa, pb = fit_projection(features[rows_a], features[rows_b], rank, setting["l2"], recipe.steps,
                                    recipe.learning_rate, recipe.seed)
        pairs[(a, b)] = {"a": pa, "b": pb,
                         "color_pmi": prior_tables(worn, rows_a, rows_b, colors, "color", recipe.prior_smoothing),
                         "type_pmi": prior_tables(worn, rows_a, rows_b, types, "type", recipe.prior_smoothing)}
        outfits[f"{a}|{b}"] = len(rows_a)
    header = {"embedding_dim": int(worn.embedding.shape[1]), "rank": rank,
              "attribute_scale": float(setting["attribute_scale"]), "w_bilinear": float(setting["w_bilinear"]),
              "w_prior": float(setting["w_prior"]), "types": list(types), "colors": list(colors), "pairs": outfits,
              "info": {}}
    return header, pairs


def inner_split(worn: WornGarments, fraction: float) -> tuple[WornGarments, WornGarments]:
    """Train garments split by a stable hash of the photo: (fit, select)."""
    held = np.asarray([stable_fraction(f"outfits-inner/{p}") < fraction for p in worn.photo], bool)
    return worn.subset(~held), worn.subset(held)


def select_and_train(train: WornGarments, recipe: OutfitRecipe, build: Build,
                     log: Callable[[str], None] = print) -> tuple[Weights, dict, list[dict]]:
    """Grid search on the inner split of ``train`` (each setting built into a model by ``build`` and
    scored by FITB), then the winner refit on all of ``train``: (weights, chosen setting, trials)."""
    fit, select = inner_split(train, recipe.inner_fraction)
    trials = []
    for setting in recipe.settings():
        model = build(*train_weights(fit, setting, recipe))
        questions = fitb_questions(select, model, recipe.seed)
        score = fitb_accuracy(questions, model_scorer(model, select))
        trials.append({**setting, "inner_fitb": round(score, 4), "questions": len(questions)})
        log(f"  {setting} -> inner FITB {score:.3f} ({len(questions)} questions)")
    best = max(trials, key=lambda t: t["inner_fitb"])  # the first of equals: the grid's order
    setting = {k: best[k] for k in ("rank", "l2", "attribute_scale", "w_bilinear", "w_prior")}
    return train_weights(train, setting, recipe), best, trials
