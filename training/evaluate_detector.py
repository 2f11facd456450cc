"""Evaluate the garment detector: COCO-style mAP, PR curves, a prediction grid.

``coco_map`` follows COCO's rules (greedy matching by descending score, each
ground-truth box matched once, precision made monotone, 101-point recall
interpolation, IoU thresholds 0.50:0.05:0.95), written here in numpy because
KerasCV's COCO metrics need pycocotools and ragged inputs and we want the
per-class curves too. Boxes are normalised x0, y0, x1, y1; IoU does not
change under the per-axis scaling from pixels, so no image size is needed.

``evaluate_export`` scores what is *served*: the exported SavedModel's
``detect_all`` signature (same graph as ``serving_default``, threshold 0.001
and 100 detections so that the PR curve is complete), on the photos given.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from eyepic.exports import read_metadata
from training.data.detection import PhotoBoxes

IOU_THRESHOLDS = np.round(np.arange(0.5, 0.96, 0.05), 2)
RECALL_POINTS = np.linspace(0.0, 1.0, 101)
APPAREL = ("onepiece", "outer", "top", "bottom")


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU matrix [len(a), len(b)] of xyxy boxes."""
    a = np.asarray(a, np.float64).reshape(-1, 4)
    b = np.asarray(b, np.float64).reshape(-1, 4)
    x0 = np.maximum(a[:, None, 0], b[None, :, 0])
    y0 = np.maximum(a[:, None, 1], b[None, :, 1])
    x1 = np.minimum(a[:, None, 2], b[None, :, 2])
    y1 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-12)


def _match(gts: Sequence[np.ndarray], dets: Sequence[tuple[np.ndarray, np.ndarray]], threshold: float):
    """(scores, is_true_positive) over all photos for one class and IoU threshold."""
    scores, hits = [], []
    for gt, (boxes, conf) in zip(gts, dets):
        order = np.argsort(-conf, kind="stable")
        used = np.zeros(len(gt), bool)
        ious = box_iou(boxes[order], gt) if len(gt) and len(order) else np.zeros((len(order), len(gt)))
        for row, i in enumerate(order):
            hit = False
            if len(gt):
                cand = np.where(~used, ious[row], -1.0)
                j = int(np.argmax(cand))
                if cand[j] >= threshold:
                    used[j], hit = True, True
            scores.append(float(conf[i]))
            hits.append(hit)
    return np.asarray(scores), np.asarray(hits, bool)


def precision_recall(scores: np.ndarray, hits: np.ndarray, n_gt: int) -> tuple[np.ndarray, np.ndarray]:
    order = np.argsort(-scores, kind="stable")
    tp = np.cumsum(hits[order])
    fp = np.cumsum(~hits[order])
    recall = tp / max(n_gt, 1)
    precision = tp / np.maximum(tp + fp, 1)
    return precision, recall


def average_precision(precision: np.ndarray, recall: np.ndarray) -> float:
    """COCO's 101-point interpolated AP of one PR curve."""
    if len(precision) == 0:
        return 0.0
    envelope = np.maximum.accumulate(precision[::-1])[::-1]
    idx = np.searchsorted(recall, RECALL_POINTS, side="left")
    values = np.where(idx < len(envelope), envelope[np.minimum(idx, len(envelope) - 1)], 0.0)
    return float(values.mean())


def coco_map(photos: Sequence[PhotoBoxes], detections: Sequence[dict], classes: Sequence[str],
             curves: bool = False) -> dict:
    """Per-class AP@0.5 and AP@0.5:0.95 plus their means (classes with no ground truth left out).

    ``detections[i]`` holds ``boxes`` [N, 4], ``scores`` [N], ``classes`` [N] for ``photos[i]``.
    ``map50``/``map`` average every detector class; ``apparel_map50``/``apparel_map`` the four
    apparel groups the product target is set on.
    """
    per_class: dict[str, dict] = {}
    pr_curves: dict[str, dict] = {}
    for c, name in enumerate(classes):
        gts = [np.asarray([b for b, k in zip(p.boxes, p.classes) if k == c], np.float64).reshape(-1, 4)
               for p in photos]
        dets = []
        for d in detections:
            mine = np.asarray(d["classes"]) == c
            dets.append((np.asarray(d["boxes"], np.float64).reshape(-1, 4)[mine], np.asarray(d["scores"])[mine]))
        n_gt = int(sum(len(g) for g in gts))
        if n_gt == 0:
            per_class[name] = {"ap50": None, "ap": None, "n_gt": 0}
            continue
        aps = []
        for t in IOU_THRESHOLDS:
            scores, hits = _match(gts, dets, float(t))
            precision, recall = precision_recall(scores, hits, n_gt)
            aps.append(average_precision(precision, recall))
            if curves and t == 0.5:
                pr_curves[name] = {"precision": precision.tolist(), "recall": recall.tolist()}
        per_class[name] = {"ap50": aps[0], "ap75": aps[5], "ap": float(np.mean(aps)), "n_gt": n_gt}

    def mean(key: str, names: Sequence[str]) -> float:
        values = [per_class[n][key] for n in names if n in per_class and per_class[n][key] is not None]
        return float(np.mean(values)) if values else 0.0

    apparel = [n for n in classes if n in APPAREL]
    result = {
        "map50": mean("ap50", classes),
        "map": mean("ap", classes),
        "apparel_map50": mean("ap50", apparel),
        "apparel_map": mean("ap", apparel),
        "per_class": per_class,
        "photos": len(photos),
    }
    if curves:
        result["pr_curves"] = pr_curves
    return result


def predict_export(version_dir: Path, photos: Sequence[PhotoBoxes], signature: str = "detect_all") -> list[dict]:
    """Detections of an exported detector, one photo per call (as served)."""
    import tensorflow as tf

    fn = tf.saved_model.load(str(version_dir)).signatures[signature]
    out = []
    for p in photos:
        r = fn(images=tf.constant([Path(p.path).read_bytes()]))
        n = int(r["num_detections"][0])
        out.append({"boxes": r["boxes"][0, :n].numpy(), "scores": r["scores"][0, :n].numpy(),
                    "classes": r["classes"][0, :n].numpy().astype(int)})
    return out


def evaluate_export(version_dir: Path, photos: Sequence[PhotoBoxes], out_dir: Path) -> dict:
    """Score the export on ``photos``; writes evaluation.json/.md, pr_curves.png, predictions.png."""
    export = read_metadata(version_dir)  # published or still staged
    meta = export.raw
    classes = meta["classes"]["group"]
    started = time.time()
    dets = predict_export(version_dir, photos)
    seconds = time.time() - started
    result = coco_map(photos, dets, classes, curves=True)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    plot_pr_curves(result["pr_curves"], out_dir / "pr_curves.png")
    draw_prediction_grid(photos, dets, classes, meta.get("score_threshold", 0.25), out_dir / "predictions.png")
    report = {
        "model": f"{export.name}/{export.version}",
        "classes": classes,
        **{k: v for k, v in result.items() if k != "pr_curves"},
        "seconds_per_photo": round(seconds / max(len(photos), 1), 4),
    }
    (out_dir / "evaluation.json").write_text(json.dumps(report, indent=2))
    (out_dir / "evaluation.md").write_text(format_markdown(report))
    return report


def format_markdown(report: dict) -> str:
    lines = [
        f"# Detector evaluation: {report['model']}",
        "",
        f"{report['photos']} photos. COCO-style AP (101-point, IoU 0.50:0.05:0.95), per-class NMS.",
        "",
        "| class | boxes | AP@0.5 | AP@0.75 | AP@0.5:0.95 |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for name, m in report["per_class"].items():
        if m["ap50"] is None:
            lines.append(f"| {name} | 0 | - | - | - |")
        else:
            lines.append(f"| {name} | {m['n_gt']} | {m['ap50']:.3f} | {m['ap75']:.3f} | {m['ap']:.3f} |")
    lines += [
        f"| **all classes** | | **{report['map50']:.3f}** | | **{report['map']:.3f}** |",
        f"| **apparel (4 groups)** | | **{report['apparel_map50']:.3f}** | | **{report['apparel_map']:.3f}** |",
        "",
        "![PR curves](pr_curves.png)",
        "",
        "![predictions](predictions.png)",
        "",
    ]
    return "\n".join(lines)


def plot_pr_curves(curves: dict[str, dict], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 5))
    for name, c in curves.items():
        p = np.maximum.accumulate(np.asarray(c["precision"])[::-1])[::-1] if c["precision"] else []
        ax.plot(c["recall"], p, label=name)
    ax.set_xlabel("recall")
    ax.set_ylabel("precision (interpolated)")
    ax.set_title("precision-recall at IoU 0.5")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out, dpi=90)
    plt.close(fig)


COLORS = ["#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#46f0f0", "#f032e6"]


def draw_prediction_grid(photos: Sequence[PhotoBoxes], dets: Sequence[dict], classes: Sequence[str],
                         threshold: float, out: Path, n: int = 12, cell: int = 260) -> None:
    """Predictions (solid, with score) over ground truth (thin white) on ``n`` photos."""
    from PIL import Image, ImageDraw

    picks = np.linspace(0, len(photos) - 1, min(n, len(photos))).astype(int) if photos else []
    cols = 4
    rows = max(1, -(-len(picks) // cols))
    grid = Image.new("RGB", (cols * cell, rows * int(cell * 1.5)), "white")
    for k, i in enumerate(picks):
        with Image.open(photos[i].path) as im:
            image = im.convert("RGB")
        image.thumbnail((cell, int(cell * 1.5)))
        w, h = image.size
        draw = ImageDraw.Draw(image)
        for box in photos[i].boxes:
            draw.rectangle([box[0] * w, box[1] * h, box[2] * w, box[3] * h], outline="white", width=1)
        d = dets[i]
        for box, score, c in zip(d["boxes"], d["scores"], d["classes"]):
            if score < threshold:
                continue
            color = COLORS[int(c) % len(COLORS)]
            draw.rectangle([box[0] * w, box[1] * h, box[2] * w, box[3] * h], outline=color, width=3)
            draw.text((box[0] * w + 3, box[1] * h + 2), f"{classes[int(c)]} {score:.2f}", fill=color)
        grid.paste(image, ((k % cols) * cell, (k // cols) * int(cell * 1.5)))
    grid.save(out)
