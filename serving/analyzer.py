"""Analyzer: image bytes -> garments, for both the indexer and the API.

Detect (boxes) -> crop -> classify + embed (one batched call) -> Garment.
It reaches models only through a ModelClient, so the in-process runner and
TF Serving are the same code path here. Without a detector export (or when
it finds nothing) the whole photo stands in for one garment, and the result
says so (``detected=False``).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from eyepic.exports import ModelClient, ModelUnavailable
from eyepic.imaging import color_shares, crop_encoded, load_image, model_bytes
from eyepic.readout import color_fusion_weight, color_fusion_window, consistent_labels, served_color_probs
from eyepic.readout import top_label as _top
from eyepic.schema import Box, Garment
from eyepic.settings import Settings

WHOLE_IMAGE: Box = (0.0, 0.0, 1.0, 1.0)


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
    ):
        self.models = models
        self.classifier = classifier
        self.detector = detector
        self.min_detection_score = min_detection_score
        self.crop_margin = crop_margin
        self.max_image_pixels = max_image_pixels

    @classmethod
    def from_settings(cls, settings: Settings, models: ModelClient | None = None) -> Analyzer:
        from serving.model_client import model_client_from_settings

        return cls(
            models if models is not None else model_client_from_settings(settings),
            classifier=settings.classifier_name,
            detector=settings.detector_name,
            min_detection_score=settings.min_garment_score,
            max_image_pixels=settings.max_image_pixels,
        )

    @property
    def model_version(self) -> str:
        return self.models.metadata(self.classifier).model_version

    def ready(self) -> bool:
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
                found = [(box, 1.0, None)]
            else:
                found = self._detect(whole)
                detector_used = bool(found)
                found = found or [(WHOLE_IMAGE, 1.0, None)]
            plans.append((image, found, detector_used))
            crops += [
                whole if b == WHOLE_IMAGE else crop_encoded(image, b, self.crop_margin)
                for b, _, _ in found
            ]
        shares = None
        meta = self.models.metadata(self.classifier).raw
        if color_fusion_weight(meta) > 0:
            # Pixel colors only where the region is a garment: a whole-photo
            # fallback's pixels are mostly background.
            window = color_fusion_window(meta)
            shares = [None if b == WHOLE_IMAGE else color_shares(image, b, window)
                      for image, found, _ in plans for b, _, _ in found]
        garments = iter(self.describe(crops, shares))
        results = []
        for image, found, detector_used in plans:
            mine = []
            for b, score, _ in found:
                garment = next(garments)
                garment.box = b
                garment.scores["detection"] = score
                garment.detected = detector_used
                mine.append(garment)
            results.append(Analysis(mine, image.width, image.height, detector_used))
        return results

    def describe(self, crops: list[bytes], shares: list[np.ndarray | None] | None = None) -> list[Garment]:
        """Classify and embed encoded garment crops in one model call.

        ``shares`` (per crop, or None) are the crop's pixel color shares
        (``eyepic.imaging.color_shares``); they are fused with the color head
        by the weight the model's metadata carries (``color_fusion``).
        """
        meta = self.models.metadata(self.classifier)
        out = self.models.predict(self.classifier, crops)
        classes = meta.classes
        color_probs = served_color_probs(meta.raw, out["color_probs"], shares or [None] * len(crops))
        garments = []
        for i in range(len(crops)):
            group, group_p, type_name, type_p = consistent_labels(
                out["group_probs"][i], classes["group"], out["type_probs"][i], classes["type"]
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

    def _detect(self, encoded: bytes) -> list[tuple[Box, float, str | None]]:
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
            found.append(((x0, y0, x1, y1), float(score), label))
        return found

