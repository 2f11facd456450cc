"""How well a compatibility model tells what was worn together (CCP validation photos).

* **4-way fill-in-the-blank (FITB)**: for each photo with two or more
  garments, hide each garment in turn (when the model pairs its group with
  some other garment of the photo); offer it with three distractors of the
  same group cropped from *other* photos of the same split (fixed seed); the
  model picks the candidate with the highest mean compatibility with the rest
  of the outfit. Ties share the credit (a tie of all four is worth 0.25).
  Reported overall (``fitb``), per hidden group, and *pairwise* per pair of
  groups (one garment given, its partner of the other group hidden).
* Baselines on the very same questions: random (0.25, and as drawn) and
  **visual similarity**: the candidate whose embedding is closest (mean
  cosine) to the rest of the outfit.
* **AUC** of telling each real outfit from a random one (each garment
  replaced by a garment of the same group from another photo): outfit score
  is the mean compatibility over its modelled pairs; per pair too.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Protocol

import numpy as np

from eyepic.compatibility import pair_key
from training.data.outfits import WornGarments

DISTRACTORS = 3
SEED = 15

# score(rest rows, candidate rows) -> one score per candidate
Scorer = Callable[[np.ndarray, np.ndarray], np.ndarray]


class PairModel(Protocol):
    """What is evaluated: ``outfits.model.CompatibilityModel`` (passed in by ``app.outfits``)."""

    def has_pair(self, a: str, b: str) -> bool: ...

    def score(self, a: str, embedding_a: np.ndarray, type_a: str, color_a: str, b: str,
              embeddings_b: np.ndarray, types_b: Sequence[str], colors_b: Sequence[str]) -> np.ndarray: ...


@dataclasses.dataclass(frozen=True)
class Question:
    rest: np.ndarray  # rows of the garments kept
    candidates: np.ndarray  # rows; the worn one first
    hidden_group: str
    pair: tuple[str, str] | None  # set for a pairwise question (one garment given)


def model_scorer(model: PairModel, worn: WornGarments) -> Scorer:
    """Mean model compatibility of each candidate with the rest garments it has a pair with."""

    def score(rest: np.ndarray, candidates: np.ndarray) -> np.ndarray:
        group_b = str(worn.group[candidates[0]])
        total = np.zeros(len(candidates), np.float32)
        used = 0
        for r in rest:
            group_a = str(worn.group[r])
            if not model.has_pair(group_a, group_b):
                continue
            used += 1
            total += model.score(group_a, worn.embedding[r], str(worn.type[r]), str(worn.color[r]), group_b,
                                 worn.embedding[candidates], list(worn.type[candidates]),
                                 list(worn.color[candidates]))
        return total / max(used, 1)

    return score


def visual_scorer(worn: WornGarments) -> Scorer:
    """The baseline: mean cosine similarity of each candidate's embedding to the rest."""
    e = worn.embedding

    def score(rest: np.ndarray, candidates: np.ndarray) -> np.ndarray:
        return (e[candidates] @ e[rest].T).mean(axis=1)

    return score


def fitb_questions(worn: WornGarments, model: PairModel, seed: int = SEED,
                   pairwise: bool = False) -> list[Question]:
    """The fixed 4-way questions over ``worn``'s outfits (distractors from other photos, same group)."""
    rng = np.random.default_rng(seed)
    by_group = {g: np.flatnonzero(worn.group == g) for g in np.unique(worn.group)}
    questions = []
    for outfit in worn.outfits():
        for hidden in outfit:
            group_b = str(worn.group[hidden])
            others = [r for r in outfit if r != hidden and model.has_pair(str(worn.group[r]), group_b)]
            pool = by_group[group_b][worn.photo[by_group[group_b]] != worn.photo[hidden]]
            if not others or len(pool) < DISTRACTORS:
                continue
            distractors = rng.choice(pool, DISTRACTORS, replace=False)
            candidates = np.concatenate([[hidden], distractors])
            if pairwise:
                for r in others:
                    questions.append(Question(np.asarray([r]), candidates, group_b,
                                              pair_key(str(worn.group[r]), group_b)))
            else:
                rest = np.asarray([r for r in outfit if r != hidden])
                questions.append(Question(rest, candidates, group_b, None))
    return questions


def credit(scores: np.ndarray) -> float:
    """1 when the worn candidate (first) scores highest, shared among ties."""
    best = scores.max()
    ties = np.flatnonzero(np.isclose(scores, best, rtol=0, atol=1e-6))
    return 1.0 / len(ties) if 0 in ties else 0.0


def fitb_credits(questions: list[Question], scorer: Scorer) -> np.ndarray:
    """The credit of each question (1, 0 or a tie's share): what ``paired_gain`` compares."""
    return np.asarray([credit(scorer(q.rest, q.candidates)) for q in questions], np.float64)


def fitb_accuracy(questions: list[Question], scorer: Scorer) -> float:
    return float(fitb_credits(questions, scorer).mean()) if questions else 0.0


def paired_gain(credits: np.ndarray, reference: np.ndarray, draws: int = 1) -> tuple[float, float]:
    """(mean, standard error) of ``credits - reference`` over the same questions.

    Two settings scored on the same questions differ far less by chance than
    two independent accuracies, so a gain is judged against this paired
    error. ``draws``: the arrays hold that many distractor draws of one
    question list back to back (``fitb_questions`` with several seeds asks
    the same questions); a question's draws are averaged first, since they
    share its outfit and are not independent."""
    diff = (np.asarray(credits, np.float64) - np.asarray(reference, np.float64)).reshape(draws, -1).mean(axis=0)
    if len(diff) < 2:
        return float(diff.mean()) if len(diff) else 0.0, 0.0
    return float(diff.mean()), float(diff.std(ddof=1) / np.sqrt(len(diff)))


def auc(positive: np.ndarray, negative: np.ndarray) -> float:
    """Probability that a real outfit outscores a random one (ties count half)."""
    positive, negative = np.asarray(positive, float), np.asarray(negative, float)
    if not len(positive) or not len(negative):
        return 0.0
    greater = (positive[:, None] > negative[None, :]).mean()
    equal = (positive[:, None] == negative[None, :]).mean()
    return float(greater + 0.5 * equal)


def outfit_auc(worn: WornGarments, model: PairModel, seed: int = SEED) -> dict:
    """AUC of real outfits against random ones made of the same groups, overall and per pair."""
    rng = np.random.default_rng(seed + 1)
    score = model_scorer(model, worn)
    by_group = {g: np.flatnonzero(worn.group == g) for g in np.unique(worn.group)}

    def outfit_score(rows: np.ndarray, per_pair: dict) -> float | None:
        values = []
        for i, a in enumerate(rows):
            for b in rows[i + 1 :]:
                ga, gb = str(worn.group[a]), str(worn.group[b])
                if model.has_pair(ga, gb):
                    s = float(score(np.asarray([a]), np.asarray([b]))[0])
                    values.append(s)
                    per_pair.setdefault(pair_key(ga, gb), []).append(s)
        return float(np.mean(values)) if values else None

    real_pairs: dict = {}
    fake_pairs: dict = {}
    real, fake = [], []
    for outfit in worn.outfits():
        s = outfit_score(outfit, real_pairs)
        if s is None:
            continue
        swapped = []
        for r in outfit:
            pool = by_group[str(worn.group[r])]
            pool = pool[worn.photo[pool] != worn.photo[r]]
            swapped.append(rng.choice(pool) if len(pool) else r)
        f = outfit_score(np.asarray(swapped), fake_pairs)
        real.append(s)
        fake.append(f if f is not None else s)
    return {"auc": round(auc(np.asarray(real), np.asarray(fake)), 4), "outfits": len(real),
            "per_pair": {f"{a}|{b}": round(auc(np.asarray(real_pairs[(a, b)]), np.asarray(fake_pairs.get((a, b), []))),
                                           4) for (a, b) in sorted(real_pairs)}}


def evaluate(model: PairModel, worn: WornGarments, seed: int = SEED) -> dict:
    """Every number of the report on ``worn`` (one split's garments)."""
    questions = fitb_questions(worn, model, seed)
    pairwise = fitb_questions(worn, model, seed, pairwise=True)
    ours, visual = model_scorer(model, worn), visual_scorer(worn)
    rng = np.random.default_rng(seed + 2)

    def drawn(rest: np.ndarray, candidates: np.ndarray) -> np.ndarray:
        return rng.random(len(candidates))

    per_group = {}
    for group in sorted({q.hidden_group for q in questions}):
        mine = [q for q in questions if q.hidden_group == group]
        per_group[group] = {"questions": len(mine), "fitb": round(fitb_accuracy(mine, ours), 4),
                            "visual_similarity": round(fitb_accuracy(mine, visual), 4)}
    per_pair = {}
    for pair in sorted({q.pair for q in pairwise if q.pair}):
        mine = [q for q in pairwise if q.pair == pair]
        per_pair[f"{pair[0]}|{pair[1]}"] = {"questions": len(mine), "fitb": round(fitb_accuracy(mine, ours), 4),
                                            "visual_similarity": round(fitb_accuracy(mine, visual), 4)}
    return {
        "fitb": round(fitb_accuracy(questions, ours), 4),
        "questions": len(questions),
        "outfits": len(worn.outfits()),
        "photos": int(len(np.unique(worn.photo))),
        "baselines": {"random": 0.25, "random_drawn": round(fitb_accuracy(questions, drawn), 4),
                      "visual_similarity": round(fitb_accuracy(questions, visual), 4)},
        "fitb_pairwise": round(fitb_accuracy(pairwise, ours), 4),
        "pairwise_visual_similarity": round(fitb_accuracy(pairwise, visual), 4),
        "per_hidden_group": per_group,
        "per_pair": per_pair,
        **{f"outfit_{k}" if k != "per_pair" else "auc_per_pair": v for k, v in outfit_auc(worn, model, seed).items()},
        "seed": seed,
    }


def markdown_report(result: dict, command: str) -> str:
    """The evaluation as a short markdown page (also pasted into the model card)."""
    b = result["baselines"]
    lines = [
        f"`{command}`", "",
        f"{result['photos']} photos, {result['outfits']} outfits, {result['questions']} 4-way questions "
        f"(seed {result['seed']}).", "",
        "| | model | visual similarity | random |", "|---|---|---|---|",
        f"| FITB (hide one garment, rest given) | **{result['fitb']:.3f}** | {b['visual_similarity']:.3f} | "
        f"0.25 (drawn {b['random_drawn']:.3f}) |",
        f"| FITB pairwise (one garment given) | {result['fitb_pairwise']:.3f} | "
        f"{result['pairwise_visual_similarity']:.3f} | 0.25 |",
        f"| AUC real vs random outfits | {result['outfit_auc']:.3f} | | 0.5 |", "",
        "Per pair of groups (pairwise FITB; AUC of real vs random pairs):", "",
        "| pair | questions | FITB | visual similarity | AUC |", "|---|---|---|---|---|",
    ]
    for pair, m in result["per_pair"].items():
        lines.append(f"| {pair} | {m['questions']} | {m['fitb']:.3f} | {m['visual_similarity']:.3f} | "
                     f"{result['auc_per_pair'].get(pair, float('nan')):.3f} |")
    lines += ["", "Per hidden group (outfit FITB):", "", "| hidden | questions | FITB | visual similarity |",
              "|---|---|---|---|"]
    for group, m in result["per_hidden_group"].items():
        lines.append(f"| {group} | {m['questions']} | {m['fitb']:.3f} | {m['visual_similarity']:.3f} |")
    return "\n".join(lines) + "\n"
