"""Readers for the product-photo data sets: one folder per class.

clothing-small and clothing-extra come from one source and share a layout
(``train/<class>/``, ``validation/<class>/``). The folder name is the only
label; it maps to a fine type (and so a group) through the data set's table
in ``eyepic.taxonomy``. Each data set's own train/validation split is kept
as it is, and each sample keeps its data set's name as ``source`` so the
evaluation can report them apart. No color labels: the photos lie on
varied backgrounds (beds, tiles, rugs) and a border-based background guess
mislabelled too many (shaded white as gray), so color is learned from CCP's
masks only.
"""

from __future__ import annotations

from pathlib import Path

from eyepic import taxonomy
from eyepic.imaging import iter_images
from training.data.samples import Sample


class DataMissing(FileNotFoundError):
    """A dataset folder is absent; the message says where it should be."""


def read_clothing_small(root: Path, splits: tuple[str, ...] = ("train", "validation")) -> list[Sample]:
    return read_product_set(root, "clothing-small", taxonomy.CLOTHING_SMALL_TYPES, splits)


def read_clothing_extra(root: Path, splits: tuple[str, ...] = ("train", "validation")) -> list[Sample]:
    return read_product_set(root, "clothing-extra", taxonomy.CLOTHING_EXTRA_TYPES, splits)


def read_product_set(root: Path, source: str, types: dict[str, str],
                     splits: tuple[str, ...] = ("train", "validation")) -> list[Sample]:
    """Samples of a ``<split>/<class>/`` tree; classes missing from ``types`` are skipped."""
    root = Path(root)
    if not root.is_dir():
        raise DataMissing(f"{source} not found at {root}")
    samples: list[Sample] = []
    for split in splits:
        for class_dir in sorted((root / split).glob("*")):
            if not class_dir.is_dir():
                continue
            type_name = types.get(class_dir.name)
            if type_name is None:
                continue
            for path in sorted(iter_images(class_dir)):
                samples.append(
                    Sample(path=path, source=source, split=split, type=type_name,
                           group=taxonomy.group_of(type_name), key=path.stem)
                )
    return samples


def read_folder_per_class(root: Path) -> list[Sample]:
    """Any folder-per-class tree whose class names are taxonomy types or product data set folders."""
    samples = []
    for class_dir in sorted(Path(root).glob("*")):
        name = taxonomy.PRODUCT_FOLDER_TYPES.get(class_dir.name, class_dir.name)
        if not class_dir.is_dir() or name not in taxonomy.TYPE_NAMES:
            continue
        for path in sorted(iter_images(class_dir)):
            samples.append(Sample(path=path, source="folder", split="validation", type=name,
                                  group=taxonomy.group_of(name), key=path.stem))
    return samples
