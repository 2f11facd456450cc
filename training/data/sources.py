"""All training/validation samples, from both datasets, cached.

Deriving CCP boxes and colors from 800 label maps takes ~40 s; the result is
cached as JSON under the settings' cache folder, keyed by a hash of the data
files (names, sizes, mtimes), the reader's parameters, the palette and the
taxonomy, so a changed data folder or color definition is re-read, never
served stale.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

from eyepic import colors, taxonomy
from training.data import ccp
from training.data.clothing_small import read_clothing_extra, read_clothing_small
from training.data.samples import Sample

CACHE_FORMAT = 6  # bump when the readers change; palette and taxonomy are hashed in


def data_fingerprint(*roots: Path) -> str:
    """Hash of every file's relative path, size and mtime under ``roots``."""
    digest = hashlib.sha256()
    for root in roots:
        for path in sorted(Path(root).rglob("*")):
            if path.is_file():
                stat = path.stat()
                digest.update(f"{path.relative_to(root)}|{stat.st_size}|{int(stat.st_mtime)}\n".encode())
    return digest.hexdigest()[:16]


def training_roots(data_dir: Path) -> list[Path]:
    """The data sets a classifier trains on: clothing-small and CCP, plus
    clothing-extra where it is present (older data folders lack it)."""
    data_dir = Path(data_dir)
    roots = [data_dir / "clothing-small", data_dir / "ccp"]
    if (data_dir / "clothing-extra").is_dir():
        roots.append(data_dir / "clothing-extra")
    return roots


def load_samples(data_dir: Path, cache_dir: Path) -> list[Sample]:
    """clothing-small and clothing-extra (their own splits) + CCP garment regions (hash split)."""
    data_dir = Path(data_dir)
    roots = training_roots(data_dir)
    small_root, ccp_root = roots[0], roots[1]
    key = hashlib.sha256(
        f"{CACHE_FORMAT}|{ccp.MIN_COMPONENT_PX}|{ccp.MIN_GROUP_PX}|{ccp.VALIDATION_FRACTION}|"
        f"{json.dumps(colors.as_dict())}|{colors.CHROMA_THRESHOLD}|{json.dumps(taxonomy.as_dict())}|"
        f"{data_fingerprint(*roots)}".encode()
    ).hexdigest()[:16]
    cache = Path(cache_dir) / f"samples-{key}.json"
    if cache.exists():
        return [_from_json(d) for d in json.loads(cache.read_text())]
    # clothing-small has no color labels we trust (a background heuristic
    # called shaded white "gray"): its samples train group and type only.
    samples = read_clothing_small(small_root) + ccp.read_ccp(ccp_root)
    if len(roots) > 2:
        samples += read_clothing_extra(roots[2])
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_suffix(".tmp")
    tmp.write_text(json.dumps([_to_json(s) for s in samples]))
    tmp.replace(cache)
    return samples


def _to_json(s: Sample) -> dict:
    d = dataclasses.asdict(s)
    d["path"] = str(s.path)
    d["box"] = list(s.box)
    return d


def _from_json(d: dict) -> Sample:
    return Sample(**{**d, "path": Path(d["path"]), "box": tuple(d["box"])})
