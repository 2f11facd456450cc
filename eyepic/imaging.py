"""Image decoding and preprocessing, written once.

Two halves, on purpose:

* ``decode_and_resize`` is TensorFlow: encoded bytes -> float image of the
  model's input size. Training's tf.data pipeline maps it, and every export's
  ``serving_default`` calls it inside the graph, so training and serving can
  not drift apart.
* ``load_image`` / ``crop_encoded`` are PIL: they validate uploads (with clear
  errors, before any model runs), apply EXIF orientation (phone photos), cap
  the size, and re-encode garment crops losslessly (BMP or PNG) so the model sees the
  same pixels the crop had.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image, UnidentifiedImageError

if TYPE_CHECKING:
    import tensorflow as tf


IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif"})


def iter_images(folder: Path) -> Iterator[Path]:
    """Image files under ``folder`` (any depth), by suffix."""
    for path in Path(folder).rglob("*"):
        if path.suffix.lower() in IMAGE_SUFFIXES and path.is_file():
            yield path


class ImageError(ValueError):
    """Bytes that are not a usable image; the message says why."""


def letterbox(image: tf.Tensor, size: int) -> tf.Tensor:
    """(H, W, 3) image -> (size, size, 3) float32: aspect kept, centred, zero-padded.

    ``tf.image.resize_with_pad``'s arithmetic, in exact integers: its float32
    version, rewritten by grappler inside a tf.function, resizes e.g. an
    830 px side to 191 rows instead of 192, so an export saw other pixels
    than eager code. This is bit-identical in and out of graphs.
    """
    import tensorflow as tf

    shape = tf.shape(image, out_type=tf.int64)
    h, w = shape[0], shape[1]
    m = tf.maximum(h, w)
    rh, rw = tf.maximum(h * size // m, 1), tf.maximum(w * size // m, 1)
    image = tf.image.resize(tf.cast(image, tf.float32), tf.cast(tf.stack([rh, rw]), tf.int32), antialias=True)
    pad_y, pad_x = (size * m - h * size) // (2 * m), (size * m - w * size) // (2 * m)
    image = tf.image.pad_to_bounding_box(image, tf.cast(pad_y, tf.int32), tf.cast(pad_x, tf.int32), size, size)
    return tf.clip_by_value(image, 0.0, 255.0)


def decode_and_resize(encoded: tf.Tensor, size: int) -> tf.Tensor:
    """Encoded JPEG/PNG/GIF/BMP bytes (scalar string) -> (size, size, 3) float32 in [0, 255].

    Aspect ratio is kept and the rest padded, so a long dress still looks long.
    Pixel scaling to the backbone's range happens inside the model.
    """
    import tensorflow as tf

    return letterbox(tf.io.decode_image(encoded, channels=3, expand_animations=False), size)


def crop_and_resize(encoded: tf.Tensor, box: tf.Tensor, size: int) -> tf.Tensor:
    """Like ``decode_and_resize`` for the region ``box`` = [x0, y0, x1, y1] (0-1)."""
    import tensorflow as tf

    image = tf.io.decode_image(encoded, channels=3, expand_animations=False)
    shape = tf.cast(tf.shape(image)[:2], tf.float32)
    y0 = tf.cast(tf.math.floor(box[1] * shape[0]), tf.int32)
    x0 = tf.cast(tf.math.floor(box[0] * shape[1]), tf.int32)
    y1 = tf.maximum(tf.cast(tf.math.ceil(box[3] * shape[0]), tf.int32), y0 + 1)
    x1 = tf.maximum(tf.cast(tf.math.ceil(box[2] * shape[1]), tf.int32), x0 + 1)
    return letterbox(image[y0:y1, x0:x1], size)


# What uploads may be, by their leading bytes (never by a client's filename or
# Content-Type): the formats both PIL here and tf.io.decode_image in the graph read.
SUPPORTED_TYPES: dict[str, str] = {
    "JPEG": "image/jpeg",
    "PNG": "image/png",
    "WEBP": "image/webp",
    "GIF": "image/gif",
    "BMP": "image/bmp",
}
_SIGNATURES = ((b"\xff\xd8\xff", "JPEG"), (b"\x89PNG\r\n\x1a\n", "PNG"), (b"GIF87a", "GIF"),
               (b"GIF89a", "GIF"), (b"BM", "BMP"))
_WHITE = (255, 255, 255, 255)


class UnsupportedImageType(ImageError):
    """Bytes of a kind Eyepic does not read (HEIC, SVG, HTML, TIFF, text...): HTTP 415."""

    def __init__(self, message: str):
        super().__init__(f"{message}; send one of {', '.join(SUPPORTED_TYPES.values())}")
        self.supported = list(SUPPORTED_TYPES.values())


def sniff_format(data: bytes) -> str:
    """The PIL format name of ``data`` from its magic bytes, or UnsupportedImageType."""
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    for signature, name in _SIGNATURES:
        if data.startswith(signature):
            return name
    raise UnsupportedImageType("not an image of a supported type")


def load_image(data: bytes, max_pixels: int = 40_000_000, max_side: int = 1600) -> Image.Image:
    """Validate and decode uploaded bytes to an upright RGB PIL image.

    Raises UnsupportedImageType for other kinds of files and ImageError for
    empty, truncated or oversized images. 16-bit images are scaled (not
    clipped) to 8 bits and transparency is composited on white, so a photo
    keeps the colors a viewer shows. Large photos are downscaled to
    ``max_side``: garments don't need more and the models resize far below it.
    """
    if not data:
        raise ImageError("the upload is empty")
    kind = sniff_format(data)
    try:
        with Image.open(io.BytesIO(data), formats=[kind]) as probe:
            width, height = probe.size
            if width * height > max_pixels:
                raise ImageError(
                    f"image is {width}x{height}; at most {max_pixels} pixels are accepted"
                )
            probe.verify()
        image = Image.open(io.BytesIO(data), formats=[kind])
        image.load()
        image = _upright(image)  # EXIF is parsed only here: a block that is not TIFF raises SyntaxError
    except ImageError:
        raise
    except Image.DecompressionBombError:
        raise ImageError(f"image has too many pixels; at most {max_pixels} pixels are accepted") from None
    except UnidentifiedImageError:
        raise ImageError(f"the {kind} image is damaged or truncated (unreadable header)") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise ImageError(f"the image is damaged or truncated ({exc})") from None
    image = _to_rgb(image)
    if max(image.size) > max_side:
        image.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    return image


_ORIENTATION_TRANSPOSE = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180,
                          4: Image.Transpose.FLIP_TOP_BOTTOM, 5: Image.Transpose.TRANSPOSE,
                          6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE, 8: Image.Transpose.ROTATE_90}


def _upright(image: Image.Image) -> Image.Image:
    """``image`` turned as its EXIF orientation says (EXIF or XMP, as ``getexif`` reads it).

    The pixels only: PIL's ``ImageOps.exif_transpose`` also writes the EXIF block back without the
    orientation, and that raises on blocks PIL reads but cannot write (an ASCII tag stored as a
    rational: AttributeError), which made such uploads a 500. Nothing downstream reads the block.
    """
    orientation = image.getexif().get(_EXIF_ORIENTATION, 1)
    method = _ORIENTATION_TRANSPOSE.get(orientation) if isinstance(orientation, int) else None
    return image if method is None else image.transpose(method)


def _has_alpha(image: Image.Image) -> bool:
    return image.mode in {"RGBA", "LA", "PA", "RGBa", "La"} or "transparency" in image.info


def _to_rgb(image: Image.Image) -> Image.Image:
    """8-bit RGB as a viewer shows it: 16/32-bit grey scaled down, transparency on white.

    PIL's own ``convert`` clips 16-bit values at 255, so a mid-grey 16-bit
    PNG (values ~30000) would turn white.
    """
    if image.mode.startswith("I;16") or image.mode == "I":
        values = np.asarray(image, dtype=np.float64)
        image = Image.fromarray(np.clip(np.rint(values / 257.0), 0, 255).astype(np.uint8), mode="L")
    elif image.mode == "F":
        image = Image.fromarray(np.clip(np.rint(np.asarray(image)), 0, 255).astype(np.uint8), mode="L")
    if _has_alpha(image):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, _WHITE)
        background.alpha_composite(rgba)
        return background.convert("RGB")
    return image.convert("RGB")


def encode_png(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, format="PNG", compress_level=1)
    return out.getvalue()


# Formats and modes tf.io.decode_image(channels=3) turns into the same upright
# RGB picture load_image makes (palette and alpha images are composited
# differently, so they are re-encoded).
_PASSTHROUGH_FORMATS = frozenset({"JPEG", "PNG"})
_PASSTHROUGH_MODES = frozenset({"RGB", "L"})
_EXIF_ORIENTATION = 0x0112


def model_bytes(data: bytes, image: Image.Image) -> bytes:
    """Encoded bytes of ``image`` (what ``load_image`` made of ``data``) for a model.

    The upload itself when the graph's decoder sees the same picture in it
    (JPEG or PNG, RGB or grey, not rotated by EXIF, not downscaled): it saves
    a PNG encode, about a third of the detector's time per photo. Otherwise
    a lossless PNG of ``image``.
    """
    with Image.open(io.BytesIO(data)) as original:
        same = (
            original.format in _PASSTHROUGH_FORMATS
            and original.mode in _PASSTHROUGH_MODES
            and original.size == image.size
            and "transparency" not in original.info
            and original.getexif().get(_EXIF_ORIENTATION, 1) == 1
        )
    return data if same else encode_png(image)


# Crops up to this many raw RGB bytes go to the models as BMP: lossless like PNG and
# decoded by the graph's tf.io.decode_image to the same pixels, but written ~40x
# faster (0.2 ms against 11 ms for a 300 x 500 crop; a search has two or three).
# Larger crops stay PNG so a batch of them stays well under the gRPC message limit.
BMP_CROP_MAX_BYTES = 2 * 1024 * 1024


def crop_encoded(image: Image.Image, box: tuple[float, float, float, float], margin: float = 0.0) -> bytes:
    """Lossless bytes (BMP, or PNG when large) of ``box`` (normalised x0, y0, x1, y1),
    widened by ``margin`` of its size."""
    crop = image.crop(pixel_box(image, expand_box(box, margin)))
    if crop.mode != "RGB" or crop.width * crop.height * 3 > BMP_CROP_MAX_BYTES:
        return encode_png(crop)
    out = io.BytesIO()
    crop.save(out, format="BMP")
    return out.getvalue()


def pixel_box(image: Image.Image, box: tuple[float, float, float, float]) -> tuple[int, int, int, int]:
    """The pixel rectangle covering a normalised box, at least one pixel each way."""
    x0, y0, x1, y1 = box
    w, h = image.size
    px = (int(np.floor(x0 * w)), int(np.floor(y0 * h)), int(np.ceil(x1 * w)), int(np.ceil(y1 * h)))
    return px[0], px[1], max(px[2], px[0] + 1), max(px[3], px[1] + 1)


def color_shares(image: Image.Image, box: tuple[float, float, float, float] = (0.0, 0.0, 1.0, 1.0),
                 window: float = 1.0, max_side: int = 96) -> np.ndarray:
    """Fraction of the pixels in the central ``window`` of ``box`` named each palette color.

    ``window`` is the kept share of the box's width and height around its
    center: a garment fills the middle of its box, background and skin
    crowd the edges (``training.calibrate`` picks it per export). Nearest-
    neighbour subsampling to at most ``max_side`` pixels a side keeps real
    pixel colors (no blending at edges) and costs well under a millisecond.
    """
    from eyepic.colors import color_votes

    if not 0 < window <= 1:
        raise ValueError(f"window must be in (0, 1], got {window}")
    crop = image.crop(pixel_box(image, expand_box(box, -(1.0 - window) / 2)))
    scale = min(1.0, max_side / max(crop.size))
    if scale < 1.0:
        crop = crop.resize((max(1, round(crop.width * scale)), max(1, round(crop.height * scale))),
                           Image.Resampling.NEAREST)
    return color_votes(np.asarray(crop.convert("RGB")))


def expand_box(
    box: tuple[float, float, float, float], margin: float
) -> tuple[float, float, float, float]:
    """Widen a normalised box by ``margin`` of its width/height (a negative one narrows
    it about its center), clipped to the image."""
    x0, y0, x1, y1 = box
    dx, dy = (x1 - x0) * margin, (y1 - y0) * margin
    return (max(0.0, x0 - dx), max(0.0, y0 - dy), min(1.0, x1 + dx), min(1.0, y1 + dy))


def validate_box(box: object) -> tuple[float, float, float, float]:
    """A user-supplied box as four floats with 0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1."""
    try:
        values = tuple(float(v) for v in box)  # type: ignore[union-attr]
    except (TypeError, ValueError):
        raise ValueError("box must be four numbers x0,y0,x1,y1 between 0 and 1") from None
    if len(values) != 4:
        raise ValueError("box must be four numbers x0,y0,x1,y1 between 0 and 1")
    x0, y0, x1, y1 = values
    if not (0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1):
        raise ValueError("box must satisfy 0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1")
    return values  # type: ignore[return-value]
