"""Evaluate search end to end, as the API answers: photos -> Analyzer -> garments.

Every number here comes from ``serving.analyzer.Analyzer.analyze_batch`` on
the exports in the model dir, the path ``POST /api/v1/search`` and the
indexer take, so it describes what a shopper and the catalog get:

* **Street photos** (CCP validation, or a CCP-layout ``--data`` folder):
  mAP@0.5 of the returned garments by group against the photo's boxes (one
  per worn group; ``training.evaluate_detector.coco_map``), each garment
  ranked by detection score x group score; groups outside ``EVAL_GROUPS``
  (bag, hat: the detector has no such class and CCP rarely marks them) are
  ignored. Also: the share of photos with two returned garments of one
  group overlapping at IoU > 0.5 (a duplicate), garments per photo.
* **Product photos** (clothing-small and clothing-extra validation, one
  garment each): the share answered with exactly one garment, garments per
  photo, and product -> product precision@10 of the same type: each photo's
  main garment (``app.indexing.main_garment``, as the catalog is indexed)
  queries the other photos' main garments.

Each group rule (``classifier``, ``detector``, ``joint``), the behaviour
before the garment rules (``before``: classifier groups, no duplicate
suppression, no product-photo rule) and the whole photo (no detector) run on
the same photos; model outputs are cached by image bytes
(``CachingModelClient``), so each distinct crop reaches the models once and
the variants cost only decoding and cropping. The detector alone (its own
classes, as served: score >= the Analyzer's threshold) is the reference.

``tune_layout`` picks the product-photo rule's thresholds on *train-split*
photos (CCP train and clothing-small/-extra train); the validation numbers
above are reported with the thresholds the Analyzer is given.
"""

from __future__ import annotations

import hashlib
import json
import statistics
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from tqdm import tqdm

from eyepic.exports import ModelMetadata, ModelUnavailable
from eyepic.schema import Garment
from serving.analyzer import (
    GROUP_RULES,
    PRODUCT_BOXES,
    Analysis,
    Analyzer,
    box_iou,
    garment_rank,
    layout_features,
    layout_is_single,
)
from training.data.detection import PhotoBoxes
from training.data.samples import Sample
from training.evaluate_detector import APPAREL, coco_map

EVAL_GROUPS = (*APPAREL, "shoes")  # the detector's classes: the groups CCP marks reliably
DUPLICATE_IOU = 0.5
BATCH = 16
LATENCY_PHOTOS = 20
TARGETS = {"apparel_map50": 0.55, "duplicate_share": 0.03, "product_one_share": 0.95}


class CachingModelClient:
    """A ModelClient that answers each (model, image bytes) once and remembers the output row."""

    def __init__(self, models):
        self.models = models
        self._rows: dict[tuple[str, bytes], dict[str, np.ndarray]] = {}

    def metadata(self, model_name: str) -> ModelMetadata:
        return self.models.metadata(model_name)

    def ready(self, model_name: str) -> bool:
        return self.models.ready(model_name)

    def predict(self, model_name: str, images: list[bytes]) -> dict[str, np.ndarray]:
        keys = [(model_name, hashlib.sha1(b, usedforsecurity=False).digest()) for b in images]
        todo: dict[tuple[str, bytes], bytes] = {}
        for key, image in zip(keys, images):
            if key not in self._rows:
                todo.setdefault(key, image)
        if todo:
            out = self.models.predict(model_name, list(todo.values()))
            for row, key in enumerate(todo):
                self._rows[key] = {name: value[row] for name, value in out.items()}
        return {name: np.stack([self._rows[key][name] for key in keys]) for name in self._rows[keys[0]]}


def analyze_all(analyzer: Analyzer, images: Sequence[bytes], desc: str) -> list[Analysis]:
    results: list[Analysis] = []
    for start in tqdm(range(0, len(images), BATCH), desc=desc, unit="batch", leave=False):
        results += analyzer.analyze_batch(list(images[start : start + BATCH]))
    return results


# --- metrics -----------------------------------------------------------------------------------


def garments_as_detections(garments: Sequence[Garment], classes: Sequence[str]) -> dict:
    """Returned garments in ``coco_map``'s detection format; groups outside ``classes`` are dropped."""
    kept = [g for g in garments if g.group in classes]
    return {"boxes": np.asarray([g.box for g in kept], np.float64).reshape(-1, 4),
            "scores": np.asarray([garment_rank(g) for g in kept], np.float64),
            "classes": np.asarray([list(classes).index(g.group) for g in kept], int)}


def has_duplicate(garments: Sequence[Garment], iou: float = DUPLICATE_IOU) -> bool:
    """Two garments of one group overlapping at IoU > ``iou``."""
    return any(a.group == b.group and box_iou(a.box, b.box) > iou
               for i, a in enumerate(garments) for b in garments[i + 1 :])


def street_metrics(photos: Sequence[PhotoBoxes], analyses: Sequence[Analysis],
                   classes: Sequence[str] = EVAL_GROUPS) -> dict:
    result = coco_map(photos, [garments_as_detections(a.garments, classes) for a in analyses], classes)
    return {
        "apparel_map50": round(result["apparel_map50"], 4),
        "map50": round(result["map50"], 4),
        "ap50": {name: None if m["ap50"] is None else round(m["ap50"], 4) for name, m in result["per_class"].items()},
        "duplicate_share": round(float(np.mean([has_duplicate(a.garments) for a in analyses])), 4) if analyses else 0.0,
        "garments_per_photo": round(float(np.mean([len(a.garments) for a in analyses])), 3) if analyses else 0.0,
    }


def product_metrics(samples: Sequence[Sample], analyses: Sequence[Analysis], k: int = 10) -> dict:
    from app.indexing import main_garment
    from training.metrics import retrieval_metrics

    counts = [len(a.garments) for a in analyses]
    out = {"product_one_share": round(float(np.mean([c == 1 for c in counts])), 4) if counts else 0.0,
           "garments_per_product_photo": round(float(np.mean(counts)), 3) if counts else 0.0}
    if len(samples) > 1:
        vectors = np.stack([main_garment(a.garments).embedding for a in analyses]).astype(np.float32)
        vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
        m = retrieval_metrics(vectors, [s.type for s in samples], ks=(k,))
        out[f"product_type_p@{k}"] = None if m is None else m[f"p@{k}"]
    return out


def detector_alone(analyzer: Analyzer, photos: Sequence[PhotoBoxes], images: Sequence[bytes],
                   classes: Sequence[str] = EVAL_GROUPS) -> dict | None:
    """mAP@0.5 of the detector's own boxes and classes at the Analyzer's score threshold; None without one."""
    dets, any_found = [], False
    for image in tqdm(images, desc="detector alone", unit="photo", leave=False):
        regions = [r for r in analyzer.detect(image) if r.label in classes]
        any_found = any_found or bool(regions)
        dets.append({"boxes": np.asarray([r.box for r in regions], np.float64).reshape(-1, 4),
                     "scores": np.asarray([r.score for r in regions], np.float64),
                     "classes": np.asarray([list(classes).index(r.label) for r in regions], int)})
    if not any_found:
        return None
    result = coco_map(photos, dets, classes)
    return {"apparel_map50": round(result["apparel_map50"], 4),
            "ap50": {n: None if m["ap50"] is None else round(m["ap50"], 4) for n, m in result["per_class"].items()}}


def search_latency(analyzer: Analyzer, images: Sequence[bytes], n: int = LATENCY_PHOTOS) -> dict:
    """Milliseconds of ``analyze`` per photo, one photo at a time (as a search request), models warm."""
    picks = list(images[:n])
    if not picks:
        return {}
    analyzer.analyze(picks[0])  # warm
    times = []
    for image in picks:
        started = time.perf_counter()
        analyzer.analyze(image)
        times.append(1000 * (time.perf_counter() - started))
    return {"median_ms": round(statistics.median(times), 1), "mean_ms": round(float(np.mean(times)), 1),
            "photos": len(times)}


# --- the evaluation ----------------------------------------------------------------------------


def variants(base: Analyzer) -> dict[str, Analyzer]:
    """The answers compared: before the garment rules, each group rule, and the whole photo."""
    out = {"before": base.with_options(group_rule="classifier", duplicate_iou=None, product_cover=None,
                                       cross_group_iou=None, product_whole_confidence=None)}
    for rule in GROUP_RULES:
        out[rule] = base.with_options(group_rule=rule)
    if base.product_one_group:
        out[f"{base.group_rule}, without the one-group product rule"] = base.with_options(product_one_group=False)
    if base.product_whole_confidence is not None:
        out[f"{base.group_rule}, without the whole-photo confidence rule"] = base.with_options(
            product_whole_confidence=None)
    other = next(b for b in PRODUCT_BOXES if b != base.product_box)
    out[f"{base.group_rule}, product garment = {other}"] = base.with_options(product_box=other)
    out["whole photo"] = base.with_options(detector=None)
    return out


def evaluate_search(models, street: Sequence[PhotoBoxes], products: Sequence[Sample], out_dir: Path,
                    base: Analyzer | None = None, latency: bool = True) -> dict:
    """Every variant of ``variants`` on ``street`` and ``products``; writes evaluation.json/.md under ``out_dir``.

    ``base`` (its settings: rule, thresholds, model names) is the served analyzer; its
    ``models`` are replaced by a caching wrapper of ``models``.
    """
    base = (base or Analyzer(models)).with_options()
    base.models = CachingModelClient(models)
    street_images = [Path(p.path).read_bytes() for p in street]
    product_images = [Path(s.path).read_bytes() for s in products]
    has_detector = bool(base.detector) and _available(models, base.detector)
    report: dict = {
        "classifier": models.metadata(base.classifier).model_version,
        "detector": models.metadata(base.detector).model_version if has_detector else None,
        "street_photos": len(street), "product_photos": len(products),
        "served": {"group_rule": base.group_rule, "duplicate_iou": base.duplicate_iou,
                   "cross_group_iou": base.cross_group_iou,
                   "product_cover": base.product_cover, "product_dominance": base.product_dominance,
                   "product_overlap": base.product_overlap, "product_box": base.product_box,
                   "product_one_group": base.product_one_group,
                   "product_whole_confidence": base.product_whole_confidence,
                   "min_detection_score": base.min_detection_score},
        "groups": list(EVAL_GROUPS), "variants": {}, "notes": [],
    }
    chosen = variants(base) if has_detector else {"whole photo": base.with_options(detector=None)}
    if not has_detector:
        report["notes"].append("no detector export: every photo is one whole-photo garment, the group rules "
                               "and the product-photo rule do not apply")
    for name, analyzer in chosen.items():
        started = time.time()
        row = {**street_metrics(street, analyze_all(analyzer, street_images, f"{name}: street")),
               **product_metrics(products, analyze_all(analyzer, product_images, f"{name}: products"))}
        row["seconds"] = round(time.time() - started, 1)
        report["variants"][name] = row
        print(f"  {name}: {_row_line(row)}", flush=True)
    report["default"] = base.group_rule if has_detector else "whole photo"
    if has_detector:
        report["detector_alone"] = detector_alone(base, street, street_images)
        meta = models.metadata(base.detector).raw.get("metrics", {})
        if "apparel_map50" in meta:
            report["detector_reported_apparel_map50"] = meta["apparel_map50"]
    if latency:
        served = base.with_options()
        served.models = models  # no cache: what a request costs
        report["latency"] = search_latency(served, street_images)
    report["targets"] = targets_met(report)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "evaluation.json").write_text(json.dumps(report, indent=2))
    (out_dir / "evaluation.md").write_text(markdown_report(report))
    return report


def targets_met(report: dict) -> dict:
    """The issue's targets, on the served variant (None where not measurable)."""
    row = report["variants"].get(report["default"], {})
    whole = report["variants"].get("whole photo", {})
    p10, whole_p10 = row.get("product_type_p@10"), whole.get("product_type_p@10")
    return {
        "apparel_map50>=0.55": row.get("apparel_map50", 0) >= TARGETS["apparel_map50"],
        "duplicates<=3%": row.get("duplicate_share", 1) <= TARGETS["duplicate_share"],
        "one_garment>=95%": row.get("product_one_share", 0) >= TARGETS["product_one_share"],
        "p@10>=whole_photo": None if p10 is None or whole_p10 is None else p10 >= whole_p10,
    }


def _available(models, name: str) -> bool:
    try:
        models.metadata(name)
    except ModelUnavailable:
        return False
    return True


def _row_line(row: dict) -> str:
    p10 = row.get("product_type_p@10")
    return (f"apparel mAP@0.5 {row['apparel_map50']:.3f}, duplicates {row['duplicate_share']:.1%}, "
            f"one garment {row['product_one_share']:.1%} of product photos, "
            f"product p@10 {'-' if p10 is None else f'{p10:.3f}'}")


def summary_line(report: dict) -> str:
    return f"{report['default']} (served): {_row_line(report['variants'][report['default']])}"


def markdown_report(report: dict) -> str:
    groups = report["groups"]
    lines = [
        f"# Search evaluation, end to end: {report['classifier']} + {report['detector'] or 'no detector'}",
        "",
        f"{report['street_photos']} street photos (mAP@0.5 of returned garments by group, ranked by detection x "
        f"group score; duplicates: two garments of one group at IoU > {DUPLICATE_IOU}), "
        f"{report['product_photos']} single-garment product photos (share answered with one garment; "
        "product -> product precision@10 of the same type, main garment against the others').",
        "",
        f"Served: `{json.dumps(report['served'])}`; the **{report['default']}** row is what the API answers.",
        "",
        "| variant | apparel mAP@0.5 | " + " | ".join(f"AP@0.5 {g}" for g in groups)
        + " | duplicates | garments / street photo | one garment (product) | garments / product photo "
          "| product p@10 |",
        "|---|" + "---:|" * (len(groups) + 6),
    ]
    for name, row in report["variants"].items():
        label = f"**{name}**" if name == report["default"] else name
        aps = " | ".join("-" if row["ap50"].get(g) is None else f"{row['ap50'][g]:.3f}" for g in groups)
        p10 = row.get("product_type_p@10")
        lines.append(f"| {label} | {row['apparel_map50']:.3f} | {aps} | {row['duplicate_share']:.1%} "
                     f"| {row['garments_per_photo']:.2f} | {row['product_one_share']:.1%} "
                     f"| {row['garments_per_product_photo']:.2f} | {'-' if p10 is None else f'{p10:.3f}'} |")
    alone = report.get("detector_alone")
    if alone:
        aps = " | ".join("-" if alone["ap50"].get(g) is None else f"{alone['ap50'][g]:.3f}" for g in groups)
        lines.append(f"| detector alone (its classes, as served) | {alone['apparel_map50']:.3f} | {aps} "
                     "| | | | | |")
    if "detector_reported_apparel_map50" in report:
        lines += ["", f"The detector's own evaluation (score >= 0.001, 100 boxes): apparel mAP@0.5 "
                      f"{report['detector_reported_apparel_map50']:.3f}."]
    lines += ["", "`before`: classifier groups, no duplicate suppression, no product-photo rule (the Analyzer "
                  "before the garment rules). `whole photo`: no detector.", ""]
    if report.get("latency"):
        lat = report["latency"]
        lines += [f"Search latency through the Analyzer (one photo per call, models warm): median "
                  f"{lat['median_ms']} ms, mean {lat['mean_ms']} ms over {lat['photos']} street photos.", ""]
    lines += ["## Targets (served variant)", "", "| target | met |", "|---|---|"]
    lines += [f"| {k} | {'-' if v is None else ('yes' if v else 'no')} |" for k, v in report["targets"].items()]
    for note in report["notes"]:
        lines += ["", f"Note: {note}."]
    return "\n".join(lines) + "\n"


# --- choosing the product-photo rule on train photos -------------------------------------------


def layout_table(analyzer: Analyzer, paths: Sequence[Path]) -> list[dict]:
    """``layout_features`` of the detector's boxes on each photo."""
    return [layout_features([r.box for r in analyzer.detect(Path(p).read_bytes())])
            for p in tqdm(paths, desc="detecting", unit="photo", leave=False)]


def tune_layout(street_f: Sequence[dict], product_f: Sequence[dict], max_street_merged: float = 0.005,
                min_boxes: int = 2) -> dict:
    """Thresholds of ``single_garment_layout`` chosen on (train) photos' ``layout_table``s.

    Picks (cover, dominance, overlap) giving the most product photos one garment
    (at most one box, or merged) while merging at most ``max_street_merged`` of
    the street photos (a merged outfit loses garments; with ``min_boxes`` 1, a
    street photo's single box becoming the whole photo counts too), ties to the
    more cautious (higher) thresholds.
    """
    best = None
    for t in (0.0, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5):
        for c in np.round(np.arange(0.25, 0.951, 0.025), 3):
            for d in np.round(np.arange(0.5, 1.051, 0.05), 3):
                street_merged = float(np.mean([layout_is_single(f, c, d, t, min_boxes) for f in street_f]))
                if street_merged > max_street_merged:
                    continue
                product_one = float(np.mean([f["boxes"] <= 1 or layout_is_single(f, c, d, t, min_boxes)
                                             for f in product_f]))
                key = (product_one, c + d + t)
                if best is None or key > best[0]:
                    best = (key, float(c), float(d), float(t), street_merged, product_one)
    _, c, d, t, street_merged, product_one = best
    return {"min_boxes": min_boxes, "product_cover": c, "product_dominance": d, "product_overlap": t,
            "max_street_merged": max_street_merged, "street_merged": round(street_merged, 4),
            "product_one_or_merged": round(product_one, 4), "street_photos": len(street_f),
            "product_photos": len(product_f),
            "product_multi_box": round(float(np.mean([f["boxes"] >= 2 for f in product_f])), 4),
            "street_multi_box": round(float(np.mean([f["boxes"] >= 2 for f in street_f])), 4)}


# --- data ---------------------------------------------------------------------------------------


def product_photos(data_dir: Path, split: str = "validation") -> list[Sample]:
    """clothing-small and (where present) clothing-extra photos of ``split``: one garment each."""
    from training.data.clothing_small import read_clothing_extra, read_clothing_small

    data_dir = Path(data_dir)
    samples = read_clothing_small(data_dir / "clothing-small", splits=(split,))
    if (data_dir / "clothing-extra").is_dir():
        samples += read_clothing_extra(data_dir / "clothing-extra", splits=(split,))
    return samples


def street_photos(settings, data: Path | None = None, split: str = "validation") -> list[PhotoBoxes]:
    """CCP photos with their boxes of ``EVAL_GROUPS``: a CCP-layout folder's, or the data dir's ``split``."""
    from training.data.detection import load_detection_photos, read_detection_folder

    if data is not None:
        return read_detection_folder(Path(data), EVAL_GROUPS)
    return [p for p in load_detection_photos(settings.data_dir, settings.cache_dir, EVAL_GROUPS) if p.split == split]


def evaluate_search_command(settings, args) -> int:
    """``eyepic evaluate search [--data DIR] [--json]``: report under var/reports/search/."""
    from eyepic.exports import latest_version_dir
    from serving.model_client import InProcessModelClient

    classifier_dir = latest_version_dir(settings.model_dir, settings.classifier_name)  # fail fast
    try:
        detector_dir = latest_version_dir(settings.model_dir, settings.detector_name)
        detector = f"{detector_dir.parent.name}-{detector_dir.name}"
    except ModelUnavailable:
        detector = "no-detector"
    data = Path(args.data) if getattr(args, "data", None) else None
    street = street_photos(settings, data)
    products = product_photos(settings.data_dir)
    if not street:
        raise ValueError(f"no annotated street photos found in {data or 'the validation split'}")
    name = f"{classifier_dir.parent.name}-{classifier_dir.name}_{detector}"
    out_dir = settings.reports_dir / "search" / (f"{name}_data-{data.resolve().name}" if data else name)
    models = InProcessModelClient(settings.model_dir)
    base = Analyzer.from_settings(settings, models=models)
    report = evaluate_search(models, street, products, out_dir, base)
    print(summary_line(report))
    for note in report["notes"]:
        print(f"note: {note}")
    print(f"report: {out_dir / 'evaluation.md'}")
    if args.json:
        print(json.dumps(report))
    return 0


def tune_layout_command(settings, limit: int = 800) -> dict:
    """Thresholds of the product-photo rule on train photos (CCP train, clothing-small/-extra train)."""
    from serving.model_client import InProcessModelClient

    models = InProcessModelClient(settings.model_dir)
    analyzer = Analyzer.from_settings(settings, models=models)
    street = street_photos(settings, split="train")
    products = product_photos(settings.data_dir, split="train")
    step = max(1, len(products) // limit)  # an even spread over the classes' folders
    street_f = layout_table(analyzer, [p.path for p in street])
    product_f = layout_table(analyzer, [s.path for s in products[::step]])
    # Two or more boxes: the layout decides in both product_box modes (a single box is the
    # whole photo under "whole", itself under "union": one garment either way).
    return tune_layout(street_f, product_f, min_boxes=2)


if __name__ == "__main__":  # python -m app.evaluate_search: tune the product-photo rule on train photos
    from eyepic.settings import Settings

    print(json.dumps(tune_layout_command(Settings.from_env()), indent=2))
