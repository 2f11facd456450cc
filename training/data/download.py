"""Fetch the public datasets when the data folder is missing and we are online.

Sources (their licenses travel with them):
* clothing-small: Alexey Grigorev's "clothing dataset (small)", CC0 1.0,
  https://github.com/alexeygrigorev/clothing-dataset-small
* CCP: Clothing Co-Parsing (Yang, Luo, Lin, CVPR 2014), Apache-2.0,
  https://github.com/bearpaw/clothing-co-parsing
Offline, ``ensure_data`` stops with a message saying where to put them.
"""

from __future__ import annotations

import io
import shutil
import tempfile
import urllib.request
import zipfile
from pathlib import Path

from training.data.clothing_small import DataMissing

SOURCES = {
    "clothing-small": "https://github.com/alexeygrigorev/clothing-dataset-small/archive/refs/heads/master.zip",
    "ccp": "https://github.com/bearpaw/clothing-co-parsing/archive/refs/heads/master.zip",
}


def missing_datasets(data_dir: Path) -> list[str]:
    data_dir = Path(data_dir)
    missing = []
    if not (data_dir / "clothing-small" / "train").is_dir():
        missing.append("clothing-small")
    if not (data_dir / "ccp" / "annotations" / "pixel-level").is_dir():
        missing.append("ccp")
    return missing


def ensure_data(data_dir: Path, timeout_s: float = 20.0) -> None:
    """Download what's missing into ``data_dir``; DataMissing if that can't be done."""
    for name in missing_datasets(data_dir):
        try:
            url = SOURCES[name]  # fixed https URLs, never a user's
            with urllib.request.urlopen(url, timeout=timeout_s) as response:  # nosec B310 # https only
                payload = response.read()
        except OSError as exc:
            raise DataMissing(
                f"dataset {name!r} is missing from {Path(data_dir).resolve()} and could not be "
                f"downloaded ({exc}). Put it at {Path(data_dir) / name} (source: {SOURCES[name]}) "
                "or point EYEPIC_DATA_DIR at a folder that has it."
            ) from None
        _unpack(name, payload, Path(data_dir))


def _unpack(name: str, payload: bytes, data_dir: Path) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        zipfile.ZipFile(io.BytesIO(payload)).extractall(tmp)
        (root,) = list(Path(tmp).iterdir())
        target = data_dir / name
        target.mkdir(parents=True, exist_ok=True)
        if name == "clothing-small":
            for split in ("train", "validation"):
                shutil.copytree(root / split, target / split, dirs_exist_ok=True)
        else:
            for part in ("photos", "annotations", "label_list.mat"):
                src = root / part
                dst = target / part
                shutil.copytree(src, dst, dirs_exist_ok=True) if src.is_dir() else shutil.copy(src, dst)
