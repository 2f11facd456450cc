"""Evaluate an exported classifier exactly as it is served.

Crops go through the same path as the Analyzer's (PIL crop -> PNG -> the
export's in-graph decode/resize), so the numbers describe what users get.

* Per head: accuracy, macro-F1, a per-class table, a confusion-matrix PNG.
* Retrieval (cosine on the served ``embedding``), see ``retrieval_metrics``:
  precision@k and recall@k (k = 1, 5, 10) for "same fine type" and "same
  type and color", in three settings: all items (leave-one-out),
  product -> product (leave-one-out) and street crop -> product photo.
* Baseline: the same retrieval numbers on the backbone's pooled features
  (layer ``pool``, before the projection), which shows whether the trained
  embedding beats raw features. It needs the Keras model, not only the
  SavedModel: pass ``keras_model`` (right after training), or let
  ``rebuild_model`` rebuild it from an export's ``metadata.json`` and
  variables; without either the report says the baseline is missing.
* Behavioral checks (Made-With-ML style), see ``behavioral_checks``.
"""

from __future__ import annotations

import functools
import io
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps
from tqdm import tqdm

from eyepic import taxonomy
from eyepic.colors import PALETTE, dominant_color, srgb_to_lab
from eyepic.imaging import color_shares, crop_encoded, encode_png
from serving.analyzer import color_fusion_weight, color_fusion_window, consistent_labels, served_color_probs
from serving.model_client import ModelClient
from training.data.samples import FULL, Sample

HEAD_LABEL = {"group": "group", "type": "type", "color": "color"}
KS = (1, 5, 10)
# Colors a hue rotation can reach and leave; the targets are far hues, tried in order.
RECOLOR_TARGETS: dict[str, tuple[str, ...]] = {
    "red": ("blue", "green"), "pink": ("blue", "green"), "yellow": ("blue", "green"),
    "green": ("red", "blue"), "blue": ("red", "green"),
}
CENTER_CROP = 0.8
BEHAVIORAL_LIMIT = 200  # items per check: enough for a rate, cheap on 2 cores


def encode_sample(sample: Sample) -> bytes:
    if sample.box == FULL:
        return sample.path.read_bytes()
    with Image.open(sample.path) as image:
        return crop_encoded(image.convert("RGB"), sample.box)


def sample_color_shares(sample: Sample, window: float = 1.0) -> np.ndarray:
    """Pixel color shares of a sample's garment box (what the Analyzer fuses with the head)."""
    with Image.open(sample.path) as image:
        return color_shares(image.convert("RGB"), sample.box, window)  # the pixels encode_sample crops


def encoded_color_shares(data: bytes, window: float = 1.0) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as image:
        return color_shares(image.convert("RGB"), window=window)


def predict_encoded(client: ModelClient, name: str, images: Sequence[bytes], batch: int = 32,
                    desc: str = "evaluating") -> dict[str, np.ndarray]:
    outs: dict[str, list[np.ndarray]] = {}
    for start in tqdm(range(0, len(images), batch), desc=desc, unit="batch"):
        for key, value in client.predict(name, list(images[start : start + batch])).items():
            outs.setdefault(key, []).append(value)
    return {k: np.concatenate(v) for k, v in outs.items()}


def predict_samples(client: ModelClient, name: str, samples: Sequence[Sample], batch: int = 32) -> dict:
    outs: dict[str, list[np.ndarray]] = {}
    for start in tqdm(range(0, len(samples), batch), desc="evaluating", unit="batch"):
        chunk = [encode_sample(s) for s in samples[start : start + batch]]
        for key, value in client.predict(name, chunk).items():
            outs.setdefault(key, []).append(value)
    return {k: np.concatenate(v) for k, v in outs.items()}


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
    vectors = _l2(vectors)
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


def _l2(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def pooled_features(model: Any, samples: Sequence[Sample], batch: int = 32,
                    test_time_flip: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(pooled backbone features, embedding) of ``samples`` from a GarmentClassifier or GarmentEnsemble.

    Same bytes and in-graph decode as serving (and the same mirror averaging
    where the export does it); the embedding comes along so callers can
    check the model agrees with the export it stands in for.
    """
    import keras
    import tensorflow as tf

    from eyepic.imaging import decode_and_resize

    size = int(model.input_shape[1])
    probe = keras.Model(model.input, [model.pooled_output, model.output["embedding"]])
    pooled, emb = [], []
    for start in tqdm(range(0, len(samples), batch), desc="pooled features", unit="batch"):
        pixels = tf.stack([decode_and_resize(tf.constant(encode_sample(s)), size)
                           for s in samples[start : start + batch]])
        p, e = probe(pixels, training=False)
        if test_time_flip:
            p_mirror, e_mirror = probe(tf.reverse(pixels, axis=[2]), training=False)
            p, e = (p + p_mirror) / 2.0, _l2(np.asarray(e) + np.asarray(e_mirror))
        pooled.append(np.asarray(p))
        emb.append(np.asarray(e))
    return np.concatenate(pooled), np.concatenate(emb)


def rebuild_model(version_dir: Path) -> Any | None:
    """The Keras model behind a classifier export, or None where it can't be rebuilt.

    The export tracks the model's variables in the model's own order and
    names (``keras.export.ExportArchive``), so the model is rebuilt from
    ``metadata.json``'s ``model_config`` and the saved values assigned one to
    one; any name or shape mismatch means "can't", never a guess. Callers
    still compare its embedding to the served one (see evaluate_classifier).
    """
    import tensorflow as tf

    from training.models.ensemble import model_from_config

    meta = json.loads((Path(version_dir) / "metadata.json").read_text())
    config = meta.get("model_config")
    if not config or meta.get("kind", "classifier") != "classifier":
        return None
    model = model_from_config(config)
    saved = tf.saved_model.load(str(version_dir)).variables
    if len(saved) != len(model.variables):
        return None
    for var, value in zip(model.variables, saved):
        name = value.name.removesuffix(":0")
        # Dropout's RNG state is numbered per process (seed_generator_1...) and unused in inference.
        same = name == var.path or ("seed_generator" in name and "seed_generator" in var.path)
        if not same or tuple(value.shape) != tuple(var.shape):
            return None
    for var, value in zip(model.variables, saved):
        var.assign(value.numpy())
    return model


# --- behavioral checks -------------------------------------------------------------------------


def sample_image(sample: Sample) -> Image.Image:
    """The sample's garment as an RGB image (the box, cropped as ``encode_sample`` does)."""
    with Image.open(sample.path) as image:
        image = image.convert("RGB")
        if sample.box == FULL:
            return image
        return Image.open(io.BytesIO(crop_encoded(image, sample.box))).convert("RGB")


def center_crop(image: Image.Image, fraction: float = CENTER_CROP) -> Image.Image:
    """The central ``fraction`` of each side: a tighter shot of the same garment."""
    w, h = image.size
    cw, ch = max(1, round(w * fraction)), max(1, round(h * fraction))
    x0, y0 = (w - cw) // 2, (h - ch) // 2
    return image.crop((x0, y0, x0 + cw, y0 + ch))


def _spread(items: Sequence, limit: int) -> list:
    """At most ``limit`` items spread evenly over ``items``: deterministic, covers every class."""
    if len(items) <= limit:
        return list(items)
    return [items[int(i)] for i in np.linspace(0, len(items) - 1, limit)]


def _type_consistency(client: ModelClient, name: str, samples: Sequence[Sample],
                      transform: Callable[[Image.Image], Image.Image]) -> dict:
    """Does ``transform`` keep the predicted type? Originals and transforms share one encoding (PNG)."""
    classes = client.metadata(name).classes["type"]
    originals = [sample_image(s) for s in samples]
    images = [encode_png(im) for im in originals] + [encode_png(transform(im)) for im in originals]
    pred = predict_encoded(client, name, images, desc="behavioral")["type_probs"].argmax(1)
    before, after = pred[: len(samples)], pred[len(samples) :]
    true = np.array([classes.index(s.type) for s in samples])
    return {"rate": round(float((before == after).mean()), 4), "n": len(samples),
            "accuracy_original": round(float((before == true).mean()), 4),
            "accuracy_transformed": round(float((after == true).mean()), 4)}


@functools.lru_cache(maxsize=4)
def _ccp_label_names(root: str) -> tuple[str, ...]:
    from training.data.ccp import read_label_names

    return tuple(read_label_names(Path(root)))


def garment_mask(sample: Sample) -> np.ndarray | None:
    """Boolean (H, W) mask of a CCP sample's group, as ``regions_from_labels`` derives it; None if unknown.

    Kept here (not in the reader) because only the recolor check needs masks
    after reading; it uses the reader's own label map and speck filter.
    """
    from training.data.ccp import MIN_COMPONENT_PX, drop_specks, read_label_map

    if sample.source != "ccp" or "/" not in sample.key:
        return None
    photo_id = sample.key.split("/")[0]
    root = sample.path.parent.parent
    mat = root / "annotations" / "pixel-level" / f"{photo_id}.mat"
    if not mat.exists():
        return None
    names = _ccp_label_names(str(root))
    ids = [i for i, n in enumerate(names)
           if n in taxonomy.CCP_TYPES and taxonomy.group_of(taxonomy.CCP_TYPES[n]) == sample.group]
    return drop_specks(np.isin(read_label_map(mat), ids), MIN_COMPONENT_PX)


def lab_to_srgb(lab: np.ndarray) -> np.ndarray:
    """CIELAB (..., 3) under D65 -> sRGB uint8 (..., 3); the inverse of ``srgb_to_lab``, clipped to gamut."""
    lab = np.asarray(lab, dtype=np.float32)
    fy = (lab[..., 0] + 16.0) / 116.0
    f = np.stack([fy + lab[..., 1] / 500.0, fy, fy - lab[..., 2] / 200.0], axis=-1)
    xyz = np.where(f > 6.0 / 29.0, f**3, (f - 16.0 / 116.0) / 7.787) * np.array([0.95047, 1.0, 1.08883],
                                                                              dtype=np.float32)
    m = np.array([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]],
                 dtype=np.float32)
    c = np.clip(xyz @ np.linalg.inv(m).T, 0.0, 1.0)
    c = np.where(c <= 0.0031308, 12.92 * c, 1.055 * c ** (1 / 2.4) - 0.055)
    return np.clip(np.round(c * 255.0), 0, 255).astype(np.uint8)


def recolor(rgb: np.ndarray, mask: np.ndarray, target: str) -> np.ndarray | None:
    """``rgb`` with the masked pixels' hue rotated so they are named ``target``; None if no rotation does.

    A rotation in CIELAB's a-b plane keeps each pixel's lightness and chroma
    (shading, texture, and gray stitching stay as they were); the angle
    takes the pixels' chroma-weighted mean hue to the hue of one of
    ``target``'s palette prototypes, tried in turn until ``dominant_color``
    (the function that labelled the data) names the result ``target``.
    Pixels outside the mask are returned unchanged.
    """
    lab = srgb_to_lab(rgb[mask])
    chroma = np.hypot(lab[:, 1], lab[:, 2])
    if chroma.sum() == 0:
        return None
    mean_hue = np.arctan2((chroma * np.sin(np.arctan2(lab[:, 2], lab[:, 1]))).sum(),
                          (chroma * np.cos(np.arctan2(lab[:, 2], lab[:, 1]))).sum())
    prototypes = next(c.lab for c in PALETTE if c.name == target)
    for _, a, b in prototypes:
        delta = np.arctan2(b, a) - mean_hue
        cos, sin = np.cos(delta), np.sin(delta)
        turned = lab.copy()
        turned[:, 1] = cos * lab[:, 1] - sin * lab[:, 2]
        turned[:, 2] = sin * lab[:, 1] + cos * lab[:, 2]
        pixels = lab_to_srgb(turned)
        if dominant_color(pixels) == target:
            out = rgb.copy()
            out[mask] = pixels
            return out
    return None


def _recolor_one(sample: Sample) -> tuple[bytes, bytes, str] | None:
    """(original crop, recolored crop, target color) of a CCP garment of a hue color, or None."""
    if sample.color not in RECOLOR_TARGETS:
        return None
    mask = garment_mask(sample)
    if mask is None or not mask.any():
        return None
    with Image.open(sample.path) as image:
        rgb = np.asarray(image.convert("RGB"))
    if rgb.shape[:2] != mask.shape:  # as the reader does: the label map's size wins
        rgb = np.asarray(Image.fromarray(rgb).resize((mask.shape[1], mask.shape[0])))
    for target in RECOLOR_TARGETS[sample.color]:
        changed = recolor(rgb, mask, target)
        if changed is not None:
            return (crop_encoded(Image.fromarray(rgb), sample.box),
                    crop_encoded(Image.fromarray(changed), sample.box), target)
    return None


def recolor_check(client: ModelClient, name: str, samples: Sequence[Sample]) -> dict:
    """Directional: after a hue rotation of the garment's masked pixels, is the new color predicted?"""
    classes = client.metadata(name).classes["color"]
    candidates = [s for s in samples if s.source == "ccp" and s.color in RECOLOR_TARGETS]
    pairs = [p for p in (_recolor_one(s) for s in tqdm(candidates, desc="recoloring", unit="garment"))
             if p is not None]
    result: dict[str, Any] = {"n": len(pairs), "skipped": len(candidates) - len(pairs)}
    if not pairs:
        return result
    images = [p[0] for p in pairs] + [p[1] for p in pairs]
    meta = client.metadata(name).raw
    probs = predict_encoded(client, name, images, desc="recolor")["color_probs"]
    if color_fusion_weight(meta) > 0:  # as served: crops fuse pixel colors
        window = color_fusion_window(meta)
        probs = served_color_probs(meta, probs, [encoded_color_shares(b, window) for b in images])
    pred = [classes[i] for i in probs.argmax(1)]
    before, after = pred[: len(pairs)], pred[len(pairs) :]
    result["rate"] = round(float(np.mean([a == p[2] for a, p in zip(after, pairs)])), 4)
    result["changed"] = round(float(np.mean([a != b for a, b in zip(after, before)])), 4)
    return result


def behavioral_checks(client: ModelClient, name: str, samples: Sequence[Sample],
                      limit: int = BEHAVIORAL_LIMIT) -> dict:
    """Made-With-ML style behavioral tests of the served model; each reports a rate and its n.

    * ``flip_keeps_type`` (invariance): a mirrored garment is the same type.
    * ``recolor_moves_color`` (directional): a CCP garment of a hue color,
      its masked pixels' hue rotated to another hue (``recolor``), gets the
      new color from the color head (``rate``; ``changed``: the prediction
      moved at all; ``skipped``: no rotation gave the target).
    * ``center_crop_keeps_type`` (minimum functionality): the central 80 %
      of a product photo keeps its type.

    Type rates compare the prediction with the original's prediction; the
    accuracies against the label show whether both were right.
    """
    product = [s for s in samples if s.source != "ccp"]
    report: dict[str, dict] = {}
    if samples:
        report["flip_keeps_type"] = _type_consistency(client, name, _spread(samples, limit), ImageOps.mirror)
    report["recolor_moves_color"] = recolor_check(client, name, _spread(
        [s for s in samples if s.source == "ccp" and s.color in RECOLOR_TARGETS], limit))
    if product:
        report["center_crop_keeps_type"] = _type_consistency(client, name, _spread(product, limit), center_crop)
    return report


# --- the report --------------------------------------------------------------------------------


def evaluate_classifier(client: ModelClient, samples: Sequence[Sample], out_dir: Path,
                        name: str = "classifier", keras_model: Any | None = None,
                        behavioral: bool = True) -> dict:
    """Every metric of the served model on ``samples``; writes evaluation.json/.md and confusion PNGs.

    ``keras_model`` (the model behind the export) adds the pooled-feature
    baseline; it is used only if its embedding matches the served one, so
    the baseline always describes the export being evaluated.
    """
    meta = client.metadata(name)
    out = predict_samples(client, name, samples)
    if color_fusion_weight(meta.raw) > 0:  # as served: crops fuse pixel colors
        window = color_fusion_window(meta.raw)
        out["color_probs"] = served_color_probs(
            meta.raw, out["color_probs"], [None if s.box == FULL else sample_color_shares(s, window) for s in samples])
    report: dict = {"model": meta.model_version, "samples": len(samples), "heads": {}, "notes": []}
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for head in ("group", "type", "color"):
        classes = meta.classes[head]
        pred = [classes[i] for i in out[f"{head}_probs"].argmax(1)]
        true = [getattr(s, head) for s in samples]
        keep = [i for i, t in enumerate(true) if t]
        if not keep:  # e.g. product photos carry no color labels: no number beats a fake 0
            continue
        t, p = [true[i] for i in keep], [pred[i] for i in keep]
        report["heads"][head] = classification_metrics(t, p, classes)
        report["heads"][head]["accuracy_in_label_set"] = label_set_accuracy(
            out[f"{head}_probs"][keep], t, classes)
        plot_confusion(t, p, classes, out_dir / f"confusion_{head}.png", f"{head} (n={len(t)})")
    served_groups = [consistent_labels(g, meta.classes["group"], t, meta.classes["type"])[0]
                     for g, t in zip(out["group_probs"], out["type_probs"])]
    report["retrieval"] = retrieval_report(out["embedding"], samples, predicted_groups=served_groups)
    if keras_model is None:
        report["notes"].append("no pooled-feature baseline: the Keras model could not be rebuilt")
    else:
        pooled, emb = pooled_features(keras_model, samples, test_time_flip=bool(meta.raw.get("test_time_flip")))
        gap = float(np.abs(emb - out["embedding"]).max())
        if gap > 1e-3:
            report["notes"].append(f"no pooled-feature baseline: the Keras model differs from the export "
                                   f"(embedding max |diff| {gap:.2g})")
        else:
            report["retrieval_baseline"] = retrieval_report(pooled, samples, predicted_groups=served_groups)
    if behavioral:
        report["behavioral"] = behavioral_checks(client, name, samples)
    (out_dir / "evaluation.json").write_text(json.dumps(report, indent=2))
    (out_dir / "evaluation.md").write_text(markdown_report(report))
    return report


def _retrieval_table(retrieval: dict, ks: Sequence[int] = KS) -> list[str]:
    cols = [f"p@{k}" for k in ks] + [f"r@{k}" for k in ks]
    lines = ["| setting | relevance | " + " | ".join(cols) + " | queries | no relevant item |",
             "|---|---|" + "---|" * (len(cols) + 2)]
    for setting, by_relevance in retrieval.items():
        for relevance, m in by_relevance.items():
            lines.append(f"| {setting} | {relevance} | " + " | ".join(f"{m[c]:.3f}" for c in cols)
                         + f" | {m['queries']} | {m['no_relevant']} |")
    return lines


def markdown_report(report: dict) -> str:
    lines = [f"# Classifier evaluation: {report['model']}", "", f"{report['samples']} samples.", "",
             "| head | accuracy | accuracy in the data's label set | macro-F1 | n |", "|---|---|---|---|---|"]
    for head, m in report["heads"].items():
        in_set = m.get("accuracy_in_label_set")
        lines.append(f"| {head} | {m['accuracy']:.3f} | {'' if in_set is None else f'{in_set:.3f}'} "
                     f"| {m['macro_f1']:.3f} | {m['n']} |")
    lines += ["", "## Retrieval: served embedding", "",
              "Cosine nearest neighbours. p@k: share of the k nearest with the query's label; "
              "r@k: share of queries with at least one such item in the k nearest (hit rate). "
              "same_type_color only where both items have a color label (product photos have none). "
              "street_to_product_as_served: only products of the query's predicted group are ranked, "
              "as the search API does by default; a wrongly grouped query counts as a miss.", ""]
    lines += _retrieval_table(report["retrieval"])
    if "retrieval_baseline" in report:
        lines += ["", "## Retrieval baseline: pooled backbone features (before the projection)", ""]
        lines += _retrieval_table(report["retrieval_baseline"])
    if report.get("behavioral"):
        lines += ["", "## Behavioral checks", "", "| check | rate | n | details |", "|---|---|---|---|"]
        for check, m in report["behavioral"].items():
            details = ", ".join(f"{k} {v}" for k, v in m.items() if k not in ("rate", "n"))
            rate = f"{m['rate']:.3f}" if "rate" in m else "n/a"
            lines.append(f"| {check} | {rate} | {m['n']} | {details} |")
    for note in report.get("notes", []):
        lines += ["", f"Note: {note}."]
    for head, m in report["heads"].items():
        lines += ["", f"## {head} per class", "", "| class | precision | recall | f1 | support |",
                  "|---|---|---|---|---|"]
        lines += [f"| {c} | {v['precision']:.3f} | {v['recall']:.3f} | {v['f1']:.3f} | {v['support']} |"
                  for c, v in m["per_class"].items()]
    return "\n".join(lines) + "\n"


def plot_confusion(true, pred, classes, out: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    used = [c for c in classes if c in set(true) | set(pred)]
    idx = {c: i for i, c in enumerate(used)}
    m = np.zeros((len(used), len(used)), dtype=int)
    for t, p in zip(true, pred):
        m[idx[t], idx[p]] += 1
    fig, ax = plt.subplots(figsize=(1 + 0.45 * len(used), 1 + 0.45 * len(used)))
    ax.imshow(m / np.maximum(m.sum(1, keepdims=True), 1), cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(used)), used, rotation=90)
    ax.set_yticks(range(len(used)), used)
    for (i, j), v in np.ndenumerate(m):
        if v:
            ax.text(j, i, str(v), ha="center", va="center", fontsize=7)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(out, dpi=90)
    plt.close(fig)
