"""Shoppers: ``POST /api/v1/session``, their events and forgetting them.

A thin adapter: the credential and the client address go to
``services.access`` (who may write, how often), the fields to
``services.events`` (validation, the catalog check, the store); both are
shared with the gRPC API. Writes need an API key or the user's own session
token; reading one's history stays open like every other read.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from flask import Blueprint, request

from services.access import credential_of
from taste.events import Event
from web.errors import invalid, unsupported_media
from web.services import services

bp = Blueprint("users", __name__, url_prefix="/api/v1/users")
session_bp = Blueprint("session", __name__, url_prefix="/api/v1")


def event_json(event: Event) -> dict[str, Any]:
    return {"user_id": event.user_id, "kind": event.kind, "item_id": event.item_id, "at": event.at,
            "at_iso": dt.datetime.fromtimestamp(event.at, dt.UTC).isoformat(timespec="milliseconds"),
            "event_id": event.event_id}


def _credential() -> str | None:
    return credential_of(request.headers.get("Authorization"), request.headers.get("X-API-Key"))


def _client_ip() -> str:
    """The peer's address (a proxy in front should be trusted explicitly; none is here)."""
    return request.remote_addr or "unknown"


def _json_body() -> dict[str, Any]:
    if request.mimetype != "application/json":
        raise unsupported_media("body", f"send the event as application/json, not {request.mimetype or 'nothing'}",
                                ["application/json"])
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise invalid("body", "must be a JSON object such as {\"kind\": \"like\", \"item_id\": \"...\"}")
    return body


@session_bp.post("/session")
def new_session() -> tuple[dict[str, str], int]:
    """An anonymous shopper id and the token that lets the page write that shopper's events."""
    session = services().access.new_session(_client_ip())
    return {"user_id": session.user_id, "token": session.token}, 201


@bp.post("/<user_id>/events")
def record(user_id: str) -> tuple[dict[str, Any], int]:
    """Record one event: 201 when recorded, 200 when a retry (same ``event_id``) already was."""
    svc = services()
    svc.access.authorize_write(_credential(), user_id, _client_ip(), event=True)
    users = svc.users
    recorded = users.record(users.event(user_id, _json_body()))
    return {"event": event_json(recorded.event), "created": recorded.created}, 201 if recorded.created else 200


@bp.get("/<user_id>/events")
def history(user_id: str) -> dict[str, Any]:
    """This shopper's events, oldest first."""
    return {"user_id": user_id, "events": [event_json(e) for e in services().users.history(user_id)]}


@bp.delete("/<user_id>")
def forget(user_id: str) -> dict[str, Any]:
    """Forget the shopper entirely: every event goes; answers how many."""
    svc = services()
    svc.access.authorize_write(_credential(), user_id, _client_ip(), event=False)
    return {"user_id": user_id, "forgotten": svc.users.forget(user_id)}
