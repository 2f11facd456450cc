"""Shoppers' events over HTTP: sessions, recording, retries, forgetting, and who may write how often.

A real app over a real embedded index of catalog photos (FakeModels: no
model runs here) and a real SQLite events store under a temporary var/;
each refusal is checked for its status, its problem type and the field it
names. The gRPC side of the same rules is in test_api_conformance.py.
"""

from __future__ import annotations

import stat
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from eyepic.settings import Settings, SettingsError
from indexer.embedded import EmbeddedIndex
from services.access import AccessControl, RateLimiter, load_api_keys, session_secret
from serving.analyzer import Analyzer
from taste.event_sqlite import SQLiteEventStore
from taste.events import EventStoreUnavailable
from web import create_app

from fakes import FakeModels, make_items

KEY = "service-key-0123456789"
FILE_KEY = "file-key-abcdefghijklmnop"


@pytest.fixture(scope="module")
def index(catalog_photos: dict[str, list[Path]], tmp_path_factory) -> Iterator[EmbeddedIndex]:
    index = EmbeddedIndex(tmp_path_factory.mktemp("users-index") / "items.sqlite")
    index.upsert(make_items(catalog_photos))
    yield index
    index.close()


def make_app(tmp_path: Path, index: EmbeddedIndex, **overrides: Any) -> Flask:
    tmp_path.mkdir(parents=True, exist_ok=True)
    keys_file = tmp_path / "keys.txt"
    keys_file.write_text(f"# one key a line\nrecommender:{FILE_KEY}\n")
    values: dict[str, Any] = dict(var_dir=tmp_path / "var", model_dir=tmp_path / "models", api_keys=KEY,
                                  api_keys_file=keys_file)
    values.update(overrides)
    return create_app(Settings(**values), analyzer=Analyzer(FakeModels()), index=index)


@pytest.fixture
def app(tmp_path, index) -> Flask:
    return make_app(tmp_path, index)


@pytest.fixture
def client(app) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def items(catalog_photos) -> list[str]:
    return [item.id for item in make_items(catalog_photos)]


def session(client: FlaskClient) -> dict[str, str]:
    resp = client.post("/api/v1/session")
    assert resp.status_code == 201, resp.get_json()
    return resp.get_json()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def post_event(client: FlaskClient, user: str, body: Any, headers: dict[str, str] | None = None, **kw: Any):
    return client.post(f"/api/v1/users/{user}/events", json=body, headers=headers or {}, **kw)


def names(resp) -> list[str]:
    return [p["name"] for p in resp.get_json().get("invalid_params", [])]


# -- sessions and recording --------------------------------------------------------------------
def test_a_session_records_its_own_events_and_a_retry_records_nothing(client, items):
    me = session(client)
    assert me["user_id"].startswith("anon-") and len(me["token"]) == 64
    body = {"kind": "like", "item_id": items[0], "event_id": "click-1"}
    first = post_event(client, me["user_id"], body, bearer(me["token"]))
    assert first.status_code == 201 and first.get_json()["created"] is True
    event = first.get_json()["event"]
    assert (event["user_id"], event["kind"], event["item_id"], event["event_id"]) == (
        me["user_id"], "like", items[0], "click-1")
    assert abs(event["at"] - time.time()) < 60
    again = post_event(client, me["user_id"], {**body, "at": "2026-01-01T00:00:00Z"}, bearer(me["token"]))
    assert again.status_code == 200 and again.get_json() == {"event": event, "created": False}
    post_event(client, me["user_id"], {"kind": "dislike", "item_id": items[1], "at": 1_700_000_000},
               bearer(me["token"]))
    history = client.get(f"/api/v1/users/{me['user_id']}/events").get_json()  # reads need no credential
    assert [(e["kind"], e["item_id"]) for e in history["events"]] == [("dislike", items[1]), ("like", items[0])]
    assert history["events"][0]["at_iso"] == "2023-11-14T22:13:20.000+00:00"


def test_events_are_durable_in_sqlite_under_var(client, app, items):
    me = session(client)
    post_event(client, me["user_id"], {"kind": "save", "item_id": items[2]}, bearer(me["token"]))
    store = SQLiteEventStore(app.extensions["eyepic"].settings.events_path)
    assert [(e.kind, e.item_id) for e in store.events(me["user_id"])] == [("save", items[2])]
    store.close()


def test_forget_removes_everything_of_one_user(client, items):
    me, other = session(client), session(client)
    for i in range(3):
        post_event(client, me["user_id"], {"kind": "view", "item_id": items[i]}, bearer(me["token"]))
    post_event(client, other["user_id"], {"kind": "view", "item_id": items[0]}, bearer(other["token"]))
    resp = client.delete(f"/api/v1/users/{me['user_id']}", headers=bearer(me["token"]))
    assert resp.status_code == 200 and resp.get_json() == {"user_id": me["user_id"], "forgotten": 3}
    assert client.get(f"/api/v1/users/{me['user_id']}/events").get_json()["events"] == []
    assert len(client.get(f"/api/v1/users/{other['user_id']}/events").get_json()["events"]) == 1
    assert client.delete(f"/api/v1/users/{me['user_id']}", headers=bearer(me["token"])).get_json()["forgotten"] == 0


# -- who may write ----------------------------------------------------------------------------
def test_no_credential_is_401(client, items):
    me = session(client)
    resp = post_event(client, me["user_id"], {"kind": "like", "item_id": items[0]})
    assert resp.status_code == 401 and resp.headers["WWW-Authenticate"].startswith("Bearer")
    assert resp.get_json()["type"] == "urn:eyepic:problem:unauthenticated" and names(resp) == ["Authorization"]
    assert client.delete(f"/api/v1/users/{me['user_id']}").status_code == 401
    assert post_event(client, me["user_id"], {}, {"Authorization": "Basic abc"}).status_code == 401


def test_a_session_token_writes_and_forgets_only_its_own_user(client, items):
    me, other = session(client), session(client)
    resp = post_event(client, other["user_id"], {"kind": "like", "item_id": items[0]}, bearer(me["token"]))
    assert resp.status_code == 403 and resp.get_json()["type"] == "urn:eyepic:problem:forbidden"
    assert client.delete(f"/api/v1/users/{other['user_id']}", headers=bearer(me["token"])).status_code == 403
    assert post_event(client, "someone", {"kind": "like", "item_id": items[0]},
                      bearer("0" * 64)).status_code == 403


def test_a_wrong_api_key_is_403(client, items):
    for headers in ({"X-API-Key": KEY[:-1] + "X"}, bearer(KEY + "0"), bearer("x")):
        resp = post_event(client, "svc-user", {"kind": "like", "item_id": items[0]}, headers)
        assert resp.status_code == 403, headers


def test_api_keys_write_any_user_from_settings_or_the_file(client, items):
    for headers in (bearer(KEY), {"X-API-Key": KEY}, bearer(FILE_KEY), {"X-API-Key": FILE_KEY}):
        resp = post_event(client, "crm.user-42", {"kind": "purchase", "item_id": items[0]}, headers)
        assert resp.status_code == 201, resp.get_json()
    assert client.delete("/api/v1/users/crm.user-42", headers={"X-API-Key": KEY}).get_json()["forgotten"] == 4


def test_api_keys_are_parsed_and_refused_when_too_short(tmp_path):
    keys_file = tmp_path / "keys"
    keys_file.write_text(f"{FILE_KEY}\n\nops:{KEY}\n")
    settings = Settings(var_dir=tmp_path, api_keys=f"web:{KEY}, {FILE_KEY}", api_keys_file=keys_file)
    assert load_api_keys(settings) == [("web", KEY), ("key-2", FILE_KEY), ("key-1", FILE_KEY), ("ops", KEY)]
    with pytest.raises(SettingsError, match="shorter than 16"):
        Settings(api_keys="name:short")
    with pytest.raises(SettingsError, match="EYEPIC_API_KEYS_FILE"):
        load_api_keys(Settings(api_keys_file=tmp_path / "missing"))


def test_the_session_secret_file_is_private_and_shared_by_workers(tmp_path, items, index):
    settings = Settings(var_dir=tmp_path / "var")
    secret = session_secret(settings)
    assert stat.S_IMODE(settings.session_secret_path.stat().st_mode) == 0o600
    assert session_secret(settings) == secret and len(secret) == 64
    # two "workers" (apps) on the same var/: a token one hands out is valid in the other
    worker_a, worker_b = make_app(tmp_path, index).test_client(), make_app(tmp_path, index).test_client()
    me = session(worker_a)
    assert post_event(worker_b, me["user_id"], {"kind": "like", "item_id": items[0]},
                      bearer(me["token"])).status_code == 201
    other = make_app(tmp_path / "elsewhere", index).test_client()  # another secret: the token means nothing
    resp = post_event(other, me["user_id"], {"kind": "like", "item_id": items[0]}, bearer(me["token"]))
    assert resp.status_code == 403


# -- bad input --------------------------------------------------------------------------------
@pytest.mark.parametrize("body, expected", [
    ({}, ["kind", "item_id"]),
    ({"kind": "love", "item_id": ""}, ["kind", "item_id"]),
    ({"kind": "like", "item_id": "x", "at": "yesterday"}, ["at"]),
    ({"kind": "like", "item_id": "x", "at": time.time() + 3600}, ["at"]),
    ({"kind": "like", "item_id": "x", "at": 1_700_000_000_000}, ["at"]),  # milliseconds
    ({"kind": "like", "item_id": "x", "at": 5}, ["at"]),
    ({"kind": "like", "item_id": "x", "event_id": "../../etc"}, ["event_id"]),
    ({"kind": "like", "item_id": "x", "event_id": "e" * 129}, ["event_id"]),
    ({"kind": "like", "itemid": "x"}, ["itemid", "item_id"]),
    ({"kind": ["like"], "item_id": 7}, ["kind", "item_id"]),
])
def test_every_bad_field_is_named(client, body, expected):
    resp = post_event(client, "svc-user", body, bearer(KEY))
    assert resp.status_code == 400 and resp.mimetype == "application/problem+json"
    assert names(resp) == expected, resp.get_json()


@pytest.mark.parametrize("user", ["-starts-with-dash", "a" * 65, "has space", "사용자", "a;b"])
def test_a_bad_user_id_is_named(client, user, items):
    resp = post_event(client, user, {"kind": "like", "item_id": items[0]}, bearer(KEY))
    assert resp.status_code == 400 and names(resp) == ["user_id"]
    assert client.delete(f"/api/v1/users/{user}", headers=bearer(KEY)).status_code == 400


def test_an_unknown_item_is_404_and_bodies_that_are_not_json_are_refused(client, items):
    resp = post_event(client, "svc-user", {"kind": "like", "item_id": "no/such/item"}, bearer(KEY))
    assert resp.status_code == 404 and names(resp) == ["item_id"]
    resp = client.post("/api/v1/users/svc-user/events", data="kind=like", headers=bearer(KEY),
                       content_type="application/x-www-form-urlencoded")
    assert resp.status_code == 415 and resp.get_json()["supported"] == ["application/json"]
    resp = client.post("/api/v1/users/svc-user/events", data="{kind: like", headers=bearer(KEY),
                       content_type="application/json")
    assert resp.status_code == 400 and names(resp) == ["body"]
    assert post_event(client, "svc-user", ["like"], bearer(KEY)).status_code == 400
    assert client.get("/api/v1/users/svc-user/events").get_json()["events"] == []


def test_iso_times_with_zones_and_naive_as_utc(client, items):
    for at in ("2024-05-01T12:00:00+09:00", "2024-05-01T03:00:00Z", "2024-05-01T03:00:00", "1714532400"):
        resp = post_event(client, "svc-user", {"kind": "view", "item_id": items[0], "at": at}, bearer(KEY))
        assert resp.get_json()["event"]["at"] == 1714532400.0, at


# -- rate limits ------------------------------------------------------------------------------
def test_per_user_writes_are_rate_limited_with_retry_after(tmp_path, index, items):
    client = make_app(tmp_path, index, rate_user_per_s=0.5, rate_user_burst=3).test_client()
    me = session(client)
    codes = [post_event(client, me["user_id"], {"kind": "view", "item_id": items[0]},
                        bearer(me["token"])).status_code for _ in range(3)]
    assert codes == [201, 201, 201]
    resp = post_event(client, me["user_id"], {"kind": "view", "item_id": items[0]}, bearer(me["token"]))
    assert resp.status_code == 429 and resp.get_json()["type"] == "urn:eyepic:problem:rate-limited"
    assert 1 <= int(resp.headers["Retry-After"]) <= 2
    assert post_event(client, "another-user", {"kind": "view", "item_id": items[0]}, bearer(KEY)).status_code == 201


def test_per_ip_limits_sessions_and_guessing_but_not_other_addresses(tmp_path, index, items):
    client = make_app(tmp_path, index, rate_ip_per_s=0.1, rate_ip_burst=2).test_client()
    here = {"REMOTE_ADDR": "10.0.0.1"}
    assert [client.post("/api/v1/session", environ_base=here).status_code for _ in range(3)] == [201, 201, 429]
    resp = post_event(client, "victim", {"kind": "like", "item_id": items[0]}, bearer("guess"), environ_base=here)
    assert resp.status_code == 429 and int(resp.headers["Retry-After"]) >= 1  # guessing is throttled too
    assert client.post("/api/v1/session", environ_base={"REMOTE_ADDR": "10.0.0.2"}).status_code == 201
    # an API key has its own bucket, not the address's
    assert post_event(client, "svc", {"kind": "like", "item_id": items[0]}, bearer(KEY),
                      environ_base=here).status_code == 201


def test_per_key_writes_are_rate_limited(tmp_path, index, items):
    client = make_app(tmp_path, index, rate_key_per_s=0.2, rate_key_burst=2).test_client()
    codes = [post_event(client, f"u{i}", {"kind": "like", "item_id": items[0]}, bearer(KEY)).status_code
             for i in range(3)]
    assert codes == [201, 201, 429]
    assert post_event(client, "u9", {"kind": "like", "item_id": items[0]}, bearer(FILE_KEY)).status_code == 201


def test_token_buckets_refill_at_their_rate():
    now = [100.0]
    limiter = RateLimiter(rate=2.0, burst=2, clock=lambda: now[0])
    assert [limiter.wait("k") for _ in range(2)] == [0.0, 0.0]
    assert limiter.wait("k") == pytest.approx(0.5)
    now[0] += 0.5
    assert limiter.wait("k") == 0.0 and limiter.wait("other") == 0.0
    assert RateLimiter(rate=0, burst=1).wait("k") == 0.0  # 0: off


# -- the store down ---------------------------------------------------------------------------
class DownStore:
    def _down(self, *args: Any) -> Any:
        raise EventStoreUnavailable("events store down (test)")

    add = events = users = forget = _down

    def close(self) -> None:
        return None


def test_an_events_store_down_is_503_with_retry_after(tmp_path, index, items):
    settings = Settings(var_dir=tmp_path / "var", model_dir=tmp_path / "m", api_keys=KEY)
    client = create_app(settings, analyzer=Analyzer(FakeModels()), index=index, events=DownStore(),
                        access=AccessControl.from_settings(settings)).test_client()
    resp = post_event(client, "u", {"kind": "like", "item_id": items[0]}, bearer(KEY))
    assert resp.status_code == 503 and resp.headers["Retry-After"]
    assert resp.get_json()["type"] == "urn:eyepic:problem:events-unavailable"
    assert client.get("/api/v1/users/u/events").status_code == 503
    assert client.delete("/api/v1/users/u", headers=bearer(KEY)).status_code == 503

