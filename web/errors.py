"""Every error the web tier returns, as RFC 9457 problem JSON, from one place.

Handlers raise ``Problem`` (or let a known domain error through: the search
service's InvalidRequest and ItemNotFound, ImageError (415 for
UnsupportedImageType), ModelUnavailable, IndexUnavailable,
EventStoreUnavailable, and access control's Unauthenticated (401),
Forbidden (403) and RateLimited (429 with Retry-After)); this module turns each into
``application/problem+json`` with ``type``, ``title``, ``status``, ``detail``
and, for bad input, ``invalid_params`` naming each field and why. Unknown
exceptions are not swallowed: Flask logs them with their traceback and the
client sees a bare 500 problem without internals.
"""

from __future__ import annotations

from typing import Any

from flask import Flask, Response, jsonify, request
from werkzeug.exceptions import HTTPException, InternalServerError, RequestEntityTooLarge

from eyepic.exports import ModelUnavailable
from eyepic.imaging import ImageError, UnsupportedImageType
from indexer.base import IndexUnavailable
from services.access import Forbidden, RateLimited, Unauthenticated
from services.requests import InvalidRequest, ItemNotFound
from taste.events import EventStoreUnavailable
from web.services import services

PROBLEM_JSON = "application/problem+json"
TYPE_PREFIX = "urn:eyepic:problem:"  # stable identifiers clients can switch on
RETRY_AFTER_S = 30  # a model or index that is loading or restarting


class Problem(Exception):
    """An HTTP error with an RFC 9457 body; raise it from any handler."""

    def __init__(
        self,
        status: int,
        kind: str,
        title: str,
        detail: str,
        invalid_params: list[dict[str, str]] | None = None,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ):
        super().__init__(detail)
        self.status = status
        self.kind = kind
        self.title = title
        self.detail = detail
        self.invalid_params = invalid_params or []
        self.headers = headers or {}
        self.extra = extra

    def response(self) -> Response:
        body: dict[str, Any] = {
            # "about:blank": nothing beyond the HTTP status itself (RFC 9457 4.2.1)
            "type": TYPE_PREFIX + self.kind if self.kind else "about:blank",
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
            "instance": request.path,
        }
        if self.invalid_params:
            body["invalid_params"] = self.invalid_params
        body.update(self.extra)
        resp = jsonify(body)
        resp.status_code = self.status
        resp.mimetype = PROBLEM_JSON
        resp.headers.update(self.headers)
        return resp


def invalid(name: str, reason: str) -> Problem:
    """400 for one bad request parameter."""
    return invalid_many([{"name": name, "reason": reason}])


def invalid_many(params: list[dict[str, str]]) -> Problem:
    detail = "; ".join(f"{p['name']}: {p['reason']}" for p in params)
    return Problem(400, "invalid-parameter", "Invalid request parameter", detail, invalid_params=params)


def _problem(exc: Problem) -> Response:
    return exc.response()


def _invalid_request(exc: InvalidRequest) -> Response:
    return invalid_many([{"name": p.name, "reason": p.reason} for p in exc.problems]).response()


def _item_not_found(exc: ItemNotFound) -> Response:
    return Problem(404, "item-not-found", "No such item", str(exc),
                   invalid_params=[{"name": "item_id", "reason": "no catalog item has this id"}]).response()


def _image_error(exc: ImageError) -> Response:
    return Problem(
        422,
        "invalid-image",
        "The upload is not a usable image",
        str(exc),
        invalid_params=[{"name": "image", "reason": str(exc)}],
    ).response()


def _unsupported_type(exc: UnsupportedImageType) -> Response:
    return unsupported_media("image", str(exc), exc.supported).response()


def unsupported_media(name: str, reason: str, supported: list[str]) -> Problem:
    """415 for a body or upload of a kind this route does not read; ``supported`` lists what it does."""
    return Problem(
        415,
        "unsupported-media-type",
        "Unsupported media type",
        reason,
        invalid_params=[{"name": name, "reason": reason}],
        supported=supported,
    )


def _too_large(exc: RequestEntityTooLarge) -> Response:
    limit = services().settings.max_upload_bytes
    return Problem(
        413,
        "upload-too-large",
        "Upload too large",
        f"the upload is larger than the limit of {_size(limit)} ({limit} bytes)",
        invalid_params=[{"name": "image", "reason": f"larger than {limit} bytes"}],
        max_upload_bytes=limit,
    ).response()


def _size(n: int) -> str:
    return f"{n / 2**20:.1f} MiB" if n >= 2**20 else f"{n / 2**10:.0f} KiB"


def _model_unavailable(exc: ModelUnavailable) -> Response:
    return Problem(
        503,
        "model-unavailable",
        "The garment model is not available",
        str(exc),
        headers={"Retry-After": str(RETRY_AFTER_S)},
    ).response()


def _index_unavailable(exc: IndexUnavailable) -> Response:
    return Problem(
        503,
        "index-unavailable",
        "The catalog index is not available",
        str(exc),
        headers={"Retry-After": str(RETRY_AFTER_S)},
    ).response()


def _unauthenticated(exc: Unauthenticated) -> Response:
    return Problem(401, "unauthenticated", "A credential is needed", str(exc),
                   invalid_params=[{"name": "Authorization", "reason": "missing"}],
                   headers={"WWW-Authenticate": 'Bearer realm="eyepic"'}).response()


def _forbidden(exc: Forbidden) -> Response:
    return Problem(403, "forbidden", "This credential may not do that", str(exc),
                   invalid_params=[{"name": "Authorization",
                                    "reason": "not an API key, nor this user's session token"}]).response()


def _rate_limited(exc: RateLimited) -> Response:
    return Problem(429, "rate-limited", "Too many requests", str(exc),
                   headers={"Retry-After": str(exc.retry_after_s)}).response()


def _events_unavailable(exc: EventStoreUnavailable) -> Response:
    return Problem(503, "events-unavailable", "The events store is not available", str(exc),
                   headers={"Retry-After": str(RETRY_AFTER_S)}).response()


def _http_error(exc: HTTPException) -> Response | HTTPException:
    """Problem JSON for the API and health routes; the page keeps Flask's HTML."""
    if not _is_api(request.path):
        return exc
    status = exc.code or 500
    detail = exc.description or ""
    if status == 404:
        detail = f"no such resource: {request.path}"
    problem = Problem(status, "not-found" if status == 404 else "", exc.name, detail)
    resp = problem.response()
    if status == 405 and isinstance(exc.valid_methods, list | tuple | set):  # type: ignore[attr-defined]
        resp.headers["Allow"] = ", ".join(sorted(exc.valid_methods))  # type: ignore[attr-defined]
    return resp


def _internal_error(exc: InternalServerError) -> Response | InternalServerError:
    """The last resort after Flask has logged the traceback: no internals leak."""
    if not _is_api(request.path):
        return exc
    return Problem(
        500,
        "internal-error",
        "Internal Server Error",
        "the server failed to handle this request; the error has been logged",
    ).response()


def _is_api(path: str) -> bool:
    return path.startswith("/api/") or path == "/api" or path in {"/healthz", "/readyz"}


def init_app(app: Flask) -> None:
    app.register_error_handler(Problem, _problem)
    app.register_error_handler(InvalidRequest, _invalid_request)
    app.register_error_handler(ItemNotFound, _item_not_found)
    app.register_error_handler(ImageError, _image_error)
    app.register_error_handler(UnsupportedImageType, _unsupported_type)
    app.register_error_handler(RequestEntityTooLarge, _too_large)
    app.register_error_handler(ModelUnavailable, _model_unavailable)
    app.register_error_handler(IndexUnavailable, _index_unavailable)
    app.register_error_handler(Unauthenticated, _unauthenticated)
    app.register_error_handler(Forbidden, _forbidden)
    app.register_error_handler(RateLimited, _rate_limited)
    app.register_error_handler(EventStoreUnavailable, _events_unavailable)
    app.register_error_handler(InternalServerError, _internal_error)
    app.register_error_handler(HTTPException, _http_error)
