"""The ten named colors and the one function that names a set of pixels.

Colors are data: each hue has one or more CIELAB prototypes (navy and denim
are blues, mint a green...); black, gray and white are lightness bands for
pixels without a hue. Each pixel is named (``name_pixels_exact``, served
from a table of every value by ``name_pixels``); the dominant
color is the one with most votes. Masked pixels only:
callers pass garment pixels, never a whole box, so skin and background don't
vote.
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np

from eyepic.color_table import load_table, packed


@dataclasses.dataclass(frozen=True)
class NamedColor:
    name: str
    en: str
    ko: str
    hex: str  # swatch shown in the page
    lab: tuple[tuple[float, float, float], ...]  # CIELAB (D65) prototypes


PALETTE: tuple[NamedColor, ...] = (
    # Achromatic colors are named by lightness alone (see ``name_pixels``); their
    # prototypes only place the L boundaries (black < 27 < gray < 71 < white).
    NamedColor("black", "Black", "블랙", "#1a1a1a", ((12, 0, 0),)),
    NamedColor("white", "White", "화이트", "#f7f7f5", ((88, 0, 0),)),
    NamedColor("gray", "Gray", "그레이", "#8c8c8c", ((42, 0, 0), (60, 0, 0))),
    NamedColor("beige", "Beige", "베이지", "#d9c6a5", ((80, 3, 15), (70, 5, 20), (86, 2, 11))),
    NamedColor("brown", "Brown", "브라운", "#7b4b2a", ((35, 15, 25), (50, 15, 35), (25, 10, 12), (42, 8, 14))),
    NamedColor("red", "Red", "레드", "#c0262d", ((45, 65, 45), (32, 48, 25), (55, 70, 55), (30, 35, 10))),
    NamedColor("pink", "Pink", "핑크", "#f2a3bd", ((75, 30, 0), (60, 50, -5), (85, 15, 2), (50, 40, -20))),
    NamedColor("yellow", "Yellow", "옐로우", "#f2cf3a", ((85, 0, 75), (75, 15, 70), (65, 35, 65))),
    NamedColor("green", "Green", "그린", "#3f7d4e",
               ((50, -40, 25), (35, -20, 15), (70, -30, 40), (45, -8, 30), (82, -18, 8), (55, -30, -5))),
    NamedColor("blue", "Blue", "블루", "#2f5da8",
               ((45, 10, -50), (22, 5, -25), (65, -5, -30), (75, -5, -18), (45, 0, -22), (32, 15, -45))),
)

ACHROMATIC = ("black", "gray", "white")
CHROMA_THRESHOLD = 9.0  # below it a pixel has no hue worth naming

COLOR_NAMES: tuple[str, ...] = tuple(c.name for c in PALETTE)

_CHROMATIC = [(i, lab) for i, c in enumerate(PALETTE) if c.name not in ACHROMATIC for lab in c.lab]
_PROTOTYPES = np.array([lab for _, lab in _CHROMATIC], dtype=np.float32)
_PROTOTYPE_COLOR = np.array([i for i, _ in _CHROMATIC])
_BLACK, _GRAY, _WHITE = (COLOR_NAMES.index(n) for n in ACHROMATIC)


def srgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """sRGB uint8 (..., 3) -> CIELAB (..., 3) under D65."""
    c = np.asarray(rgb, dtype=np.float32) / 255.0
    c = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    m = np.array(
        [[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]],
        dtype=np.float32,
    )
    xyz = c @ m.T / np.array([0.95047, 1.0, 1.08883], dtype=np.float32)
    f = np.where(xyz > 0.008856, np.cbrt(xyz), 7.787 * xyz + 16.0 / 116.0)
    lab = np.stack(
        [116.0 * f[..., 1] - 16.0, 500.0 * (f[..., 0] - f[..., 1]), 200.0 * (f[..., 1] - f[..., 2])],
        axis=-1,
    )
    return lab


def name_pixels(pixels: np.ndarray) -> np.ndarray:
    """Palette index of each pixel (N, 3 sRGB uint8): ``name_pixels_exact``'s answer,
    looked up in the precomputed table of all 2**24 values (``eyepic.color_table``)."""
    return _table()[packed(pixels)].astype(np.intp)


@functools.cache
def _table() -> np.ndarray:
    """Loaded on first use (about 0.1 s), then shared by the process."""
    return load_table(name_pixels_exact)


def name_pixels_exact(pixels: np.ndarray) -> np.ndarray:
    """Palette index of each pixel (N, 3 sRGB uint8), computed: the definition.

    Pixels without a hue (chroma under ``CHROMA_THRESHOLD``) are black, gray
    or white by lightness, so shaded white stays white and a light blue is
    never swallowed by gray; the others go to the nearest chromatic prototype.
    """
    lab = srgb_to_lab(np.asarray(pixels).reshape(-1, 3))
    chroma = np.hypot(lab[:, 1], lab[:, 2])
    names = np.select([lab[:, 0] < 27, lab[:, 0] < 71], [_BLACK, _GRAY], _WHITE)
    hued = chroma >= CHROMA_THRESHOLD
    if hued.any():
        names[hued] = _PROTOTYPE_COLOR[_nearest_prototype(lab[hued])]
    return names


def _nearest_prototype(lab: np.ndarray) -> np.ndarray:
    """Index of the nearest chromatic prototype of each (N, 3) CIELAB row.

    One prototype at a time with a running minimum: the same float32 sums and
    first-wins ties as ``((lab[:, None] - P) ** 2).sum(-1).argmin(1)``, without
    its (N, 27, 3) temporary (9 of the 10 ms a search spent naming pixel colors).
    """
    best = np.full(len(lab), np.inf, dtype=np.float32)
    index = np.zeros(len(lab), dtype=np.intp)
    light, a, b = lab[:, 0], lab[:, 1], lab[:, 2]
    for i, (pl, pa, pb) in enumerate(_PROTOTYPES):
        d = (light - pl) ** 2 + (a - pa) ** 2 + (b - pb) ** 2
        closer = d < best
        best[closer] = d[closer]
        index[closer] = i
    return index


def color_votes(pixels: np.ndarray) -> np.ndarray:
    """Fraction of ``pixels`` (N, 3 sRGB uint8) named each palette color."""
    pixels = np.asarray(pixels).reshape(-1, 3)
    if len(pixels) == 0:
        raise ValueError("no pixels to name a color from")
    counts = np.bincount(name_pixels(pixels), minlength=len(PALETTE)).astype(np.float32)
    return counts / counts.sum()


# Added to every pixel share before fusing: a color with no pixels in the crop
# is damped, not vetoed (the crop box also holds background and skin).
FUSION_FLOOR = 0.01


def fuse_color(probs: np.ndarray, shares: np.ndarray, pixel_weight: float,
               floor: float = FUSION_FLOOR) -> np.ndarray:
    """The color head's probabilities combined with the crop's pixel color shares.

    A product of experts, p ~ head * (share + floor) ** pixel_weight: the head
    knows which pixels are the garment, the pixel shares know the exact hue
    (the head is trained on few examples of most colors). ``pixel_weight`` 0
    returns ``probs`` unchanged; it is calibrated per model on training crops
    (``training.calibrate``). Works on one row or a batch.
    """
    probs = np.asarray(probs, dtype=np.float64)
    if pixel_weight <= 0:
        return probs
    logits = np.log(probs + 1e-6) + pixel_weight * np.log(np.asarray(shares, np.float64) + floor)
    logits -= logits.max(axis=-1, keepdims=True)
    fused = np.exp(logits)
    return fused / fused.sum(axis=-1, keepdims=True)


def dominant_color(pixels: np.ndarray, max_pixels: int = 20000) -> str:
    """Name of the color most of ``pixels`` (N, 3 sRGB uint8) are nearest to.

    Large sets are subsampled with a fixed stride so the answer is
    deterministic and cheap.
    """
    pixels = np.asarray(pixels).reshape(-1, 3)
    if len(pixels) > max_pixels:
        pixels = pixels[:: len(pixels) // max_pixels + 1]
    return COLOR_NAMES[int(color_votes(pixels).argmax())]


def as_dict() -> list[dict]:
    return [dataclasses.asdict(c) for c in PALETTE]
