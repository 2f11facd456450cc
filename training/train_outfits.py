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
    selection_seeds: tuple[int, ...] = (7, 8, 9)  # distractor draws of the inner FITB, averaged
    grid: dict = dataclasses.field(default_factory=lambda: {
        "rank": [16], "l2": [0.01], "attribute_scale": [0.5], "w_prior": [0.5], "prior_only": True})

    @classmethod
    def from_yaml(cls, path: Path) -> OutfitRecipe:
        recipe = config_from_yaml(cls, path, "outfit recipe")
        unknown = set(recipe.grid) - {"rank", "l2", "attribute_scale", "shared", "w_prior", "prior_only"}
        if unknown:
            raise TrainingInputError(f"{path}: unknown grid keys {sorted(unknown)}")
        return recipe

    def settings(self) -> list[dict]:
        """Every projection setting of the grid (each trained once; ``w_prior`` is swept on it), then the
        prior alone when asked."""
        g = self.grid
        grid = itertools.product(g["rank"], g["l2"], g["attribute_scale"], g.get("shared", [False]))
        out = [{"rank": int(r), "l2": float(l2), "attribute_scale": float(s), "shared": bool(sh), "w_bilinear": 1.0}
               for r, l2, s, sh in grid]
        if g.get("prior_only"):
            out.append({"rank": int(g["rank"][0]), "l2": float(g["l2"][0]), "attribute_scale": 0.0, "shared": False,
                        "w_bilinear": 0.0})
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


def infonce_grads(xa: np.ndarray, xb: np.ndarray, a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Gradients wrt ``a`` and ``b`` of the symmetric in-batch InfoNCE of (xa_i a).(xb_j b), positives i == j."""
    x, y = xa @ a, xb @ b
    logits = x @ y.T
    rows = np.exp(logits - logits.max(1, keepdims=True))
    rows /= rows.sum(1, keepdims=True)
    cols = np.exp(logits - logits.max(0, keepdims=True))
    cols /= cols.sum(0, keepdims=True)
    n = len(xa)
    eye = np.eye(n, dtype=np.float32)
    g = ((rows - eye) + (cols - eye)) / (2 * n)
    return xa.T @ (g @ y), xb.T @ (g.T @ x)


def _adam(params: dict, grads: dict, moments: dict, step: int, learning_rate: float) -> None:
    for name, grad in grads.items():
        m = moments.setdefault(name, [np.zeros_like(grad), np.zeros_like(grad)])
        m[0] = 0.9 * m[0] + 0.1 * grad
        m[1] = 0.999 * m[1] + 0.001 * grad**2
        params[name] -= learning_rate * (m[0] / (1 - 0.9**step)) / (np.sqrt(m[1] / (1 - 0.999**step)) + 1e-8)


def fit_projections(features: np.ndarray, rows: dict[tuple[str, str], tuple[np.ndarray, np.ndarray]], rank: int,
                    l2: float, steps: int, learning_rate: float, seed: int,
                    shared: bool, views: np.ndarray | None = None,
                    ) -> dict[tuple[str, str], tuple[np.ndarray, np.ndarray]]:
    """(A, B) per pair of groups, all pairs trained together.

    ``shared``: one projection per *group* into one style space (a top's A is the
    same whichever partner it meets, so it learns from every pair it is worn in);
    else a separate (A, B) per pair. ``views`` (views, rows, features): other
    crops of each garment; every step sees each garment through one of them or
    its own ``features``, drawn at random (augmentation)."""
    rng = np.random.default_rng(seed)
    x = np.asarray(features, np.float32)
    d = x.shape[1]
    stack = None if views is None else np.concatenate([x[None], np.asarray(views, np.float32)])

    def names(a: str, b: str) -> tuple[str, str]:
        return (a, b) if shared else (f"{a}|{b}/a", f"{a}|{b}/b")

    params: dict[str, np.ndarray] = {}
    for a, b in rows:
        for name in names(a, b):
            if name not in params:
                params[name] = rng.normal(0, 1 / np.sqrt(d), (d, rank)).astype(np.float32)
    moments: dict = {}
    draw = np.random.default_rng(seed + 1)
    for step in range(1, steps + 1):
        if stack is not None:
            x = stack[draw.integers(0, len(stack), len(x)), np.arange(len(x))]
        grads = {name: 2 * l2 * p for name, p in params.items()}
        for (a, b), (rows_a, rows_b) in rows.items():
            na, nb = names(a, b)
            ga, gb = infonce_grads(x[rows_a], x[rows_b], params[na], params[nb])
            grads[na] += ga
            grads[nb] += gb
        _adam(params, grads, moments, step, learning_rate)
    return {(a, b): tuple(params[n] for n in names(a, b)) for a, b in rows}  # type: ignore[misc]


def train_weights(worn: WornGarments, setting: dict, recipe: OutfitRecipe,
                  views: np.ndarray | None = None) -> Weights:
    """Header and arrays of one model fit on ``worn`` (train garments) with one grid ``setting``;
    ``views`` (views, rows, embedding): re-boxed crops of ``worn``'s garments to train the projection on."""
    if not len(worn):
        raise TrainingInputError("no worn garments to train the compatibility model on")
    types, colors = taxonomy.TYPE_NAMES, COLOR_NAMES
    rank = int(setting["rank"])
    features = contract.features(worn.embedding, list(worn.type), list(worn.color), types, colors,
                                 setting["attribute_scale"])
    rows = {(a, b): pair_rows(worn, a, b) for a, b in contract.model_pairs()}
    rows = {key: r for key, r in rows.items() if len(r[0]) >= 2}
    zeros = np.zeros((features.shape[1], rank), np.float32)
    projections = {key: (zeros, zeros) for key in rows}
    if setting["w_bilinear"]:
        view_features = None if views is None else np.stack([
            contract.features(v, list(worn.type), list(worn.color), types, colors, setting["attribute_scale"])
            for v in views])
        projections = fit_projections(features, rows, rank, setting["l2"], recipe.steps, recipe.learning_rate,
                                      recipe.seed, shared=bool(setting.get("shared", False)), views=view_features)
    pairs: dict[tuple[str, str], dict[str, np.ndarray]] = {}
    outfits: dict[str, int] = {}
    for (a, b), (rows_a, rows_b) in rows.items():
        pa, pb = projections[(a, b)]
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
    """Grid search on the inner split of ``train`` (each projection setting trained once, built into a
    model by ``build``, and scored by FITB averaged over ``selection_seeds`` for every prior weight),
    then the winner refit on all of ``train``: (weights, chosen setting, trials)."""
    fit, select = inner_split(train, recipe.inner_fraction)
    trials = []
    for setting in recipe.settings():
        header, pairs = train_weights(fit, {**setting, "w_prior": 0.0}, recipe)
        questions = None
        for w_prior in (recipe.grid["w_prior"] if setting["w_bilinear"] else [1.0]):
            model = build({**header, "w_prior": float(w_prior)}, pairs)
            questions = questions or [fitb_questions(select, model, seed) for seed in recipe.selection_seeds]
            score = float(np.mean([fitb_accuracy(q, model_scorer(model, select)) for q in questions]))
            trials.append({**setting, "w_prior": float(w_prior), "inner_fitb": round(score, 4),
                           "questions": len(questions[0])})
            log(f"  {trials[-1]}")
    best = max(trials, key=lambda t: t["inner_fitb"])  # the first of equals: the grid's order
    setting = {k: best[k] for k in ("rank", "l2", "attribute_scale", "shared", "w_bilinear", "w_prior")}
    return train_weights(train, setting, recipe), best, trials
