"""The HTTP API's OpenAPI 3.1 description, served at ``/api/v1/openapi.json``.

Built in code from the same vocabulary the validator checks (taxonomy,
palette) and this deployment's limits, so the enums and bounds cannot
drift from what the server accepts. ``tests/test_openapi.py`` keeps the rest
true: every Flask route is documented, every documented route exists, and
real answers (success and problem) validate against the documented schemas.
Errors are RFC 9457 problem details (``application/problem+json``).
"""

from __future__ import annotations

from typing import Any

from eyepic import taxonomy
from eyepic.colors import COLOR_NAMES
from eyepic.imaging import SUPPORTED_TYPES
from eyepic.settings import Settings
from services.events import EVENT_ID, MAX_ITEM_ID_CHARS, USER_ID, USER_ID_RULE
from services.outfits import DEFAULT_LOOK_K
from taste.events import EVENT_KINDS

PROBLEM = "application/problem+json"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _problem(description: str, retry: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {"description": description, "content": {PROBLEM: {"schema": _ref("Problem")}}}
    if retry:
        out["headers"] = {"Retry-After": {"schema": {"type": "integer"}, "description": "seconds"}}
    return out


def _strings(enum: tuple[str, ...] | None = None) -> dict[str, Any]:
    item: dict[str, Any] = {"type": "string"}
    if enum:
        item["enum"] = list(enum)
    return {"type": "array", "items": item}


def _schemas(settings: Settings) -> dict[str, Any]:
    text = {"type": "string"}
    filters = {"type": "object", "additionalProperties": False, "properties": {
        "group": _strings(taxonomy.GROUP_NAMES), "type": _strings(taxonomy.TYPE_NAMES),
        "color": _strings(COLOR_NAMES), "shop": _strings()}}
    item = {"type": "object", "required": ["id", "group", "type", "color", "image_url", "similar_url"],
            "properties": {
                "id": text, "score": {"type": "number"}, "product_id": text, "group": text, "type": text,
                "color": text, "title": text, "url": text, "price": {"type": ["number", "null"]}, "shop": text,
                "brand": text, "attributes": _strings(), "image_url": text, "similar_url": text},
            "additionalProperties": False}
    unit = {"type": "number", "minimum": 0, "maximum": 1}
    garment = {"type": "object", "required": ["index", "box", "group", "type", "color", "scores", "detected",
                                              "filters", "items"],
               "properties": {
                   "index": {"type": "integer", "minimum": 0},
                   "box": {"type": "array", "items": unit, "minItems": 4, "maxItems": 4,
                           "description": "x0, y0, x1, y1 of the upright photo, 0-1"},
                   "group": {"enum": list(taxonomy.GROUP_NAMES)}, "type": {"enum": list(taxonomy.TYPE_NAMES)},
                   "color": {"enum": list(COLOR_NAMES)},
                   "scores": {"type": "object", "additionalProperties": {"type": "number"}},
                   "detected": {"type": "boolean"}, "filters": _ref("Filters"),
                   "items": {"type": "array", "items": _ref("Item")}},
               "additionalProperties": False}
    search = {"type": "object", "required": ["garments", "image", "detector_used", "user_box", "model_version",
                                             "query", "took_ms"],
              "properties": {
                  "garments": {"type": "array", "items": _ref("Garment")},
                  "image": {"type": "object", "required": ["width", "height"],
                            "properties": {"width": {"type": "integer"}, "height": {"type": "integer"}}},
                  "detector_used": {"type": "boolean"}, "user_box": {"type": "boolean"}, "model_version": text,
                  "query": {"type": "object", "required": ["k", "filters"],
                            "properties": {"k": {"type": "integer"}, "filters": _ref("Filters")}},
                  "took_ms": {"type": "number"}},
              "additionalProperties": False}
    similar = {"type": "object", "required": ["item", "filters", "items"], "additionalProperties": False,
               "properties": {"item": _ref("Item"), "filters": _ref("Filters"),
                              "items": {"type": "array", "items": _ref("Item")}}}
    counted = {"type": "array", "items": {"type": "object", "required": ["name", "count"],
                                          "properties": {"name": text, "count": {"type": "integer"}}}}
    taxonomy_schema = {"type": "object", "required": ["groups", "types", "colors", "total", "limits"],
                       "properties": {
                           "groups": counted, "types": counted, "colors": counted, "total": {"type": "integer"},
                           "limits": {"type": "object", "required": ["default_k", "max_k", "max_upload_bytes"],
                                      "properties": {"default_k": {"type": "integer"}, "max_k": {"type": "integer"},
                                                     "max_upload_bytes": {"type": "integer"}}}}}
    problem = {
        "type": "object", "required": ["type", "title", "status", "detail"],
        "description": "RFC 9457 problem details; extra members by type (supported, max_upload_bytes, checks)",
        "properties": {
            "type": {"type": "string", "description": "urn:eyepic:problem:<kind>, or about:blank"},
            "title": text, "status": {"type": "integer", "minimum": 400, "maximum": 599}, "detail": text,
            "instance": text,
            "invalid_params": {"type": "array", "items": {
                "type": "object", "required": ["name", "reason"], "additionalProperties": False,
                "properties": {"name": text, "reason": text}}},
            "supported": _strings(), "max_upload_bytes": {"type": "integer"},
            "checks": {"type": "object", "additionalProperties": text}}}
    ready = {"type": "object", "required": ["status", "checks", "model_version", "items"],
             "properties": {"status": {"const": "ready"}, "checks": {"type": "object"}, "model_version": text,
                            "items": {"type": "integer"}}}
    look_item = {"type": "object", "required": [*item["required"], "score", "reason"], "additionalProperties": False,
                 "properties": {**item["properties"], "reason": {
                     "type": "string", "description": "why it goes with the garment, e.g. 'navy tops are often "
                                                      "worn with beige trousers'"}}}
    look_group = {"type": "object", "required": ["group", "items"], "additionalProperties": False,
                  "properties": {"group": {"enum": list(taxonomy.GROUP_NAMES)},
                                 "items": {"type": "array", "items": _ref("LookItem"),
                                           "description": "best first, one per product, diversified"}}}
    groups = {"type": "array", "items": _ref("LookGroup"),
              "description": "each complementary group: top <-> bottom, outer over both, shoes; a one-piece "
                             "takes outer and shoes"}
    look_query = {"type": "object", "required": ["k", "user"], "additionalProperties": False,
                  "properties": {"k": {"type": "integer"}, "user": {"type": ["string", "null"]}}}
    look_common = {"query": look_query, "personalised": {"type": "boolean"}, "took_ms": {"type": "number"}}
    item_look = {"type": "object", "required": ["item", "groups", "query", "personalised", "took_ms"],
                 "additionalProperties": False,
                 "properties": {"item": _ref("Item"), "groups": groups, **look_common}}
    look_garment = {"type": "object", "additionalProperties": False,
                    "required": ["index", "box", "group", "type", "color", "scores", "detected", "groups"],
                    "properties": {**{k: v for k, v in garment["properties"].items() if k not in ("filters", "items")},
                                   "groups": groups}}
    photo_look = {"type": "object", "additionalProperties": False,
                  "required": ["garments", "image", "detector_used", "model_version", "query", "personalised",
                               "took_ms"],
                  "properties": {"garments": {"type": "array", "items": _ref("LookGarment")},
                                 "image": search["properties"]["image"], "detector_used": {"type": "boolean"},
                                 "model_version": text, **look_common}}
    user_id = {"type": "string", "pattern": f"^{USER_ID.pattern}$"}
    event = {"type": "object", "required": ["user_id", "kind", "item_id", "at", "at_iso", "event_id"],
             "additionalProperties": False, "properties": {
                 "user_id": user_id, "kind": {"enum": list(EVENT_KINDS)}, "item_id": text,
                 "at": {"type": "number", "description": "seconds since the epoch (UTC)"},
                 "at_iso": {"type": "string", "format": "date-time"}, "event_id": text}}
    new_event = {"type": "object", "required": ["kind", "item_id"], "additionalProperties": False, "properties": {
        "kind": {"enum": list(EVENT_KINDS)},
        "item_id": {"type": "string", "maxLength": MAX_ITEM_ID_CHARS, "description": "a catalog item id"},
        "at": {"type": ["string", "number"],
               "description": "ISO-8601 (no zone: UTC) or seconds since the epoch; default now; "
                              f"at most {settings.event_clock_skew_s:.0f} s in the future"},
        "event_id": {"type": "string", "pattern": f"^{EVENT_ID.pattern}$",
                     "description": "the client's id: a retry with the same id records nothing new (200)"}}}
    recorded = {"type": "object", "required": ["event", "created"], "additionalProperties": False,
                "properties": {"event": _ref("Event"), "created": {"type": "boolean"}}}
    history = {"type": "object", "required": ["user_id", "events"], "additionalProperties": False,
               "properties": {"user_id": user_id, "events": {"type": "array", "items": _ref("Event")}}}
    forgotten = {"type": "object", "required": ["user_id", "forgotten"], "additionalProperties": False,
                 "properties": {"user_id": user_id, "forgotten": {"type": "integer", "minimum": 0}}}
    session = {"type": "object", "required": ["user_id", "token"], "additionalProperties": False,
               "properties": {"user_id": user_id, "token": {
                   "type": "string", "description": "send as 'Authorization: Bearer <token>' to write this user"}}}
    return {"Filters": filters, "Item": item, "Garment": garment, "SearchResponse": search,
            "LookItem": look_item, "LookGroup": look_group, "LookGarment": look_garment,
            "ItemLookResponse": item_look, "PhotoLookResponse": photo_look,
            "SimilarResponse": similar, "Taxonomy": taxonomy_schema, "Problem": problem, "Ready": ready,
            "Event": event, "NewEvent": new_event, "EventRecorded": recorded, "EventHistory": history,
            "Forgotten": forgotten, "Session": session}


def _filter_params(where: str) -> list[dict[str, Any]]:
    names = {"group": taxonomy.GROUP_NAMES, "type": taxonomy.TYPE_NAMES, "color": COLOR_NAMES, "shop": None}
    return [{"name": name, "in": where, "required": False, "style": "form", "explode": True,
             "description": "repeatable; group/type/color also comma-separated",
             "schema": _strings(vocabulary)} for name, vocabulary in names.items()]


def openapi(settings: Settings) -> dict[str, Any]:
    """The OpenAPI 3.1 document of this deployment's HTTP API."""
    k = {"type": "integer", "minimum": 1, "maximum": settings.max_k, "default": settings.default_k}
    item_id = {"name": "item_id", "in": "path", "required": True, "schema": {"type": "string"},
               "description": "the catalog id; it may contain '/' (ids derived from file paths)"}
    bad = _problem("invalid parameters, each named in invalid_params")
    unavailable = _problem("model or index not available", retry=True)
    not_found = _problem("no such item")
    types = ", ".join(SUPPORTED_TYPES.values())
    user_path = {"name": "user_id", "in": "path", "required": True,
                 "schema": {"type": "string", "pattern": f"^{USER_ID.pattern}$"}, "description": USER_ID_RULE}
    writes = [{"apiKey": []}, {"bearer": []}]
    unauthenticated = _problem("no credential (WWW-Authenticate says how to send one)")
    forbidden = _problem("not an API key, nor this user's session token")
    limited = _problem("too many writes from this key, address or user", retry=True)
    form = {"type": "object", "required": ["image"], "properties": {
        "image": {"type": "string", "contentMediaType": "application/octet-stream",
                  "description": f"the photo ({types}), at most {settings.max_upload_bytes} bytes and "
                                 f"{settings.max_image_pixels} pixels"},
        "k": k, "group": _strings(taxonomy.GROUP_NAMES), "type": _strings(taxonomy.TYPE_NAMES),
        "color": _strings(COLOR_NAMES), "shop": _strings(),
        "garment": {"type": "integer", "minimum": 0, "description": "search only this detected garment"},
        "box": {"type": "string", "description": "x0,y0,x1,y1 (0-1): analyze only this region; not with garment"}}}
    look_k = {"type": "integer", "minimum": 1, "maximum": settings.max_k,
              "default": min(DEFAULT_LOOK_K, settings.max_k)}
    user = {"name": "user", "in": "query", "required": False,
            "schema": {"type": "string", "pattern": f"^{USER_ID.pattern}$"},
            "description": "the shopper; personalises the look once the taste profile exists (personalised: true)"}
    look_form = {"type": "object", "required": ["image"], "properties": {
        "image": form["properties"]["image"], "k": look_k,
        "garment": {"type": "integer", "minimum": 0, "description": "only this garment (as search numbers them)"},
        "box": {"type": "string", "description": "x0,y0,x1,y1 (0-1): analyze only this region; not with garment"},
        "user": user["schema"]}}
    paths: dict[str, Any] = {
        "/api/v1/search": {"post": {
            "operationId": "search", "summary": "Find each garment of a photo and the catalog items like it",
            "requestBody": {"required": True, "content": {"multipart/form-data": {"schema": form}}},
            "responses": {
                "200": _json(_ref("SearchResponse"), "garments with similar items"), "400": bad,
                "413": _problem("upload over max_upload_bytes"),
                "415": _problem(f"not multipart/form-data, or an image type other than {types} (listed in supported)"),
                "422": _problem("empty, damaged or truncated image, or too many pixels"), "503": unavailable}}},
        "/api/v1/items/{item_id}": {"get": {
            "operationId": "getItem", "summary": "A catalog item", "parameters": [item_id],
            "responses": {"200": _json(_ref("Item"), "the item"), "404": not_found, "503": unavailable}}},
        "/api/v1/items/{item_id}/similar": {"get": {
            "operationId": "similarItems", "summary": "Items like this one (its own group unless filtered)",
            "parameters": [item_id, {"name": "k", "in": "query", "schema": k}, *_filter_params("query")],
            "responses": {"200": _json(_ref("SimilarResponse"), "the item and its neighbours"), "400": bad,
                          "404": not_found, "503": unavailable}}},
        "/api/v1/items/{item_id}/complete-the-look": {"get": {
            "operationId": "itemCompleteTheLook",
            "summary": "Catalog items of each complementary group that go with this item",
            "parameters": [item_id, {"name": "k", "in": "query", "schema": look_k,
                                     "description": "items per complementary group"}, user],
            "responses": {"200": _json(_ref("ItemLookResponse"), "the item and its look"), "400": bad,
                          "404": not_found, "503": unavailable}}},
        "/api/v1/complete-the-look": {"post": {
            "operationId": "photoCompleteTheLook",
            "summary": "For the garments of a photo (or the chosen one), the catalog items that go with each",
            "requestBody": {"required": True, "content": {"multipart/form-data": {"schema": look_form}}},
            "responses": {
                "200": _json(_ref("PhotoLookResponse"), "each garment with its look"), "400": bad,
                "413": _problem("upload over max_upload_bytes"),
                "415": _problem(f"not multipart/form-data, or an image type other than {types} (listed in supported)"),
                "422": _problem("empty, damaged or truncated image, or too many pixels"), "503": unavailable}}},
        "/api/v1/items/{item_id}/image": {"get": {
            "operationId": "itemImage", "summary": "The catalog photo", "parameters": [item_id],
            "responses": {"200": {"description": "the photo", "content": {"image/*": {}}},
                          "304": {"description": "not modified"},
                          "404": _problem("unknown item or no image file"), "503": unavailable}}},
        "/api/v1/taxonomy": {"get": {
            "operationId": "taxonomy", "summary": "Groups, types and colors with catalog counts, and limits",
            "responses": {"200": _json(_ref("Taxonomy"), "the vocabulary"), "503": unavailable}}},
        "/api/v1/openapi.json": {"get": {
            "operationId": "openapi", "summary": "This document",
            "responses": {"200": _json({"type": "object", "required": ["openapi", "paths"]}, "OpenAPI 3.1")}}},
        "/api/v1/session": {"post": {
            "operationId": "newSession", "summary": "An anonymous shopper id and the token to write its events",
            "responses": {"201": _json(_ref("Session"), "a new session"),
                          "429": _problem("too many sessions from this address", retry=True)}}},
        "/api/v1/users/{user_id}/events": {
            "post": {
                "operationId": "recordEvent", "summary": "Record what a shopper did to an item",
                "parameters": [user_path], "security": writes,
                "requestBody": {"required": True, "content": {"application/json": {"schema": _ref("NewEvent")}}},
                "responses": {
                    "201": _json(_ref("EventRecorded"), "recorded"),
                    "200": _json(_ref("EventRecorded"), "a retry: this event_id was already recorded"),
                    "400": bad, "401": unauthenticated, "403": forbidden, "404": not_found,
                    "415": _problem("not application/json (listed in supported)"), "429": limited,
                    "503": unavailable}},
            "get": {
                "operationId": "userEvents", "summary": "A shopper's events, oldest first",
                "parameters": [user_path],
                "responses": {"200": _json(_ref("EventHistory"), "the events"), "400": bad, "503": unavailable}}},
        "/api/v1/users/{user_id}": {"delete": {
            "operationId": "forgetUser", "summary": "Forget a shopper: every event goes",
            "parameters": [user_path], "security": writes,
            "responses": {"200": _json(_ref("Forgotten"), "how many events went"), "400": bad,
                          "401": unauthenticated, "403": forbidden, "429": limited, "503": unavailable}}},
        "/healthz": {"get": {"operationId": "healthz", "summary": "Liveness", "responses": {
            "200": _json({"type": "object", "required": ["status"], "properties": {"status": {"const": "ok"}}},
                         "the process answers")}}},
        "/readyz": {"get": {"operationId": "readyz", "summary": "Readiness: model loaded and index answering",
                            "responses": {"200": _json(_ref("Ready"), "ready"),
                                          "503": _problem("not ready; checks says why", retry=True)}}},
        "/metrics": {"get": {"operationId": "metrics", "summary": "Prometheus metrics", "responses": {
            "200": {"description": "text exposition format", "content": {"text/plain": {}}}}}},
        "/": {"get": {"operationId": "page", "summary": "The search page", "responses": {
            "200": {"description": "HTML", "content": {"text/html": {}}}}}},
        "/static/{filename}": {"get": {
            "operationId": "static", "summary": "The page's script, styles and icon",
            "parameters": [{"name": "filename", "in": "path", "required": True, "schema": {"type": "string"}}],
            "responses": {"200": {"description": "the file"}, "304": {"description": "not modified"},
                          "404": {"description": "no such file (HTML)"}}}},
    }
    return {
        "openapi": "3.1.0",
        "jsonSchemaDialect": "https://spec.openapis.org/oas/3.1/dialect/base",
        "info": {"title": "Eyepic", "version": "1",
                 "description": "Clothing visual search. Errors are RFC 9457 problem details "
                                "(application/problem+json) with invalid_params naming each bad field. "
                                "The same use cases are served over gRPC as eyepic.v1.Recommender."},
        "paths": paths,
        "components": {"schemas": _schemas(settings), "securitySchemes": {
            "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key",
                       "description": "a service's API key (also accepted as a bearer token); writes any user"},
            "bearer": {"type": "http", "scheme": "bearer",
                       "description": "an API key, or the session token from POST /api/v1/session "
                                      "(writes only its own user)"}}},
    }
