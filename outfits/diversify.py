"""Maximal marginal relevance: a row of suggestions that are good and not all alike."""

from __future__ import annotations

import numpy as np


def mmr(scores: np.ndarray, vectors: np.ndarray, k: int, diversity: float) -> list[int]:
    """Indices of ``k`` items chosen greedily by ``(1 - diversity) * relevance - diversity * max_sim``.

    ``relevance`` is ``scores`` rescaled to 0-1 (so ``diversity`` means the same for
    any model scale); ``max_sim`` the highest cosine similarity to an item already
    chosen. ``diversity`` 0 is plain best-first. Ties keep the input order, so a
    fixed input order gives a fixed answer.
    """
    scores = np.asarray(scores, np.float64)
    n = len(scores)
    if n == 0 or k < 1:
        return []
    spread = scores.max() - scores.min()
    relevance = (scores - scores.min()) / spread if spread > 0 else np.ones(n)
    v = np.asarray(vectors, np.float64)
    v = v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)
    max_sim = np.full(n, -np.inf)
    chosen: list[int] = []
    available = np.ones(n, bool)
    for _ in range(min(k, n)):
        penalty = np.where(np.isfinite(max_sim), max_sim, 0.0)
        value = (1 - diversity) * relevance - diversity * penalty
        value[~available] = -np.inf
        best = int(np.argmax(value))  # first of equal values: input order
        chosen.append(best)
        available[best] = False
        max_sim = np.maximum(max_sim, v @ v[best])
    return chosen
