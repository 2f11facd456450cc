"""Upload files the way phones, editors and attackers make them, for the bad-input and decoding tests.

``reference()`` is a small landscape picture with four colored quadrants, so
a test sees both orientation (which corner is red) and color; ``variants()``
encodes it in every supported format and mode, each with the picture a
viewer shows for it.
"""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Callable

import numpy as np
from PIL import Image

W, H = 64, 48  # landscape: a lost EXIF rotation shows in the size
QUADRANTS = ((220, 30, 30), (30, 180, 60), (40, 60, 200), (128, 128, 128))  # TL, TR, BL, BR


def reference() -> Image.Image:
    pixels = np.zeros((H, W, 3), dtype=np.uint8)
    pixels[: H // 2, : W // 2] = QUADRANTS[0]
    pixels[: H // 2, W // 2:] = QUADRANTS[1]
    pixels[H // 2:, : W // 2] = QUADRANTS[2]
    pixels[H // 2:, W // 2:] = QUADRANTS[3]
    return Image.fromarray(pixels)


def encode(image: Image.Image, fmt: str, **options: object) -> bytes:
    out = io.BytesIO()
    image.save(out, format=fmt, **options)
    return out.getvalue()


def _exif_rotated() -> bytes:
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to show": stored as the reference turned the other way
    return encode(reference().transpose(Image.Transpose.ROTATE_90), "JPEG", quality=95, exif=exif)


def _alpha() -> tuple[bytes, Image.Image]:
    """The bottom-right quadrant transparent (black underneath): shown on white."""
    rgba = reference().convert("RGBA")
    pixels = np.asarray(rgba).copy()
    pixels[H // 2:, W // 2:] = (0, 0, 0, 0)
    shown = np.asarray(reference()).copy()
    shown[H // 2:, W // 2:] = 255
    return encode(Image.fromarray(pixels, "RGBA"), "PNG"), Image.fromarray(shown)


def gray16(image: Image.Image) -> bytes:
    """A 16-bit grayscale PNG of ``image`` (full 16-bit range, as scanners and editors write)."""
    values = np.asarray(image.convert("L"), dtype=np.uint16) * 257
    return encode(Image.fromarray(values), "PNG")


def _animated_gif() -> bytes:
    frames = [reference().convert("P", palette=Image.Palette.ADAPTIVE),
              Image.new("RGB", (W, H), "black").convert("P")]
    out = io.BytesIO()
    frames[0].save(out, format="GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    return out.getvalue()


def variants() -> dict[str, tuple[bytes, Image.Image, int]]:
    """name -> (upload, the picture a viewer shows, tolerance of a channel mean per quadrant)."""
    ref = reference()
    gray = ref.convert("L").convert("RGB")
    alpha, alpha_shown = _alpha()
    return {
        "jpeg": (encode(ref, "JPEG", quality=95), ref, 12),
        "png": (encode(ref, "PNG"), ref, 1),
        "cmyk-jpeg": (encode(ref.convert("CMYK"), "JPEG", quality=95), ref, 16),
        "grayscale-png": (encode(ref.convert("L"), "PNG"), gray, 1),
        "grayscale-16bit-png": (gray16(ref), gray, 1),
        "palette-png": (encode(ref.convert("P", palette=Image.Palette.ADAPTIVE), "PNG"), ref, 4),
        "alpha-png": (alpha, alpha_shown, 1),
        "exif-rotated-jpeg": (_exif_rotated(), ref, 12),
        "animated-gif": (_animated_gif(), ref, 4),
        "webp": (encode(ref, "WEBP", lossless=True), ref, 1),
        "bmp": (encode(ref, "BMP"), ref, 1),
    }


def quadrant_means(image: Image.Image) -> np.ndarray:
    """(4, 3) mean color of each quadrant's inner half (edges blur in lossy formats)."""
    pixels = np.asarray(image.convert("RGB"), dtype=np.float64)
    h, w = pixels.shape[:2]
    qh, qw = h // 2, w // 2
    out = []
    for y, x in ((0, 0), (0, qw), (qh, 0), (qh, qw)):
        out.append(pixels[y + qh // 4: y + 3 * qh // 4, x + qw // 4: x + 3 * qw // 4].mean(axis=(0, 1)))
    return np.array(out)


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_bomb(side: int = 50_000) -> bytes:
    """A valid PNG header claiming ``side`` x ``side`` RGB pixels, with a few bytes of data."""
    ihdr = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", zlib.compress(b"\0" * 1024))
            + _chunk(b"IEND", b""))


def damaged_exif(fmt: str = "PNG") -> bytes:
    """The reference picture whose EXIF block (PNG eXIf / WebP EXIF chunk) is not a TIFF structure.

    Found by tests/test_fuzz_parsing.py: PIL parses EXIF only when asked (orientation), raising SyntaxError.
    """
    return encode(reference(), fmt, exif=b"\0")


def unwritable_exif(fmt: str = "PNG") -> bytes:
    """The reference picture stored turned, with an EXIF block PIL reads but cannot write back: orientation 6
    and an ASCII tag (Make) stored as a rational. Found by tests/test_fuzz_parsing.py (AttributeError, a 500)."""
    entries = [(0x010F, 5, 1, 38), (0x0112, 3, 1, 6)]  # (tag, type, count, value or offset): Make -> 38
    directory = struct.pack("<H", len(entries)) + b"".join(struct.pack("<HHII", *e) for e in entries)
    tiff = b"II*\0\x08\0\0\0" + directory + struct.pack("<I", 0) + struct.pack("<II", 1, 2)
    return encode(reference().transpose(Image.Transpose.ROTATE_90), fmt, exif=tiff)


HEIC = b"\0\0\0\x18ftypheic\0\0\0\0mif1heic" + b"\0" * 64
SVG = (b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" width="10" height="10">'
       b"<script>alert(1)</script></svg>")
HTML = b"<!doctype html><html><body><img src=x onerror=alert(1)></body></html>"
NOT_AN_IMAGE = b"hello, this is a text file and not a photo\n" * 10


class LazyBody(io.RawIOBase):
    """A request body of ``size`` zero bytes made only as far as it is read (``read_bytes`` counts)."""

    def __init__(self, size: int):
        self.size = size
        self.position = 0
        self.read_bytes = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:  # the test client measures the body by seeking to its end
        return True

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        self.position = {io.SEEK_SET: 0, io.SEEK_CUR: self.position, io.SEEK_END: self.size}[whence] + offset
        return self.position

    def tell(self) -> int:
        return self.position

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        n = max(0, min(len(buffer), self.size - self.position))
        buffer[:n] = bytes(n)
        self.position += n
        self.read_bytes += n
        return n


def truncated(data: bytes) -> bytes:
    return data[: len(data) // 3]


Builder = Callable[[], bytes]
