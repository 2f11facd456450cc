"""Worn outfits from CCP: each photo's garments, described by the released classifier.

One CCP photo shows one person, so the garments of its label map (one region
per group, ``training.data.ccp.photo_regions``) were worn together. Each
region is cropped and described exactly as the API describes a detected
garment: the caller passes ``describe``, in practice
``serving.analyzer.Analyzer.describe`` with the region's group as the
detector's class (the type is the classifier's likeliest type inside that
group, the color its head fused with the crop's pixel shares, the embedding
its L2-normalised vector; ``app.outfits`` joins the two stages), so the
compatibility model learns on the same features it is given at serving time.
Bags and hats are left out: complete the look answers with apparel and shoes.

The described garments are cached under ``var/cache/`` by the classifier
version and the photo list (``outfit_fingerprint``): a second run costs a
file read.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from eyepic.compatibility import OUTFIT_GROUPS
from eyepic.imaging import color_shares, crop_encoded
from eyepic.schema import Box, Garment
from training.data.ccp import GarmentRegion, ccp_split, photo_regions, read_label_names
from training.data.clothing_small import DataMissing

CROP_MARGIN = 0.05  # as the Analyzer crops a detected garment
BATCH = 32

# (encoded crops, pixel color shares per crop or None, (box, group) per crop) -> one Garment per crop
Describe = Callable[[list[bytes], list[np.ndarray | None], list[tuple[Box, str]]], list[Garment]]


@dataclasses.dataclass
class WornGarments:
    """Every described garment of a set of photos; row ``i`` of each array is one garment."""

    photo: np.ndarray  # photo id (str)
    split: np.ndarray  # "train" | "validation"
    group: np.ndarray
    type: np.ndarray
    color: np.ndarray
    embedding: np.ndarray  # float32 (n, d), L2-normalised
    fingerprint: str = ""

    def __len__(self) -> int:
        return len(self.photo)

    def subset(self, mask: np.ndarray) -> WornGarments:
        return WornGarments(self.photo[mask], self.split[mask], self.group[mask], self.type[mask],
                            self.color[mask], self.embedding[mask], self.fingerprint)

    def of_split(self, split: str) -> WornGarments:
        return self.subset(self.split == split)

    def outfits(self) -> list[np.ndarray]:
        """Row indices per photo with at least two garments (an outfit), in photo order."""
        order: dict[str, list[int]] = {}
        for i, photo in enumerate(self.photo):
            order.setdefault(str(photo), []).append(i)
        return [np.asarray(rows) for rows in order.values() if len(rows) >= 2]

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npz")
        np.savez_compressed(tmp, photo=self.photo, split=self.split, group=self.group, type=self.type,
                            color=self.color, embedding=self.embedding, fingerprint=np.asarray(self.fingerprint))
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path) -> WornGarments:
        with np.load(path, allow_pickle=False) as z:
            return cls(z["photo"], z["split"], z["group"], z["type"], z["color"], z["embedding"].astype(np.float32),
                       str(z["fingerprint"]))


def outfit_photos(ccp_root: Path) -> list[tuple[str, Path, Path]]:
    """(photo id, photo, label map) of every annotated CCP photo, sorted."""
    annotations = Path(ccp_root) / "annotations" / "pixel-level"
    if not annotations.is_dir():
        raise DataMissing(f"CCP annotations not found at {annotations}")
    found = []
    for mat in sorted(annotations.glob("*.mat")):
        photo = Path(ccp_root) / "photos" / f"{mat.stem}.jpg"
        if photo.is_file():
            found.append((mat.stem, photo, mat))
    return found


def outfit_fingerprint(photos: Sequence[tuple[str, Path, Path]], model_version: str) -> str:
    """What the cached garments depend on: the classifier and the photos (ids and sizes)."""
    digest = hashlib.sha256(model_version.encode())
    for photo_id, photo, mat in photos:
        digest.update(f"{photo_id}:{photo.stat().st_size}:{mat.stat().st_size};".encode())
    return digest.hexdigest()[:16]


def worn_regions(photos: Sequence[tuple[str, Path, Path]], label_names: list[str],
                 desc: str) -> Iterator[tuple[str, Image.Image, GarmentRegion]]:
    """(photo id, RGB photo, region) of every worn garment of an outfit group, in photo order."""
    for photo_id, photo, mat in tqdm(photos, desc=desc, unit="photo"):
        with Image.open(photo) as opened:
            image = opened.convert("RGB")
        for region in photo_regions(photo, mat, label_names):
            if region.group in OUTFIT_GROUPS:
                yield photo_id, image, region


def describe_in_batches(describe: Describe, crops: list[bytes], shares: list[np.ndarray | None],
                        regions: list[tuple[Box, str]]) -> list[Garment]:
    """``describe`` over the crops ``BATCH`` at a time (one classifier call each)."""
    garments: list[Garment] = []
    for start in tqdm(range(0, len(crops), BATCH), desc="classifier", unit="batch"):
        end = start + BATCH
        garments += describe(crops[start:end], shares[start:end], regions[start:end])
    return garments


def describe_photo_garments(describe: Describe, photos: Sequence[tuple[str, Path, Path]],
                            label_names: list[str], color_window: float | None) -> WornGarments:
    """Crop each photo's worn garments (outfit groups only) and describe them in batches.

    ``color_window``: the central share of each box whose pixel colors ``describe``
    fuses with its color head (None: no pixel colors)."""
    rows: list[tuple[str, str, str]] = []
    crops: list[bytes] = []
    shares: list[np.ndarray | None] = []
    regions: list[tuple[Box, str]] = []
    for photo_id, image, region in worn_regions(photos, label_names, "CCP outfits"):
        rows.append((photo_id, ccp_split(photo_id), region.group))
        crops.append(crop_encoded(image, region.box, CROP_MARGIN))
        shares.append(None if color_window is None else color_shares(image, region.box, color_window))
        regions.append((region.box, region.group))
    garments = describe_in_batches(describe, crops, shares, regions)
    return WornGarments(
        photo=np.asarray([r[0] for r in rows]), split=np.asarray([r[1] for r in rows]),
        group=np.asarray([g.group for g in garments]), type=np.asarray([g.type for g in garments]),
        color=np.asarray([g.color for g in garments]),
        embedding=np.stack([g.embedding for g in garments]).astype(np.float32) if garments
        else np.zeros((0, 0), np.float32),
    )


def jitter_box(box: Box, rng: np.random.Generator, shift: float, scale: float) -> Box:
    """``box`` moved by up to ``shift`` of its size and each side scaled by up to ``scale``, clipped to
    the photo: a detector's box of the same garment, never the one the label map gives."""
    x0, y0, x1, y1 = box
    w, h = x1 - x0, y1 - y0
    cx, cy = (x0 + x1) / 2 + rng.uniform(-shift, shift) * w, (y0 + y1) / 2 + rng.uniform(-shift, shift) * h
    w, h = w * (1 + rng.uniform(-scale, scale)), h * (1 + rng.uniform(-scale, scale))
    out = (max(0.0, cx - w / 2), max(0.0, cy - h / 2), min(1.0, cx + w / 2), min(1.0, cy + h / 2))
    return out if out[2] - out[0] > 0.01 and out[3] - out[1] > 0.01 else box


def describe_views(describe: Describe, photos: Sequence[tuple[str, Path, Path]], label_names: list[str],
                   views: int, seed: int, shift: float, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """Embeddings of ``views`` re-boxed crops (``jitter_box``) of each worn garment of ``photos``:
    (photo id per row, (views, rows, d) array), rows in ``describe_photo_garments``' order.

    Training-time augmentation of the compatibility model: each garment is
    seen through several plausible detector boxes, not only the label map's."""
    rng = np.random.default_rng(seed)
    ids: list[str] = []
    crops: list[bytes] = []
    regions: list[tuple[Box, str]] = []
    for photo_id, image, region in worn_regions(photos, label_names, "CCP outfit views"):
        ids.append(photo_id)
        for _ in range(views):
            box = jitter_box(region.box, rng, shift, scale)
            crops.append(crop_encoded(image, box, CROP_MARGIN))
            regions.append((box, region.group))
    garments = describe_in_batches(describe, crops, [None] * len(crops), regions)
    stacked = np.asarray([g.embedding for g in garments], np.float32).reshape(len(ids), views, -1).transpose(1, 0, 2)
    return np.asarray(ids), np.ascontiguousarray(stacked)


def load_worn_garments(ccp_root: Path, describe: Describe, model_version: str, color_window: float | None,
                       cache_dir: Path) -> WornGarments:
    """The described garments of every CCP photo (both splits), from the cache when it fits."""
    photos = outfit_photos(ccp_root)
    fingerprint = outfit_fingerprint(photos, model_version)
    path = Path(cache_dir) / f"outfits-{fingerprint}.npz"
    if path.is_file():
        return WornGarments.load(path)
    worn = describe_photo_garments(describe, photos, read_label_names(ccp_root), color_window)
    worn.fingerprint = fingerprint
    worn.save(path)
    (path.with_suffix(".json")).write_text(json.dumps(
        {"fingerprint": fingerprint, "model_version": model_version, "photos": len(photos),
         "garments": len(worn)}, indent=2))
    return worn
