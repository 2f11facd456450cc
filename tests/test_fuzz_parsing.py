"""Bounded property-based fuzzing (hypothesis) of what clients control: upload bytes and request fields.

* Upload decoding (``eyepic.imaging``): arbitrary bytes, bytes behind a
  supported signature, and real JPEG/PNG/GIF/WebP/BMP uploads with bytes
  overwritten, inserted or cut off. Each is either a decoded upright RGB
  image within the pixel and side limits (whose model bytes and crops can be
  made too) or the project's ``ImageError`` / ``UnsupportedImageType``:
  never another exception, never a hang.
* Request fields (``services.requests``, the one validator behind HTTP and
  gRPC): arbitrary ``k``, filters, box and garment values, as strings (HTTP
  forms) or numbers (gRPC messages). Each is either a valid query whose
  values are within the rules or ``InvalidRequest`` naming known fields.
* The gRPC servicer with arbitrary request bytes and fuzzed messages:
  an answer, or INVALID_ARGUMENT / NOT_FOUND, never another status.

Bounded for CI: ``max_examples`` per property, a per-example deadline (a hang
fails), derandomized and without an example database, so CI runs the same
inputs every time.
"""

from __future__ import annotations

import math
import os
import struct
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import grpc
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from PIL import PngImagePlugin
from uploads import encode, reference, variants

from eyepic import taxonomy
from eyepic.colors import COLOR_NAMES
from eyepic.imaging import ImageError, crop_encoded, load_image, model_bytes, validate_box
from eyepic.settings import Settings
from eyepic.v1 import recommender_pb2 as pb
from grpcapi.server import RecommenderService, _parsed
from indexer.embedded import EmbeddedIndex
from services.requests import FILTER_FIELDS, InvalidRequest, search_query, similar_query
from serving.analyzer import Analyzer

from fakes import FakeModels, make_items

# CI's bound; EYEPIC_FUZZ_EXAMPLES=5000 EYEPIC_FUZZ_RANDOM=1 searches longer and wider by hand.
EXAMPLES = int(os.environ.get("EYEPIC_FUZZ_EXAMPLES", "500"))
FUZZ = settings(max_examples=EXAMPLES, deadline=timedelta(seconds=3),
                derandomize=not os.environ.get("EYEPIC_FUZZ_RANDOM"), database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.function_scoped_fixture])
MAX_PIXELS = 250_000  # small, so headers claiming more are refused before decoding
MAX_SIDE = 400
MAX_K = 20

SIGNATURES = [b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF87a", b"GIF89a", b"BM", b"RIFF\0\0\0\0WEBPVP8 "]
UPLOADS = {name: data for name, (data, _, _) in variants().items()}


# --- upload decoding -----------------------------------------------------------------------------

@st.composite
def mutated_uploads(draw: st.DrawFn) -> bytes:
    """A real upload of a supported type with some bytes overwritten, inserted, or the tail cut off."""
    data = bytearray(UPLOADS[draw(st.sampled_from(sorted(UPLOADS)))])
    for _ in range(draw(st.integers(0, 8))):
        at = draw(st.integers(0, len(data) - 1))
        if draw(st.booleans()):
            data[at] = draw(st.integers(0, 255))
        else:
            data[at:at] = draw(st.binary(min_size=1, max_size=16))
    if draw(st.booleans()):  # headers are the interesting part: mutate near the start more often
        at = draw(st.integers(0, min(64, len(data) - 1)))
        data[at] = draw(st.integers(0, 255))
    if draw(st.booleans()):
        data = data[: draw(st.integers(0, len(data)))]
    return bytes(data)


def with_exif(kind: str, exif: bytes) -> bytes:
    """The reference picture as a JPEG, PNG or WebP carrying ``exif`` as its EXIF block (PIL writes it as given)."""
    return encode(reference(), kind, exif=exif)


# EXIF is parsed from its own bytes (a TIFF structure) after decoding: arbitrary blocks, and ones that
# start like TIFF (both byte orders) so the parser goes on to the directory entries, orientation among them.
@st.composite
def tiff_directories(draw: st.DrawFn) -> bytes:
    """A little-endian TIFF header and one directory of entries with drawn tags, types, counts and values,
    orientation (turned into a transpose, then written back) and the EXIF/GPS sub-directory pointers among them."""
    tags = st.one_of(st.sampled_from([0x0112, 0x8769, 0x8825, 0x010F, 0x0132, 0x927C]), st.integers(0, 0xFFFF))
    entries = draw(st.lists(st.tuples(tags, st.integers(0, 13), st.one_of(st.integers(0, 4), st.integers(0, 2**32 - 1)),
                                      st.one_of(st.integers(1, 8), st.integers(0, 2**32 - 1))), max_size=6))
    directory = struct.pack("<H", len(entries)) + b"".join(struct.pack("<HHII", *e) for e in entries)
    return b"II*\0\x08\0\0\0" + directory + struct.pack("<I", 0) + draw(st.binary(max_size=32))


exif_blocks = st.one_of(
    st.binary(max_size=64),
    tiff_directories(),
    st.builds(lambda head, rest: head + rest, st.sampled_from([b"II*\0\x08\0\0\0", b"MM\0*\0\0\0\x08"]),
              st.binary(max_size=64)),
)
def with_xmp(kind: str, xmp: bytes) -> bytes:
    """The reference picture as a PNG (iTXt) or WebP (XMP chunk) carrying ``xmp``; PIL reads orientation from it."""
    if kind == "PNG":
        info = PngImagePlugin.PngInfo()
        info.add_itxt("XML:com.adobe.xmp", xmp.decode("utf-8", "replace"))
        return encode(reference(), "PNG", pnginfo=info)
    return encode(reference(), kind, xmp=xmp)


xmp_blocks = st.one_of(st.binary(max_size=64), st.builds(
    lambda before, value, after: before + b"<tiff:Orientation>" + value + b"</tiff:Orientation>" + after,
    st.binary(max_size=16), st.binary(max_size=4), st.binary(max_size=16)))
uploads = st.one_of(
    st.binary(max_size=512),
    st.builds(with_xmp, st.sampled_from(["PNG", "WEBP"]), xmp_blocks),
    st.builds(with_exif, st.sampled_from(["JPEG", "PNG", "WEBP"]), exif_blocks),
    st.builds(lambda sig, tail: sig + tail, st.sampled_from(SIGNATURES), st.binary(max_size=512)),
    mutated_uploads(),
)


def check_upload(data: bytes) -> None:
    try:
        image = load_image(data, max_pixels=MAX_PIXELS, max_side=MAX_SIDE)
    except ImageError:  # UnsupportedImageType is one
        return
    assert image.mode == "RGB"
    width, height = image.size
    assert width >= 1 and height >= 1 and width * height <= MAX_PIXELS and max(image.size) <= MAX_SIDE
    # what the analyzer does next with a decoded upload must not fail either
    assert model_bytes(data, image)
    assert crop_encoded(image, (0.25, 0.25, 0.75, 0.75), 0.1)


@FUZZ
@given(data=uploads)
@example(data=b"")
@example(data=UPLOADS["jpeg"])
def test_any_upload_decodes_within_limits_or_is_an_image_error(data: bytes) -> None:
    check_upload(data)


# --- request fields ------------------------------------------------------------------------------

VOCABULARY = {"group": taxonomy.GROUP_NAMES, "type": taxonomy.TYPE_NAMES, "color": COLOR_NAMES}
words = st.one_of(st.text(max_size=30), st.sampled_from([*taxonomy.GROUP_NAMES, *COLOR_NAMES, " Top ,black,,"]))
numbers_as_text = st.one_of(st.integers(-10**6, 10**6).map(str), st.floats().map(str),
                            st.sampled_from(["", " ", "1e3", "0x10", "٣", "1_0", "9" * 5000, "nan", "-0"]))
raw_k = st.one_of(st.none(), st.integers(-2**63, 2**63), words, numbers_as_text)
raw_filters = st.dictionaries(st.sampled_from([*FILTER_FIELDS, "other"]), st.lists(words, max_size=4), max_size=5)
floats = st.floats(allow_nan=True, allow_infinity=True)
raw_box = st.one_of(
    st.none(), words, numbers_as_text,
    st.lists(st.one_of(floats, numbers_as_text), max_size=6).map(lambda v: ",".join(map(str, v))),
    st.lists(floats, max_size=6), st.tuples(floats, floats, floats, floats),
)
raw_garment = st.one_of(st.none(), st.integers(-2**63, 2**63), words, numbers_as_text)
FIELDS = {"image", "k", "box", "garment", "item_id", *FILTER_FIELDS}


def check_filters(filters: Any) -> None:
    for name, vocabulary in VOCABULARY.items():
        assert set(getattr(filters, name)) <= set(vocabulary)
    assert all(value and value == value.strip() for value in filters.shop)


def check_refusal(exc: InvalidRequest) -> None:
    assert exc.problems and {p.name for p in exc.problems} <= FIELDS
    assert all(p.reason for p in exc.problems)


@FUZZ
@given(image=st.one_of(st.none(), st.binary(max_size=64)), k=raw_k, filters=raw_filters, box=raw_box,
       garment=raw_garment)
@example(image=b"x", k="9" * 5000, filters={}, box="nan,0,1,1", garment=None)
@example(image=b"x", k=None, filters={"color": [" Black ,BLUE"]}, box=[0, 0, 1, 1], garment="0")
def test_search_fields_give_a_valid_query_or_invalid_request(image, k, filters, box, garment) -> None:
    try:
        query = search_query(image=image, k=k, filters=filters, box=box, garment=garment,
                             default_k=5, max_k=MAX_K, max_image_bytes=32)
    except InvalidRequest as exc:
        check_refusal(exc)
        return
    assert image is not None and len(image) <= 32 and query.image == image
    assert 1 <= query.k <= MAX_K
    check_filters(query.filters)
    assert query.box is None or query.garment is None
    if query.box is not None:
        assert all(math.isfinite(v) for v in query.box) and validate_box(query.box) == query.box
    assert query.garment is None or query.garment >= 0


@FUZZ
@given(item_id=st.text(max_size=40), k=raw_k, filters=raw_filters)
def test_similar_fields_give_a_valid_query_or_invalid_request(item_id, k, filters) -> None:
    try:
        query = similar_query(item_id=item_id, k=k, filters=filters, default_k=5, max_k=MAX_K)
    except InvalidRequest as exc:
        check_refusal(exc)
        return
    assert query.item_id == item_id and item_id
    assert 1 <= query.k <= MAX_K
    check_filters(query.filters)


# --- the same through the gRPC servicer ----------------------------------------------------------

class Aborted(Exception):
    def __init__(self, code: grpc.StatusCode, details: str):
        super().__init__(f"{code}: {details}")
        self.code = code


class Context:
    """The part of grpc.ServicerContext the servicer uses: abort raises, as gRPC's does."""

    def abort(self, code: grpc.StatusCode, details: str) -> None:
        raise Aborted(code, details)


@pytest.fixture(scope="module")
def servicer(catalog_photos: dict[str, list[Path]],
             tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RecommenderService, str]]:
    tmp = tmp_path_factory.mktemp("fuzz-grpc")
    settings_ = Settings(var_dir=tmp / "var", model_dir=tmp / "models", default_k=3, max_k=MAX_K,
                         max_image_pixels=MAX_PIXELS)
    index = EmbeddedIndex(settings_.index_dir / "test.sqlite")
    items = make_items(catalog_photos)
    index.upsert(items)
    yield RecommenderService(settings_, Analyzer(FakeModels()), index), items[0].id
    index.close()


EXPECTED_CODES = {grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND}
texts = st.lists(words, max_size=3)
pb_filters = st.builds(pb.Filters, group=texts, type=texts, color=texts, shop=texts)
pb_box = st.builds(pb.Box, x0=floats, y0=floats, x1=floats, y1=floats)


def call(method: Any, request: Any) -> None:
    try:
        method(request, Context())
    except Aborted as exc:
        assert exc.code in EXPECTED_CODES, exc


@FUZZ
@given(raw=st.one_of(st.binary(max_size=256), st.builds(lambda m: m.SerializeToString(), st.builds(
    pb.SearchRequest, image=st.one_of(mutated_uploads(), st.binary(max_size=64)), k=st.integers(-2**31, 2**31 - 1),
    filters=pb_filters))))
def test_grpc_search_bytes_answer_or_are_invalid_argument(servicer, raw: bytes) -> None:
    call(_parsed(servicer[0].Search, pb.SearchRequest), raw)


@FUZZ
@given(image=st.sampled_from(sorted(UPLOADS)), k=st.integers(-2**31, 2**31 - 1), filters=pb_filters,
       box=st.one_of(st.none(), pb_box), garment=st.one_of(st.none(), st.integers(-2**31, 2**31 - 1)))
def test_grpc_search_fields_answer_or_are_invalid_argument(servicer, image, k, filters, box, garment) -> None:
    request = pb.SearchRequest(image=UPLOADS[image], k=k, filters=filters)
    if box is not None:
        request.box.CopyFrom(box)
    if garment is not None:
        request.garment = garment
    call(servicer[0].Search, request)


@FUZZ
@given(item_id=st.one_of(st.text(max_size=40), st.just("")), real=st.booleans(),
       k=st.integers(-2**31, 2**31 - 1), filters=pb_filters)
def test_grpc_similar_items_answer_or_are_refused(servicer, item_id, real, k, filters) -> None:
    request = pb.SimilarItemsRequest(item_id=servicer[1] if real else item_id, k=k, filters=filters)
    call(servicer[0].SimilarItems, request)
