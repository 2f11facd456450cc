"""Metrics of a classifier's predictions: per-head classification and embedding retrieval.

Pure numpy on labels and vectors (no model, no I/O), so they are tested on
hand-made inputs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from training.data.samples import Sample

KS = (1, 5, 10)


def label_set_accuracy(probs: np.ndarray, true: Sequence[str], classes: Sequence[str]) -> float:
    """Top-1 accuracy with the argmax restricted to the labels the data uses.

    The served type head chooses among all 22 types (street photos need
    them); a data set such as clothing-small names 10. This is the accuracy
    a 10-way classifier over that data set's own classes would be scored by
    (the seed's setting), reported next to the served, unrestricted one.
    """
    used = np.array([c in set(true) for c in classes])
    pred = np.where(used[None, :], probs, -np.inf).argmax(axis=1)
    return round(float(np.mean([classes[i] == t for i, t in zip(pred, true)])), 4)


def classification_metrics(true: Sequence[str], pred: Sequence[str], classes: Sequence[str]) -> dict:
    per_class = {}
    f1s = []
    for c in classes:
        tp = sum(t == c and p == c for t, p in zip(true, pred))
        fp = sum(t != c and p == c for t, p in zip(true, pred))
        fn = sum(t == c and p != c for t, p in zip(true, pred))
        support = tp + fn
        if support == 0 and fp == 0:
            continue
        precision = tp / (tp + fp) if tp + fp else 0.0
        recall = tp / support if support else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        if support:
            f1s.append(f1)
        per_class[c] = {"precision": round(precision, 4), "recall": round(recall, 4),
                        "f1": round(f1, 4), "support": support}
    accuracy = float(np.mean([t == p for t, p in zip(true, pred)])) if true else 0.0
    return {"accuracy": round(accuracy, 4), "macro_f1": round(float(np.mean(f1s)) if f1s else 0.0, 4),
            "n": len(true), "per_class": per_class}


# --- retrieval ---------------------------------------------------------------------------------


def retrieval_metrics(gallery: np.ndarray, gallery_labels: Sequence[str | None], ks: Sequence[int] = KS,
                      queries: np.ndarray | None = None,
                      query_labels: Sequence[str | None] | None = None,
                      allowed: np.ndarray | None = None) -> dict | None:
    """precision@k and recall@k of cosine nearest neighbours; None if no query counts.

    Rows are L2-normalised vectors. Without ``queries`` the gallery queries
    itself leave-one-out (an item never retrieves itself). Items whose label
    is None (e.g. no color label) are neither queries nor gallery items.

    * ``p@k``: mean over queries of the fraction of the k nearest gallery
      items that share the query's label (what a shopper sees on page one).
    * ``r@k``: hit rate, the recall@k of the metric-learning literature
      (Song et al. 2016; DeepFashion in-shop): the fraction of queries with
      at least one same-label item among the k nearest. Chosen over "share
      of all relevant items found", which with hundreds of relevant items
      per class is capped near k / class size and says little.

    Labelled queries with no relevant item in the gallery (e.g. a street
    coat when the product photos have no coats) are skipped, since no
    ranking could find one; ``queries`` counts the rest, ``no_relevant``
    the skipped.

    ``allowed`` [queries, gallery] (bool) is a per-query filter, as the
    search's attribute filters are: items outside it are never returned.
    Whether a query counts is decided *before* the filter, so a query whose
    relevant items were all filtered away (a wrong predicted group) counts
    as a miss rather than being skipped.
    """
    g_labels = np.asarray(gallery_labels, dtype=object)
    same_set = queries is None
    q_labels = g_labels if query_labels is None else np.asarray(query_labels, dtype=object)
    q_emb = gallery if queries is None else queries
    g_keep = np.array([v is not None for v in g_labels], dtype=bool)
    sims = q_emb @ gallery.T
    if same_set:
        np.fill_diagonal(sims, -np.inf)
    sims[:, ~g_keep] = -np.inf
    relevant = (q_labels[:, None] == g_labels[None, :]) & g_keep[None, :]
    if same_set:
        np.fill_diagonal(relevant, False)
    q_labelled = np.array([v is not None for v in q_labels], dtype=bool)
    q_keep = q_labelled & relevant.any(axis=1)
    if not q_keep.any():
        return None
    if allowed is not None:
        sims[~allowed] = -np.inf
        relevant = relevant & allowed
        g_keep = g_keep[None, :] & allowed
    else:
        g_keep = np.broadcast_to(g_keep, sims.shape)
    order = np.argsort(-sims[q_keep], axis=1, kind="stable")
    hits = np.take_along_axis(relevant[q_keep], order, axis=1)
    n_gallery = int(g_keep[q_keep].sum(axis=1).max()) - (1 if same_set else 0)
    out: dict[str, Any] = {}
    for k in ks:
        top = hits[:, : min(k, max(1, n_gallery))]
        out[f"p@{k}"] = round(float(top.sum(axis=1).mean() / k), 4)
    for k in ks:
        out[f"r@{k}"] = round(float(hits[:, :k].any(axis=1).mean()), 4)
    out["queries"] = int(q_keep.sum())
    out["no_relevant"] = int(q_labelled.sum() - q_keep.sum())
    return out


def retrieval_report(vectors: np.ndarray, samples: Sequence[Sample], ks: Sequence[int] = KS,
                     predicted_groups: Sequence[str] | None = None) -> dict:
    """Retrieval numbers per setting and relevance; settings without queries are left out.

    Settings: ``all`` (every item, leave-one-out), ``product_to_product``
    (product photos, leave-one-out), ``street_to_product`` (CCP crops query
    the product photos). Relevance: ``same_type``, and ``same_type_color``
    where both items carry a color label (product photos carry none, so it
    can't be measured against a product gallery).

    With ``predicted_groups`` (the served group of each sample) a fourth
    setting, ``street_to_product_as_served``, ranks only the products of the
    query's predicted group, as ``POST /api/v1/search`` does by default
    (``Filters.for_garment``); a wrongly grouped query then finds nothing
    relevant and counts as a miss.
    """
    vectors = l2_normalise(vectors)
    types = [s.type for s in samples]
    type_colors = [f"{s.type}/{s.color}" if s.color else None for s in samples]
    street = [i for i, s in enumerate(samples) if s.source == "ccp"]
    product = [i for i, s in enumerate(samples) if s.source != "ccp"]
    report: dict[str, dict] = {}

    def add(setting: str, gallery: list[int], queries: list[int] | None,
            allowed: np.ndarray | None = None) -> None:
        for relevance, labels in (("same_type", types), ("same_type_color", type_colors)):
            m = retrieval_metrics(
                vectors[gallery], [labels[i] for i in gallery], ks,
                queries=None if queries is None else vectors[queries],
                query_labels=None if queries is None else [labels[i] for i in queries], allowed=allowed)
            if m is not None:
                report.setdefault(setting, {})[relevance] = m

    add("all", list(range(len(samples))), None)
    if len(product) > 1:
        add("product_to_product", product, None)
    if street and product:
        add("street_to_product", product, street)
        if predicted_groups is not None:
            shop_groups = np.array([samples[i].group for i in product], dtype=object)
            asked = np.array([predicted_groups[i] for i in street], dtype=object)
            add("street_to_product_as_served", product, street, allowed=asked[:, None] == shop_groups[None, :])
    return report


def l2_normalise(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
