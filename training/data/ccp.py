"""Reader for CCP (Clothing Co-Parsing): street photos with pixel label maps.

Each photo shows one person. From the label map we derive one box per
*group* that person wears (onepiece, outer, top, bottom, shoes, bag, hat):
the box surrounds all pixels of the group's labels, so an open coat's two
panels make one coat and layered tops one top. Shoes: one box around the
pair (a shop sells a pair, and a shopper asks for "these shoes"). Specks
(connected pieces under ``min_component_px`` pixels) are dropped first, so a
few stray pixels can't stretch a box. The fine type is the group's label
with most pixels; the color is the dominant color of the group's *masked*
pixels, so skin and background don't vote.

Split: a stable 15 % of photo ids (hash of the id) is validation, never
trained on.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
from PIL import Image
from scipy import io as sio
from scipy import ndimage
from tqdm import tqdm

from eyepic import taxonomy
from eyepic.colors import dominant_color
from eyepic.schema import Box
from training.data.clothing_small import DataMissing
from training.data.samples import Sample, stable_fraction

VALIDATION_FRACTION = 0.15
MIN_COMPONENT_PX = 150  # about 0.03 % of a 550x825 photo
MIN_GROUP_PX = 600


@dataclasses.dataclass(frozen=True)
class GarmentRegion:
    group: str
    type: str
    box: Box  # normalised x0, y0, x1, y1
    pixels: int
    color: str


def read_label_names(root: Path) -> list[str]:
    mat = sio.loadmat(Path(root) / "label_list.mat")
    return [str(x[0]) for x in mat["label_list"][0]]


def read_label_map(path: Path) -> np.ndarray:
    return sio.loadmat(path)["groundtruth"]


def ccp_split(photo_id: str) -> str:
    return "validation" if stable_fraction(f"ccp/{photo_id}") < VALIDATION_FRACTION else "train"


def regions_from_labels(
    labels: np.ndarray,
    label_names: list[str],
    rgb: np.ndarray | None = None,
    min_component_px: int = MIN_COMPONENT_PX,
    min_group_px: int = MIN_GROUP_PX,
) -> list[GarmentRegion]:
    """One region per apparel group present in a label map (H, W of label ids)."""
    h, w = labels.shape
    type_of_label = {
        i: taxonomy.CCP_TYPES[name] for i, name in enumerate(label_names) if name in taxonomy.CCP_TYPES
    }
    regions = []
    for group_name in taxonomy.GROUP_NAMES:
        ids = [i for i, t in type_of_label.items() if taxonomy.group_of(t) == group_name]
        mask = np.isin(labels, ids)
        if not mask.any():
            continue
        mask = drop_specks(mask, min_component_px)
        pixels = int(mask.sum())
        if pixels < min_group_px:
            continue
        ys, xs = np.nonzero(mask)
        box = (xs.min() / w, ys.min() / h, (xs.max() + 1) / w, (ys.max() + 1) / h)
        counts = np.bincount(labels[mask].ravel(), minlength=len(label_names))
        votes: dict[str, int] = {}
        for label_id, n in enumerate(counts):
            if n and label_id in type_of_label:
                votes[type_of_label[label_id]] = votes.get(type_of_label[label_id], 0) + int(n)
        type_name = max(votes, key=votes.__getitem__)
        color = dominant_color(rgb[mask]) if rgb is not None else ""
        regions.append(GarmentRegion(group_name, type_name, tuple(float(v) for v in box), pixels, color))
    return regions


def drop_specks(mask: np.ndarray, min_px: int) -> np.ndarray:
    """``mask`` without connected pieces smaller than ``min_px`` pixels."""
    components, n = ndimage.label(mask)
    if n == 0:
        return mask
    sizes = np.bincount(components.ravel())
    keep = sizes >= min_px
    keep[0] = False
    return keep[components]


def read_ccp(root: Path, splits: tuple[str, ...] = ("train", "validation"), split_by_hash: bool = True) -> list[Sample]:
    """Garment samples from every annotated photo in a CCP-layout folder.

    ``split_by_hash=False`` marks every photo "validation": for evaluating on
    a held-out folder in the same layout.
    """
    root = Path(root)
    annotations = root / "annotations" / "pixel-level"
    if not annotations.is_dir():
        raise DataMissing(f"CCP annotations not found at {annotations}")
    names = read_label_names(root)
    samples = []
    for mat_path in tqdm(sorted(annotations.glob("*.mat")), desc="CCP label maps", unit="photo"):
        photo_id = mat_path.stem
        split = ccp_split(photo_id) if split_by_hash else "validation"
        if split not in splits:
            continue
        photo = root / "photos" / f"{photo_id}.jpg"
        if not photo.exists():
            continue
        for region in photo_regions(photo, mat_path, names):
            samples.append(
                Sample(path=photo, source="ccp", split=split, type=region.type, group=region.group,
                       color=region.color, box=region.box, key=f"{photo_id}/{region.group}")
            )
    return samples


def photo_regions(photo: Path, mat_path: Path, names: list[str]) -> list[GarmentRegion]:
    labels = read_label_map(mat_path)
    with Image.open(photo) as image:
        rgb = np.asarray(image.convert("RGB"))
    if rgb.shape[:2] != labels.shape:  # a few maps differ by a pixel or two
        rgb = np.asarray(Image.fromarray(rgb).resize((labels.shape[1], labels.shape[0])))
    return regions_from_labels(labels, names, rgb)
