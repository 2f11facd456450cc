"""Every 24-bit sRGB value's palette color, computed once: naming pixels is one lookup.

Naming a pixel (``eyepic.colors.name_pixels_exact``: sRGB -> CIELAB, then a
lightness band or the nearest of 27 chromatic prototypes) cost a search
2.5-3 ms, a quarter of its work outside the models and the index, and it is
the same answer for the same pixel every time. The table holds the answer
for all 2**24 values (16 MiB in memory, 0.2 MB zlib-compressed in the
package: ``color_names.zlib``), so ``name_pixels`` is an index into it and
gives exactly the same names.

The shipped file is data derived from the palette; a palette change makes it
stale. On load a fixed sample of pixels is named both ways; if they disagree
(or the file is missing) the table is rebuilt in memory (about 5 s) with a
warning, so a stale file costs time, never a wrong color. ``tests/`` checks
the shipped file against a full rebuild. Regenerate it with::

    python -m devtools.color_table

The naming function is passed in (``eyepic.colors`` owns it and the cached
table), so this module needs nothing from the palette.
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np

TABLE_FILE = Path(__file__).with_name("color_names.zlib")
SIZE = 1 << 24
_CHUNK = 1 << 20
log = logging.getLogger(__name__)

Naming = Callable[[np.ndarray], np.ndarray]  # (N, 3) sRGB uint8 -> (N,) palette index


def packed(pixels: np.ndarray) -> np.ndarray:
    """(N, 3) sRGB uint8 -> (N,) 0xRRGGBB, the table's index."""
    p = np.asarray(pixels, dtype=np.uint8).reshape(-1, 3).astype(np.uint32)
    return (p[:, 0] << 16) | (p[:, 1] << 8) | p[:, 2]


def unpacked(values: np.ndarray) -> np.ndarray:
    """(N,) 0xRRGGBB -> (N, 3) sRGB uint8."""
    v = np.asarray(values, dtype=np.uint32)
    return np.stack([(v >> 16) & 255, (v >> 8) & 255, v & 255], axis=-1).astype(np.uint8)


def build_table(name: Naming) -> np.ndarray:
    """Every value's palette index by ``name``, in 1 Mi-pixel chunks (about 5 s)."""
    table = np.empty(SIZE, dtype=np.uint8)
    for start in range(0, SIZE, _CHUNK):
        table[start : start + _CHUNK] = name(unpacked(np.arange(start, start + _CHUNK)))
    return table


def sample_values() -> np.ndarray:
    """The pixels checked on every load: a fixed stride through the cube (it walks all
    hues, lightnesses and the chroma threshold's neighbourhood) plus every gray."""
    stride = np.arange(0, SIZE, 1021, dtype=np.uint32)
    grays = np.arange(256, dtype=np.uint32) * 0x010101
    return np.concatenate([stride, grays])


def agrees(table: np.ndarray, name: Naming) -> bool:
    """Does ``table`` name the sample as ``name`` does?"""
    values = sample_values()
    return table.shape == (SIZE,) and bool((table[values] == name(unpacked(values))).all())


def read_table(path: Path = TABLE_FILE) -> np.ndarray:
    """The table stored at ``path`` (read-only); OSError or ValueError when unreadable."""
    try:
        raw = zlib.decompress(path.read_bytes())
    except zlib.error as exc:
        raise ValueError(f"{path}: not a color table ({exc})") from None
    if len(raw) != SIZE:
        raise ValueError(f"{path}: {len(raw)} entries, not {SIZE}")
    return np.frombuffer(raw, dtype=np.uint8)


def write_table(table: np.ndarray, path: Path = TABLE_FILE) -> Path:
    path.write_bytes(zlib.compress(np.ascontiguousarray(table, dtype=np.uint8).tobytes(), 9))
    return path


def load_table(name: Naming, path: Path = TABLE_FILE) -> np.ndarray:
    """The table at ``path`` when it agrees with ``name``, else rebuilt from ``name``."""
    try:
        table = read_table(path)
        if agrees(table, name):
            return table
        why = "it names some pixels differently from the palette (stale)"
    except (OSError, ValueError) as exc:
        why = str(exc)
    log.warning("color table %s not used: %s; rebuilding it in memory (regenerate it: "
                "python -m devtools.color_table)", path, why)
    return build_table(name)
