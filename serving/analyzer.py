"""Analyzer: image bytes -> garments, for both the indexer and the API.

Detect (boxes) -> crop -> classify + embed (one batched call) -> Garment.
It reaches models only through a ModelClient, so the in-process runner and
TF Serving are the same code path here. Without a detector export (or when
it finds nothing) the whole photo stands in for one garment, and the result
says so (``detected=False``).

Garments as the shopper sees them, one per worn garment:

* The group of a detected garment is decided by ``group_rule`` from both
  models (``decide_labels``): ``classifier`` (the crop's classification
  alone), ``detector`` (the detector's class decides the group when it names
  one; the type is the likeliest classifier type inside it) or ``joint``
  (the classifier's group evidence times the detector's, a product of
  experts). The type always lies inside the group.
* After the final labels, same-group garments overlapping by more than
  ``duplicate_iou`` are one garment (``suppress_duplicates``): the detector
  suppresses duplicates per *its* class, so two boxes of different detector
  classes on one dress used to come back as two dresses.
* A photo whose detections look like one garment filling the frame (a
  product photo, ``single_garment_layout``), are all of one detector class
  (``one_group``: a pair of shoes, a dress boxed in halves), or where the
  detector found a single garment, is one garment: the whole photo (``product_box`` "whole",
  the default: the classifier learned product photos whole and the catalog
  is indexed the same way; ``detected`` stays True) or the union of the
  boxes ("union"). It is decided from the boxes alone before the classifier
  call, so every photo still costs one detector call and one shared
  classifier call.

``eyepic evaluate search`` (app/evaluate_search.py) measures each choice
end to end; the defaults here and in ``eyepic.settings`` are its winners.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from eyepic.colors import color_votes
from eyepic.exports import ModelClient, ModelUnavailable
from eyepic.imaging import color_shares, crop_encoded, load_image, model_bytes
from eyepic.readout import (
    color_fusion_weight,
    color_fusion_window,
    consistent_labels,
    group_evidence,
    groups_of,
    served_color_probs,
    type_inside,
)
from eyepic.readout import top_label as _top
from eyepic.schema import Box, Garment
from eyepic.settings import Settings

WHOLE_IMAGE: Box = (0.0, 0.0, 1.0, 1.0)
GROUP_RULES = ("classifier", "detector", "joint")
# eyepic evaluate search, CCP validation, apparel mAP@0.5 of returned garments at the
# served score threshold 0.25: detector 0.402, joint 0.397, classifier 0.348 (before
# the rules: 0.350); at thresholds 0.15 / 0.10 the detector rule leads by 0.04.
DEFAULT_GROUP_RULE = "detector"
DEFAULT_DUPLICATE_IOU = 0.5
# Garments of any groups overlapping more than this are one garment (None: never).
# Off: at 0.8 (0.74 % of CCP train photos hold two real garments of different groups
# overlapping as much) it cost apparel mAP@0.5 0.402 -> 0.378 under the detector rule.
DEFAULT_CROSS_GROUP_IOU: float | None = None
# single_garment_layout: boxes side by side or overlapping (every pair shares at
# least OVERLAP of the shorter one's height: no garment worn below another) whose
# union fills at least COVER of the photo, or of which one holds DOMINANCE of their
# union (above 1: never). Chosen on train-split photos with the released detector
# (python -m app.evaluate_search, detector release 3: 0.29 % of CCP train photos
# merged, 93.6 % of clothing-small/-extra train photos one box or merged; release 1
# split fewer product photos: 96.6 % at cover 0.375 with the dominance branch off).
DEFAULT_PRODUCT_COVER = 0.4
DEFAULT_PRODUCT_DOMINANCE = 1.0
DEFAULT_PRODUCT_OVERLAP = 0.05
# Several boxes all of one detector class are one garment seen in parts (a flat-laid dress as
# two halves, a pair of shoes as two): a person wears one garment of a group at a time. On
# train photos (detector release 3) it made 7 more of the 982 product photos one garment
# (93.6 -> 94.3 %) and merged none of the 668 CCP photos with two or more boxes.
DEFAULT_PRODUCT_ONE_GROUP = True
# What the one garment of a product photo is: the union of its boxes, or the whole
# photo (then also for a photo where the detector found a single garment). "whole":
# product -> product precision@10 0.621 against 0.491 for "union" (whole photo, no
# detector: 0.633), street mAP 0.397 against 0.400 (eyepic evaluate search).
PRODUCT_BOXES = ("union", "whole")
DEFAULT_PRODUCT_BOX = "whole"
# A photo answered with two garments is one product when the classifier, shown the whole
# photo, is at least this sure of its group: a flat-lay the detector boxed twice (a fold,
# the backdrop) looks like one garment to a classifier trained on product photos, a street
# photo of two garments does not. Chosen on train photos (detector release 3; the whole-photo
# confidence of 680 CCP and 700 product photos): at 0.99 no CCP photo merged and product
# photos answered with one garment went 94.3 -> 95.6 %; at 0.95, 0.9 % of CCP photos merged
# (docs/experiments/whole_photo_rule.py).
# Only two-garment photos pay the extra classifier call (11 % of CCP train photos). On
# validation, measured once after: product photos one garment 94.0 -> 94.9 %, product ->
# product p@10 0.609 -> 0.616, street photos unchanged (eyepic evaluate search).
DEFAULT_PRODUCT_WHOLE_CONFIDENCE: float | None = 0.99


@dataclasses.dataclass(frozen=True)
class Region:
    """A part of a photo to describe: its box, detection score and the detector's class (if any)."""

    box: Box
    score: float = 1.0
    label: str | None = None


@dataclasses.dataclass
class Analysis:
    garments: list[Garment]
    width: int
    height: int
    detector_used: bool


class Analyzer:
    def __init__(
        self,
        models: ModelClient,
        classifier: str = "classifier",
        detector: str | None = "detector",
        min_detection_score: float = 0.25,
        crop_margin: float = 0.05,
        max_image_pixels: int = 40_000_000,
        group_rule: str = DEFAULT_GROUP_RULE,
        duplicate_iou: float | None = DEFAULT_DUPLICATE_IOU,
        product_cover: float | None = DEFAULT_PRODUCT_COVER,
        product_dominance: float = DEFAULT_PRODUCT_DOMINANCE,
        product_box: str = DEFAULT_PRODUCT_BOX,
        product_overlap: float = DEFAULT_PRODUCT_OVERLAP,
        cross_group_iou: float | None = DEFAULT_CROSS_GROUP_IOU,
        product_one_group: bool = DEFAULT_PRODUCT_ONE_GROUP,
        product_whole_confidence: float | None = DEFAULT_PRODUCT_WHOLE_CONFIDENCE,
    ):
        """``group_rule``: see ``decide_labels``. ``duplicate_iou``: same-group garments
        overlapping more are one (None: keep all). ``product_cover``, ``product_dominance``
        and ``product_overlap``: see ``single_garment_layout`` (cover None: never merge).
        ``product_box``: a product photo's one garment is the ``union`` of its boxes, or
        the ``whole`` photo, as the classifier learned product photos and the catalog is
        indexed (then a photo with a single detection counts as a product photo too).
        ``product_one_group``: boxes that are all of one detector class are one garment too.
        ``product_whole_confidence``: two garments are one, the whole photo, when the classifier
        names the whole photo's group with at least this probability (None: never)."""
        if group_rule not in GROUP_RULES:
            raise ValueError(f"group rule must be one of {', '.join(GROUP_RULES)}, not {group_rule!r}")
        if product_box not in PRODUCT_BOXES:
            raise ValueError(f"product box must be one of {', '.join(PRODUCT_BOXES)}, not {product_box!r}")
        self.models = models
        self.classifier = classifier
        self.detector = detector
        self.min_detection_score = min_detection_score
        self.crop_margin = crop_margin
        self.max_image_pixels = max_image_pixels
        self.group_rule = group_rule
        self.duplicate_iou = duplicate_iou
        self.product_cover = product_cover
        self.product_dominance = product_dominance
        self.product_box = product_box
        self.product_overlap = product_overlap
        self.cross_group_iou = cross_group_iou
        self.product_one_group = product_one_group
        self.product_whole_confidence = product_whole_confidence

    @classmethod
    def from_settings(cls, settings: Settings, models: ModelClient | None = None) -> Analyzer:
        from serving.model_client import model_client_from_settings

        return cls(
            models if models is not None else model_client_from_settings(settings),
            classifier=settings.classifier_name,
            detector=settings.detector_name,
            min_detection_score=settings.min_garment_score,
            max_image_pixels=settings.max_image_pixels,
            group_rule=settings.group_rule,
            duplicate_iou=settings.duplicate_iou or None,
            product_cover=settings.product_cover or None,
            product_dominance=settings.product_dominance,
            product_box=settings.product_box,
            product_overlap=settings.product_overlap,
            cross_group_iou=settings.cross_group_iou or None,
            product_one_group=settings.product_one_group,
            product_whole_confidence=settings.product_whole_confidence or None,
        )

    def with_options(self, **options) -> Analyzer:
        """The same analyzer (same model client) with other garment rules, e.g. ``group_rule``."""
        current = dict(classifier=self.classifier, detector=self.detector,
                       min_detection_score=self.min_detection_score, crop_margin=self.crop_margin,
                       max_image_pixels=self.max_image_pixels, group_rule=self.group_rule,
                       duplicate_iou=self.duplicate_iou, product_cover=self.product_cover,
                       product_dominance=self.product_dominance, product_box=self.product_box,
                       product_overlap=self.product_overlap, cross_group_iou=self.cross_group_iou,
                       product_one_group=self.product_one_group,
                       product_whole_confidence=self.product_whole_confidence)
        return Analyzer(self.models, **{**current, **options})

    @property
    def model_version(self) -> str:
        return self.models.metadata(self.classifier).model_version

    def ready(self) -> bool:
        """Can the classifier answer? The first call also loads the pixel color table
        (about 0.1 s), so a readiness probe warms both up."""
        color_votes(np.zeros((1, 3), np.uint8))
        return self.models.ready(self.classifier)

    def analyze(self, data: bytes, box: Box | None = None) -> Analysis:
        """All garments in the photo, or just the one in ``box`` when given.

        Raises eyepic.imaging.ImageError for bytes that are not an image and
        ModelUnavailable when no classifier can answer.
        """
        return self.analyze_batch([data], [box])[0]

    def analyze_batch(self, images: list[bytes], boxes: list[Box | None] | None = None) -> list[Analysis]:
        """``analyze`` for several photos with one classifier call for all their crops."""
        boxes = boxes or [None] * len(images)
        plans = []
        crops: list[bytes] = []
        for data, box in zip(images, boxes):
            image = load_image(data, max_pixels=self.max_image_pixels)
            detector_used = False
            whole = model_bytes(data, image) if box in (None, WHOLE_IMAGE) else None
            if box is not None:
                found = [Region(box)]
            else:
                found = self.regions(self.detect(whole))
                detector_used = bool(found)
                found = found or [Region(WHOLE_IMAGE)]
            plans.append((image, found, detector_used, whole))
            crops += [
                whole if r.box == WHOLE_IMAGE else crop_encoded(image, r.box, self.crop_margin)
                for r in found
            ]
        shares = None
        meta = self.models.metadata(self.classifier).raw
        if color_fusion_weight(meta) > 0:
            # Pixel colors only where the region is a garment: a whole-photo
            # fallback's pixels are mostly background.
            window = color_fusion_window(meta)
            shares = [None if r.box == WHOLE_IMAGE else color_shares(image, r.box, window)
                      for image, found, _, _ in plans for r in found]
        garments = iter(self.describe(crops, shares, [r for _, found, _, _ in plans for r in found]))
        results = []
        for image, found, detector_used, _ in plans:
            mine = []
            for r in found:
                garment = next(garments)
                garment.box = r.box
                garment.scores["detection"] = r.score
                garment.detected = detector_used
                mine.append(garment)
            if detector_used and self.duplicate_iou is not None:
                mine = suppress_duplicates(mine, self.duplicate_iou, self.cross_group_iou)
            results.append(Analysis(mine, image.width, image.height, detector_used))
        if self.product_whole_confidence is not None:
            self.merge_confident_products(results, [whole for *_, whole in plans])
        return results

    def merge_confident_products(self, results: list[Analysis], wholes: list[bytes | None]) -> None:
        """Answer a detected two-garment photo as one garment, the whole photo, when the
        classifier is ``product_whole_confidence`` sure of the whole photo's group (one
        classifier call for all such photos of the batch)."""
        pending = [i for i, a in enumerate(results)
                   if a.detector_used and len(a.garments) == 2 and wholes[i] is not None]
        if not pending:
            return
        described = self.describe([wholes[i] for i in pending])
        for i, garment in zip(pending, described):
            if garment.scores["group"] >= self.product_whole_confidence:
                garment.box = WHOLE_IMAGE
                garment.scores["detection"] = max(g.scores.get("detection", 0.0) for g in results[i].garments)
                garment.detected = True
                results[i].garments = [garment]

    def regions(self, detections: list[Region]) -> list[Region]:
        """The garments to describe among a photo's detections: one covering them all
        when they look like a single garment filling the photo (a product photo), or
        (``product_one_group``) when they are all of one detector class."""
        whole = self.product_box == "whole"
        boxes = [r.box for r in detections]
        if self.product_cover is not None and (
                (whole and len(boxes) == 1) or (self.product_one_group and one_group(detections))
                or single_garment_layout(boxes, self.product_cover, self.product_dominance, self.product_overlap)):
            return [Region(WHOLE_IMAGE if whole else union_box(boxes), max(r.score for r in detections), None)]
        return list(detections)

    def describe(self, crops: list[bytes], shares: list[np.ndarray | None] | None = None,
                 regions: list[Region] | None = None) -> list[Garment]:
        """Classify and embed encoded garment crops in one model call.

        ``shares`` (per crop, or None) are the crop's pixel color shares
        (``eyepic.imaging.color_shares``); they are fused with the color head
        by the weight the model's metadata carries (``color_fusion``).
        ``regions`` (per crop, or None) carry the detector's class and score,
        which ``group_rule`` may weigh with the classifier's (``decide_labels``).
        """
        meta = self.models.metadata(self.classifier)
        out = self.models.predict(self.classifier, crops)
        classes = meta.classes
        color_probs = served_color_probs(meta.raw, out["color_probs"], shares or [None] * len(crops))
        regions = regions or [Region(WHOLE_IMAGE)] * len(crops)
        detector_groups = (self.models.metadata(self.detector).classes.get("group")
                           if self.detector and any(r.label for r in regions) else None)
        garments = []
        for i, region in enumerate(regions):
            group, group_p, type_name, type_p = decide_labels(
                out["group_probs"][i], classes["group"], out["type_probs"][i], classes["type"],
                region.label, region.score, self.group_rule, detector_groups,
            )
            color, color_p = _top(color_probs[i], classes["color"])
            garments.append(
                Garment(
                    box=WHOLE_IMAGE,
                    group=group,
                    type=type_name,
                    color=color,
                    scores={"group": group_p, "type": type_p, "color": color_p},
                    embedding=np.asarray(out["embedding"][i], dtype=np.float32),
                    detected=False,
                )
            )
        return garments

    def detect(self, encoded: bytes) -> list[Region]:
        """The detector's boxes (score at least ``min_detection_score``) of one encoded photo;
        none without a detector."""
        if not self.detector:
            return []
        try:
            out = self.models.predict(self.detector, [encoded])
        except ModelUnavailable:
            return []
        meta = self.models.metadata(self.detector)
        names = meta.classes.get("group", [])
        n = int(out["num_detections"][0])
        found = []
        for box, score, cls in zip(out["boxes"][0][:n], out["scores"][0][:n], out["classes"][0][:n]):
            if float(score) < self.min_detection_score:
                continue
            x0, y0, x1, y1 = (float(np.clip(v, 0.0, 1.0)) for v in box)
            if x1 - x0 < 0.01 or y1 - y0 < 0.01:
                continue
            label = names[int(cls)] if 0 <= int(cls) < len(names) else None
            found.append(Region((x0, y0, x1, y1), float(score), label))
        return found


# --- garments as the shopper sees them ---------------------------------------------------------


def decide_labels(
    group_probs: np.ndarray, groups: list[str], type_probs: np.ndarray, types: list[str],
    detected: str | None = None, detection_score: float = 1.0, rule: str = DEFAULT_GROUP_RULE,
    detector_groups: Sequence[str] | None = None,
) -> tuple[str, float, str, float]:
    """(group, group score, type, type score) of a crop, from the classifier's heads and
    the detector's class ``detected`` (None: no detector opinion, e.g. a user's box).

    * ``classifier``: ``consistent_labels`` of the classifier alone.
    * ``detector``: the detector's class is the group when the classifier knows it
      (score: the detection score); the type is the likeliest classifier type inside
      it. A crop the classifier puts in a group the detector has no class for
      (``detector_groups``: bag, hat) stays the classifier's: the detector could not
      have named it.
    * ``joint``: the classifier's group evidence (as in ``consistent_labels``) times the
      detector's, read as probability ``detection_score`` on its class and the rest
      spread evenly over the other groups; the group score is that posterior.
    """
    if rule not in GROUP_RULES:
        raise ValueError(f"unknown group rule {rule!r}")
    if rule == "classifier" or detected is None or detected not in groups:
        return consistent_labels(group_probs, groups, type_probs, types)
    group_of_type = groups_of(types)
    if rule == "detector":
        own = consistent_labels(group_probs, groups, type_probs, types)
        if detector_groups is not None and own[0] not in detector_groups:
            return own
        return (detected, float(detection_score), *type_inside(detected, group_of_type, type_probs, types))
    evidence = group_evidence(group_probs, groups, type_probs, group_of_type)
    s = float(np.clip(detection_score, 0.05, 0.95))
    likelihood = np.full(len(groups), (1.0 - s) / max(len(groups) - 1, 1))
    likelihood[groups.index(detected)] = s
    posterior = evidence / max(evidence.sum(), 1e-12) * likelihood
    posterior = posterior / max(posterior.sum(), 1e-12)
    g = int(np.argmax(posterior))
    return (groups[g], float(posterior[g]), *type_inside(groups[g], group_of_type, type_probs, types))


def garment_rank(garment: Garment) -> float:
    """How sure the answer is of this garment: detection score x group score."""
    return float(garment.scores.get("detection", 1.0)) * float(garment.scores.get("group", 1.0))


def box_iou(a: Box, b: Box) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = _area(a) + _area(b) - inter
    return inter / union if union > 0 else 0.0


def suppress_duplicates(garments: list[Garment], iou: float = DEFAULT_DUPLICATE_IOU,
                        cross_group_iou: float | None = None) -> list[Garment]:
    """One garment per worn garment: of same-group garments overlapping by more than
    ``iou`` (or of any groups, by more than ``cross_group_iou``), the better one
    (``garment_rank``) stays. Order is otherwise kept."""
    order = sorted(range(len(garments)), key=lambda i: -garment_rank(garments[i]))
    kept: list[int] = []
    for i in order:
        if not any(_same_garment(garments[k], garments[i], iou, cross_group_iou) for k in kept):
            kept.append(i)
    return [garments[i] for i in sorted(kept)]


def _same_garment(a: Garment, b: Garment, iou: float, cross_group_iou: float | None) -> bool:
    overlap = box_iou(a.box, b.box)
    return (a.group == b.group and overlap > iou) or (cross_group_iou is not None and overlap > cross_group_iou)


def one_group(detections: Sequence[Region]) -> bool:
    """Two or more detections, all of one (known) detector class."""
    labels = {r.label for r in detections}
    return len(detections) >= 2 and len(labels) == 1 and None not in labels


def union_box(boxes: list[Box]) -> Box:
    """The smallest box holding all ``boxes``."""
    return (min(b[0] for b in boxes), min(b[1] for b in boxes), max(b[2] for b in boxes), max(b[3] for b in boxes))


def layout_features(boxes: list[Box]) -> dict[str, float]:
    """What tells a photo of one garment from a photo of a person wearing several:
    ``cover`` (share of the photo inside the union of the boxes), ``dominance`` (share
    of that union the largest box fills) and ``overlap`` (over every pair of boxes,
    the least vertical overlap as a share of the shorter one's height; 1 for one box).
    A product photo's boxes are one garment seen twice, nested or in overlapping
    parts, filling the frame; a street photo's stack top, bottom and shoes down a
    person (``overlap`` near 0: one garment is worn below another)."""
    if not boxes:
        return {"boxes": 0, "cover": 0.0, "dominance": 0.0, "overlap": 1.0}
    union = _area(union_box(boxes))
    overlap = 1.0
    for i, a in enumerate(boxes):
        for b in boxes[i + 1 :]:
            shared = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
            overlap = min(overlap, shared / max(min(a[3] - a[1], b[3] - b[1]), 1e-9))
    return {"boxes": len(boxes), "cover": union,
            "dominance": max(_area(b) for b in boxes) / union if union > 0 else 0.0, "overlap": overlap}


def single_garment_layout(boxes: list[Box], cover: float = DEFAULT_PRODUCT_COVER,
                          dominance: float = DEFAULT_PRODUCT_DOMINANCE, overlap: float = DEFAULT_PRODUCT_OVERLAP,
                          min_boxes: int = 2) -> bool:
    """At least ``min_boxes`` boxes that are one garment filling the photo: no box below
    another (pairwise ``overlap`` at least that), and their union covering ``cover`` of
    the photo or, with two or more, one box holding ``dominance`` of it (``layout_features``)."""
    return layout_is_single(layout_features(boxes), cover, dominance, overlap, min_boxes)


def layout_is_single(f: dict[str, float], cover: float, dominance: float, overlap: float,
                     min_boxes: int = 2) -> bool:
    """``single_garment_layout`` on ``layout_features`` already computed."""
    if f["boxes"] < max(1, min_boxes) or f["overlap"] < overlap:
        return False
    return f["cover"] >= cover or (f["boxes"] >= 2 and f["dominance"] >= dominance)


def _area(b: Box) -> float:
    return max(0.0, b[2] - b[0]) * max(0.0, b[3] - b[1])

