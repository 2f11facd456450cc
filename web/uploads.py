"""The photo a form carries: one reader for every route that takes an upload (search, complete the look)."""

from __future__ import annotations

from flask import request
from werkzeug.exceptions import RequestEntityTooLarge

from web.errors import unsupported_media

FORM_TYPES = ("multipart/form-data", "application/x-www-form-urlencoded")


def form_photo(max_bytes: int) -> bytes | None:
    """The bytes of the form's ``image`` file (None when absent), read at most ``max_bytes`` + 1.

    A body that is not a form is refused before it is parsed: too large first (413), whatever
    its type, then 415 saying what to send instead of a later "image missing".
    """
    if request.content_length and request.mimetype not in FORM_TYPES:
        limit = request.max_content_length
        if limit is not None and request.content_length > limit:
            raise RequestEntityTooLarge()
        raise unsupported_media("Content-Type", f"a {request.mimetype or 'untyped'} body is not read here; send "
                                "multipart/form-data with the photo in the file field 'image'", [FORM_TYPES[0]])
    upload = request.files.get("image")  # parsing the body may raise 413
    if upload is None:
        return None
    data = upload.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise RequestEntityTooLarge()
    return data
