"""Behavioral checks of a served classifier (Made-With-ML style): invariance and direction.

* Invariance: a mirrored photo, and a product photo's central crop, keep the
  predicted type.
* Direction: after a hue rotation of the garment's masked pixels, the color
  head names the new color.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps
from tqdm import tqdm

from eyepic import taxonomy
from eyepic.colors import PALETTE, dominant_color, srgb_to_lab
from eyepic.exports import ModelClient
from eyepic.imaging import crop_encoded, encode_png
from eyepic.readout import color_fusion_weight, color_fusion_window, served_color_probs
from training.data.samples import Sample
from training.predictions import encoded_color_shares, predict_encoded, sample_image

# Colors a hue rotation can reach and leave; the targets are far hues, tried in order.
RECOLOR_TARGETS: dict[str, tuple[str, ...]] = {
    "red": ("blue", "green"), "pink": ("blue", "green"), "yellow": ("blue", "green"),
    "green": ("red", "blue"), "blue": ("red", "green"),
}
CENTER_CROP = 0.8
BEHAVIORAL_LIMIT = 200  # items per check: enough for a rate, cheap on 2 cores


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
