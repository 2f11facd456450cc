"""Bounded, reproducible fuzzing of every documented HTTP route (schemathesis).

Schemathesis reads the app's own ``/api/v1/openapi.json`` and generates
requests from it, both valid per the document (positive) and not (negative:
wrong types, out-of-range ``k``, unknown filter values, missing image...),
sends them to the Flask app in process (WSGI) and checks each answer: no 5xx
(other than the documented 503s of a broken index), a documented status code
and content type, documented headers, and a body that validates against the
documented schema.

The app is test_openapi.py's: ``FakeModels`` (no TensorFlow) over a real
EmbeddedIndex of real catalog photos, and a second one whose index is down.
Bounded for CI: ``MAX_EXAMPLES`` per operation and mode, a per-request
deadline (a hang fails), derandomized (the same requests every run) and no
example database, so a failure reproduces with the same command.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from flask import Flask
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from eyepic.settings import Settings
from web.openapi import openapi

from fakes import healthy_and_broken_apps, make_items

# Per operation and generation mode: the whole file runs in well under a minute. CI's bound;
# EYEPIC_FUZZ_EXAMPLES=500 EYEPIC_FUZZ_RANDOM=1 searches longer and wider by hand.
MAX_EXAMPLES = int(os.environ.get("EYEPIC_FUZZ_EXAMPLES", "50"))
DEADLINE = timedelta(seconds=5)  # per request: far above a normal answer (ms), so only a hang fails
SEED_SETTINGS = dict(derandomize=not os.environ.get("EYEPIC_FUZZ_RANDOM"), database=None, deadline=DEADLINE,
                     print_blob=True,
                     suppress_health_check=list(HealthCheck))
_PATHS = openapi(Settings())["paths"]
API_KEY = "fuzz-api-key-0123456789"
DOCUMENTED = [(path, method) for path, ops in _PATHS.items() for method in ops]
# Negative mode needs something a request can get wrong: a body, or a query parameter with a type or
# vocabulary (a free string path segment has no invalid value; schemathesis would find none to make).
NEGATABLE = [(path, method) for path, method in DOCUMENTED if "requestBody" in _PATHS[path][method]
             or any(p["in"] != "path" for p in _PATHS[path][method].get("parameters", []))]


def _server_error_unless_documented(ctx: Any, response: Any, case: Any) -> bool | None:
    """No 5xx, except a 5xx the operation documents (503: model or index down)."""
    if str(response.status_code) in case.operation.definition.raw.get("responses", {}):
        return None
    return not_a_server_error(ctx, response, case)


CHECKS = [_server_error_unless_documented, status_code_conformance, content_type_conformance,
          response_headers_conformance, response_schema_conformance]


@pytest.fixture(scope="module")
def apps(catalog_photos: dict[str, list[Path]], tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Flask]]:
    tmp = tmp_path_factory.mktemp("fuzz-api")
    settings = Settings(var_dir=tmp / "var", model_dir=tmp / "models", default_k=3, max_k=20,
                        max_upload_bytes=256 * 1024, api_keys=API_KEY)
    with healthy_and_broken_apps(settings, catalog_photos) as apps:
        yield apps


def _fuzz(app: Flask, path: str, method: str, mode: GenerationMode, max_examples: int, **fixed: Any) -> None:
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app)
    operation = schema[path][method.upper()]

    @hypothesis_settings(max_examples=max_examples, **SEED_SETTINGS)
    @given(case=operation.as_strategy(generation_mode=mode, **fixed))
    def run(case: schemathesis.Case) -> None:
        case.call_and_validate(checks=CHECKS)

    run()


@pytest.mark.parametrize(("path", "method"), DOCUMENTED, ids=[f"{m} {p}" for p, m in DOCUMENTED])
def test_every_documented_operation_answers_valid_requests_as_documented(apps, path, method) -> None:
    _fuzz(apps["ok"], path, method, GenerationMode.POSITIVE, MAX_EXAMPLES)


@pytest.mark.parametrize(("path", "method"), NEGATABLE, ids=[f"{m} {p}" for p, m in NEGATABLE])
def test_invalid_requests_are_refused_as_documented(apps, path, method) -> None:
    _fuzz(apps["ok"], path, method, GenerationMode.NEGATIVE, MAX_EXAMPLES)


def test_negative_fuzzing_covers_the_operations_with_inputs() -> None:
    assert {p for p, _ in NEGATABLE} == {"/api/v1/search", "/api/v1/items/{item_id}/similar",
                                         "/api/v1/items/{item_id}/complete-the-look", "/api/v1/complete-the-look",
                                         "/api/v1/users/{user_id}/events"}


@pytest.mark.parametrize(("path", "method"), DOCUMENTED, ids=[f"{m} {p}" for p, m in DOCUMENTED])
def test_with_the_index_down_answers_stay_documented(apps, path, method) -> None:
    _fuzz(apps["broken"], path, method, GenerationMode.POSITIVE, 5)


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=lambda m: m.value)
def test_similar_items_of_a_real_item_with_generated_parameters(apps, catalog_photos, mode) -> None:
    """k and the filters fuzzed for an item that exists, so the search itself runs."""
    item_id = make_items(catalog_photos)[0].id
    _fuzz(apps["ok"], "/api/v1/items/{item_id}/similar", "get", mode, MAX_EXAMPLES,
          path_parameters={"item_id": item_id})


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=lambda m: m.value)
def test_events_with_an_api_key_and_generated_bodies(apps, mode) -> None:
    """Past access control (a valid key), so validation, the catalog check and the store all run."""
    _fuzz(apps["ok"], "/api/v1/users/{user_id}/events", "post", mode, MAX_EXAMPLES,
          headers={"X-API-Key": API_KEY})
    _fuzz(apps["ok"], "/api/v1/users/{user_id}", "delete", mode, MAX_EXAMPLES // 2,
          headers={"X-API-Key": API_KEY})


def test_search_with_a_real_photo_and_generated_parameters(apps, photo) -> None:
    """The form fields (k, filters, box, garment) fuzzed beside a decodable photo, so analysis runs."""
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", apps["ok"])
    operation = schema["/api/v1/search"]["POST"]
    for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
        @hypothesis_settings(max_examples=MAX_EXAMPLES, **SEED_SETTINGS)
        @given(case=operation.as_strategy(generation_mode=mode))
        def run(case: schemathesis.Case) -> None:
            if isinstance(case.body, dict):
                case.body = {**case.body, "image": photo}
            case.call_and_validate(checks=CHECKS)

        run()


def test_the_fuzzed_document_is_the_served_one(apps) -> None:
    served = apps["ok"].test_client().get("/api/v1/openapi.json").get_json()
    assert {(p, m) for p, ops in served["paths"].items() for m in ops} == set(DOCUMENTED)
