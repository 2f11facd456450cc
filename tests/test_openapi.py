"""The OpenAPI description at /api/v1/openapi.json is true of the app.

Three checks that fail on drift: every Flask route (``app.url_map``) is
documented and every documented path and method is routed; every documented
response status of every operation is produced by a real request here
(success and problem alike, a broken index for the 503s); and each real
answer has a documented status and content type, with a JSON body that
validates against the documented schema (jsonschema, draft 2020-12, the
dialect of OpenAPI 3.1).
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from jsonschema import Draft202012Validator

from eyepic.settings import Settings
from web.openapi import openapi

from fakes import healthy_and_broken_apps, make_items

IGNORED_METHODS = {"HEAD", "OPTIONS"}
API_KEY = "openapi-test-key-0123456789"
KEY = {"X-API-Key": API_KEY}  # Werkzeug answers these for every route by itself


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    tmp = tmp_path_factory.mktemp("openapi")
    # tiny write buckets, so the 429s are real answers too (each address below spends its one token)
    return Settings(var_dir=tmp / "var", model_dir=tmp / "models", default_k=3, max_k=20,
                    max_upload_bytes=256 * 1024, api_keys=API_KEY, rate_ip_per_s=0.001, rate_ip_burst=1,
                    rate_user_per_s=0.001, rate_user_burst=2)


@pytest.fixture(scope="module")
def apps(settings: Settings, catalog_photos: dict[str, list[Path]]) -> Iterator[dict[str, Flask]]:
    with healthy_and_broken_apps(settings, catalog_photos) as apps:
        yield apps


@pytest.fixture(scope="module")
def document(apps: dict[str, Flask]) -> dict[str, Any]:
    resp = apps["ok"].test_client().get("/api/v1/openapi.json")
    assert resp.status_code == 200 and resp.mimetype == "application/json"
    return resp.get_json()


def openapi_path(rule: str) -> str:
    """A Werkzeug rule as an OpenAPI path template: ``<path:item_id>`` -> ``{item_id}``."""
    return re.sub(r"<(?:[^:>]+:)?([^>]+)>", r"{\1}", rule)


def routed(app: Flask) -> set[tuple[str, str]]:
    return {(openapi_path(rule.rule), method.lower())
            for rule in app.url_map.iter_rules() for method in (rule.methods or set()) - IGNORED_METHODS}


def test_the_document_is_openapi_3_1_with_valid_schemas(document: dict[str, Any], settings: Settings) -> None:
    assert document["openapi"].startswith("3.1.")
    assert document == openapi(settings)  # served as built, with this deployment's limits
    for schema in document["components"]["schemas"].values():
        Draft202012Validator.check_schema(schema)  # raises SchemaError naming the bad keyword
    k = document["paths"]["/api/v1/items/{item_id}/similar"]["get"]["parameters"][1]["schema"]
    assert (k["maximum"], k["default"]) == (settings.max_k, settings.default_k)


def test_every_route_is_documented_and_every_documented_route_exists(apps, document) -> None:
    documented = {(path, method) for path, ops in document["paths"].items() for method in ops}
    assert routed(apps["ok"]) == documented


def _photo_form(photo: bytes) -> dict[str, Any]:
    return {"data": {"image": (io.BytesIO(photo), "p.jpg")}, "content_type": "multipart/form-data"}


def requests_to_make(photo: bytes, item_id: str) -> list[tuple[str, str, str, dict[str, Any]]]:
    """(app, method, url, test-client kwargs): each documented answer at least once."""
    big = b"\xff\xd8\xff" + b"\0" * (300 * 1024)
    return [
        ("ok", "post", "/api/v1/search", _photo_form(photo)),
        ("ok", "post", "/api/v1/search", {"data": {"k": "0"}, "content_type": "multipart/form-data"}),
        ("ok", "post", "/api/v1/search", _photo_form(big)),
        ("ok", "post", "/api/v1/search", _photo_form(b"<svg xmlns='http://www.w3.org/2000/svg'/>")),
        ("ok", "post", "/api/v1/search", {"data": b"{", "content_type": "application/json"}),
        ("ok", "post", "/api/v1/search", _photo_form(photo[: len(photo) // 3])),
        ("broken", "post", "/api/v1/search", _photo_form(photo)),
        ("ok", "get", f"/api/v1/items/{item_id}", {}),
        ("ok", "get", "/api/v1/items/no-such-item", {}),
        ("broken", "get", f"/api/v1/items/{item_id}", {}),
        ("ok", "get", f"/api/v1/items/{item_id}/similar", {"query_string": {"k": 2, "color": "black"}}),
        ("ok", "get", f"/api/v1/items/{item_id}/similar", {"query_string": {"k": "abc"}}),
        ("ok", "get", "/api/v1/items/no-such-item/similar", {}),
        ("broken", "get", f"/api/v1/items/{item_id}/similar", {}),
        ("ok", "get", f"/api/v1/items/{item_id}/complete-the-look", {"query_string": {"k": 2, "user": "u-1"}}),
        ("ok", "get", f"/api/v1/items/{item_id}/complete-the-look", {"query_string": {"user": "no spaces"}}),
        ("ok", "get", "/api/v1/items/no-such-item/complete-the-look", {}),
        ("broken", "get", f"/api/v1/items/{item_id}/complete-the-look", {}),
        ("ok", "post", "/api/v1/complete-the-look", _photo_form(photo)),
        ("ok", "post", "/api/v1/complete-the-look", {"data": {"k": "0"}, "content_type": "multipart/form-data"}),
        ("ok", "post", "/api/v1/complete-the-look", _photo_form(big)),
        ("ok", "post", "/api/v1/complete-the-look", _photo_form(b"<svg xmlns='http://www.w3.org/2000/svg'/>")),
        ("ok", "post", "/api/v1/complete-the-look", {"data": b"{", "content_type": "application/json"}),
        ("ok", "post", "/api/v1/complete-the-look", _photo_form(photo[: len(photo) // 3])),
        ("broken", "post", "/api/v1/complete-the-look", _photo_form(photo)),
        ("ok", "get", f"/api/v1/items/{item_id}/image", {}),
        ("ok", "get", f"/api/v1/items/{item_id}/image", {"etag": True}),
        ("ok", "get", "/api/v1/items/no-such-item/image", {}),
        ("broken", "get", f"/api/v1/items/{item_id}/image", {}),
        ("ok", "get", "/api/v1/taxonomy", {}),
        ("broken", "get", "/api/v1/taxonomy", {}),
        ("ok", "get", "/api/v1/openapi.json", {}),
        ("ok", "get", "/healthz", {}),
        ("ok", "get", "/readyz", {}),
        ("broken", "get", "/readyz", {}),
        ("ok", "get", "/metrics", {}),
        ("ok", "get", "/", {}),
        ("ok", "get", "/static/app.js", {}),
        ("ok", "get", "/static/app.js", {"etag": True}),
        ("ok", "get", "/static/no-such-file.js", {}),
        *event_requests(item_id),
    ]


def _at(address: str, **kwargs: Any) -> dict[str, Any]:
    return {**kwargs, "environ_base": {"REMOTE_ADDR": address}}


def event_requests(item_id: str) -> list[tuple[str, str, str, dict[str, Any]]]:
    """Sessions, events and forgetting: each documented answer (a one-token address bucket per address)."""
    like = {"kind": "like", "item_id": item_id, "event_id": "e-1"}
    wrong = {"Authorization": "Bearer not-a-key"}
    return [
        ("ok", "post", "/api/v1/session", _at("10.0.0.1")),
        ("ok", "post", "/api/v1/session", _at("10.0.0.1")),  # 429: that address's token is spent
        ("ok", "post", "/api/v1/users/u1/events", {"json": like, "headers": KEY}),
        ("ok", "post", "/api/v1/users/u1/events", {"json": like, "headers": KEY}),  # a retry: 200
        ("ok", "post", "/api/v1/users/u1/events", {"json": {**like, "event_id": "e-2"}, "headers": KEY}),  # 429
        ("ok", "post", "/api/v1/users/u2/events", {"json": like}),
        ("ok", "post", "/api/v1/users/u2/events", _at("10.0.0.2", json=like, headers=wrong)),
        ("ok", "post", "/api/v1/users/u2/events", {"json": {"kind": "love"}, "headers": KEY}),
        ("ok", "post", "/api/v1/users/u2/events", {"json": {**like, "item_id": "no-such"}, "headers": KEY}),
        ("ok", "post", "/api/v1/users/u4/events", {"data": "kind=like", "headers": KEY,
                                                   "content_type": "application/x-www-form-urlencoded"}),
        ("broken", "post", "/api/v1/users/u3/events", {"json": like, "headers": KEY}),
        ("ok", "get", "/api/v1/users/u1/events", {}),
        ("ok", "get", "/api/v1/users/-bad-/events", {}),
        ("broken", "get", "/api/v1/users/u1/events", {}),
        ("ok", "delete", "/api/v1/users/u1", {"headers": KEY}),
        ("ok", "delete", "/api/v1/users/u1", {}),
        ("ok", "delete", "/api/v1/users/u1", _at("10.0.0.3", headers=wrong)),
        ("ok", "delete", "/api/v1/users/u1", _at("10.0.0.3", headers=wrong)),  # 429
        ("ok", "delete", "/api/v1/users/-bad-", {"headers": KEY}),
        ("broken", "delete", "/api/v1/users/u1", {"headers": KEY}),
    ]


def _documented_answer(document: dict[str, Any], app: Flask, method: str, url: str,
                       resp: Any) -> tuple[str, dict[str, Any]]:
    rule, _ = app.url_map.bind("localhost").match(url.split("?")[0], method.upper(), return_rule=True)
    path = openapi_path(rule.rule)
    responses = document["paths"][path][method]["responses"]
    status = str(resp.status_code)
    assert status in responses, f"{method.upper()} {url} answered {status}, documented {sorted(responses)}"
    return f"{path} {method} {status}", responses[status]


def test_real_answers_match_the_documented_responses(apps, document, photo, catalog_photos) -> None:
    item_id = make_items(catalog_photos)[0].id
    schemas = document["components"]["schemas"]
    seen: set[str] = set()
    for app_name, method, url, kwargs in requests_to_make(photo, item_id):
        client = apps[app_name].test_client()
        if kwargs.pop("etag", False):
            etag = client.get(url).headers["ETag"]
            kwargs = {"headers": {"If-None-Match": etag}}
        resp = getattr(client, method)(url, **kwargs)
        assert resp.status_code < 500 or resp.status_code == 503, resp.get_data(as_text=True)
        key, documented = _documented_answer(document, apps[app_name], method, url, resp)
        seen.add(key)
        content = documented.get("content", {})
        if not content:
            continue
        media = next((m for m in content if m == resp.mimetype or
                      (m.endswith("/*") and resp.mimetype.startswith(m[:-1]))), None)
        assert media is not None, f"{key}: {resp.mimetype} not in {sorted(content)}"
        schema = content[media].get("schema")
        if schema is not None:
            validator = Draft202012Validator({**schema, "components": {"schemas": schemas}})
            errors = [e.message for e in validator.iter_errors(resp.get_json())]
            assert not errors, f"{key}: {errors[:3]}"
        for header in documented.get("headers", {}):
            assert header in resp.headers, f"{key}: no {header}"
    documented_all = {f"{path} {method} {status}" for path, ops in document["paths"].items()
                      for method, op in ops.items() for status in op["responses"]}
    assert documented_all - seen == set(), "documented answers no request here produced"


def test_problem_schema_rejects_a_body_without_status(document) -> None:
    """The schemas have teeth: a problem missing a required member does not validate."""
    validator = Draft202012Validator(document["components"]["schemas"]["Problem"])
    assert not validator.is_valid({"type": "about:blank", "title": "x", "detail": "y"})
